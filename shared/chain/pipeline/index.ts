import { randomUUID } from 'node:crypto';
import { getAddress, keccak256, type InterfaceAbi, type TransactionRequest } from 'ethers';
import type { Repository } from '../../documents/repository';
import { Conflict, Invalid, isUnreachable, Unavailable } from '../../errors';
import type { FailoverProvider } from '../provider';
import { ContractRevert, decodeRevert, revertDataOf } from '../reverts';
import { Broadcaster } from './broadcast';
import { fingerprint, InsufficientFunds, type ChainCall } from './calls';
import { FeePolicy } from './fees';
import { NonceHoles } from './nonceHoles';
import { NonceLeases } from './nonceLeases';
import { Outcomes } from './outcomes';
import { PollLoop } from './polling';
import { ReceiptWatch } from './receipts';
import { summary, type NonceLeaseDoc, type TxDoc, type TxOutcome, type TxSummary } from './records';
import { Resender } from './resend';
import { settingsFrom, type PipelineOptions, type PipelineSettings } from './settings';
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
 */

const OPERATION_ID_RE = /^[A-Za-z0-9:._\-]{1,200}$/;

export class TransactionPipeline {
    readonly instanceId: string;
    readonly #provider: FailoverProvider;
    readonly #txs: Repository<TxDoc>;
    readonly #opts: PipelineSettings;
    readonly #tracked = new TrackedTransactions(() => this.#polling.schedule());
    readonly #fees: FeePolicy;
    readonly #broadcaster: Broadcaster;
    readonly #outcomes: Outcomes;
    readonly #receipts: ReceiptWatch;
    readonly #resender: Resender;
    readonly #holes: NonceHoles;
    readonly #leases: NonceLeases;
    readonly #polling: PollLoop;
    readonly #submitting = new Map<string, { key: string; attempt: Promise<TxSummary> }>();
    #closed = false;

    constructor(provider: FailoverProvider, stores: { transactions: Repository<TxDoc>; leases: Repository<NonceLeaseDoc> }, opts: PipelineOptions) {
        this.#provider = provider;
        this.#txs = stores.transactions;
        this.instanceId = opts.instanceId ?? `pipeline-${randomUUID()}`;
        this.#opts = settingsFrom(opts);
        this.#fees = new FeePolicy(provider, this.#opts, opts.log);
        this.#broadcaster = new Broadcaster(provider, this.#tracked, this.#opts, opts.log, opts.onInsufficientFunds);
        this.#outcomes = new Outcomes(provider, stores.transactions, this.#tracked, this.#opts, opts.log);
        this.#receipts = new ReceiptWatch(provider, this.#tracked, this.#outcomes, this.#opts, opts.log);
        this.#resender = new Resender(stores.transactions, this.#tracked, this.#fees, this.#broadcaster, this.#opts, opts.log);
        this.#holes = new NonceHoles(provider, stores.transactions, this.#tracked, this.#fees, this.#broadcaster, this.#opts, opts.log);
        this.#leases = new NonceLeases(this.instanceId, provider, stores, this.#tracked, this.#holes, this.#opts, () => this.#polling.schedule(), opts.log);
        this.#polling = new PollLoop(this.#tracked, this.#leases, this.#receipts, this.#resender, this.#opts, opts.log);
    }

    /**
     * Signs, stores and broadcasts the call's transaction, or returns the one already
     * made for this operation id. Resolves once the transaction is stored and sent
     * (not mined: see `wait`).
     */
    submit(call: ChainCall): Promise<TxSummary> {
        // Concurrent submissions of one operation in this process share one attempt.
        const key = fingerprint(call);
        const running = this.#submitting.get(call.operationId);
        if (running) {
            if (running.key !== key) return Promise.reject(new Conflict(`The operation id ${call.operationId} was used for a different transaction`, 'operation_mismatch'));
            return running.attempt;
        }
        const attempt = this.#submit(call).finally(() => this.#submitting.delete(call.operationId));
        this.#submitting.set(call.operationId, { key, attempt });
        return attempt;
    }

    async #submit(call: ChainCall): Promise<TxSummary> {
        if (this.#closed) throw new Unavailable('The transaction pipeline is closed');
        if (!OPERATION_ID_RE.test(call.operationId)) throw new Invalid(`The operation id "${call.operationId}" must be 1-200 letters, digits or ':._-'`);
        const sender = getAddress(call.from.address);
        const to = call.to === undefined ? null : getAddress(call.to);
        if (!/^0x([0-9a-fA-F]{2})*$/.test(call.data)) throw new Invalid('The call data must be hex');

        const known = this.#tracked.get(call.operationId);
        if (known) return this.#checkSame(known.doc, sender, call);
        const settled = this.#outcomes.recent(call.operationId);
        if (settled) return this.#checkSame(settled.doc, sender, call);

        // While this instance leases the sender, a new operation is the common case: no read first; the
        // create-only write below finds a retried one (its nonce goes back to the pool). Otherwise (a retry
        // from another instance, a cold start) the store is asked first, alongside the estimate, so a
        // duplicate neither waits for the lease nor takes a nonce. A revert at estimation is checked
        // against the store too: for an operation already done it is expected (e.g. AlreadySigned).
        const abis = call.abi ? [call.abi, ...this.#opts.abis] : this.#opts.abis;
        const value = call.value ?? 0n;
        const leased = this.#leases.holds(sender);
        const [storedR, gasR, feesR] = await Promise.allSettled([
            leased ? Promise.resolve(undefined) : this.#existing(call, sender),
            call.gasLimit ?? this.#estimate(sender, to, call.data, value, abis),
            this.#fees.current(),
        ]);
        if (storedR.status === 'rejected') throw storedR.reason;
        if (storedR.value) return storedR.value;
        if (gasR.status === 'rejected') {
            const existing = leased ? await this.#existing(call, sender) : undefined;
            if (existing) return existing;
            throw gasR.reason;
        }
        if (feesR.status === 'rejected') throw feesR.reason;
        const gasLimit = gasR.value;
        const fees = feesR.value;
        if (call.requireFunds) {
            // Checked after the store (a retried operation is answered with its transaction, whatever the balance now).
            const existing = leased ? await this.#existing(call, sender) : undefined;
            if (existing) return existing;
            const needed = gasLimit * fees.maxFeePerGas + value;
            const balance = BigInt(await this.#provider.rpc<string>('eth_getBalance', [sender, 'latest']));
            if (balance < needed) throw new InsufficientFunds(sender, balance, needed);
        }
        const state = await this.#leases.lease(sender, call.from.signer);
        // Receipts are matched block by block from here on (the fee data's head, a second old at most).
        this.#receipts.startAt(fees.head);

        // Synchronous from the lease check to the assignment: one nonce, one operation.
        const nonce = this.#leases.assign(state);
        this.#polling.submitted(state.lastUse);
        const tx: TransactionRequest = {
            type: 2,
            chainId: this.#opts.chainId,
            nonce,
            to,
            data: call.data,
            value,
            gasLimit,
            maxFeePerGas: fees.maxFeePerGas,
            maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
        };
        let raw: string;
        try {
            raw = await call.from.signer.signTransaction(tx);
        } catch (err) {
            this.#holes.unused(state, nonce, 'signing failed');
            throw err;
        }
        const now = new Date().toISOString();
        const hash = keccak256(raw);
        const doc: TxDoc = {
            id: call.operationId,
            sender,
            nonce,
            chainId: this.#opts.chainId,
            to,
            data: call.data,
            value: value.toString(),
            gasLimit: gasLimit.toString(),
            attempts: [{ hash, raw, maxFeePerGas: fees.maxFeePerGas.toString(), maxPriorityFeePerGas: fees.maxPriorityFeePerGas.toString(), sentAt: now }],
            state: 'pending',
            label: call.label,
            createdAt: now,
            updatedAt: now,
        };
        let created;
        try {
            created = await this.#txs.create(doc);
        } catch (err) {
            this.#holes.unused(state, nonce, err instanceof Conflict ? 'the operation was already submitted' : 'storing failed');
            if (err instanceof Conflict) {
                const existing = await this.#existing(call, sender);
                if (existing) return existing;
            }
            throw err;
        }
        const tracked = this.#tracked.track(created.item, created.etag, call.from.signer, call.abi, false);
        await this.#broadcaster.sendInOrder(tracked);
        return summary(created.item);
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

    /** Stops polling and releases the leases it holds (pending transactions stay stored; any instance resumes them). */
    async close(): Promise<void> {
        this.#closed = true;
        this.#polling.stop();
        await Promise.race([this.flushed(), sleep(10_000)]);
        await this.#leases.releaseAll();
        for (const t of this.#tracked.values()) for (const w of t.waiters) w.reject(new Unavailable('The transaction pipeline closed'));
        this.#tracked.clear();
    }

    // -- preparation -----------------------------------------------------------

    /** The stored transaction of an operation submitted before (by any instance), watched again if still pending. */
    async #existing(call: ChainCall, sender: string): Promise<TxSummary | undefined> {
        const stored = await this.#txs.read(call.operationId, call.operationId);
        if (!stored) return undefined;
        this.#checkSame(stored.item, sender, call);
        if (stored.item.state === 'pending') this.#tracked.track(stored.item, stored.etag, call.from.signer, call.abi, true);
        return summary(stored.item);
    }

    #checkSame(doc: TxDoc, sender: string, call: ChainCall): TxSummary {
        const to = call.to === undefined ? null : getAddress(call.to);
        if (doc.sender !== sender || doc.to !== to || doc.data.toLowerCase() !== call.data.toLowerCase()) {
            throw new Conflict(`The operation id ${call.operationId} was used for a different transaction`, 'operation_mismatch');
        }
        return summary(doc);
    }

    async #estimate(from: string, to: string | null, data: string, value: bigint, abis: InterfaceAbi[]): Promise<bigint> {
        try {
            const gas = BigInt(await this.#provider.rpc<string>('eth_estimateGas', [{ from, ...(to ? { to } : {}), data, value: '0x' + value.toString(16) }]));
            return (gas * BigInt(100 + this.#opts.gasMarginPercent)) / 100n;
        } catch (err) {
            const revert = decodeRevert(revertDataOf(err), abis);
            if (revert) throw revert;
            if (isUnreachable(err) || err instanceof Unavailable) throw err instanceof Unavailable ? err : new Unavailable('The ledger is unreachable', { cause: err });
            const message = (err as { error?: { message?: string }; shortMessage?: string; message?: string }).error?.message ?? (err as Error).message;
            if (/revert/i.test(message)) throw new ContractRevert('UnknownError', { reason: message }, '0x', { cause: err });
            throw err;
        }
    }

    /** Resolves when every final record so far is written (or given up on). */
    flushed(): Promise<void> {
        return this.#outcomes.flushed();
    }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

