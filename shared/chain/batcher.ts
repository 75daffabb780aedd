import { randomUUID } from 'node:crypto';
import type { Repository } from '../documents/repository';
import type { ContractCall } from './energyExchange';
import type { ChainSender, TransactionPipeline, TxOutcome, TxSummary } from './pipeline';

/**
 * What a batcher keeps (container `batches`, partition `/id`): a batch's call, written before it
 * is sent, and each item's claim on the batch that carries it. A retried item finds its claim
 * and waits on that batch's transaction; a batch whose sender crashed before sending is sent by
 * the first of its items to come back, with the same operation id and the same data.
 */
export type BatchDoc =
    | { id: string; kind: 'batch'; operationId: string; items: string[]; to: string; data: string; gasLimit?: string; createdAt: string }
    | { id: string; kind: 'claim'; batch: string; createdAt: string };

type BatchOf = Extract<BatchDoc, { kind: 'batch' }>;

export interface BatcherOptions {
    /** At most this many items in one transaction. */
    maxItems: number;
    /** A queued item waits at most this long for the batch before it while that batch is being sent. */
    maxWaitMs: number;
    /** Names the batches' operation ids and labels (e.g. `anchor:<contract>`). */
    name: string;
}

interface Queued<T> {
    operationId: string;
    item: T;
    requireFunds: boolean;
    resolve(tx: TxSummary): void;
    reject(err: unknown): void;
}

/**
 * Gathers calls of one kind to one contract from one sender (the core's anchors, a member
 * account's signatures) into one transaction each time: an item that arrives while nothing is
 * being sent goes at once, with whatever else was asked for in the same turn of the event loop
 * (no added latency at low load); items that arrive while a batch is being
 * sent wait until a batch has been handed to the pipeline, at most `maxWaitMs`, and go together, at
 * most `maxItems` at a time. Each item keeps its own operation id: asked again, it learns the
 * transaction of the batch that carried it and nothing is sent twice.
 */
export class CallBatcher<T> {
    readonly #queue: Queued<T>[] = [];
    /** Items queued or in a batch being written, by operation id. */
    readonly #pending = new Map<string, Promise<TxSummary>>();
    #sending = 0;
    #timer?: NodeJS.Timeout;
    #immediate?: NodeJS.Immediate;

    constructor(
        private readonly deps: {
            pipeline: Pick<TransactionPipeline, 'submit' | 'wait'>;
            store: Repository<BatchDoc>;
            from: () => Promise<ChainSender>;
            /** The one call that carries these items. */
            build: (items: T[]) => ContractCall;
        },
        private readonly opts: BatcherOptions,
    ) {}

    /**
     * Hands the item (in a batch) to the pipeline and resolves with the transaction that carries it.
     * An item carried before (its claim exists) is not looked up first: its claim, refused when the
     * batch is written, says which batch to follow. That keeps a new item to one write (in bulk).
     * `requireFunds`: the batch is refused (`InsufficientFunds`, nothing sent) when its sender cannot pay for it.
     */
    submit(operationId: string, item: T, opts: { requireFunds?: boolean } = {}): Promise<TxSummary> {
        // Asked again while it is still queued or being written here (a repeated request): the same hand-over, not a second item.
        const pending = this.#pending.get(operationId);
        if (pending) return pending;
        const handed = new Promise<TxSummary>((resolve, reject) => this.#queue.push({ operationId, item, requireFunds: opts.requireFunds ?? false, resolve, reject }));
        this.#pending.set(operationId, handed);
        const done = () => this.#pending.delete(operationId);
        handed.then(done, done);
        this.#schedule();
        return handed;
    }

    /** `submit`, then the outcome of the transaction that carried the item. */
    async send(operationId: string, item: T, opts: { timeoutMs?: number } = {}): Promise<TxOutcome> {
        const tx = await this.submit(operationId, item);
        return this.deps.pipeline.wait(tx.operationId, { timeoutMs: opts.timeoutMs });
    }

    /**
     * `handedOver`: a batch has just gone to the pipeline, and the items that waited for it go now.
     * Nothing being sent: what is queued goes at the end of this turn of the event loop, so items
     * asked for together (a burst) go together instead of the first alone and the rest behind it.
     */
    #schedule(handedOver = false): void {
        if (this.#queue.length === 0) return;
        if (handedOver || this.#sending === 0) {
            clearTimeout(this.#timer);
            this.#timer = undefined;
            this.#immediate ??= setImmediate(() => {
                this.#immediate = undefined;
                while (this.#queue.length) void this.#flush();
            });
        } else if (this.#queue.length >= this.opts.maxItems) {
            // Busy: each full batch goes at once; the rest waits for a hand-over or the timer.
            while (this.#queue.length >= this.opts.maxItems) void this.#flush();
            this.#schedule();
        } else {
            this.#timer ??= setTimeout(() => {
                this.#timer = undefined;
                void this.#flush();
            }, this.opts.maxWaitMs);
        }
    }

    async #flush(): Promise<void> {
        const taken = this.#queue.splice(0, this.opts.maxItems);
        if (taken.length === 0) return;
        this.#sending++;
        // The items this batch answers for: all it took until the claims say some follow another batch.
        let mine = taken;
        try {
            const { batch, items } = await this.#write(taken);
            mine = items;
            if (items.length) {
                // Handed to the pipeline: the next batch may form while this one is mined.
                const tx = await this.#send(batch, items.some((q) => q.requireFunds));
                for (const q of items) q.resolve(tx);
            }
        } catch (err) {
            for (const q of mine) q.reject(err);
        } finally {
            this.#sending--;
            this.#schedule(true);
        }
    }

    /**
     * Writes the batch, then each item's claim (create-only). An item claimed by another batch
     * meanwhile (its retry elsewhere, or an earlier attempt) follows that batch, and this one is
     * written again without it.
     */
    async #write(taken: Queued<T>[]): Promise<{ batch: BatchOf; items: Queued<T>[] }> {
        const batchId = `batch:${this.opts.name}:${randomUUID()}`;
        const doc = (list: Queued<T>[]): BatchOf => ({ id: batchId, kind: 'batch', operationId: batchId, items: list.map((q) => q.operationId), ...this.#call(list), createdAt: new Date().toISOString() });
        const stored = await this.deps.store.create(doc(taken));
        // The claims in bulk (each its own document): a batch's claims cost a request per hundred, not one per item.
        const createdAt = new Date().toISOString();
        const claimed = await this.deps.store.createEach(taken.map((q) => ({ id: claimId(q.operationId), kind: 'claim', batch: batchId, createdAt })));
        const elsewhere = taken.filter((_, i) => !claimed[i]);
        for (const q of elsewhere) this.#follow(q).then(q.resolve, q.reject);
        const items = taken.filter((_, i) => claimed[i]);
        // Nothing claimed this batch's items yet but this writer: written again without the others (an empty one is never sent).
        if (elsewhere.length && items.length) return { batch: (await this.deps.store.replace(doc(items), stored.etag)).item as BatchOf, items };
        return { batch: stored.item as BatchOf, items };
    }

    #call(items: Queued<T>[]): { to: string; data: string; gasLimit?: string } {
        const { to, data, gasLimit } = this.deps.build(items.map((q) => q.item));
        return { to, data, ...(gasLimit === undefined ? {} : { gasLimit: gasLimit.toString() }) };
    }

    /** Hands the stored batch to the pipeline (the same operation id and data every time: sent once). */
    async #send(batch: BatchOf, requireFunds: boolean): Promise<TxSummary> {
        return this.deps.pipeline.submit({
            operationId: batch.operationId,
            from: await this.deps.from(),
            to: batch.to,
            data: batch.data,
            ...(batch.gasLimit ? { gasLimit: BigInt(batch.gasLimit) } : {}),
            ...(requireFunds ? { requireFunds } : {}),
            label: `${this.opts.name} (${batch.items.length} items)`,
        });
    }

    /** The transaction of the batch that claimed an item before, handed to the pipeline first if its sender never did. */
    async #follow(q: Queued<T>): Promise<TxSummary> {
        const claim = (await this.deps.store.read(claimId(q.operationId), claimId(q.operationId)))?.item;
        const batch = claim?.kind === 'claim' ? (await this.deps.store.read(claim.batch, claim.batch))?.item : undefined;
        if (!batch || batch.kind !== 'batch') throw new Error(`The batch that claimed ${q.operationId} is not stored`);
        return this.#send(batch, q.requireFunds);
    }
}

const claimId = (operationId: string) => `claim:${operationId}`;
