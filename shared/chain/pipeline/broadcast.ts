import type { FailoverProvider } from '../provider';
import { errorMessage } from './nodeErrors';
import { rawOf } from './records';
import type { PipelineLog, PipelineSettings } from './settings';
import type { Tracked, TrackedTransactions } from './tracking';

/**
 * Sending signed transactions to the node: new ones batched in nonce order, re-sends one at a
 * time; a refusal is logged (the next poll re-sends), and one for lack of funds is reported.
 */
export class Broadcaster {
    readonly #outbox: { t: Tracked; done: () => void }[] = [];
    /** When each sender's lack of funds was last reported. */
    readonly #fundsAsked = new Map<string, number>();

    constructor(
        private readonly provider: FailoverProvider,
        private readonly tracked: TrackedTransactions,
        private readonly settings: PipelineSettings,
        private readonly log?: PipelineLog,
        private readonly onInsufficientFunds?: (sender: string) => Promise<void>,
    ) {}

    /**
     * New transactions are sent a few milliseconds later, together and in nonce order: signed
     * concurrently, they are ready in any order, and a node takes a sender's transactions
     * fastest when they arrive in order (no future-nonce queue to reshuffle).
     */
    sendInOrder(t: Tracked): Promise<void> {
        return new Promise((resolve) => {
            this.#outbox.push({ t, done: resolve });
            if (this.#outbox.length === 1) {
                setTimeout(() => {
                    const batch = this.#outbox.splice(0).sort((a, b) => a.t.doc.sender.localeCompare(b.t.doc.sender) || a.t.doc.nonce - b.t.doc.nonce);
                    for (const { t: item, done } of batch) void this.broadcast(item).then(done);
                }, 3);
            }
        });
    }

    async broadcast(t: Tracked): Promise<void> {
        const attempt = t.doc.attempts.at(-1)!;
        t.lastBroadcast = Date.now();
        let raw: string;
        try {
            raw = await rawOf(t.doc, attempt);
        } catch (err) {
            this.log?.error({ operationId: t.doc.id, nonce: t.doc.nonce, err: errorMessage(err) }, 'chain: the signed transaction cannot be rebuilt from its record; not sent');
            return;
        }
        try {
            await this.provider.rpc('eth_sendRawTransaction', [raw]);
        } catch (err) {
            const message = errorMessage(err);
            // Known to the node already, or mined already: the receipt will tell.
            if (/already known|known transaction|already imported|nonce too low|replacement transaction underpriced/i.test(message)) {
                if (/nonce too low/i.test(message)) t.needsLookup = true;
                return;
            }
            if (/insufficient funds/i.test(message)) this.#askForFunds(t.doc.sender);
            this.log?.warn({ operationId: t.doc.id, nonce: t.doc.nonce, err: message }, 'chain: broadcast failed; it will be re-sent');
        }
    }

    /** Reports a sender short of funds to `onInsufficientFunds`, once per interval (its failure is logged; the re-sends go on). */
    #askForFunds(sender: string): void {
        if (!this.onInsufficientFunds) return;
        const key = sender.toLowerCase();
        const now = Date.now();
        if (now - (this.#fundsAsked.get(key) ?? -Infinity) < this.settings.fundsRequestIntervalMs) return;
        this.#fundsAsked.set(key, now);
        this.log?.info({ sender }, 'chain: the node refused a transaction for insufficient funds; asking for funds');
        this.onInsufficientFunds(sender).then(
            () => {
                // Funded (or on the way): re-send at the next poll rather than after the usual pause.
                for (const t of this.tracked.values()) if (t.doc.sender.toLowerCase() === key && !t.mined) t.lastBroadcast = 0;
            },
            (err: unknown) => this.log?.warn({ sender, err: errorMessage(err) }, 'chain: asking for funds failed; the transaction is re-sent meanwhile'),
        );
    }
}
