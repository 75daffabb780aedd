import { BlobSASPermissions, BlobServiceClient, generateBlobSASQueryParameters, RestError } from '@azure/storage-blob';
import { Readable, Transform } from 'node:stream';
import { Conflict, isUnreachable, statusOf, TooLarge, Unavailable, Upstream } from '../errors';
import { BlobStore, hashingCounter, SizeLimitExceeded, StoredBlob } from './blobStore';

/**
 * The blob store on Azure Blob Storage (Azurite locally). Content is streamed while
 * its SHA-256 is computed; create-only writes use `If-None-Match: *`.
 */
export class AzureBlobStore implements BlobStore {
    readonly #service: BlobServiceClient;
    readonly #created = new Set<string>();

    constructor(service: BlobServiceClient) {
        this.#service = service;
    }

    static fromConnectionString(connectionString: string): AzureBlobStore {
        return new AzureBlobStore(BlobServiceClient.fromConnectionString(connectionString));
    }

    async #container(name: string) {
        const container = this.#service.getContainerClient(name);
        if (!this.#created.has(name)) {
            await this.#call('create container', () => container.createIfNotExists());
            this.#created.add(name);
        }
        return container;
    }

    async createOnly(container: string, name: string, data: Buffer | Readable, options: { contentType: string; metadata?: Record<string, string>; maxBytes?: number }): Promise<StoredBlob> {
        const client = (await this.#container(container)).getBlockBlobClient(name);
        const counter = hashingCounter(options.maxBytes);
        const source = Buffer.isBuffer(data) ? Readable.from([data]) : data;
        const hashing = new Transform({
            transform(chunk: Buffer, _enc, done) {
                try {
                    counter.update(chunk);
                    done(null, chunk);
                } catch (err) {
                    done(err as Error);
                }
            },
        });
        source.on('error', (err) => hashing.destroy(err));
        source.pipe(hashing);
        try {
            const res = await client.uploadStream(hashing, 4 * 1024 * 1024, 4, {
                blobHTTPHeaders: { blobContentType: options.contentType },
                metadata: options.metadata,
                conditions: { ifNoneMatch: '*' },
            });
            const sha256 = counter.digest();
            // The hash is known only at the end of the stream: record it on the blob.
            const metadata = { ...(options.metadata ?? {}), sha256 };
            await client.setMetadata(metadata, { conditions: { ifMatch: res.etag } });
            const props = await client.getProperties();
            return { container, name, size: counter.size, contentType: options.contentType, sha256, etag: props.etag ?? '', metadata };
        } catch (err) {
            if (err instanceof SizeLimitExceeded || (err as { cause?: unknown }).cause instanceof SizeLimitExceeded) {
                throw new TooLarge(`The content is larger than ${options.maxBytes} bytes`);
            }
            const status = statusOf(err);
            if (status === 409 || status === 412 || (err instanceof RestError && err.code === 'BlobAlreadyExists')) {
                throw new Conflict(`A blob named ${container}/${name} already exists`, 'already_exists', { cause: err });
            }
            throw this.#map('upload', err);
        }
    }

    async get(container: string, name: string): Promise<{ blob: StoredBlob; content: Buffer } | undefined> {
        const client = (await this.#container(container)).getBlockBlobClient(name);
        try {
            const content = await client.downloadToBuffer();
            const props = await client.getProperties();
            return { blob: this.#describe(container, name, props), content };
        } catch (err) {
            if (statusOf(err) === 404) return undefined;
            throw this.#map('download', err);
        }
    }

    async list(container: string, prefix?: string): Promise<StoredBlob[]> {
        const client = await this.#container(container);
        const out: StoredBlob[] = [];
        try {
            for await (const b of client.listBlobsFlat({ prefix, includeMetadata: true })) {
                out.push({
                    container,
                    name: b.name,
                    size: b.properties.contentLength ?? 0,
                    contentType: b.properties.contentType ?? 'application/octet-stream',
                    sha256: b.metadata?.sha256 ?? '',
                    etag: b.properties.etag ?? '',
                    metadata: b.metadata ?? {},
                });
            }
        } catch (err) {
            throw this.#map('list', err);
        }
        return out;
    }

    async delete(container: string, name: string): Promise<boolean> {
        const client = (await this.#container(container)).getBlockBlobClient(name);
        const res = await this.#call('delete', () => client.deleteIfExists());
        return res.succeeded;
    }

    async readLink(container: string, name: string, minutes: number): Promise<string> {
        const client = (await this.#container(container)).getBlockBlobClient(name);
        const expiresOn = new Date(Date.now() + minutes * 60_000);
        // A shared-key SAS when the client holds the account key (local, connection strings);
        // in Azure, with a managed identity, a user-delegation SAS.
        if (client.credential && 'accountName' in client.credential) {
            return client.generateSasUrl({ permissions: BlobSASPermissions.parse('r'), expiresOn });
        }
        const key = await this.#call('delegation key', () => this.#service.getUserDelegationKey(new Date(), expiresOn));
        const sas = generateBlobSASQueryParameters(
            { containerName: container, blobName: name, permissions: BlobSASPermissions.parse('r'), expiresOn },
            key,
            this.#service.accountName,
        ).toString();
        return `${client.url}?${sas}`;
    }

    async copy(from: { container: string; name: string }, to: { container: string; name: string }): Promise<StoredBlob> {
        const source = (await this.#container(from.container)).getBlockBlobClient(from.name);
        const target = (await this.#container(to.container)).getBlockBlobClient(to.name);
        // Within the account: the service copies (a large package never passes through the app); metadata (its sha256) goes along.
        const poller = await this.#call('copy', () => target.beginCopyFromURL(source.url));
        await this.#call('copy', () => poller.pollUntilDone());
        return this.#describe(to.container, to.name, await this.#call('copy', () => target.getProperties()));
    }

    #describe(container: string, name: string, props: { contentLength?: number; contentType?: string; etag?: string; metadata?: Record<string, string> }): StoredBlob {
        return {
            container,
            name,
            size: props.contentLength ?? 0,
            contentType: props.contentType ?? 'application/octet-stream',
            sha256: props.metadata?.sha256 ?? '',
            etag: props.etag ?? '',
            metadata: props.metadata ?? {},
        };
    }

    async #call<R>(what: string, fn: () => Promise<R>): Promise<R> {
        try {
            return await fn();
        } catch (err) {
            throw this.#map(what, err);
        }
    }

    #map(what: string, err: unknown): Error {
        if (isUnreachable(err) || statusOf(err) === 503) return new Unavailable(`Blob storage is unreachable (${what})`, { cause: err });
        return new Upstream(`Blob storage failed (${what})`, { cause: err });
    }
}
