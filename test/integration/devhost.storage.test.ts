import { TableClient } from '@azure/data-tables';
import { QueueClient } from '@azure/storage-queue';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { isProcessAlive as alive } from '../../devhost/processes';
import { fixture, removeDir, startDevhost, tempDir, waitFor } from '../harness/devhost';

const basic = fixture('basic-app');
const storageInfo = (stateDir: string) => JSON.parse(readFileSync(path.join(stateDir, 'storage.json'), 'utf8'));


describe('devhost local storage (Azurite)', () => {
    it('serves tables and queues with a generated account key, persisted across a clean restart', async () => {
        const stateDir = tempDir('flexchange-state-');
        const first = await startDevhost(['--app', basic, '--name', 'core'], { stateDir, storage: true });
        const info = storageInfo(stateDir);
        expect(info.connectionString).toContain('AccountName=flexchangedev');
        expect(info.connectionString).not.toContain('Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq');
        const services = await (await fetch(`${first.consoleUrl}/dev/services`)).json();
        expect(services.services).toMatchObject({ blob: info.blob, queue: info.queue, table: info.table });

        const table = TableClient.fromConnectionString(info.connectionString, 'persisted', { allowInsecureConnection: true });
        await table.createTable();
        await table.createEntity({ partitionKey: 'p', rowKey: 'r', value: 42 });
        const queue = new QueueClient(info.connectionString, 'persisted-q');
        await queue.createIfNotExists();
        await queue.sendMessage('hello');
        expect(await first.stop()).toBe(0);
        expect(alive(info.pid)).toBe(false);

        const second = await startDevhost(['--app', basic, '--name', 'core'], { stateDir, storage: true });
        try {
            const again = storageInfo(stateDir);
            const t2 = TableClient.fromConnectionString(again.connectionString, 'persisted', { allowInsecureConnection: true });
            expect((await t2.getEntity('p', 'r')).value).toBe(42);
            const q2 = new QueueClient(again.connectionString, 'persisted-q');
            const got = await q2.receiveMessages();
            expect(got.receivedMessageItems.map((m) => m.messageText)).toEqual(['hello']);
        } finally {
            await second.stop();
        }
        removeDir(stateDir);
    });

    it('keeps storage running when the devhost is killed, and a restarted devhost adopts it with nothing lost', async () => {
        const stateDir = tempDir('flexchange-state-');
        const first = await startDevhost(['--app', basic, '--name', 'core'], { stateDir, storage: true });
        const info = storageInfo(stateDir);
        const table = TableClient.fromConnectionString(info.connectionString, 'crash', { allowInsecureConnection: true });
        await table.createTable();
        await table.createEntity({ partitionKey: 'p', rowKey: 'just-before-the-crash', n: 1 });
        first.child.kill('SIGKILL');
        await first.exited;
        expect(alive(info.pid)).toBe(true);

        const second = await startDevhost(['--app', basic, '--name', 'core'], { stateDir, storage: true });
        try {
            expect(storageInfo(stateDir).pid).toBe(info.pid);
            expect(second.logs().some((l) => l.msg === 'adopted the running storage sidecar')).toBe(true);
            expect((await table.getEntity('p', 'just-before-the-crash')).n).toBe(1);
        } finally {
            await second.stop();
        }
        expect(alive(info.pid)).toBe(false);
        removeDir(stateDir);
    });

    it('stops an orphaned storage sidecar when no devhost comes back', async () => {
        // After 2 s without a devhost (15 by default).
        const first = await startDevhost(['--app', basic, '--name', 'core'], { storage: true, env: { DEVHOST_STORAGE_ORPHAN_SECONDS: '2' } });
        const info = storageInfo(first.stateDir);
        first.child.kill('SIGKILL');
        await first.exited;
        const killedAt = Date.now();
        await waitFor(() => !alive(info.pid), 30000, 250);
        // Not at once: a devhost restarted within the grace adopts it (the test before this one).
        expect(Date.now() - killedAt).toBeGreaterThanOrEqual(1500);
        removeDir(first.stateDir);
    });
});
