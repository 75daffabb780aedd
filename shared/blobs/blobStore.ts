import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';

/** The blob store port: documents and archives, addressed by container and name. */
export interface StoredBlob {
    container: string;
    name: string;
    size: number;
    contentType: string;
    /** Hex SHA-256 of the content, computed while writing. */
    sha256: string;
    etag: string;
    metadata: Record<string, string>;
}

export interface BlobStore {
    /** Writes a blob only if none exists under that name: `Conflict` otherwise (archives and documents are never overwritten). */
    createOnly(container: string, name: string, data: Buffer | Readable, options: { contentType: string; metadata?: Record<string, string>; maxBytes?: number }): Promise<StoredBlob>;
    get(container: string, name: string): Promise<{ blob: StoredBlob; content: Buffer } | undefined>;
    list(container: string, prefix?: string): Promise<StoredBlob[]>;
    delete(container: string, name: string): Promise<boolean>;
    /** A read-only link valid for `minutes`, for downloads that bypass the API. */
    readLink(container: string, name: string, minutes: number): Promise<string>;
    /** Copies a blob within the account, replacing the target (the same bytes again is harmless); the target's container is made if needed. */
    copy(from: { container: string; name: string }, to: { container: string; name: string }): Promise<StoredBlob>;
}

/** Hashes a stream while passing it through, and enforces a size limit. */
export function hashingCounter(maxBytes?: number) {
    const hash = createHash('sha256');
    let size = 0;
    return {
        update(chunk: Buffer) {
            size += chunk.length;
            if (maxBytes !== undefined && size > maxBytes) throw new SizeLimitExceeded(maxBytes);
            hash.update(chunk);
        },
        get size() {
            return size;
        },
        digest: () => hash.digest('hex'),
    };
}

export class SizeLimitExceeded extends Error {
    constructor(readonly limit: number) {
        super(`More than ${limit} bytes`);
    }
}
