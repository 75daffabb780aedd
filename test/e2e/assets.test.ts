import { createHash, randomBytes } from 'node:crypto';
import { devToken, removeDir, repoRoot, RunningDevhost, startDevhost } from '../harness/devhost';

const MAX = 2 * 1024 * 1024;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Documents behind deals on the core: streamed into Blob storage with their hash, shown only to their organisation. */
describe('assets', () => {
    let host: RunningDevhost;
    let api: string;

    beforeAll(async () => {
        host = await startDevhost(['--app', repoRoot, '--name', 'core', '--set', `FLEXCHANGE_ASSET_MAX_BYTES=${MAX}`], { storage: true });
        api = `${host.origin('core')}/api`;
    });
    afterAll(async () => {
        await host?.stop();
        removeDir(host?.stateDir);
    });

    const token = (body: Parameters<typeof devToken>[1]) => devToken(host, body);
    const upload = (bearer: string | undefined, body: Buffer | ReadableStream, headers: Record<string, string> = {}) =>
        fetch(`${api}/assets`, { method: 'POST', headers: { ...(bearer ? { authorization: `Bearer ${bearer}` } : {}), 'content-type': 'application/pdf', ...headers }, body, duplex: 'half' } as RequestInit);

    it('stores a streamed document with its SHA-256, serves it to its organisation and to no one else', async () => {
        const trader = await token({ roles: ['Org.Trader'], orgId: 'acme', email: 'trader@acme.example' });
        const admin = await token({ roles: ['Org.Admin'], orgId: 'acme', email: 'admin@acme.example' });
        const outsider = await token({ roles: ['Org.Trader'], orgId: 'globex', email: 'trader@globex.example' });
        const doc = randomBytes(1_500_000);
        // Sent in chunks without a length: the app hashes while it streams.
        const chunks = Array.from({ length: 15 }, (_, i) => doc.subarray(i * 100_000, (i + 1) * 100_000));
        const stream = new ReadableStream({
            pull(controller) {
                const next = chunks.shift();
                if (next) controller.enqueue(next);
                else controller.close();
            },
        });
        const res = await upload(trader, stream);
        expect(res.status).toBe(201);
        const asset = (await res.json()) as { assetId: string; sha256: string; algorithm: string; location: string; size: number };
        expect(asset).toMatchObject({ sha256: sha256(doc), algorithm: 'sha256', size: doc.length });
        expect(asset.location).toBe(`${api}/assets/${asset.assetId}`);

        for (const bearer of [trader, admin]) {
            const got = await fetch(`${api}/assets/${asset.assetId}`, { headers: { authorization: `Bearer ${bearer}` } });
            expect(got.status).toBe(200);
            expect(got.headers.get('content-type')).toBe('application/pdf');
            expect(got.headers.get('x-flexchange-sha256')).toBe(asset.sha256);
            expect(Buffer.from(await got.arrayBuffer()).equals(doc)).toBe(true);
        }
        const other = await fetch(`${api}/assets/${asset.assetId}`, { headers: { authorization: `Bearer ${outsider}` } });
        expect(other.status).toBe(404);
        expect(other.headers.get('content-type')).toBe('application/problem+json');
        expect((await fetch(`${api}/assets/${asset.assetId}`)).status).toBe(401);
        expect((await upload(undefined, Buffer.from('x'))).status).toBe(401);
        expect((await upload(admin, Buffer.from('x'))).status).toBe(403);
    });

    it('refuses what the settings do not allow: 413 (declared, or found while streaming), 415, an empty body, a malformed key', async () => {
        const trader = await token({ roles: ['Org.Trader'], orgId: 'initech', email: 'trader@initech.example' });
        const big = await upload(trader, randomBytes(MAX + 1));
        expect(big.status).toBe(413);
        expect(big.headers.get('content-type')).toBe('application/problem+json');
        // Too large found only while streaming (no length given): 413 as well.
        const chunks = [randomBytes(MAX), randomBytes(1024)];
        const streamed = await upload(trader, new ReadableStream({ pull: (c) => (chunks.length ? c.enqueue(chunks.shift()!) : c.close()) }));
        expect(streamed.status).toBe(413);
        const html = await upload(trader, Buffer.from('<script>'), { 'content-type': 'text/html' });
        expect(html.status).toBe(415);
        expect(((await html.json()) as { detail: string }).detail).toMatch(/text\/html/);
        expect((await upload(trader, Buffer.alloc(0))).status).toBe(400);
        expect((await upload(trader, Buffer.from('x'), { 'idempotency-key': 'bad key with spaces' })).status).toBe(400);
    });

    it('answers a retried upload with the same Idempotency-Key with the first asset', async () => {
        const trader = await token({ roles: ['Org.Trader'], orgId: 'umbrella', email: 'trader@umbrella.example' });
        const doc = Buffer.from('{"contract":"PPA","mwh":120}');
        const first = await upload(trader, doc, { 'content-type': 'application/json; charset=utf-8', 'idempotency-key': 'ppa-2027' });
        expect(first.status).toBe(201);
        const again = await upload(trader, doc, { 'content-type': 'application/json', 'idempotency-key': 'ppa-2027' });
        expect(again.status).toBe(200);
        const a = (await first.json()) as { assetId: string; sha256: string; contentType: string };
        const b = (await again.json()) as { assetId: string; sha256: string };
        expect(b).toEqual(expect.objectContaining({ assetId: a.assetId, sha256: sha256(doc) }));
        expect(a.contentType).toBe('application/json');
        // The same key from another organisation is its own upload.
        const other = await token({ roles: ['Org.Trader'], orgId: 'hooli', email: 'trader@hooli.example' });
        const theirs = await upload(other, doc, { 'content-type': 'application/json', 'idempotency-key': 'ppa-2027' });
        expect(theirs.status).toBe(201);
        expect(((await theirs.json()) as { assetId: string }).assetId).not.toBe(a.assetId);
    });
});
