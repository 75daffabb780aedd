import { CosmosClient } from '@azure/cosmos';
import { createHttpServer } from '@vercel/cosmosdb-server';
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../files';
import type { Server } from 'node:http';
import path from 'node:path';

interface Snapshot {
    savedAt: string;
    databases: {
        id: string;
        containers: { definition: Record<string, unknown>; items: Record<string, unknown>[] }[];
    }[];
}

/** The stand-in's own in-memory model (@vercel/cosmosdb-server 1.0.1, `lib/account`): items by `_rid`, each with `read()`. */
interface StandInItems<T> {
    _data: Map<string, T>;
}
interface StandInItem {
    read(): Record<string, unknown>;
}
interface StandInDocuments extends StandInItems<StandInItem> {
    upsert(item: Record<string, unknown>): unknown;
}
interface StandInCollection extends StandInItem {
    documents: StandInDocuments;
}
interface StandInDatabase extends StandInItem {
    collections: StandInItems<StandInCollection>;
    collection(id: string): StandInCollection;
}
interface StandInAccount {
    databases: StandInItems<StandInDatabase>;
    database(id: string): StandInDatabase;
}

/**
 * Each stand-in server's account (all its data, in memory), by the port it listens on. The server
 * keeps it in a closure; the snapshot reads it directly, because through HTTP a full read pages
 * through a query over every item for each page: 30 s for 30,000 items, every second while the
 * data changed (it stalled the document database under `bench:chain`). Captured as the server
 * makes it, when it starts listening (index.js calls `new account_1.default(host, port)`).
 */
const accounts = new Map<number, StandInAccount>();
{
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const accountModule = require('@vercel/cosmosdb-server/lib/account') as { default: new (host: string, port: number) => StandInAccount; captured?: true };
    if (!accountModule.captured) {
        const Base = accountModule.default;
        accountModule.default = class extends (Base as new (host: string, port: number) => object) {
            constructor(host: string, port: number) {
                super(host, port);
                accounts.set(port, this as unknown as StandInAccount);
            }
        } as unknown as typeof Base;
        accountModule.captured = true;
    }
}

const SYSTEM_PROPERTIES = ['_rid', '_self', '_etag', '_attachments', '_ts'];
const strip = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([k]) => !SYSTEM_PROPERTIES.includes(k)));

/**
 * The local document database: @vercel/cosmosdb-server over plain http. It keeps
 * nothing on disk itself, so its databases, containers (with their partition keys,
 * unique keys and indexing policies) and items are snapshotted to
 * `<state>/cosmos/snapshot.json` a moment after each write (at most a tenth of
 * the time: a snapshot that took 100 ms waits 900 ms for the next) and on stop,
 * and restored on start; both read and write the server's in-memory model directly. Items come back with new `_etag`/`_ts` values.
 */
export class LocalCosmos {
    url = '';
    readonly key: string;
    readonly #file: string;
    #server?: Server;
    #dirty = false;
    #timer?: NodeJS.Timeout;
    #saving?: Promise<void>;
    #port = 0;
    #nextSaveAt = 0;

    constructor(stateDir: string, key: string) {
        this.#file = path.join(stateDir, 'cosmos', 'snapshot.json');
        this.key = key;
    }

    client(): CosmosClient {
        return new CosmosClient({ endpoint: this.url, key: this.key, connectionPolicy: { enableEndpointDiscovery: false } });
    }

    async start(port: number): Promise<void> {
        // Keep-alive: the server otherwise answers `connection: close`, a new TCP connection per request.
        const server = createHttpServer({ keepAlive: true });
        // Node closes an idle kept-alive connection after 5 s; a client reusing it at that moment gets
        // ECONNRESET (seen under load as "the document database is unreachable"). Keep idle ones long.
        server.keepAliveTimeout = 120_000;
        server.headersTimeout = 125_000;
        server.on('request', (req) => {
            if (req.method !== 'GET' && !(req.method === 'POST' && String(req.headers['x-ms-documentdb-isquery']) === 'true')) this.#dirty = true;
        });
        await new Promise<void>((resolve, reject) => {
            server.once('error', reject);
            server.listen(port, '127.0.0.1', () => resolve());
        });
        const address = server.address();
        this.#port = typeof address === 'object' && address ? address.port : port;
        this.url = `http://127.0.0.1:${this.#port}`;
        this.#server = server;
        await this.#restore();
        this.#dirty = false;
        this.#timer = setInterval(() => {
            if (this.#dirty && !this.#saving && Date.now() >= this.#nextSaveAt) void this.save();
        }, 1000);
    }

    /** Writes the snapshot (atomically) if anything changed since the last one. */
    async save(): Promise<void> {
        if (this.#saving) return this.#saving;
        this.#saving = (async () => {
            this.#dirty = false;
            const started = performance.now();
            const account = this.#account();
            const snapshot: Snapshot = { savedAt: new Date().toISOString(), databases: [] };
            for (const db of account.databases._data.values()) {
                const entry: Snapshot['databases'][number] = { id: String(db.read().id), containers: [] };
                for (const c of db.collections._data.values()) {
                    entry.containers.push({ definition: strip(c.read()), items: [...c.documents._data.values()].map((d) => strip(d.read())) });
                }
                snapshot.databases.push(entry);
            }
            writeFileAtomic(this.#file, JSON.stringify(snapshot));
            // In the same process as the server: the next snapshot waits 9 × this one's time (at most 10 % of it).
            this.#nextSaveAt = Date.now() + 9 * (performance.now() - started);
        })().finally(() => {
            this.#saving = undefined;
        });
        return this.#saving;
    }

    /** The server's in-memory model (captured when it started listening). */
    #account(): StandInAccount {
        const account = accounts.get(this.#port);
        if (!account) throw new Error(`The document database on port ${this.#port} has no account in memory`);
        return account;
    }

    async #restore(): Promise<void> {
        if (!existsSync(this.#file)) return;
        const snapshot = JSON.parse(readFileSync(this.#file, 'utf8')) as Snapshot;
        const client = this.client();
        const account = this.#account();
        for (const db of snapshot.databases) {
            const { database } = await client.databases.createIfNotExists({ id: db.id });
            for (const c of db.containers) {
                const { container } = await database.containers.createIfNotExists(c.definition as { id: string });
                // Items straight into the server's model (one HTTP upsert each took 10 s for 30,000 items).
                const documents = account.database(db.id).collection(container.id).documents;
                for (const item of c.items) documents.upsert(item);
            }
        }
    }

    async stop(): Promise<void> {
        clearInterval(this.#timer);
        await this.#saving;
        if (this.#server) await this.save();
        const server = this.#server;
        if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
        accounts.delete(this.#port);
    }
}
