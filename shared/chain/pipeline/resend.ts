import type { Repository } from '../../documents/repository';
import type { Broadcaster } from './broadcast';
import { signAttempt, type FeePolicy } from './fees';
import { errorMessage } from './nodeErrors';
import type { TxDoc } from './records';
import type { PipelineLog, PipelineSettings } from './settings';
import type { Tracked, TrackedTransactions } from './tracking';

/** What the parts that sign and send a sender's transactions again work with (re-sending, replacing, filling nonces). */
export interface Resigning {
    txs: Repository<TxDoc>;
    tracked: TrackedTransactions;
    fees: FeePolicy;
    broadcaster: Broadcaster;
    settings: PipelineSettings;
    log?: PipelineLog;
}

/**
 * Keeps unmined transactions moving: each is re-sent now and then (a node that restarted or lost
 * its pool gets it again) and, when stuck, re-signed with the same nonce and higher fees.
 */
export class Resender {
    constructor(private readonly parts: Resigning) {}

    /** Unmined transactions: re-sent now and then, replaced with higher fees when stuck. */
    async resend(): Promise<void> {
        const now = Date.now();
        const due = [...this.parts.tracked.values()].filter((t) => !t.mined).sort((a, b) => a.doc.nonce - b.doc.nonce);
        for (const t of due) {
            if (t.signer && now - t.lastAttemptAt > this.parts.settings.replaceAfterMs) {
                await this.#replace(t).catch((err: unknown) => this.parts.log?.warn({ operationId: t.doc.id, err: errorMessage(err) }, 'chain: replacing a stuck transaction failed'));
            } else if (now - t.lastBroadcast > this.parts.settings.rebroadcastAfterMs) {
                await this.parts.broadcaster.broadcast(t);
            }
        }
    }

    async #replace(t: Tracked): Promise<void> {
        const fees = await this.parts.fees.replacing(t.doc.attempts.at(-1)!);
        t.lastAttemptAt = Date.now();
        if (!fees) {
            this.parts.log?.warn({ operationId: t.doc.id, nonce: t.doc.nonce, cap: this.parts.settings.maxFeePerGasCap.toString() }, 'chain: a stuck transaction is at the fee cap; it is re-sent as it is');
            await this.parts.broadcaster.broadcast(t);
            return;
        }
        const { chainId, nonce, to, data } = t.doc;
        const attempt = await signAttempt(t.signer!, { chainId, nonce, to, data, value: BigInt(t.doc.value), gasLimit: BigInt(t.doc.gasLimit) }, fees);
        // Stored before it is sent: whichever attempt is mined, the operation knows it.
        const doc: TxDoc = { ...t.doc, attempts: [...t.doc.attempts, attempt], updatedAt: attempt.sentAt };
        const written = await this.parts.txs.replace(doc, t.etag);
        t.doc = written.item;
        t.etag = written.etag;
        this.parts.tracked.attempted(t, attempt.hash);
        this.parts.log?.info({ operationId: t.doc.id, nonce: t.doc.nonce, maxFeePerGas: attempt.maxFeePerGas, attempt: t.doc.attempts.length }, 'chain: stuck transaction replaced with higher fees');
        await this.parts.broadcaster.broadcast(t);
    }
}
