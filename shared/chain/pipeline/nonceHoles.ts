import type { AbstractSigner } from 'ethers';
import type { FailoverProvider } from '../provider';
import { signAttempt } from './fees';
import type { TxDoc } from './records';
import type { Resigning } from './resend';

/** A sender's nonces as far as gaps go: which were assigned but not used, and who can sign a filler. */
export interface SenderNonces {
    key: string;
    /** Nonces assigned but not used (returned to the pool), lowest first. */
    free: number[];
    address: string;
    signer?: AbstractSigner;
}

/**
 * No gaps in a sender's nonces: a nonce assigned but not used, or one a previous lease holder left
 * without a record, is taken by the next submission or else filled with a 0-value transfer to self;
 * otherwise every later transaction would wait behind it forever.
 */
export class NonceHoles {
    constructor(
        private readonly provider: FailoverProvider,
        private readonly parts: Resigning,
    ) {}

    /**
     * A nonce assigned but not used: the next submission takes it. If none comes soon, a 0-value
     * transfer to self fills it, so later transactions are not stuck behind the gap.
     */
    unused(state: SenderNonces, nonce: number, why: string): void {
        state.free.push(nonce);
        state.free.sort((a, b) => a - b);
        setTimeout(() => {
            const i = state.free.indexOf(nonce);
            if (i < 0) return;
            state.free.splice(i, 1);
            this.fill(state, nonce, why);
        }, this.parts.settings.holeFillAfterMs).unref();
    }

    /**
     * Taking a sender over: its pending transactions are watched, re-sent and replaced when
     * stuck; a nonce between the chain's count and the next one that no record holds (its
     * operation never got stored) is filled, or everything after it would wait forever.
     */
    async adopt(state: SenderNonces, takenAt: number): Promise<void> {
        const mined = Number(BigInt(await this.provider.rpc<string>('eth_getTransactionCount', [state.address, 'latest'])));
        const held = new Set<number>();
        let continuationToken: string | undefined;
        let n = 0;
        do {
            const page = await this.parts.txs.query(
                // What deciding needs (a pending one is read whole): not every record's call data.
                { query: 'SELECT c.id, c.nonce, c.state FROM c WHERE c.sender = @sender AND c.nonce >= @mined', parameters: [{ name: '@sender', value: state.address }, { name: '@mined', value: mined }] },
                { continuationToken, maxItemCount: 500 },
            );
            for (const d of page.items) {
                held.add(d.nonce);
                if (d.state !== 'pending' || this.parts.tracked.has(d.id)) continue;
                const stored = await this.parts.txs.read(d.id, d.id);
                if (stored?.item.state === 'pending') {
                    this.parts.tracked.track(stored.item, stored.etag, state.signer, undefined, true);
                    n++;
                }
            }
            continuationToken = page.continuationToken;
        } while (continuationToken);
        if (n) this.parts.log?.info({ sender: state.address, adopted: n }, 'chain: pending transactions adopted');
        // Only below where this lease started: nonces from there on are this instance's, their records on the way.
        for (let nonce = mined; nonce < takenAt; nonce++) if (!held.has(nonce)) this.unused(state, nonce, 'no record holds this nonce');
    }

    /** A nonce that was assigned but will not carry its operation: a 0-value transfer to self takes it. */
    fill(state: SenderNonces, nonce: number, why: string): void {
        const signer = state.signer;
        this.parts.log?.warn({ sender: state.address, nonce, why }, 'chain: filling an unused nonce');
        if (!signer) return;
        void (async () => {
            const fees = await this.parts.fees.current();
            const attempt = await signAttempt(signer, { chainId: this.parts.settings.chainId, nonce, to: state.address, value: 0n, gasLimit: 21_000n }, fees);
            const now = attempt.sentAt;
            const doc: TxDoc = {
                id: `nonce-fill:${state.key}:${nonce}`,
                sender: state.address,
                nonce,
                chainId: this.parts.settings.chainId,
                to: state.address,
                data: '0x',
                value: '0',
                gasLimit: '21000',
                attempts: [attempt],
                state: 'pending',
                filler: true,
                label: `fill nonce ${nonce} (${why})`,
                createdAt: now,
                updatedAt: now,
            };
            let etag: string | undefined;
            try {
                etag = (await this.parts.txs.upsert(doc)).etag;
            } catch (err) {
                this.parts.log?.warn({ err: (err as Error).message, nonce }, 'chain: the filler could not be stored; it is sent anyway');
            }
            await this.parts.broadcaster.broadcast(this.parts.tracked.track(doc, etag, signer, undefined, false));
        })().catch((err: unknown) => this.parts.log?.error({ err: (err as Error).message, sender: state.address, nonce }, 'chain: filling a nonce failed; the watchdog of stuck transactions will retry'));
    }
}
