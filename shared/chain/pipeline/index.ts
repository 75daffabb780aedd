import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Repository } from '../../documents/repository';
import { Unavailable } from '../../errors';
import type { FailoverProvider } from '../provider';
import { Broadcaster } from './broadcast';
import type { ChainCall } from './calls';
import { FeePolicy } from './fees';
import { NonceHoles } from './nonceHoles';
import { NonceLeases } from './nonceLeases';
import { Outcomes } from './outcomes';
export { revertedOutcome } from './outcomes';
import { PollLoop } from './polling';
import { ReceiptWatch } from './receipts';
import type { NonceLeaseDoc, TxDoc, TxOutcome, TxSummary } from './records';
import { Resender } from './resend';
import { settingsFrom, type PipelineOptions } from './settings';
import { Submission } from './submission';
import { TrackedTransactions } from './tracking';

export { InsufficientFunds, type ChainCall, type ChainSender } from './calls';
export type { NonceLeaseDoc, TxAttempt, TxDoc, TxOutcome, TxState, TxSummary } from './records';
export type { PipelineLog, PipelineOptions } from './settings';

/**
 * The transaction pipeline: every ledger write goes through it.
 *
 * - **Idempotent by operation id.** The signed transaction is stored under the
 *   operation id (create-only) before it is broadcast; submitting the same id again
 *   returns that transaction, never a second one. Durable activities and bus
 *   deliveries run at least once; the ledger sees each operation once.
 * - **Nonces assigned locally** per sender, under a lease in the document store
 *   (ETag-guarded): one instance at a time assigns a sender's nonces, so two
 *   instances never use one. Whoever takes a lease over starts after the highest
 *   nonce recorded and the node's pending count. A nonce that was assigned but
 *   could not be used (signing or storing failed) is filled with a 0-value
 *   transfer to self, so later transactions are not stuck behind a gap.
 * - **EIP-1559 fees** from the node (base fee × 2 + tip), never above the cap from
 *   settings. A transaction not mined after `replaceAfterMs` is re-signed with the
 *   same nonce and fees raised by 12.5 % (the node's replacement rule), up to the cap.
 * - **Broadcast until mined**: pending transactions are re-sent periodically (a
 *   node that restarted or lost its pool gets them again), mined ones are final
 *   only `confirmations` blocks deep and only if their block is still on the chain
 *   (a reorg or a node that lost blocks puts them back to pending).
 * - **Reverts decoded** into `ContractRevert` from the ABI's custom errors: at
 *   estimation (nothing is sent, no nonce used) and for mined transactions that
 *   reverted (status 0).
 *
 * Each of those is a part in this folder (submission, nonceLeases and nonceHoles,
 * fees and resend, broadcast, receipts and outcomes, driven by polling); this class
 * only builds them, hands each its collaborators, and answers for them.
 */
export class TransactionPipeline {
    readonly instanceId: string;
    readonly #tracked: TrackedTransactions;
    readonly #outcomes: Outcomes;
    readonly #leases: NonceLeases;
    readonly #polling: PollLoop;
    readonly #submission: Submission;

    constructor(provider: FailoverProvider, stores: { transactions: Repository<TxDoc>; leases: Repository<NonceLeaseDoc> }, opts: PipelineOptions) {
        this.instanceId = opts.instanceId ?? `pipeline-${randomUUID()}`;
        const settings = settingsFrom(opts);
        const log = opts.log;
        // A newly watched transaction or a lease taken wakes the polling, which is built last: it drives the others.
        const wake = () => this.#polling.schedule();
        const tracked = new TrackedTransactions(wake);
        const fees = new FeePolicy(provider, settings, log);
        const broadcaster = new Broadcaster(provider, tracked, settings, log, opts.onInsufficientFunds);
        const outcomes = new Outcomes(provider, stores.transactions, tracked, settings, log);
        const receipts = new ReceiptWatch(provider, tracked, outcomes, settings, log);
        const resigning = { txs: stores.transactions, tracked, fees, broadcaster, settings, log };
        const resender = new Resender(resigning);
        const holes = new NonceHoles(provider, resigning);
        const leases = new NonceLeases(this.instanceId, provider, stores.leases, stores.transactions, tracked, holes, settings, wake, log);
        const polling = new PollLoop(tracked, leases, receipts, resender, settings, log);
        this.#submission = new Submission(provider, stores.transactions, tracked, outcomes, leases, holes, fees, broadcaster, receipts, polling, settings);
        this.#tracked = tracked;
        this.#outcomes = outcomes;
        this.#leases = leases;
        this.#polling = polling;
    }

    /**
     * Signs, stores and broadcasts the call's transaction, or returns the one already
     * made for this operation id. Resolves once the transaction is stored and sent
     * (not mined: see `wait`).
     */
    submit(call: ChainCall): Promise<TxSummary> {
        return this.#submission.submit(call);
    }

    /** Resolves when the operation's transaction is final: confirmed, or reverted (with the decoded error). */
    wait(operationId: string, opts: { timeoutMs?: number } = {}): Promise<TxOutcome> {
        return this.#outcomes.wait(operationId, opts);
    }

    /** `submit` then `wait`. */
    async send(call: ChainCall, opts: { timeoutMs?: number } = {}): Promise<TxOutcome> {
        await this.submit(call);
        return this.wait(call.operationId, opts);
    }

    /** Operations this instance is watching. */
    get inFlight(): number {
        return this.#tracked.size;
    }

    /** Resolves when every final record so far is written (or given up on). */
    flushed(): Promise<void> {
        return this.#outcomes.flushed();
    }

    /** Stops polling and releases the leases it holds (pending transactions stay stored; any instance resumes them). */
    async close(): Promise<void> {
        this.#submission.close();
        this.#polling.stop();
        // At most 10 s for the final records; the timer goes with the wait, so it holds no process open.
        const giveUp = new AbortController();
        await Promise.race([this.flushed(), sleep(10_000, undefined, { signal: giveUp.signal }).catch(() => undefined)]);
        giveUp.abort();
        await this.#leases.releaseAll();
        for (const t of this.#tracked.values()) for (const w of t.waiters) w.reject(new Unavailable('The transaction pipeline closed'));
        this.#tracked.clear();
    }
}
