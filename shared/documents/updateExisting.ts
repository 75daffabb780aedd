import { updateItem, type Repository } from './repository';

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
    const accepted = (doc: D | undefined): doc is T => doc !== undefined && (opts.is?.(doc) ?? true);
    const updated = await updateItem(
        repo,
        id,
        opts.partitionKey ?? id,
        (current) => {
            if (!accepted(current)) throw opts.missing();
            const next = change(current);
            return next && { ...next, updatedAt: new Date().toISOString() };
        },
        { conflict: opts.conflict },
    );
    return updated as T;
}
