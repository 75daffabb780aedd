import { createHash, randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { BlobStore } from '../blobs/blobStore';
import { uuidFromName } from '../ids';
import { updateItem, type Repository } from '../documents/repository';
import { AppError, Conflict, NotFound, UnsupportedMediaType } from '../errors';

/** A document behind a deal (container `assets`, partition `/id`); the content is in Blob storage, its hash goes on-chain. */
export interface Asset {
    id: string;
    /** The uploader's organisation. */
    orgId: string;
    uploadedBy: string;
    sha256: string;
    algorithm: 'sha256';
    size: number;
    contentType: string;
    /** Where the document is fetched from (anchored on-chain with the hash). */
    location: string;
    /** The blob holding the content. */
    blob: { container: string; name: string };
    /** Organisations that may read it besides the uploader: the parties of proposals that use it. */
    sharedWith: string[];
    createdAt: string;
}

export interface AssetPolicy {
    maxBytes: number;
    /** Media types accepted (`type/subtype`, without parameters). */
    contentTypes: string[];
    /** The public API base (`https://<core>/api`): an asset's location is `<base>/assets/<id>` (asked when needed: the host name is known once the app listens). */
    apiBaseUrl: () => string;
}

export const ASSET_CONTAINER = 'documents';

/** The media type without parameters, lower-cased (`Text/CSV; charset=utf-8` → `text/csv`). */
export const mediaType = (contentType: string | null | undefined) => (contentType ?? '').split(';')[0]!.trim().toLowerCase();

/**
 * Documents: streamed into Blob storage while their SHA-256 is computed, never overwritten.
 * An upload with an idempotency key derives the asset id from it, so a retried upload
 * answers with the first one (and a different document under the same key is refused).
 */
export class Assets {
    constructor(
        private readonly repo: Repository<Asset>,
        private readonly blobs: BlobStore,
        private readonly policy: AssetPolicy,
    ) {}

    async upload(input: { orgId: string; by: string; contentType: string | null; body: Readable | Buffer; idempotencyKey?: string }): Promise<{ asset: Asset; created: boolean }> {
        const type = mediaType(input.contentType);
        if (!this.policy.contentTypes.includes(type)) throw new UnsupportedMediaType(`Documents of type "${type || 'none'}" are not accepted; send one of ${this.policy.contentTypes.join(', ')}`);
        const id = input.idempotencyKey ? uuidFromName(`${input.orgId}\n${input.idempotencyKey}`) : randomUUID();
        const name = `${input.orgId}/${id}`;
        let blob;
        try {
            blob = await this.blobs.createOnly(ASSET_CONTAINER, name, input.body, { contentType: type, maxBytes: this.policy.maxBytes, metadata: { orgid: input.orgId, assetid: id } });
        } catch (err) {
            if (!(err instanceof Conflict) || !input.idempotencyKey) throw err;
            // The same key again: the first upload stands (its record is made now if a crash left none).
            const known = await this.repo.read(id, id);
            const existing = known?.item ?? (await this.#recordFromBlob(id, name, input));
            if (existing.orgId !== input.orgId) throw new NotFound('No such asset');
            if (existing.contentType !== type) throw new AppError('The idempotency key was used for a different document', 422, 'idempotency_mismatch');
            return { asset: existing, created: false };
        }
        const asset = this.#record(id, input.orgId, input.by, { sha256: blob.sha256, size: blob.size, contentType: type });
        return { asset: (await this.repo.upsert(asset)).item, created: true };
    }

    /** The asset, for its uploader's organisation or one it is shared with; anyone else gets `NotFound`. */
    async get(id: string, orgId: string | undefined, opts: { operator?: boolean } = {}): Promise<Asset> {
        const found = await this.repo.read(id, id);
        if (!found || (!opts.operator && (!orgId || (found.item.orgId !== orgId && !found.item.sharedWith.includes(orgId))))) throw new NotFound('No such asset');
        return found.item;
    }

    /** Lets these organisations read the asset (the parties of a proposal that uses it); sharing again changes nothing. */
    async share(id: string, orgIds: string[]): Promise<void> {
        await updateItem(
            this.repo,
            id,
            id,
            (current) => {
                if (!current) throw new NotFound('No such asset');
                const missing = orgIds.filter((o) => o !== current.orgId && !current.sharedWith.includes(o));
                return missing.length ? { ...current, sharedWith: [...current.sharedWith, ...missing].sort() } : undefined;
            },
            { conflict: () => new Conflict('The asset is being changed; try again') },
        );
    }

    async content(asset: Asset): Promise<Buffer> {
        const blob = await this.blobs.get(asset.blob.container, asset.blob.name);
        if (!blob) throw new NotFound('The document is gone from storage');
        return blob.content;
    }

    /** The record of an asset whose content is stored under `<orgId>/<id>`. */
    #record(id: string, orgId: string, by: string, content: { sha256: string; size: number; contentType: string }): Asset {
        return {
            id,
            orgId,
            uploadedBy: by,
            ...content,
            algorithm: 'sha256',
            location: `${this.policy.apiBaseUrl().replace(/\/$/, '')}/assets/${id}`,
            blob: { container: ASSET_CONTAINER, name: `${orgId}/${id}` },
            sharedWith: [],
            createdAt: new Date().toISOString(),
        };
    }

    async #recordFromBlob(id: string, name: string, input: { orgId: string; by: string }): Promise<Asset> {
        const blob = await this.blobs.get(ASSET_CONTAINER, name);
        if (!blob) throw new Conflict('The asset is being uploaded; try again', 'in_progress');
        const asset = this.#record(id, blob.blob.metadata.orgid ?? input.orgId, input.by, { sha256: createHash('sha256').update(blob.content).digest('hex'), size: blob.content.length, contentType: blob.blob.contentType });
        return (await this.repo.upsert(asset)).item;
    }
}

