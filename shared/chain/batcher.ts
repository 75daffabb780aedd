import { randomUUID } from 'node:crypto';
import type { Repository } from '../documents/repository';
import type { ContractCall } from './energyExchange';
import type { ChainSender, TransactionPipeline, TxOutcome } from './pipeline';

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
    timeoutMs?: number;
    resolve(outcome: TxOutcome): void;
    reject(err: unknown): void;
}

/**
 * Gathers calls of one kind to one contract (the core's anchors, say) into one transaction each
 * time: an item that arrives while nothing is being sent goes at once (no added latency at low
 * load); items that arrive while a batch is being sent wait for it, at most `maxWaitMs`, and go
 * together, at most `maxItems` at a time. Each item keeps its own operation id: asked again, it
 * learns the outcome of the batch that carried it and nothing is sent twice.
 */
export class CallBatcher<T> {
    readonly #queue: Queued<T>[] = [];
    #sending = 0;
    #timer?: NodeJS.Timeout;

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
     * Sends the item (in a batch) and resolves with the outcome of the transaction that carried it.
     * An item carried before (its claim exists) is not looked up first: its claim, refused when the
     * batch is written, says which batch to follow. That keeps a new item to one write.
     */
    async send(operationId: string, item: T, opts: { timeoutMs?: number } = {}): Promise<TxOutcome> {
        const outcome = new Promise<TxOutcome>((resolve, reject) => this.#queue.push({ operationId, item, timeoutMs: opts.timeoutMs, resolve, reject }));
        this.#schedule();
        return outcome;
    }

    /** `handedOver`: a batch has just gone to the pipeline, and the items that waited for it go now. */
    #schedule(handedOver = false): void {
        if (this.#queue.length === 0) return;
        if (handedOver || this.#sending === 0 || this.#queue.length >= this.opts.maxItems) {
            clearTimeout(this.#timer);
            this.#timer = undefined;
            void this.#flush();
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
        try {
            const { batch, items } = await this.#write(taken);
            if (items.length) {
                const operationId = await this.#send(batch);
                // Handed to the pipeline: the next batch may form while this one is mined.
                const timeoutMs = Math.max(...items.map((q) => q.timeoutMs ?? 0)) || undefined;
                const outcome = this.deps.pipeline.wait(operationId, { timeoutMs });
                for (const q of items) outcome.then(q.resolve, q.reject);
            }
        } catch (err) {
            for (const q of taken) q.reject(err);
        } finally {
            this.#sending--;
            this.#schedule(true);
        }
    }

    /**
     * Writes the batch, then each item's claim (create-only). An item claimed by another batch
     * meanwhile (its retry elsewhere) follows that batch, and this one is written again without it.
     */
    async #write(taken: Queued<T>[]): Promise<{ batch: BatchOf; items: Queued<T>[] }> {
        const batchId = `batch:${this.opts.name}:${randomUUID()}`;
        let items = taken;
        const doc = (list: Queued<T>[]): BatchOf => ({ id: batchId, kind: 'batch', operationId: batchId, items: list.map((q) => q.operationId), ...this.#call(list), createdAt: new Date().toISOString() });
        const stored = await this.deps.store.create(doc(items));
        // The claims in bulk (each its own document): a batch's claims cost a request per hundred, not one per item.
        const createdAt = new Date().toISOString();
        const claimed = await this.deps.store.createEach(taken.map((q) => ({ id: claimId(q.operationId), kind: 'claim', batch: batchId, createdAt })));
        const elsewhere = taken.filter((_, i) => !claimed[i]);
        for (const q of elsewhere) {
            const claim = await this.deps.store.read(claimId(q.operationId), claimId(q.operationId));
            this.#settle((claim!.item as Extract<BatchDoc, { kind: 'claim' }>).batch).then(q.resolve, q.reject);
        }
        items = taken.filter((q) => !elsewhere.includes(q));
        // Nothing claimed this batch's items yet but this writer: written again without the others (an empty one is never sent).
        if (elsewhere.length && items.length) return { batch: (await this.deps.store.replace(doc(items), stored.etag)).item as BatchOf, items };
        return { batch: stored.item as BatchOf, items };
    }

    #call(items: Queued<T>[]): { to: string; data: string; gasLimit?: string } {
        const { to, data, gasLimit } = this.deps.build(items.map((q) => q.item));
        return { to, data, ...(gasLimit === undefined ? {} : { gasLimit: gasLimit.toString() }) };
    }

    /** Hands the stored batch to the pipeline (the same operation id and data every time: sent once). */
    async #send(batch: BatchOf): Promise<string> {
        const tx = await this.deps.pipeline.submit({ operationId: batch.operationId, from: await this.deps.from(), to: batch.to, data: batch.data, ...(batch.gasLimit ? { gasLimit: BigInt(batch.gasLimit) } : {}), label: `${this.opts.name} (${batch.items.length} items)` });
        return tx.operationId;
    }

    /** The outcome of the batch that carries an item, sending it first if its sender never did. */
    async #settle(batchId: string, timeoutMs?: number): Promise<TxOutcome> {
        const batch = (await this.deps.store.read(batchId, batchId))?.item;
        if (!batch || batch.kind !== 'batch') throw new Error(`Batch ${batchId} is not stored`);
        return this.deps.pipeline.wait(await this.#send(batch), { timeoutMs });
    }
}

const claimId = (operationId: string) => `claim:${operationId}`;
