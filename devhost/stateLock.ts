import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isProcessAlive } from './processes';

/** One devhost per state folder: two hosts writing the same `.flexchange/` would corrupt it. */
export class StateLock {
    readonly file: string;
    #held = false;

    constructor(stateDir: string) {
        this.file = path.join(stateDir, 'devhost.lock');
    }

    acquire(): void {
        mkdirSync(path.dirname(this.file), { recursive: true });
        try {
            writeFileSync(this.file, String(process.pid), { flag: 'wx' });
        } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
            const owner = Number(readFileSync(this.file, 'utf8'));
            if (Number.isInteger(owner) && owner !== process.pid && isProcessAlive(owner)) {
                throw new Error(
                    `Another devhost (pid ${owner}) is using ${path.dirname(this.file)}. Stop it first, or use --state for another folder.`,
                );
            }
            // A stale lock from a process that died without cleaning up.
            writeFileSync(this.file, String(process.pid));
        }
        this.#held = true;
    }

    release(): void {
        if (!this.#held) return;
        rmSync(this.file, { force: true });
        this.#held = false;
    }
}
