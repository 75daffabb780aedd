import type { Repository } from '../../documents/repository';
import type { Broadcaster } from './broadcast';
import { signAttempt, type FeePolicy } from './fees';
import { errorMessage } from './nodeErrors';
import type { TxDoc } from './records';
import type { PipelineLog, PipelineSettings } from './settings';
import type { Tracked, TrackedTransactions } from './tracking';

/**
 * Keeps unmined transactions moving: each is re-sent now and then (a node that restarted or lost
 * its pool gets it again) and, when stuck, re-signed with the same nonce and higher fees.
 */
export class Resender {
    constructor(
        private readonly txs: Repository<TxDoc>,
        private readonly tracked: TrackedTransactions,
        private readonly fees: FeePolicy,
        private readonly broadcaster: Broadcaster,
        private readonly settings: PipelineSettings,
        private readonly log?: PipelineLog,
    ) {}

    /** Unmined transactions: re-sent now and then, replaced with higher fees when stuck. */
    async resend(): Promise<void> {
        const now = Date.now();
        const due = [...this.tracked.values()].filter((t) => !t.mined).sort((a, b) => a.doc.nonce - b.doc.nonce);
        for (const t of due) {
            if (t.signer && now - t.lastAttemptAt > this.settings.replaceAfterMs) {
                await this.#replace(t).catch((err: unknown) => this.log?.warn({ operationId: t.doc.id, err: errorMessage(err) }, 'chain: replacing a stuck transaction failed'));
            } else if (now - t.lastBroadcast > this.settings.rebroadcastAfterMs) {
                await this.broadcaster.broadcast(t);
            }
        }
    }

    async #replace(t: Tracked): Promise<void> {
        const fees = await this.fees.replacing(t.doc.attempts.at(-1)!);
        t.lastAttemptAt = Date.now();
        if (!fees) {
            this.log?.warn({ operationId: t.doc.id, nonce: t.doc.nonce, cap: this.settings.maxFeePerGasCap.toString() }, 'chain: a stuck transaction is at the fee cap; it is re-sent as it is');
            await this.broadcaster.broadcast(t);
            return;
        }
        const { chainId, nonce, to, data } = t.doc;
        const attempt = await signAttempt(t.signer!, { chainId, nonce, to, data, value: BigInt(t.doc.value), gasLimit: BigInt(t.doc.gasLimit) }, fees);
        // Stored before it is sent: whichever attempt is mined, the operation knows it.
        const doc: TxDoc = { ...t.doc, attempts: [...t.doc.attempts, attempt], updatedAt: attempt.sentAt };
        const written = await this.txs.replace(doc, t.etag);
        t.doc = written.item;
        t.etag = written.etag;
        this.tracked.attempted(t, attempt.hash);
        this.log?.info({ operationId: t.doc.id, nonce: t.doc.nonce, maxFeePerGas: attempt.maxFeePerGas, attempt: t.doc.attempts.length }, 'chain: stuck transaction replaced with higher fees');
        await this.broadcaster.broadcast(t);
    }
}
