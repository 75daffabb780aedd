import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { open, rename, mkdir } from 'node:fs/promises';
import path from 'node:path';

/**
 * Writes a file whole or not at all: to a temporary name beside it, then renamed
 * over it. With `durable`, the data is flushed to disk before the rename (for state
 * whose write is acknowledged to a client: vault contents, broker messages).
 */
export function writeFileAtomic(file: string, data: string | Buffer, mode = 0o644, durable = false): void {
    mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    const fd = openSync(tmp, 'w', mode);
    try {
        writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
        if (durable) fsyncSync(fd);
    } finally {
        closeSync(fd);
    }
    renameSync(tmp, file);
}

/** `writeFileAtomic` in the thread pool: the event loop goes on while the file is written and flushed. */
export async function writeFileAtomicAsync(file: string, data: string | Buffer, mode = 0o644, durable = false): Promise<void> {
    await mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    const handle = await open(tmp, 'w', mode);
    try {
        await handle.writeFile(typeof data === 'string' ? Buffer.from(data) : data);
        if (durable) await handle.sync();
    } finally {
        await handle.close();
    }
    await rename(tmp, file);
}

/** Appends to a file and flushes it to disk before returning (a log whose lines are acknowledged to clients). */
export function appendFileDurable(file: string, data: string, mode = 0o600): void {
    const fd = openSync(file, 'a', mode);
    try {
        writeSync(fd, data);
        fsyncSync(fd);
    } finally {
        closeSync(fd);
    }
}

/** `appendFileDurable` in the thread pool. */
export async function appendFileDurableAsync(file: string, data: string, mode = 0o600): Promise<void> {
    const handle = await open(file, 'a', mode);
    try {
        await handle.write(data);
        await handle.sync();
    } finally {
        await handle.close();
    }
}
