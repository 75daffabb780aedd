import { CosmosClient } from '@azure/cosmos';
import { BlobServiceClient } from '@azure/storage-blob';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { AzureBlobStore } from '../../shared/blobs/azureBlobStore';
import { CosmosRepository } from '../../shared/documents/cosmosRepository';
import { ensureDatabase } from '../../shared/documents/containers';
import { Conflict, NotFound, TooLarge } from '../../shared/errors';
import { ledgerCheck } from '../../shared/health/checks';
import { SmtpMailSender } from '../../shared/mail/smtpMailSender';
import { fixture, removeDir, RunningDevhost, startDevhost, waitFor } from '../harness/devhost';

interface Org {
    id: string;
    orgId: string;
    name: string;
    status: string;
    count?: number;
}

describe('adapters against the embedded services', () => {
    let host: RunningDevhost;
    let info: { connectionString: string; cosmos: { endpoint: string; key: string }; ledger: { url: string } };
    let services: Record<string, string>;
    let repo: CosmosRepository<Org>;

    beforeAll(async () => {
        host = await startDevhost(['--app', fixture('basic-app'), '--name', 'core'], { storage: true });
        info = JSON.parse(readFileSync(path.join(host.stateDir, 'storage.json'), 'utf8'));
        services = (await (await fetch(`${host.consoleUrl}/dev/services`)).json()).services;
        const client = new CosmosClient({ endpoint: info.cosmos.endpoint, key: info.cosmos.key, connectionPolicy: { enableEndpointDiscovery: false } });
        const db = await ensureDatabase(client, 'adapters');
        repo = new CosmosRepository<Org>(db.container('accounts'), (o) => o.orgId);
    });
    afterAll(async () => {
        await host?.stop();
        removeDir(host?.stateDir);
    });

    describe('document store (Cosmos)', () => {
        it('creates, reads and refuses a duplicate id in the partition', async () => {
            const created = await repo.create({ id: 'a1', orgId: 'org-1', name: 'Alpha', status: 'active' });
            expect(created.item).toEqual({ id: 'a1', orgId: 'org-1', name: 'Alpha', status: 'active' });
            expect(created.etag).toBeTruthy();
            expect((await repo.read('a1', 'org-1'))?.item.name).toBe('Alpha');
            expect(await repo.read('a1', 'org-2')).toBeUndefined();
            await expect(repo.create({ id: 'a1', orgId: 'org-1', name: 'Again', status: 'x' })).rejects.toBeInstanceOf(Conflict);
        });

        it('makes its containers with version 2 partition key hashing, as the templates do', async () => {
            const client = new CosmosClient({ endpoint: info.cosmos.endpoint, key: info.cosmos.key, connectionPolicy: { enableEndpointDiscovery: false } });
            const { resource } = await client.database('adapters').container('accounts').read();
            expect(resource?.partitionKey).toMatchObject({ paths: ['/orgId'], kind: 'Hash', version: 2 });
        });

        it('creates many in bulk, create-only: each answered created or already there, in order, past a hundred', async () => {
            const org = (i: number): Org => ({ id: `bulk-${i}`, orgId: `bulk-org-${i % 7}`, name: `Bulk ${i}`, status: 'active' });
            expect(await repo.createEach([org(0), org(1)])).toEqual([true, true]);
            // 250 items over several partitions, two of them already there, one twice in the same call.
            const items = [...Array.from({ length: 250 }, (_, i) => org(i)), org(3)];
            const outcome = await repo.createEach(items);
            expect(outcome.slice(0, 4)).toEqual([false, false, true, true]);
            expect(outcome.slice(4, 250).every((x) => x)).toBe(true);
            expect(outcome[250]).toBe(false);
            expect((await repo.read('bulk-249', 'bulk-org-4'))?.item).toEqual(org(249));
            expect(await repo.createEach([])).toEqual([]);
        });

        it('turns a stale ETag (412) into Conflict, on replace, patch and delete', async () => {
            const first = await repo.create({ id: 'e1', orgId: 'org-1', name: 'v1', status: 'active' });
            const second = await repo.replace({ ...first.item, name: 'v2' }, first.etag);
            expect(second.etag).not.toBe(first.etag);
            const stale = repo.replace({ ...first.item, name: 'v3' }, first.etag);
            await expect(stale).rejects.toBeInstanceOf(Conflict);
            await expect(stale).rejects.toMatchObject({ code: 'stale_etag', status: 409 });
            await expect(repo.patch('e1', 'org-1', [{ op: 'set', path: '/status', value: 'x' }], first.etag)).rejects.toBeInstanceOf(Conflict);
            const patched = await repo.patch('e1', 'org-1', [{ op: 'set', path: '/status', value: 'suspended' }, { op: 'incr', path: '/count', value: 2 }], second.etag);
            expect(patched.item).toMatchObject({ name: 'v2', status: 'suspended', count: 2 });
            await expect(repo.delete('e1', 'org-1', first.etag)).rejects.toBeInstanceOf(Conflict);
            expect(await repo.delete('e1', 'org-1', patched.etag)).toBe(true);
            expect(await repo.delete('e1', 'org-1')).toBe(false);
            await expect(repo.replace({ id: 'gone', orgId: 'org-1', name: 'n', status: 's' })).rejects.toBeInstanceOf(NotFound);
        });

        it('pages a query with continuation tokens', async () => {
            for (let i = 0; i < 7; i++) await repo.upsert({ id: `p${i}`, orgId: 'org-paged', name: `n${i}`, status: 'active' });
            const seen: string[] = [];
            let token: string | undefined;
            let pages = 0;
            do {
                const page = await repo.query(
                    { query: 'SELECT * FROM c WHERE c.orgId = @org ORDER BY c.name', parameters: [{ name: '@org', value: 'org-paged' }] },
                    { partitionKey: 'org-paged', maxItemCount: 3, continuationToken: token },
                );
                seen.push(...page.items.map((i) => i.id));
                token = page.continuationToken;
                pages++;
            } while (token);
            expect(seen).toEqual(['p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6']);
            expect(pages).toBe(3);
        });
    });

    describe('blob store (Azurite)', () => {
        const store = () => AzureBlobStore.fromConnectionString(info.connectionString);

        it('writes create-only with the SHA-256 of the content, and refuses to overwrite', async () => {
            const content = Buffer.from('a document to anchor');
            const put = await store().createOnly('assets', 'org-1/doc.txt', content, { contentType: 'text/plain' });
            expect(put).toMatchObject({ size: content.length, contentType: 'text/plain', sha256: createHash('sha256').update(content).digest('hex') });
            await expect(store().createOnly('assets', 'org-1/doc.txt', Buffer.from('other'), { contentType: 'text/plain' })).rejects.toBeInstanceOf(Conflict);
            const got = await store().get('assets', 'org-1/doc.txt');
            expect(got?.content.toString()).toBe('a document to anchor');
            expect(got?.blob.sha256).toBe(put.sha256);
            expect(await store().get('assets', 'org-1/none.txt')).toBeUndefined();
        });

        it('streams a large body with a size limit', async () => {
            const big = Readable.from([Buffer.alloc(600_000, 1), Buffer.alloc(600_000, 2)]);
            await expect(store().createOnly('assets', 'org-1/big.bin', big, { contentType: 'application/octet-stream', maxBytes: 1_000_000 })).rejects.toBeInstanceOf(TooLarge);
            const ok = await store().createOnly('assets', 'org-1/ok.bin', Readable.from([Buffer.alloc(300_000, 3)]), { contentType: 'application/octet-stream', maxBytes: 1_000_000 });
            expect(ok.size).toBe(300_000);
        });

        it('lists by prefix and gives a read-only download link', async () => {
            const s = store();
            await s.createOnly('listing', 'x/1.txt', Buffer.from('1'), { contentType: 'text/plain' });
            await s.createOnly('listing', 'x/2.txt', Buffer.from('2'), { contentType: 'text/plain' });
            await s.createOnly('listing', 'y/3.txt', Buffer.from('3'), { contentType: 'text/plain' });
            expect((await s.list('listing', 'x/')).map((b) => b.name)).toEqual(['x/1.txt', 'x/2.txt']);
            const link = await s.readLink('listing', 'x/2.txt', 5);
            expect(await (await fetch(link)).text()).toBe('2');
            const blob = BlobServiceClient.fromConnectionString(info.connectionString).getContainerClient('listing').getBlockBlobClient('x/2.txt');
            expect((await fetch(blob.url)).status).toBeGreaterThanOrEqual(400);
            expect(await s.delete('listing', 'x/1.txt')).toBe(true);
            expect(await s.delete('listing', 'x/1.txt')).toBe(false);
        });
    });

    describe('mail sender (SMTP sink)', () => {
        it('delivers a mail the console shows', async () => {
            const sender = new SmtpMailSender(services.smtp, 'noreply@flexchange.local');
            await sender.send({ to: ['approver@example.com'], subject: 'Registration waiting', text: 'Open http://localhost:7071/api/approvals/t1' });
            const mails = await waitFor(async () => {
                const list = await (await fetch(`${host.consoleUrl}/dev/mail`)).json();
                return list.length > 0 ? list : undefined;
            });
            expect(mails[0]).toMatchObject({ subject: 'Registration waiting', to: ['approver@example.com'], links: ['http://localhost:7071/api/approvals/t1'] });
        });
    });

    describe('ledger health', () => {
        it('reports the height of the local chain, and down for an unreachable node', async () => {
            const up = await ledgerCheck([info.ledger.url]).check();
            expect(up).toMatchObject({ status: 'up', nodes: 1, answering: 1 });
            expect(typeof up.blockNumber).toBe('number');
            expect(await ledgerCheck(['http://127.0.0.1:1']).check()).toMatchObject({ status: 'down' });
        });
    });
});
