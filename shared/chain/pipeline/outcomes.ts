import type { InterfaceAbi } from 'ethers';
import { setBounded } from '../../boundedMap';
import type { PatchOperation, Repository } from '../../documents/repository';
import { AppError, Conflict, Unavailable } from '../../errors';
import type { FailoverProvider } from '../provider';
import { ContractRevert, decodeRevert, revertDataOf } from '../reverts';
import { errorMessage } from './nodeErrors';
import { summary, type TxDoc, type TxOutcome } from './records';
import type { PipelineLog, PipelineSettings } from './settings';
import type { Mined, Tracked, TrackedTransactions } from './tracking';

/**
 * An operation's outcome once its transaction is final: handed to whoever waits for it at once
 * (a revert replayed and decoded), kept for repeated asks, and recorded in the store behind.
 */
export class Outcomes {
    /** Outcomes of the last operations made final here (their records may still be on the way to the store). */
    readonly #settled = new Map<string, { doc: TxDoc; outcome: TxOutcome }>();
    readonly #writeBehind: { doc: TxDoc; etag?: string; tries: number }[] = [];
    readonly #drained: (() => void)[] = [];
    #writing = 0;

    constructor(
        private readonly provider: FailoverProvider,
        private readonly txs: Repository<TxDoc>,
        private readonly tracked: TrackedTransactions,
        private readonly settings: PipelineSettings,
        private readonly log?: PipelineLog,
    ) {}

    /** The record and outcome of an operation made final here lately. */
    recent(operationId: string): { doc: TxDoc; outcome: TxOutcome } | undefined {
        return this.#settled.get(operationId);
    }

    /** Resolves when the operation's transaction is final: confirmed, or reverted (with the decoded error). */
    async wait(operationId: string, opts: { timeoutMs?: number } = {}): Promise<TxOutcome> {
        let tracked = this.tracked.get(operationId);
        const settled = this.#settled.get(operationId);
        if (!tracked && settled) return settled.outcome;
        if (!tracked) {
            const stored = await this.txs.read(operationId, operationId);
            if (!stored) throw new AppError(`No transaction for operation ${operationId}`, 404, 'not_found');
            if (stored.item.state !== 'pending') return this.outcomeOf(stored.item);
            tracked = this.tracked.track(stored.item, stored.etag, undefined, undefined, true);
        }
        const t = tracked;
        return new Promise<TxOutcome>((resolve, reject) => {
            let timer: NodeJS.Timeout | undefined;
            const waiter = {
                resolve: (o: TxOutcome) => {
                    clearTimeout(timer);
                    resolve(o);
                },
                reject: (e: unknown) => {
                    clearTimeout(timer);
                    reject(e);
                },
            };
            t.waiters.push(waiter);
            if (opts.timeoutMs) {
                timer = setTimeout(() => {
                    t.waiters.splice(t.waiters.indexOf(waiter), 1);
                    reject(new Unavailable(`The transaction of ${operationId} is not final after ${opts.timeoutMs} ms (it stays tracked)`));
                }, opts.timeoutMs);
            }
        });
    }

    /**
     * Final: the waiters get the outcome now; the record's outcome fields are written behind
     * (a patch, not the whole record with its call data again; a few writes at a time,
     * retried). Until it is, the stored state says pending, which any instance resolves
     * again from the receipt: nothing is lost if this process stops first.
     */
    async settle(t: Tracked, mined: Mined): Promise<void> {
        let revert: ContractRevert | undefined;
        if (mined.status !== 1) revert = await this.#replayRevert(t.doc, mined.blockNumber, t.abi);
        const doc: TxDoc = {
            ...t.doc,
            state: mined.status === 1 ? 'confirmed' : 'reverted',
            hash: mined.hash,
            blockNumber: mined.blockNumber,
            blockHash: mined.blockHash,
            gasUsed: mined.gasUsed,
            contractAddress: mined.contractAddress,
            revert: revert ? { name: revert.errorName, args: revert.args } : undefined,
            updatedAt: new Date().toISOString(),
        };
        this.tracked.untrack(t);
        const outcome = this.outcomeOf(doc, revert);
        setBounded(this.#settled, doc.id, { doc, outcome }, 10_000);
        this.#writeBehind.push({ doc, etag: t.etag, tries: 0 });
        void this.#drainWrites();
        for (const w of t.waiters) w.resolve(outcome);
    }

    /** Writes final records, a few at a time; a conflict means another instance wrote first, or an attempt was added. */
    async #drainWrites(): Promise<void> {
        while (this.#writeBehind.length && this.#writing < 4) {
            const job = this.#writeBehind.shift()!;
            this.#writing++;
            const done = (async () => {
                try {
                    await this.txs.patch(job.doc.id, job.doc.id, finalFields(job.doc), job.etag);
                } catch (err) {
                    if (err instanceof Conflict) {
                        // Changed since: another instance made it final first, or added an attempt (kept: only the outcome is written).
                        const current = await this.txs.read(job.doc.id, job.doc.id);
                        if (current && current.item.state === 'pending') this.#writeBehind.push({ doc: job.doc, etag: current.etag, tries: job.tries + 1 });
                        return;
                    }
                    if (job.tries < 20) {
                        this.log?.warn({ operationId: job.doc.id, err: errorMessage(err) }, 'chain: recording a final transaction failed; retrying');
                        setTimeout(() => {
                            this.#writeBehind.push({ ...job, tries: job.tries + 1 });
                            void this.#drainWrites();
                        }, Math.min(30_000, 200 * 2 ** job.tries)).unref();
                    } else {
                        this.log?.error({ operationId: job.doc.id }, 'chain: gave up recording a final transaction; it stays pending in the store and is resolved from its receipt when asked');
                    }
                }
            })().finally(() => {
                this.#writing--;
                if (this.#writeBehind.length) void this.#drainWrites();
                else if (this.#writing === 0) for (const r of this.#drained.splice(0)) r();
            });
            void done;
        }
    }

    /** Resolves when every final record so far is written (or given up on). */
    flushed(): Promise<void> {
        if (this.#writing === 0 && this.#writeBehind.length === 0) return Promise.resolve();
        return new Promise((resolve) => this.#drained.push(resolve));
    }

    /**
     * A receipt has no revert data: the call is replayed to get it, on the state before its
     * block, else after it, else now (nodes that keep little history answer only recent states).
     */
    async #replayRevert(doc: TxDoc, blockNumber: number, abi?: InterfaceAbi): Promise<ContractRevert> {
        const abis = abi ? [abi, ...this.settings.abis] : this.settings.abis;
        const call = { from: doc.sender, ...(doc.to ? { to: doc.to } : {}), data: doc.data, value: '0x' + BigInt(doc.value).toString(16), gas: '0x' + BigInt(doc.gasLimit).toString(16) };
        for (const tag of ['0x' + Math.max(0, blockNumber - 1).toString(16), '0x' + blockNumber.toString(16), 'latest']) {
            try {
                await this.provider.rpc('eth_call', [call, tag]);
            } catch (err) {
                const decoded = decodeRevert(revertDataOf(err), abis);
                if (decoded) return decoded;
            }
        }
        return new ContractRevert('UnknownError', { reason: 'the transaction reverted; replaying it did not reproduce the error (out of gas, or state changed since)' }, '0x');
    }

    outcomeOf(doc: TxDoc, revert?: ContractRevert): TxOutcome {
        const r = revert ?? (doc.revert ? new ContractRevert(doc.revert.name, doc.revert.args as ContractRevert['args'], '0x') : undefined);
        return { ...summary(doc), state: doc.state as 'confirmed' | 'reverted', hash: doc.hash!, blockNumber: doc.blockNumber!, blockHash: doc.blockHash!, gasUsed: doc.gasUsed!, contractAddress: doc.contractAddress, revert: r };
    }
}

/** The fields a final record adds to the pending one, as patch operations (at most 8: Cosmos DB takes 10 a request). */
function finalFields(doc: TxDoc): PatchOperation[] {
    const fields = { state: doc.state, hash: doc.hash, blockNumber: doc.blockNumber, blockHash: doc.blockHash, gasUsed: doc.gasUsed, contractAddress: doc.contractAddress, revert: doc.revert, updatedAt: doc.updatedAt };
    return Object.entries(fields)
        .filter(([, value]) => value !== undefined)
        .map(([field, value]) => ({ op: 'set', path: `/${field}`, value }));
}

/** A call's outcome; a revert caught at estimation (nothing sent) comes back like a mined one. */
export async function revertedOutcome(sending: Promise<TxOutcome>): Promise<Pick<TxOutcome, 'state' | 'hash' | 'blockNumber' | 'revert'>> {
    try {
        return await sending;
    } catch (err) {
        if (err instanceof ContractRevert) return { state: 'reverted', hash: '', blockNumber: 0, revert: err };
        throw err;
    }
}
