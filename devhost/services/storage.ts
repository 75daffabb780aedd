import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { isProcessAlive as alive } from '../processes';
import { StorageInfo, storageInfoFile } from './storageProcess';

export interface StoragePorts {
    blob: number;
    queue: number;
    table: number;
    cosmos: number;
    ledger: number;
}

export const DEFAULT_STORAGE_PORTS: StoragePorts = { blob: 10000, queue: 10001, table: 10002, cosmos: 8081, ledger: 8545 };

function readInfo(stateDir: string): StorageInfo | undefined {
    try {
        return JSON.parse(readFileSync(storageInfoFile(stateDir), 'utf8')) as StorageInfo;
    } catch {
        return undefined;
    }
}


async function answers(url: string): Promise<boolean> {
    try {
        // Any HTTP answer (Azurite says 400/403 to a bare GET) means the server is up.
        await fetch(url, { signal: AbortSignal.timeout(1000) });
        return true;
    } catch {
        return false;
    }
}

/**
 * Storage for a devhost: adopts the sidecar already running for this state folder
 * (a devhost that crashed leaves it running, as Azure storage outlives a host),
 * or starts a new one.
 */
export class LocalStorage {
    info!: StorageInfo;
    adopted = false;
    readonly #stateDir: string;
    readonly #log: Logger;

    constructor(stateDir: string, logger: Logger) {
        this.#stateDir = stateDir;
        this.#log = logger;
    }

    /** `ledger.hardfork`: the EVM hardfork the local chain runs (the app profile's); a sidecar already running keeps its own. */
    async start(ports: StoragePorts, opts: { ledger?: { hardfork?: string } } = {}): Promise<StorageInfo> {
        const existing = readInfo(this.#stateDir);
        if (existing && existing.ledger && alive(existing.pid) && (await answers(existing.queue))) {
            this.info = existing;
            this.adopted = true;
            this.#log.info({ pid: existing.pid }, 'adopted the running storage sidecar');
            return existing;
        }
        rmSync(storageInfoFile(this.#stateDir), { force: true });
        const ext = path.extname(__filename);
        const script = path.join(__dirname, `storageProcess${ext}`);
        const child = spawn(process.execPath, [...process.execArgv, script, this.#stateDir, String(ports.blob), String(ports.queue), String(ports.table), String(ports.cosmos), String(ports.ledger), opts.ledger?.hardfork ?? ''], {
            stdio: ['ignore', 'ignore', 'pipe'],
            detached: false,
        });
        let stderr = '';
        child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
        const deadline = Date.now() + 30_000;
        for (;;) {
            const info = readInfo(this.#stateDir);
            if (info && info.pid === child.pid) {
                this.info = info;
                break;
            }
            if (child.exitCode !== null) {
                throw new Error(`Local services (storage, Cosmos, ledger) failed to start: ${stderr.trim() || `exit ${child.exitCode}`}`);
            }
            if (Date.now() > deadline) {
                child.kill('SIGKILL');
                throw new Error('Storage (Azurite) did not start within 30 s');
            }
            await new Promise((r) => setTimeout(r, 50));
        }
        child.stderr!.removeAllListeners('data');
        child.stderr!.resume();
        child.unref();
        (child.stderr as unknown as { unref?: () => void }).unref?.();
        return this.info;
    }

    /** Stops the sidecar and waits until it has saved its data and exited. */
    async stop(): Promise<void> {
        const pid = this.info?.pid;
        if (!pid || !alive(pid)) return;
        process.kill(pid, 'SIGTERM');
        const deadline = Date.now() + 30_000;
        while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        rmSync(storageInfoFile(this.#stateDir), { force: true });
    }
}
