import { BulkOperationType, type Container, type ItemDefinition, type JSONObject, type OperationInput, type PatchOperation as CosmosPatch } from '@azure/cosmos';
import { Conflict, isUnreachable, NotFound, statusOf, Unavailable, Upstream } from '../errors';
import type { Page, PatchOperation, QuerySpec, Repository, Stored } from './repository';

/** Cosmos DB takes at most 100 operations per partition in one bulk request. */
const BULK_MAX = 100;
const SYSTEM = ['_rid', '_self', '_etag', '_attachments', '_ts'];

function clean<T>(resource: ItemDefinition): T {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(resource)) if (!SYSTEM.includes(k)) out[k] = v;
    return out as T;
}

/**
 * The document store on Azure Cosmos DB (`@azure/cosmos`). Stays inside what the
 * local Cosmos server supports: single-field ORDER BY, continuation tokens for
 * paging (no OFFSET/LIMIT), no change feed, no TTL (expiry is done in code), and
 * transactional batches only within one partition.
 */
export class CosmosRepository<T extends { id: string }> implements Repository<T> {
    constructor(
        readonly container: Container,
        private readonly partitionKeyOf: (item: T) => string,
    ) {}

    async create(item: T): Promise<Stored<T>> {
        return this.#call('create', async () => {
            const res = await this.container.items.create(item);
            return { item: clean<T>(res.resource!), etag: res.etag };
        });
    }

    /**
     * In bulk (one request per hundred items and physical partition, `continueOnError`). An item the
     * bulk request could not settle (throttled, say) is created on its own, with the usual mapping.
     * `items.bulk` rather than `executeBulkOperations`: the latter holds a partial batch for a second.
     */
    async createEach(items: T[]): Promise<boolean[]> {
        const out: boolean[] = [];
        for (let i = 0; i < items.length; i += BULK_MAX) {
            const chunk = items.slice(i, i + BULK_MAX);
            const ops: OperationInput[] = chunk.map((item) => ({ operationType: BulkOperationType.Create, partitionKey: this.partitionKeyOf(item), resourceBody: item as unknown as JSONObject }));
            const results = await this.#call('bulk create', () => this.container.items.bulk(ops, { continueOnError: true }));
            out.push(
                ...(await Promise.all(
                    chunk.map(async (item, k) => {
                        const status = results[k]?.statusCode;
                        if (status === 201) return true;
                        if (status === 409) return false;
                        return this.create(item).then(
                            () => true,
                            (err: unknown) => {
                                if (err instanceof Conflict && err.code === 'already_exists') return false;
                                throw err;
                            },
                        );
                    }),
                )),
            );
        }
        return out;
    }

    async read(id: string, partitionKey: string): Promise<Stored<T> | undefined> {
        // An id Cosmos DB cannot hold names nothing (the SDK would refuse it as a bad request).
        if (!storableId(id) || !storableId(partitionKey)) return undefined;
        return this.#call('read', async () => {
            const res = await this.container.item(id, partitionKey).read();
            if (res.statusCode === 404 || !res.resource) return undefined;
            return { item: clean<T>(res.resource), etag: res.etag };
        });
    }

    async replace(item: T, etag?: string): Promise<Stored<T>> {
        return this.#call('replace', async () => {
            const res = await this.container
                .item(item.id, this.partitionKeyOf(item))
                .replace(item, etag ? { accessCondition: { type: 'IfMatch', condition: etag } } : undefined);
            return { item: clean<T>(res.resource!), etag: res.etag };
        });
    }

    async upsert(item: T): Promise<Stored<T>> {
        return this.#call('upsert', async () => {
            const res = await this.container.items.upsert(item);
            return { item: clean<T>(res.resource!), etag: res.etag };
        });
    }

    async delete(id: string, partitionKey: string, etag?: string): Promise<boolean> {
        if (!storableId(id) || !storableId(partitionKey)) return false;
        try {
            await this.#call('delete', () =>
                this.container.item(id, partitionKey).delete(etag ? { accessCondition: { type: 'IfMatch', condition: etag } } : undefined),
            );
            return true;
        } catch (err) {
            if (err instanceof NotFound) return false;
            throw err;
        }
    }

    async query(spec: QuerySpec, options: { partitionKey?: string; continuationToken?: string; maxItemCount?: number } = {}): Promise<Page<T>> {
        return this.#call('query', async () => {
            const iterator = this.container.items.query<ItemDefinition>(spec, {
                partitionKey: options.partitionKey,
                continuationToken: options.continuationToken,
                maxItemCount: options.maxItemCount ?? 100,
            });
            const res = await iterator.fetchNext();
            return { items: res.resources.map((r) => clean<T>(r)), continuationToken: res.continuationToken || undefined };
        });
    }

    async patch(id: string, partitionKey: string, operations: PatchOperation[], etag?: string): Promise<Stored<T>> {
        return this.#call('patch', async () => {
            const res = await this.container
                .item(id, partitionKey)
                .patch(
                    { operations: operations as CosmosPatch[] },
                    etag ? { accessCondition: { type: 'IfMatch', condition: etag } } : undefined,
                );
            return { item: clean<T>(res.resource!), etag: res.etag };
        });
    }

    async #call<R>(operation: string, fn: () => Promise<R>): Promise<R> {
        try {
            return await fn();
        } catch (err) {
            const status = statusOf(err);
            const what = `${this.container.id}: ${operation}`;
            if (status === 404) throw new NotFound(`Not found (${what})`, { cause: err });
            if (status === 409) throw new Conflict(`Already exists (${what})`, 'already_exists', { cause: err });
            if (status === 412) throw new Conflict(`Changed since it was read (${what})`, 'stale_etag', { cause: err });
            if (status === 429) throw new Unavailable(`The document database is busy (${what})`, { cause: err });
            if (isUnreachable(err) || status === 503) throw new Unavailable(`The document database is unreachable (${what})`, { cause: err });
            throw new Upstream(`The document database failed (${what})`, { cause: err });
        }
    }
}

/** Cosmos DB refuses ids with '/', '\\', '?', '#', those ending in a space, and longer than 255 characters. */
export function storableId(id: string): boolean {
    return id.length > 0 && id.length <= 255 && !/[/\\?#]/.test(id) && !/\s$/.test(id);
}
