import { getAddress, type InterfaceAbi } from 'ethers';
import type { Repository } from '../../documents/repository';
import { Conflict, Invalid, isUnreachable, Unavailable } from '../../errors';
import type { FailoverProvider } from '../provider';
import { ContractRevert, decodeRevert, revertDataOf } from '../reverts';
import type { Broadcaster } from './broadcast';
import { fingerprint, InsufficientFunds, type ChainCall } from './calls';
import { signAttempt, type FeePolicy } from './fees';
import type { NonceHoles } from './nonceHoles';
import type { NonceLeases } from './nonceLeases';
import type { Outcomes } from './outcomes';
import type { PollLoop } from './polling';
import type { ReceiptWatch } from './receipts';
import { summary, type TxAttempt, type TxDoc, type TxSummary } from './records';
import type { PipelineSettings } from './settings';
import type { TrackedTransactions } from './tracking';

const OPERATION_ID_RE = /^[A-Za-z0-9:._\-]{1,200}$/;

/**
 * One transaction per operation id: a new operation is estimated (a revert refused before anything
 * is signed), given the sender's next nonce under its lease, signed, stored create-only under its id
 * and sent; a repeated one (here, or by another instance before) gets its stored transaction back.
 */
export class Submission {
    readonly #submitting = new Map<string, { key: string; attempt: Promise<TxSummary> }>();
    #closed = false;

    constructor(
        private readonly provider: FailoverProvider,
        private readonly txs: Repository<TxDoc>,
        private readonly tracked: TrackedTransactions,
        private readonly outcomes: Outcomes,
        private readonly leases: NonceLeases,
        private readonly holes: NonceHoles,
        private readonly fees: FeePolicy,
        private readonly broadcaster: Broadcaster,
        private readonly receipts: ReceiptWatch,
        private readonly polling: PollLoop,
        private readonly settings: PipelineSettings,
    ) {}

    /** Refuses every submission from now on. */
    close(): void {
        this.#closed = true;
    }

    /** The operation's transaction: made and sent now, or the one made before (see `TransactionPipeline.submit`). */
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

        const known = this.tracked.get(call.operationId);
        if (known) return this.#checkSame(known.doc, sender, call);
        const settled = this.outcomes.recent(call.operationId);
        if (settled) return this.#checkSame(settled.doc, sender, call);

        // While this instance leases the sender, a new operation is the common case: no read first; the
        // create-only write below finds a retried one (its nonce goes back to the pool). Otherwise (a retry
        // from another instance, a cold start) the store is asked first, alongside the estimate, so a
        // duplicate neither waits for the lease nor takes a nonce. A revert at estimation is checked
        // against the store too: for an operation already done it is expected (e.g. AlreadySigned).
        const abis = call.abi ? [call.abi, ...this.settings.abis] : this.settings.abis;
        const value = call.value ?? 0n;
        const leased = this.leases.holds(sender);
        const [storedR, gasR, feesR] = await Promise.allSettled([
            leased ? Promise.resolve(undefined) : this.#existing(call, sender),
            call.gasLimit ?? this.#estimate(sender, to, call.data, value, abis),
            this.fees.current(),
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
            const balance = BigInt(await this.provider.rpc<string>('eth_getBalance', [sender, 'latest']));
            if (balance < needed) throw new InsufficientFunds(sender, balance, needed);
        }
        const state = await this.leases.lease(sender, call.from.signer);

        // Synchronous from the lease check to the assignment: one nonce, one operation.
        const nonce = this.leases.assign(state);
        this.polling.submitted(state.lastUse);
        let attempt: TxAttempt;
        try {
            attempt = await signAttempt(call.from.signer, { chainId: this.settings.chainId, nonce, to, data: call.data, value, gasLimit }, fees);
        } catch (err) {
            this.holes.unused(state, nonce, 'signing failed');
            throw err;
        }
        const now = attempt.sentAt;
        const doc: TxDoc = {
            id: call.operationId,
            sender,
            nonce,
            chainId: this.settings.chainId,
            to,
            data: call.data,
            value: value.toString(),
            gasLimit: gasLimit.toString(),
            attempts: [attempt],
            state: 'pending',
            label: call.label,
            createdAt: now,
            updatedAt: now,
        };
        let created;
        try {
            created = await this.txs.create(doc);
        } catch (err) {
            this.holes.unused(state, nonce, err instanceof Conflict ? 'the operation was already submitted' : 'storing failed');
            if (err instanceof Conflict) {
                const existing = await this.#existing(call, sender);
                if (existing) return existing;
            }
            throw err;
        }
        const tracked = this.tracked.track(created.item, created.etag, call.from.signer, call.abi, false);
        // Receipts are matched block by block from the fee data's head (a second old at most, before the
        // broadcast). Set once it is tracked, so no poll finds nothing watched in between and stops scanning.
        this.receipts.startAt(fees.head);
        await this.broadcaster.sendInOrder(tracked);
        return summary(created.item);
    }

    /** The stored transaction of an operation submitted before (by any instance), watched again if still pending. */
    async #existing(call: ChainCall, sender: string): Promise<TxSummary | undefined> {
        const stored = await this.txs.read(call.operationId, call.operationId);
        if (!stored) return undefined;
        this.#checkSame(stored.item, sender, call);
        if (stored.item.state === 'pending') this.tracked.track(stored.item, stored.etag, call.from.signer, call.abi, true);
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
            const gas = BigInt(await this.provider.rpc<string>('eth_estimateGas', [{ from, ...(to ? { to } : {}), data, value: '0x' + value.toString(16) }]));
            return (gas * BigInt(100 + this.settings.gasMarginPercent)) / 100n;
        } catch (err) {
            const revert = decodeRevert(revertDataOf(err), abis);
            if (revert) throw revert;
            if (isUnreachable(err) || err instanceof Unavailable) throw err instanceof Unavailable ? err : new Unavailable('The ledger is unreachable', { cause: err });
            const message = (err as { error?: { message?: string }; shortMessage?: string; message?: string }).error?.message ?? (err as Error).message;
            if (/revert/i.test(message)) throw new ContractRevert('UnknownError', { reason: message }, '0x', { cause: err });
            throw err;
        }
    }
}
