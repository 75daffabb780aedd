import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import type { TokenCredential } from '@azure/core-auth';
import pino from 'pino';
import { LocalKeyVault } from '../../devhost/services/keyVault';
import { CosmosRepository } from '../../shared/documents/cosmosRepository';
import { Conflict, Invalid } from '../../shared/errors';
import type { EventEnvelope } from '../../shared/events/events';
import { systemLookup, type Lookup } from '../../shared/net/pinnedTargets';
import { KeyVaultSecretStore } from '../../shared/vault/keyVault';
import { MAX_WEBHOOKS_PER_ORG, WEBHOOK_LIST_REUSE_MS, Webhooks, type Delivery, type Webhook, type WebhookNetwork } from '../../shared/webhooks/webhooks';
import { startCosmos, type TestCosmos } from '../harness/cosmos';
import { removeDir, tempDir } from '../harness/devhost';

const PUBLIC = '93.184.215.14';

/** A resolver that answers from a script (one answer per call, the last one repeated) and records every call. */
function scripted(...answers: string[][]): Lookup & { calls: string[] } {
    const calls: string[] = [];
    const lookup = async (hostname: string) => {
        calls.push(hostname);
        const answer = answers[Math.min(calls.length - 1, answers.length - 1)]!;
        return answer.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
    };
    return Object.assign(lookup, { calls });
}

/** A local receiver that records every connection and every request. */
async function receiver(server: http.Server | https.Server, host = '127.0.0.1') {
    const seen = { connections: 0, requests: [] as { host?: string; servername?: string | false | null; body: string }[] };
    server.on('connection', () => seen.connections++);
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
            seen.requests.push({ host: req.headers.host, servername: (req.socket as TLSSocket).servername, body: Buffer.concat(chunks).toString() });
            res.writeHead(200).end();
        });
    });
    await new Promise<void>((r) => server.listen(0, host, () => r()));
    return { seen, port: (server.address() as AddressInfo).port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const event = (id: string): EventEnvelope => ({ id, type: 'org.activated', occurredAt: new Date().toISOString(), orgIds: ['acme'], subject: 'orgs/acme', data: {} });

/**
 * Webhook targets (one attempt per delivery here, so a refused one is parked and no later dispatch picks it up): the host is resolved and every address checked at registration and before each
 * delivery, and the delivery connects to the address that was checked. The resolver is a port: a
 * scripted one stands in for DNS (system DNS cannot be changed here), plus the system's for `localhost`.
 */
describe('webhook targets', () => {
    let db: TestCosmos;
    let vault: LocalKeyVault;
    let vaultDir: string;
    let secrets: KeyVaultSecretStore;
    beforeAll(async () => {
        db = await startCosmos();
        vaultDir = tempDir();
        vault = new LocalKeyVault({ name: 'webhook-vault', dir: vaultDir, masterKey: randomBytes(32), tenantId: '11111111-2222-3333-4444-555555555555', logger: pino({ level: 'silent' }) });
        await vault.start(0);
        const credential: TokenCredential = { getToken: async () => ({ token: 't', expiresOnTimestamp: Date.now() + 3600_000 }) };
        secrets = new KeyVaultSecretStore(vault.url, credential);
    });
    afterAll(async () => {
        await vault?.stop();
        removeDir(vaultDir);
        await db?.stop();
    });

    const webhooks = (network: WebhookNetwork, allowInsecureLoopback = false) =>
        new Webhooks(
            new CosmosRepository<Webhook>(db.database.container('webhooks'), (w) => w.orgId),
            new CosmosRepository<Delivery>(db.database.container('deliveries'), (d) => d.id),
            secrets,
            { maxAttempts: 1, retryBaseSeconds: 0.1, allowInsecureLoopback, timeoutMs: 5000 },
            network,
        );
    const refusal = async (w: Webhooks, url: string): Promise<Invalid> => {
        const err = await w.register(`org-${randomBytes(4).toString('hex')}`, { url }, 'admin').then(
            () => undefined,
            (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(Invalid);
        return err as Invalid;
    };
    /** Delivers one event to the org's webhooks and returns the delivery as stored. */
    const deliverOnce = async (w: Webhooks, orgId: string, webhookId: string) => {
        const id = `e-${randomBytes(4).toString('hex')}`;
        await w.enqueue(orgId, event(id));
        await w.dispatch(50, Date.now() + 1000);
        return (await w.deliveriesOf(orgId, webhookId)).find((d) => d.event.id === id)!;
    };

    it('holds an organisation to its most webhooks: one more is refused with 409, nothing written', async () => {
        const org = `org-${randomBytes(4).toString('hex')}`;
        const w = webhooks({ lookup: scripted([PUBLIC]) });
        for (let i = 0; i < MAX_WEBHOOKS_PER_ORG; i++) await w.register(org, { url: `https://hooks.example.com/${i}` }, 'admin');
        await expect(w.register(org, { url: 'https://hooks.example.com/one-more' }, 'admin')).rejects.toMatchObject({ constructor: Conflict, code: 'too_many_webhooks' });
        expect(await w.list(org)).toHaveLength(MAX_WEBHOOKS_PER_ORG);
        // Every one of them gets an event.
        await w.enqueue(org, { ...event('to-all'), orgIds: [org], subject: `orgs/${org}` });
        for (const hook of await w.list(org)) expect((await w.deliveriesOf(org, hook.id)).map((d) => d.event.id)).toEqual(['to-all']);
    });

    it("an instance's events go to a webhook from its registration on (and stop at its removal); another instance's, once its list is no older than the reuse window", async () => {
        const org = `org-${randomBytes(4).toString('hex')}`;
        const [here, there] = [webhooks({ lookup: scripted([PUBLIC]) }), webhooks({ lookup: scripted([PUBLIC]) })];
        const to = (id: string) => ({ ...event(id), orgIds: [org], subject: `orgs/${org}` });
        const deliveredTo = async (hookId: string) => (await here.deliveriesOf(org, hookId)).map((d) => d.event.id).sort();
        // Both instances have read the organisation's (empty) list for an event.
        await here.enqueue(org, to('before'));
        await there.enqueue(org, to('before'));
        const { webhook } = await here.register(org, { url: 'https://hooks.example.com/in' }, 'admin');
        await here.enqueue(org, to('here-after-registration'));
        expect(await deliveredTo(webhook.id)).toEqual(['here-after-registration']);
        await new Promise((r) => setTimeout(r, WEBHOOK_LIST_REUSE_MS + 100));
        await there.enqueue(org, to('there-after-the-window'));
        expect(await deliveredTo(webhook.id)).toEqual(['here-after-registration', 'there-after-the-window']);
        await here.remove(org, webhook.id);
        await here.enqueue(org, to('here-after-removal'));
        expect(await deliveredTo(webhook.id)).toEqual(['here-after-registration', 'there-after-the-window']);
    });

    it.each([
        [[['10.0.0.5']], 'private (10.0.0.0/8)'],
        [[['172.20.1.1']], 'private (172.16.0.0/12)'],
        [[['192.168.4.4']], 'private (192.168.0.0/16)'],
        [[['127.0.0.1']], 'loopback (127.0.0.0/8)'],
        [[['::1']], 'loopback (::1)'],
        [[['169.254.169.254']], 'the cloud instance metadata service (169.254.169.254)'],
        [[['168.63.129.16']], 'the Azure platform endpoint (168.63.129.16)'],
        [[['169.254.3.3']], 'link-local (169.254.0.0/16)'],
        [[['fe80::7']], 'link-local (fe80::/10)'],
        [[['fd00:1::7']], 'unique-local (fc00::/7)'],
        [[['::ffff:10.0.0.5']], 'IPv4-mapped private (10.0.0.0/8)'],
        [[['::ffff:169.254.169.254']], 'IPv4-mapped the cloud instance metadata service (169.254.169.254)'],
        [[['100.64.9.9']], 'shared address space / CGNAT (100.64.0.0/10)'],
        [[['0.0.0.0']], '"this network" (0.0.0.0/8)'],
        [[['::']], 'the unspecified address (::)'],
        [[['239.1.1.1']], 'multicast (224.0.0.0/4)'],
        // One private address among public ones is enough: the resolver may hand out either.
        [[[PUBLIC, '10.9.9.9']], 'private (10.0.0.0/8)'],
    ])('refuses a host name that resolves to %j (%s)', async (answers, expected) => {
        const lookup = scripted(...answers);
        const err = await refusal(webhooks({ lookup }), 'https://hooks.example.com/in');
        expect(err.message).toContain(expected);
        expect(err.errors[0]).toMatchObject({ path: 'url' });
        expect(lookup.calls).toEqual(['hooks.example.com']);
    });

    it.each([
        ['https://169.254.169.254/latest/meta-data', 'the cloud instance metadata service'],
        ['https://168.63.129.16/machine', 'the Azure platform endpoint'],
        ['https://[::ffff:169.254.169.254]/', 'IPv4-mapped the cloud instance metadata service'],
        ['https://[::ffff:a9fe:a9fe]/', 'IPv4-mapped the cloud instance metadata service'],
        ['https://[::ffff:7f00:1]/', 'IPv4-mapped loopback'],
        ['https://[fe80::1]/', 'link-local'],
        ['https://[fc00::1]/', 'unique-local'],
        ['https://2130706433/', 'loopback'],
        ['https://0x0a.0.0.1/', 'private (10.0.0.0/8)'],
        ['https://100.100.100.100/', 'CGNAT'],
    ])('refuses an address literal %s without resolving it', async (url, expected) => {
        const lookup = scripted([PUBLIC]);
        expect((await refusal(webhooks({ lookup }), url)).message).toContain(expected);
        expect(lookup.calls).toEqual([]);
    });

    it('refuses a name that does not resolve, plain http to a public host, and credentials in the URL', async () => {
        const failing: Lookup = async () => {
            throw Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' });
        };
        expect((await refusal(webhooks({ lookup: failing }), 'https://nowhere.example/x')).message).toContain('does not resolve (ENOTFOUND)');
        expect((await refusal(webhooks({ lookup: scripted([PUBLIC]) }, true), 'http://hooks.example.com/x')).message).toContain('https');
        expect((await refusal(webhooks({ lookup: scripted([PUBLIC]) }), 'https://u:p@hooks.example.com/x')).message).toContain('credentials');
    });

    it('accepts a name whose every address is public', async () => {
        const lookup = scripted([PUBLIC, '2606:4700:4700::1111']);
        const { webhook } = await webhooks({ lookup }).register('acme-public', { url: 'https://hooks.example.com/in' }, 'admin');
        expect(webhook.url).toBe('https://hooks.example.com/in');
    });

    it('refuses localhost through the system resolver unless the devhost setting allows loopback', async () => {
        const err = await refusal(webhooks({ lookup: systemLookup }), 'https://localhost/hook');
        expect(err.message).toMatch(/localhost resolves to (127\.0\.0\.1|::1), loopback/);
        expect((await refusal(webhooks({ lookup: systemLookup }), 'http://localhost/hook')).message).toContain('https');
        // The receiver listens where the system resolver sends localhost first (127.0.0.1 or ::1).
        const target = await receiver(http.createServer(), (await systemLookup('localhost'))[0]!.address);
        try {
            const w = webhooks({ lookup: systemLookup }, true);
            const { webhook } = await w.register('acme-local', { url: `http://localhost:${target.port}/hook` }, 'admin');
            expect(await deliverOnce(w, 'acme-local', webhook.id)).toMatchObject({ state: 'delivered' });
            expect(target.seen.requests[0]!.host).toBe(`localhost:${target.port}`);
        } finally {
            await target.close();
        }
    });

    it('refuses a delivery when the name resolves to a private address after registration (DNS rebinding): nothing is sent', async () => {
        // The private address is where a server listens: had the delivery connected, it would have reached it.
        const inside = await receiver(http.createServer());
        try {
            const lookup = scripted([PUBLIC], ['127.0.0.1']);
            const w = webhooks({ lookup });
            const { webhook } = await w.register('acme-rebind', { url: `https://rebind.example.com:${inside.port}/hook` }, 'admin');
            const delivery = await deliverOnce(w, 'acme-rebind', webhook.id);
            expect(delivery).toMatchObject({ state: 'parked', attempts: 1 });
            expect(delivery.lastError).toBe(`refused: The webhook URL must be a public host: rebind.example.com resolves to 127.0.0.1, loopback (127.0.0.0/8)`);
            expect(lookup.calls).toEqual(['rebind.example.com', 'rebind.example.com']);
            expect(inside.seen.connections).toBe(0);
        } finally {
            await inside.close();
        }
    });

    it('connects to the address it checked, with the URL’s own Host header, never resolving the name again', async () => {
        const target = await receiver(http.createServer());
        try {
            // Registration and the delivery's check get the receiver's address; any later lookup would get
            // an address where nothing listens (and that the check refuses).
            const lookup = scripted(['127.0.0.1'], ['127.0.0.1'], ['10.255.0.1']);
            const w = webhooks({ lookup }, true);
            const { webhook } = await w.register('acme-pinned', { url: `http://hooks.pinned.test:${target.port}/in?x=1` }, 'admin');
            const delivery = await deliverOnce(w, 'acme-pinned', webhook.id);
            expect(delivery).toMatchObject({ state: 'delivered', attempts: 1 });
            expect(lookup.calls).toEqual(['hooks.pinned.test', 'hooks.pinned.test']);
            expect(target.seen.requests).toHaveLength(1);
            expect(target.seen.requests[0]!.host).toBe(`hooks.pinned.test:${target.port}`);
            expect(JSON.parse(target.seen.requests[0]!.body)).toMatchObject({ type: 'org.activated' });
        } finally {
            await target.close();
        }
    });

    it('over https, sends the real host name as the TLS server name and verifies the certificate for it', async () => {
        const dir = tempDir();
        try {
            const key = path.join(dir, 'key.pem');
            const cert = path.join(dir, 'cert.pem');
            execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=hooks.tls.test', '-addext', 'subjectAltName=DNS:hooks.tls.test'], { stdio: 'ignore' });
            const ca = readFileSync(cert, 'utf8');
            const target = await receiver(https.createServer({ key: readFileSync(key), cert: ca }));
            try {
                const w = webhooks({ lookup: scripted(['127.0.0.1']), ca }, true);
                const good = await w.register('acme-tls', { url: `https://hooks.tls.test:${target.port}/in` }, 'admin');
                expect(await deliverOnce(w, 'acme-tls', good.webhook.id)).toMatchObject({ state: 'delivered' });
                expect(target.seen.requests).toEqual([expect.objectContaining({ host: `hooks.tls.test:${target.port}`, servername: 'hooks.tls.test' })]);
                // The same address under another name: the certificate does not name it, so nothing is sent.
                const other = await w.register('acme-tls-other', { url: `https://other.tls.test:${target.port}/in` }, 'admin');
                expect(await deliverOnce(w, 'acme-tls-other', other.webhook.id)).toMatchObject({ state: 'parked', lastError: 'unreachable' });
                expect(target.seen.requests).toHaveLength(1);
            } finally {
                await target.close();
            }
        } finally {
            removeDir(dir);
        }
    });
});
