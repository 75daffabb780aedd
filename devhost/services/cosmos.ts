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

const SYSTEM_PROPERTIES = ['_rid', '_self', '_etag', '_attachments', '_ts'];
const strip = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([k]) => !SYSTEM_PROPERTIES.includes(k)));

/**
 * The local document database: @vercel/cosmosdb-server over plain http. It keeps
 * nothing on disk itself, so its databases, containers (with their partition keys,
 * unique keys and indexing policies) and items are snapshotted to
 * `<state>/cosmos/snapshot.json` a moment after each write and on stop, and
 * restored on start. Items come back with new `_etag`/`_ts` values.
 */
export class LocalCosmos {
    url = '';
    readonly key: string;
    readonly #file: string;
    #server?: Server;
    #dirty = false;
    #timer?: NodeJS.Timeout;
    #saving?: Promise<void>;

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
        this.url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : port}`;
        this.#server = server;
        await this.#restore();
        this.#dirty = false;
        this.#timer = setInterval(() => {
            if (this.#dirty && !this.#saving) void this.save();
        }, 1000);
    }

    /** Writes the snapshot (atomically) if anything changed since the last one. */
    async save(): Promise<void> {
        if (this.#saving) return this.#saving;
        this.#saving = (async () => {
            this.#dirty = false;
            const client = this.client();
            const snapshot: Snapshot = { savedAt: new Date().toISOString(), databases: [] };
            const { resources: dbs } = await client.databases.readAll().fetchAll();
            for (const db of dbs) {
                const entry: Snapshot['databases'][number] = { id: db.id, containers: [] };
                const { resources: containers } = await client.database(db.id).containers.readAll().fetchAll();
                for (const c of containers) {
                    const { resources: items } = await client.database(db.id).container(c.id).items.readAll().fetchAll();
                    entry.containers.push({ definition: strip(c as unknown as Record<string, unknown>), items: items.map((i) => strip(i as Record<string, unknown>)) });
                }
                snapshot.databases.push(entry);
            }
            writeFileAtomic(this.#file, JSON.stringify(snapshot));
        })().finally(() => {
            this.#saving = undefined;
        });
        return this.#saving;
    }

    async #restore(): Promise<void> {
        if (!existsSync(this.#file)) return;
        const snapshot = JSON.parse(readFileSync(this.#file, 'utf8')) as Snapshot;
        const client = this.client();
        for (const db of snapshot.databases) {
            const { database } = await client.databases.createIfNotExists({ id: db.id });
            for (const c of db.containers) {
                const { container } = await database.containers.createIfNotExists(c.definition as { id: string });
                for (const item of c.items) await container.items.upsert(item);
            }
        }
    }

    async stop(): Promise<void> {
        clearInterval(this.#timer);
        await this.#saving;
        if (this.#server) await this.save();
        const server = this.#server;
        if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    }
}
