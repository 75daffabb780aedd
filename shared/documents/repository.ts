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
    read(id: string, partitionKey: string): Promise<Stored<T> | undefined>;
    /** With `etag`, fails with `Conflict` when the item changed since it was read; `NotFound` when it is gone. */
    replace(item: T, etag?: string): Promise<Stored<T>>;
    upsert(item: T): Promise<Stored<T>>;
    /** Resolves false when there was nothing to delete. */
    delete(id: string, partitionKey: string, etag?: string): Promise<boolean>;
    query(spec: QuerySpec, options?: { partitionKey?: string; continuationToken?: string; maxItemCount?: number }): Promise<Page<T>>;
    patch(id: string, partitionKey: string, operations: PatchOperation[], etag?: string): Promise<Stored<T>>;
}
