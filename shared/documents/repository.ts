import { Conflict, NotFound } from '../errors';

/**
 * The document store port: what the domain needs from a document database.
 * Every write that can race is guarded by an ETag; a stale one is a `Conflict`.
 */
export interface Stored<T> {
    item: T;
    etag: string;
}

export interface Page<T> {
    items: T[];
    /** Present when there are more results: pass it back to get the next page. */
    continuationToken?: string;
}

export interface QuerySpec {
    query: string;
    parameters?: { name: string; value: string | number | boolean | null | string[] | number[] }[];
}

export type PatchOperation =
    | { op: 'set' | 'add' | 'replace'; path: string; value: unknown }
    | { op: 'remove'; path: string }
    | { op: 'incr'; path: string; value: number };

export interface Repository<T extends { id: string }> {
    /** Fails with `Conflict` when an item with that id (or unique key) exists in the partition. */
    create(item: T): Promise<Stored<T>>;
    /**
     * Creates each item that does not exist yet (create-only), in as few round trips as the store
     * allows: true for each one created, false for each that existed, in order. Any other failure rejects.
     */
    createEach(items: T[]): Promise<boolean[]>;
    read(id: string, partitionKey: string): Promise<Stored<T> | undefined>;
    /** With `etag`, fails with `Conflict` when the item changed since it was read; `NotFound` when it is gone. */
    replace(item: T, etag?: string): Promise<Stored<T>>;
    upsert(item: T): Promise<Stored<T>>;
    /** Resolves false when there was nothing to delete. */
    delete(id: string, partitionKey: string, etag?: string): Promise<boolean>;
    query(spec: QuerySpec, options?: { partitionKey?: string; continuationToken?: string; maxItemCount?: number }): Promise<Page<T>>;
    patch(id: string, partitionKey: string, operations: PatchOperation[], etag?: string): Promise<Stored<T>>;
}

/**
 * Read-modify-write under the item's ETag, read again and retried when someone else changed it
 * in between. `change` gets the current item (undefined when there is none) and returns the new
 * one, or undefined to leave it as it is; it may throw to refuse. Resolves to what is stored.
 */
export async function updateItem<T extends { id: string }>(
    repo: Repository<T>,
    id: string,
    partitionKey: string,
    change: (current: T | undefined) => T | undefined,
    opts: { attempts?: number; conflict: () => Error },
): Promise<T | undefined> {
    return (await updateStored(repo, id, partitionKey, change, opts))?.item;
}

/**
 * `updateItem`, resolving to the item with its ETag. With `known` (the item as this caller last
 * read or wrote it) the first attempt starts from it instead of reading: one request less when
 * nobody changed the item since, and the usual read and retry when someone did. `known: null`
 * says the item is most likely not there yet: the first attempt creates it without reading, and
 * one that exists after all fails that create and is read.
 */
export async function updateStored<T extends { id: string }>(
    repo: Repository<T>,
    id: string,
    partitionKey: string,
    change: (current: T | undefined) => T | undefined,
    opts: { attempts?: number; conflict: () => Error; known?: Stored<T> | null },
): Promise<Stored<T> | undefined> {
    for (let attempt = 0; attempt < (opts.attempts ?? 5); attempt++) {
        const current = attempt === 0 && opts.known !== undefined ? (opts.known ?? undefined) : await repo.read(id, partitionKey);
        const next = change(current?.item);
        // Nothing to create on a guess that the item is missing: what is there is read, and the change asked again.
        if (!next && attempt === 0 && opts.known === null) continue;
        if (!next) return current;
        try {
            return current ? await repo.replace(next, current.etag) : await repo.create(next);
        } catch (err) {
            // A stale `known` that is gone now: read again (the change sees that it is missing).
            if (!(err instanceof Conflict) && !(attempt === 0 && opts.known && err instanceof NotFound)) throw err;
        }
    }
    throw opts.conflict();
}
