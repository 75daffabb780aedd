/**
 * The services sidecar: Azurite's blob, queue and table servers, the Cosmos server
 * and the anvil ledger, in a process of their own, with data under `<state>/`.
 *
 * Why a separate process: Azurite's metadata store (LokiJS) saves to disk every
 * 5 s, so storage inside the devhost would lose acknowledged writes whenever the
 * devhost is killed. Here, as in Azure, storage outlives a crash of the Functions
 * host: a restarted devhost adopts the running sidecar. The sidecar stops when told
 * (SIGTERM), or by itself when no live devhost has owned the state folder for a while.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { writeFileAtomic } from '../files';
import path from 'node:path';
import { isProcessAlive } from '../processes';
import { LocalCosmos } from './cosmos';
import { CHAIN_ID, LocalLedger } from './ledger';

export interface StorageInfo {
    pid: number;
    account: string;
    blob: string;
    queue: string;
    table: string;
    connectionString: string;
    cosmos: { endpoint: string; key: string };
    ledger: { url: string; chainId: number };
}

/** How long the sidecar outlives a devhost that died without a successor (`DEVHOST_STORAGE_ORPHAN_SECONDS`, 1–3600; 15 by default). */
export function orphanGraceMs(env: Record<string, string | undefined> = process.env): number {
    const s = Number(env.DEVHOST_STORAGE_ORPHAN_SECONDS || 15);
    if (!Number.isFinite(s) || s < 1 || s > 3600) throw new Error(`DEVHOST_STORAGE_ORPHAN_SECONDS must be a number of seconds from 1 to 3600, not "${env.DEVHOST_STORAGE_ORPHAN_SECONDS}"`);
    return s * 1000;
}

export function storageInfoFile(stateDir: string): string {
    return path.join(stateDir, 'storage.json');
}

/** The local storage account: its key is generated on first start and kept in the state folder. */
export function loadOrCreateAccount(stateDir: string): { account: string; key: string } {
    const file = path.join(stateDir, 'azurite', 'account.json');
    if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as { account: string; key: string };
    mkdirSync(path.dirname(file), { recursive: true });
    const created = { account: 'flexchangedev', key: randomBytes(64).toString('base64') };
    writeFileSync(file, JSON.stringify(created), { mode: 0o600 });
    return created;
}

/** A random secret generated on first start and kept in the state folder (local dev credentials). */
export function loadOrCreateSecret(stateDir: string, name: string): string {
    const file = path.join(stateDir, 'secrets', `${name}.txt`);
    if (existsSync(file)) return readFileSync(file, 'utf8').trim();
    mkdirSync(path.dirname(file), { recursive: true });
    const value = randomBytes(64).toString('base64');
    writeFileSync(file, value, { mode: 0o600 });
    return value;
}

export function connectionString(account: string, key: string, urls: { blob: string; queue: string; table: string }): string {
    return [
        'DefaultEndpointsProtocol=http',
        `AccountName=${account}`,
        `AccountKey=${key}`,
        `BlobEndpoint=${urls.blob}`,
        `QueueEndpoint=${urls.queue}`,
        `TableEndpoint=${urls.table}`,
    ].join(';');
}

async function main(): Promise<void> {
    const [stateDir, blobPort, queuePort, tablePort, cosmosPort, ledgerPort, hardfork] = process.argv.slice(2);
    const grace = orphanGraceMs();
    const location = path.join(stateDir, 'azurite');
    mkdirSync(location, { recursive: true });
    const { account, key } = loadOrCreateAccount(stateDir);
    process.env.AZURITE_ACCOUNTS = `${account}:${key}`;

    // Loaded after AZURITE_ACCOUNTS is set: Azurite reads it when its account store starts.
    /* eslint-disable @typescript-eslint/no-require-imports */
    const BlobServer = require('azurite/dist/src/blob/BlobServer').default;
    const BlobConfiguration = require('azurite/dist/src/blob/BlobConfiguration').default;
    const QueueServer = require('azurite/dist/src/queue/QueueServer').default;
    const QueueConfiguration = require('azurite/dist/src/queue/QueueConfiguration').default;
    const TableServer = require('azurite/dist/src/table/TableServer').default;
    const TableConfiguration = require('azurite/dist/src/table/TableConfiguration').default;
    /* eslint-enable @typescript-eslint/no-require-imports */

    const host = '127.0.0.1';
    const persist = (dir: string) => [{ locationId: 'Default', locationPath: path.join(location, dir), maxConcurrency: 1 }];
    // Positional arguments as Azurite's own main.js passes them: access log off, debug log off, loose off, skipApiVersionCheck on.
    const blob = new BlobServer(
        new BlobConfiguration(host, Number(blobPort), 300, path.join(location, '__azurite_db_blob__.json'),
            path.join(location, '__azurite_db_blob_extent__.json'), persist('__blobstorage__'), false, undefined, false, undefined, false, true),
    );
    const queue = new QueueServer(
        new QueueConfiguration(host, Number(queuePort), 300, path.join(location, '__azurite_db_queue__.json'),
            path.join(location, '__azurite_db_queue_extent__.json'), persist('__queuestorage__'), false, undefined, false, undefined, false, true),
    );
    const table = new TableServer(
        new TableConfiguration(host, Number(tablePort), 300, path.join(location, '__azurite_db_table__.json'), false, false, undefined, undefined, false, true),
    );
    const servers = [blob, queue, table];
    try {
        await Promise.all(servers.map((s) => s.start()));
    } catch (err) {
        const e = err as NodeJS.ErrnoException;
        process.stderr.write(e.code === 'EADDRINUSE' ? `storage: a port is already in use (${e.message})\n` : `storage: ${e.message}\n`);
        process.exit(3);
    }
    const url = (s: { getHttpServerAddress(): string }) => `${s.getHttpServerAddress()}/${account}`;
    const urls = { blob: url(blob), queue: url(queue), table: url(table) };

    const cosmos = new LocalCosmos(stateDir, loadOrCreateSecret(stateDir, 'cosmos-key'));
    const ledger = new LocalLedger(stateDir, { hardfork: hardfork || undefined });
    try {
        await cosmos.start(Number(cosmosPort));
        await ledger.start(Number(ledgerPort));
    } catch (err) {
        const e = err as NodeJS.ErrnoException;
        process.stderr.write(e.code === 'EADDRINUSE' ? `services: the Cosmos port ${cosmosPort} is already in use\n` : `services: ${e.message}\n`);
        await ledger.stop();
        process.exit(3);
    }
    const info: StorageInfo = {
        pid: process.pid,
        account,
        ...urls,
        connectionString: connectionString(account, key, urls),
        cosmos: { endpoint: cosmos.url, key: cosmos.key },
        ledger: { url: ledger.url, chainId: CHAIN_ID },
    };
    const file = storageInfoFile(stateDir);
    writeFileAtomic(file, JSON.stringify(info, null, 2), 0o600);

    let closing = false;
    const close = async (code: number) => {
        if (closing) return;
        closing = true;
        // close() saves the Loki databases, stop() the Cosmos snapshot and anvil's state:
        // nothing acknowledged is lost by a clean stop.
        await Promise.allSettled([...servers.map((s) => s.close()), cosmos.stop(), ledger.stop()]);
        process.exit(code);
    };
    process.on('SIGTERM', () => void close(0));
    // Ctrl+C reaches the whole process group; the devhost stops storage last, itself.
    process.on('SIGINT', () => undefined);

    // Orphan watchdog: exit when no live devhost has owned the state folder for the grace.
    const lockFile = path.join(stateDir, 'devhost.lock');
    let orphanSince: number | undefined;
    setInterval(() => {
        let owner = NaN;
        try {
            owner = Number(readFileSync(lockFile, 'utf8'));
        } catch {
            // no owner
        }
        const alive = Number.isInteger(owner) && isProcessAlive(owner);
        if (alive) orphanSince = undefined;
        else if (orphanSince === undefined) orphanSince = Date.now();
        else if (Date.now() - orphanSince > grace) void close(0);
    }, 1000).unref();
}

if (require.main === module) {
    main().catch((err: Error) => {
        process.stderr.write(`storage: ${err.stack ?? err.message}\n`);
        process.exit(1);
    });
}
