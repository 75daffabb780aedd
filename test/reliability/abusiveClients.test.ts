import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import path from 'node:path';
import { CosmosClient } from '@azure/cosmos';
import { BlobServiceClient } from '@azure/storage-blob';
import { devToken, removeDir, repoRoot, RunningDevhost, startDevhost } from '../harness/devhost';

/** Clients that send too much, or too slowly: the first are refused with 413, the second do not hold up anyone else. */
describe('oversized bodies and slow clients', () => {
    let host: RunningDevhost;
    let port: number;
    let trader: string;

    beforeAll(async () => {
        host = await startDevhost(['--app', repoRoot, '--name', 'core', '--set', 'FLEXCHANGE_ASSET_MAX_BYTES=4096'], { storage: true });
        port = host.apps.core!.port;
        trader = await devToken(host, { roles: ['Org.Trader'], orgId: 'big-org', email: 'tom@big.example' });
    }, 120_000);
    afterAll(async () => {
        await host?.stop();
        removeDir(host?.stateDir);
    });

    const expect413 = async (res: Response) => {
        expect(res.status).toBe(413);
        expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        expect(await res.json()).toMatchObject({ status: 413, title: expect.any(String) });
    };

    it('refuses a JSON body over the limit with 413, declared or streamed without a length', async () => {
        const huge = JSON.stringify({ organization: { name: 'x'.repeat(2 * 1024 * 1024), legalId: 'GB-1', country: 'GB', contactEmail: 'a@b.example' }, applicant: { name: 'a', email: 'a@b.example' } });
        await expect413(await fetch(`${host.origin('core')}/api/registrations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: huge }));
        // Chunked, no Content-Length: counted as it arrives.
        const chunks = new ReadableStream<Uint8Array>({
            start(controller) {
                for (let i = 0; i < 64; i++) controller.enqueue(new TextEncoder().encode('x'.repeat(64 * 1024)));
                controller.close();
            },
        });
        await expect413(await fetch(`${host.origin('core')}/api/proposals`, { method: 'POST', headers: { authorization: `Bearer ${trader}`, 'content-type': 'application/json' }, body: chunks, duplex: 'half' } as RequestInit));
    });

    /** Asset records in Cosmos and blobs in storage: what an upload would leave behind. */
    const stored = async () => {
        const info = JSON.parse(readFileSync(path.join(host.stateDir, 'storage.json'), 'utf8')) as { connectionString: string; cosmos: { endpoint: string; key: string } };
        const cosmos = new CosmosClient({ endpoint: info.cosmos.endpoint, key: info.cosmos.key, connectionPolicy: { enableEndpointDiscovery: false } });
        const { resources } = await cosmos.database('flexchange').container('assets').items.query<number>('SELECT VALUE COUNT(1) FROM c').fetchAll();
        let blobs = 0;
        for await (const container of BlobServiceClient.fromConnectionString(info.connectionString).listContainers()) {
            for await (const _b of BlobServiceClient.fromConnectionString(info.connectionString).getContainerClient(container.name).listBlobsFlat()) blobs++;
        }
        return { records: resources[0] ?? 0, blobs };
    };

    it('refuses a document over the asset limit with 413 and stores nothing', async () => {
        const before = await stored();
        await expect413(await fetch(`${host.origin('core')}/api/assets`, { method: 'POST', headers: { authorization: `Bearer ${trader}`, 'content-type': 'application/pdf' }, body: Buffer.alloc(4097, 1) }));
        const streamed = new ReadableStream<Uint8Array>({
            start(controller) {
                for (let i = 0; i < 8; i++) controller.enqueue(new Uint8Array(1024));
                controller.close();
            },
        });
        await expect413(await fetch(`${host.origin('core')}/api/assets`, { method: 'POST', headers: { authorization: `Bearer ${trader}`, 'content-type': 'application/pdf' }, body: streamed, duplex: 'half' } as RequestInit));
        expect(await stored()).toEqual(before);
        const ok = await fetch(`${host.origin('core')}/api/assets`, { method: 'POST', headers: { authorization: `Bearer ${trader}`, 'content-type': 'application/pdf' }, body: Buffer.alloc(4096, 2) });
        expect(ok.status).toBe(201);
        expect((await stored()).records).toBe(before.records + 1);
    });

    it('keeps answering others while slow clients trickle their headers and bodies', async () => {
        const slow: Socket[] = [];
        const timers: NodeJS.Timeout[] = [];
        try {
            for (let i = 0; i < 20; i++) {
                const s = connect(port, '127.0.0.1');
                s.on('error', () => undefined);
                slow.push(s);
                if (i % 2 === 0) {
                    // Headers, one byte at a time.
                    const head = `GET /api/health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ${'y'.repeat(500)}\r\n`;
                    let at = 0;
                    timers.push(setInterval(() => at < head.length && s.write(head[at++]!), 100));
                } else {
                    // A body announced at 1 MB, sent a byte at a time.
                    s.write(`POST /api/registrations HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n{`);
                    timers.push(setInterval(() => s.write(' '), 100));
                }
            }
            await new Promise((r) => setTimeout(r, 1000));
            // Meanwhile, everyone else: health, a signed-in read, a write.
            const results = await Promise.all(
                Array.from({ length: 30 }, (_, i) =>
                    i % 3 === 0
                        ? fetch(`${host.origin('core')}/api/health`).then((r) => r.status)
                        : i % 3 === 1
                          ? fetch(`${host.origin('core')}/api/me`, { headers: { authorization: `Bearer ${trader}` } }).then((r) => r.status)
                          : fetch(`${host.origin('core')}/api/assets`, { method: 'POST', headers: { authorization: `Bearer ${trader}`, 'content-type': 'application/pdf' }, body: `%PDF ${i}` }).then((r) => r.status),
                ),
            );
            expect(results.filter((s, i) => s !== (i % 3 === 2 ? 201 : 200))).toEqual([]);
            // The slow clients are still connected: they were not simply dropped to make room.
            expect(slow.filter((s) => !s.destroyed).length).toBe(slow.length);
        } finally {
            timers.forEach(clearInterval);
            slow.forEach((s) => s.destroy());
        }
    });
});
