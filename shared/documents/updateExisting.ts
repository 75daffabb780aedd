import { updateStored, type Repository, type Stored } from './repository';

/**
 * Changes a record that must exist, under its ETag (read again and retried on a concurrent change, as
 * `updateItem`), stamping `updatedAt` when it changes. `change` returns the new record, or undefined to
 * leave it as it is; it may throw to refuse. No record (or one `is` does not accept, in a container that
 * holds other kinds too) fails with `missing()`; still contended after the retries, with `conflict()`.
 * For containers partitioned by id unless `partitionKey` says otherwise.
 */
export async function updateExisting<D extends { id: string }, T extends D & { updatedAt: string } = D & { updatedAt: string }>(
    repo: Repository<D>,
    id: string,
    change: (current: T) => T | undefined,
    opts: { missing: () => Error; conflict: () => Error; is?: (doc: D) => doc is T; partitionKey?: string },
): Promise<T> {
    return (await updateExistingStored(repo, id, change, opts)).item;
}

/** `updateExisting`, resolving to the record with its ETag; with `known`, starting from the record as this caller last had it (see `updateStored`). */
export async function updateExistingStored<D extends { id: string }, T extends D & { updatedAt: string } = D & { updatedAt: string }>(
    repo: Repository<D>,
    id: string,
    change: (current: T) => T | undefined,
    opts: { missing: () => Error; conflict: () => Error; is?: (doc: D) => doc is T; partitionKey?: string; known?: Stored<T> },
): Promise<Stored<T>> {
    const accepted = (doc: D | undefined): doc is T => doc !== undefined && (opts.is?.(doc) ?? true);
    const updated = await updateStored(
        repo,
        id,
        opts.partitionKey ?? id,
        (current) => {
            if (!accepted(current)) throw opts.missing();
            const next = change(current);
            return next && { ...next, updatedAt: new Date().toISOString() };
        },
        { conflict: opts.conflict, known: opts.known },
    );
    return updated as unknown as Stored<T>;
}
