import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { CosmosClient } from '@azure/cosmos';
import type { AddressInfo } from 'node:net';
import { TypedDataEncoder, type TypedDataDomain, type TypedDataField } from 'ethers';
import { devToken, removeDir, repoRoot, RunningDevhost, startDevhost, tempDir, waitFor } from '../harness/devhost';
import { onboard, type OnboardedOrg } from '../harness/journeys';

interface Mail {
    to: string[];
    subject: string;
    links: string[];
}

interface ProposalView {
    proposalId: string;
    status: string;
    parties: { orgId: string; account: string; signed: boolean; txHash: string | null }[];
    contract: { version: number; address: string } | null;
    anchor: { txHash: string; blockNumber: number } | null;
    cancel: { txHash: string } | null;
    saga: { customStatus: { signed: string[]; pending: string[] } | null } | null;
}

/**
 * User journeys 2 to 4 on the devhost: two organisations onboarded (each with its member
 * deployment and funded account), a proposal with two documents anchored on-chain, each party
 * signing through its own member deployment, completion; rejection, expiry, a repeated
 * signature, a trader signing with another organisation's account, and document verification.
 */
describe('proposal signing saga across core and member deployments', () => {
    let host: RunningDevhost;
    const orgs: OnboardedOrg[] = [];
    let admin: string;

    const api = (p: string, init: RequestInit = {}) => fetch(p.startsWith('http') ? p : `${host.origin('core')}/api/${p}`, init);
    const json = (bearer: string, body?: unknown, extra: Record<string, string> = {}): RequestInit => ({
        method: body === undefined ? 'GET' : 'POST',
        headers: { authorization: `Bearer ${bearer}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...extra },
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const mails = async () => (await (await fetch(`${host.consoleUrl}/dev/mail`)).json()) as Mail[];

    const propose = async (by: (typeof orgs)[number], parties: (typeof orgs)[number][], docs: Buffer[], expiresInSeconds = 3600, key?: string) => {
        const body = await proposal(by, parties, docs, expiresInSeconds);
        return api('proposals', json(by.trader, body, key ? { 'idempotency-key': key } : {}));
    };
    /** A proposal's body, its documents uploaded by the proposer. */
    const proposal = async (by: (typeof orgs)[number], parties: (typeof orgs)[number][], docs: Buffer[], expiresInSeconds = 3600) => {
        const assets: string[] = [];
        for (const doc of docs) {
            const up = await api('assets', { method: 'POST', headers: { authorization: `Bearer ${by.trader}`, 'content-type': 'application/pdf' }, body: doc });
            expect(up.status).toBe(201);
            assets.push(((await up.json()) as { assetId: string }).assetId);
        }
        const body = {
            parties: parties.map((p) => ({ orgId: p.orgId, account: p.account })),
            terms: { product: 'baseload', direction: 'sell', quantityMWh: 120, priceGbpPerMWh: 71.5, deliveryStart: '2027-01-01T00:00:00Z', deliveryEnd: '2027-02-01T00:00:00Z' },
            assets,
            expiresAt: new Date(Date.now() + expiresInSeconds * 1000).toISOString(),
        };
        return body;
    };
    const view = async (id: string, bearer = orgs[0]!.trader) => (await (await api(`proposals/${id}`, json(bearer))).json()) as ProposalView;
    const until = (id: string, status: string, timeoutMs = 60_000) =>
        waitFor(async () => ((await view(id)).status === status ? view(id) : undefined), timeoutMs, 250).catch(async (err) => {
            // On a timeout, what the saga did: a slow step or a stuck one.
            const saga = await fetch(`${host.origin('core')}/runtime/webhooks/durabletask/instances/proposal-${id}?showHistory=true&showHistoryOutput=true`);
            console.log(`proposal-${id} (${JSON.stringify(await view(id))}): ${saga.status} ${(await saga.text()).slice(0, 4000)}`);
            console.log(JSON.stringify(host.logs().filter((l) => l.level === 'error' || l.level === 'warn' || (typeof l.level === 'number' && l.level >= 40)).slice(-10)));
            throw err;
        });
    /** The proposal's events in the organisation's feed, once the last one expected is there (the status moves just before its event is published). */
    const storyOf = (org: (typeof orgs)[number], proposalId: string, last: string) =>
        waitFor(async () => {
            const feed = (await (await api(`orgs/${org.orgId}/events`, json(org.trader))).json()) as { items: { type: string; subject: string }[] };
            const types = feed.items.filter((e) => e.subject === `proposals/${proposalId}`).map((e) => e.type);
            return types.at(-1) === last ? types : undefined;
        }, 20_000, 200);
    const sign = (org: (typeof orgs)[number], id: string, account = org.account) => fetch(`${org.memberUrl}/proposals/${id}/signature`, json(org.trader, { account }));
    /** Signs once the member's own copy of the proposal has arrived (on v2 a member signs only terms it holds itself). */
    const signWhenCopied = async (org: (typeof orgs)[number], id: string) => {
        await waitFor(async () => ((await fetch(`${org.memberUrl}/proposals/${id}`, json(org.trader))).status === 200 ? true : undefined), 30_000, 250);
        const res = await sign(org, id);
        // On a failure, what the member answered and what the devhost logged about it.
        if (res.status !== 202) {
            console.log(`sign ${id} by ${org.orgId}: ${res.status} ${await res.clone().text()}`);
            console.log(JSON.stringify(host.logs().filter((l) => l.level === 'error' || l.level === 'warn' || (typeof l.level === 'number' && l.level >= 40)).slice(-10)));
        }
        return res;
    };

    const stateDir = tempDir('flexchange-state-');
    const hostArgs = ['--app', repoRoot, '--name', 'core', '--set', 'FLEXCHANGE_APPROVERS=approver@operator.example', '--set', 'FLEXCHANGE_PROPOSAL_MIN_SECONDS=5', '--set', 'FLEXCHANGE_WEBHOOK_ALLOW_INSECURE_LOOPBACK=true', '--set', 'FLEXCHANGE_WEBHOOK_RETRY_BASE_SECONDS=1'];

    beforeAll(async () => {
        host = await startDevhost(hostArgs, { stateDir, storage: true });
        admin = await devToken(host, { roles: ['Flexchange.Admin'], email: 'ops@operator.example' });
        const deployed = await api('contracts', json(admin, { artifact: 'EnergyExchange' }));
        expect(deployed.status).toBe(201);
        orgs.push(await onboard(host, 'North Wind', 'ada@north.example'));
        orgs.push(await onboard(host, 'South Solar', 'sol@south.example'));
        orgs.push(await onboard(host, 'East Storage', 'eve@east.example'));
    }, 180_000);
    afterAll(async () => {
        await host?.stop();
        removeDir(stateDir);
    });

    it('upgrades to EnergyExchangeV2: a v1 proposal finishes on v1, a new one is signed over its terms (EIP-712) on v2 and its document verifies', async () => {
        const [north, south] = orgs as [(typeof orgs)[0], (typeof orgs)[0]];
        const before = (await (await propose(north, [north, south], [Buffer.from(`%PDF v1 ${randomBytes(4).toString('hex')}`)])).json()) as { proposalId: string };
        const onV1 = await until(before.proposalId, 'AwaitingSignatures');
        const upgrade = await api('contracts', json(admin, { artifact: 'EnergyExchangeV2' }));
        expect(upgrade.status).toBe(201);
        const v2 = (await upgrade.json()) as { version: number; address: string };
        const document = Buffer.from(`%PDF v2 ${randomBytes(4).toString('hex')}`);
        const after = (await (await propose(north, [north, south], [document])).json()) as { proposalId: string };
        const onV2 = await until(after.proposalId, 'AwaitingSignatures');
        expect(onV2.contract).toEqual({ version: v2.version, address: v2.address });
        expect(onV1.contract!.version).toBeLessThan(v2.version);
        expect(onV1.contract!.address).not.toBe(v2.address);
        expect(((await view(after.proposalId)) as ProposalView & { typedData: { domain: { version: string } } }).typedData.domain.version).toBe('2');
        for (const org of [north, south]) expect((await sign(org, before.proposalId)).status).toBe(202);
        // On v2 a member signs only terms it holds itself: its copy comes with proposal.created.
        for (const org of [north, south]) expect((await signWhenCopied(org, after.proposalId)).status).toBe(202);
        expect((await until(before.proposalId, 'Completed')).contract).toEqual(onV1.contract);
        const done = await until(after.proposalId, 'Completed');
        expect(done.contract).toEqual(onV2.contract);
        expect(done.parties.every((p) => p.signed && /^0x[0-9a-f]{64}$/.test(p.txHash ?? ''))).toBe(true);
        const verified = await api(`proposals/${after.proposalId}/verify`, { method: 'POST', headers: { authorization: `Bearer ${south.trader}`, 'content-type': 'application/pdf' }, body: document });
        expect(((await verified.json()) as { match: boolean }).match).toBe(true);
        // The terms themselves check against the hash v2 holds; changed terms do not; v1 holds no terms.
        const { terms } = (await view(after.proposalId)) as ProposalView & { terms: { priceGbpPerMWh: number } };
        const checkTerms = (id: string, t: object) => api(`proposals/${id}/verify`, json(south.trader, { terms: t }));
        const same = (await (await checkTerms(after.proposalId, terms)).json()) as { match: boolean; termsHash: string; onChainTermsHash: string };
        expect(same.match).toBe(true);
        expect(same.termsHash).toBe(same.onChainTermsHash);
        const changed = (await (await checkTerms(after.proposalId, { ...terms, priceGbpPerMWh: terms.priceGbpPerMWh + 1 })).json()) as { match: boolean; termsHash: string; onChainTermsHash: string };
        expect(changed).toMatchObject({ match: false, onChainTermsHash: same.onChainTermsHash });
        expect(changed.termsHash).not.toBe(same.termsHash);
        expect((await checkTerms(before.proposalId, terms)).status).toBe(409);
    }, 150_000);

    it('on v2, a member whose own copy of the terms differs from the ledger’s answers 409 with both digests and sends nothing', async () => {
        const [north, south] = orgs as [(typeof orgs)[0], (typeof orgs)[0]];
        const { proposalId } = (await (await propose(north, [north, south], [Buffer.from(`%PDF tampered ${randomBytes(4).toString('hex')}`)])).json()) as { proposalId: string };
        const open = (await until(proposalId, 'AwaitingSignatures')) as ProposalView & { termsDigest: string };
        expect(open.contract?.version).toBe(2);
        await waitFor(async () => ((await fetch(`${north.memberUrl}/proposals/${proposalId}`, json(north.trader))).status === 200 ? true : undefined), 30_000, 250);
        // North's deployment holds other terms than the ledger (its store changed behind it: a price one penny higher).
        const info = JSON.parse(readFileSync(path.join(host.stateDir, 'storage.json'), 'utf8')) as { cosmos: { endpoint: string; key: string }; ledger: { url: string } };
        const cosmos = new CosmosClient({ endpoint: info.cosmos.endpoint, key: info.cosmos.key, connectionPolicy: { enableEndpointDiscovery: false } });
        const copies = cosmos.database(`member-${north.orgId}`).container('proposals');
        const { resource: copy } = await copies.item(proposalId, proposalId).read<{ proposal: { terms: { priceGbpPerMWh: number } } }>();
        copy!.proposal.terms.priceGbpPerMWh += 0.01;
        await copies.item(proposalId, proposalId).replace(copy!);
        const sentBy = async (account: string) => Number(BigInt(((await (await fetch(info.ledger.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_getTransactionCount', params: [account, 'pending'] }) })).json()) as { result: string }).result));
        const nonce = await sentBy(north.account);
        const refused = await sign(north, proposalId);
        expect(refused.status).toBe(409);
        const problem = (await refused.json()) as { code: string; detail: string };
        expect(problem.code).toBe('terms_mismatch');
        expect(problem.detail).toContain(open.termsDigest);
        expect(problem.detail).toMatch(/copy 0x[0-9a-f]{64}/);
        expect(await sentBy(north.account)).toBe(nonce);
        expect((await view(proposalId)).parties.every((p) => !p.signed)).toBe(true);
        // South's copy is the ledger's: it signs.
        expect((await signWhenCopied(south, proposalId)).status).toBe(202);
        expect((await api(`proposals/${proposalId}/rejection`, json(north.trader, { reason: 'our copy of the terms differs' }))).status).toBe(202);
        await until(proposalId, 'Rejected');
    }, 90_000);

    it('goes from POST /proposals to Completed with each of three parties signing through its own member deployment; documents verify', async () => {
        const [north, south, east] = orgs as [(typeof orgs)[0], (typeof orgs)[0], (typeof orgs)[0]];
        const contract = Buffer.from(`%PDF-1.7 master agreement ${randomBytes(8).toString('hex')}`);
        const schedule = Buffer.from(`%PDF-1.7 delivery schedule ${randomBytes(8).toString('hex')}`);
        const body = await proposal(north, [north, south, east], [contract, schedule]);
        const res = await api('proposals', json(north.trader, body, { 'idempotency-key': 'deal-1' }));
        expect(res.status).toBe(202);
        const { proposalId } = (await res.json()) as { proposalId: string };
        // A retried POST with the same Idempotency-Key is answered with the first response: the same proposal and saga.
        const again = await api('proposals', json(north.trader, body, { 'idempotency-key': 'deal-1' }));
        expect(again.status).toBe(202);
        expect(again.headers.get('idempotent-replayed')).toBe('true');
        expect(((await again.json()) as { proposalId: string }).proposalId).toBe(proposalId);
        // The same key with another body is refused.
        expect((await api('proposals', json(north.trader, { ...body, expiresAt: new Date(Date.now() + 7200_000).toISOString() }, { 'idempotency-key': 'deal-1' }))).status).toBe(422);

        const open = await until(proposalId, 'AwaitingSignatures');
        // The upgrade test before this one made EnergyExchangeV2 the active version: the parties sign the terms themselves.
        expect(open.contract?.version).toBe(2);
        expect(open.anchor?.txHash).toMatch(/^0x[0-9a-f]{64}$/);
        // The other party sees it, with its terms as EIP-712 typed data it can check with ethers; an outsider does not.
        const seen = (await view(proposalId, south.trader)) as ProposalView & { chainProposalId: string; typedData: { domain: TypedDataDomain; types: Record<string, TypedDataField[]>; message: Record<string, unknown> }; termsDigest: string };
        expect(seen.proposalId).toBe(proposalId);
        expect(seen.typedData.domain).toEqual({ name: 'Flexchange EnergyExchange', version: '2', chainId: 31337, verifyingContract: open.contract!.address });
        expect(seen.typedData.message).toMatchObject({ id: seen.chainProposalId, parties: seen.parties.map((p) => p.account), quantityKWh: String(body.terms.quantityMWh * 1000) });
        expect(seen.termsDigest).toBe(TypedDataEncoder.hash(seen.typedData.domain, seen.typedData.types, seen.typedData.message));
        const outsider = await devToken(host, { roles: ['Org.Trader'], orgId: 'nobody', email: 'eve@nobody.example' });
        expect((await api(`proposals/${proposalId}`, json(outsider))).status).toBe(404);
        // South's documents access follows the proposal.
        expect((await api(`assets/${(await (await api(`proposals/${proposalId}`, json(north.trader))).json() as { assets: { assetId: string }[] }).assets[0]!.assetId}`, json(south.trader))).status).toBe(200);

        // A trader cannot sign with another organisation's account, through its own deployment or another's.
        expect((await sign(south, proposalId, north.account)).status).toBe(403);
        expect((await fetch(`${north.memberUrl}/proposals/${proposalId}/signature`, json(south.trader, { account: south.account }))).status).toBe(403);

        const first = await signWhenCopied(north, proposalId);
        expect(first.status).toBe(202);
        const firstTx = ((await first.json()) as { txHash: string }).txHash;
        // The same signature asked for again is the same transaction, not a second one.
        const repeat = await sign(north, proposalId);
        expect(((await repeat.json()) as { txHash: string }).txHash).toBe(firstTx);
        await waitFor(async () => ((await view(proposalId)).parties.find((p) => p.orgId === north.orgId)?.signed ? true : undefined), 30_000, 250);
        // The saga's status follows its record: it is set when the saga takes its next turn.
        await waitFor(async () => ((await view(proposalId)).saga?.customStatus?.signed?.length ? true : undefined), 30_000, 250);
        expect((await view(proposalId)).saga?.customStatus?.signed).toEqual([north.account.toLowerCase()]);

        expect((await signWhenCopied(south, proposalId)).status).toBe(202);
        expect((await signWhenCopied(east, proposalId)).status).toBe(202);
        const done = await until(proposalId, 'Completed');
        expect(done.parties.every((p) => p.signed && /^0x[0-9a-f]{64}$/.test(p.txHash ?? ''))).toBe(true);
        expect(done.parties.find((p) => p.orgId === north.orgId)?.txHash).toBe(firstTx);

        // Each member deployment keeps its own copy, fed by its subscription, and mailed its traders.
        for (const org of [north, south, east]) {
            const copy = await waitFor(async () => {
                const r = await fetch(`${org.memberUrl}/proposals/${proposalId}`, json(org.trader));
                const b = r.status === 200 ? ((await r.json()) as ProposalView) : undefined;
                return b?.status === 'Completed' ? b : undefined;
            }, 30_000, 250);
            expect(copy.parties.map((p) => p.signed)).toEqual([true, true, true]);
            const listed = (await (await fetch(`${org.memberUrl}/proposals`, json(org.trader))).json()) as { items: { proposalId: string }[] };
            expect(listed.items.map((p) => p.proposalId)).toContain(proposalId);
            await waitFor(async () => (await mails()).find((m) => m.to.includes(`trader@${org.orgId}.example`) && m.subject === `Proposal ${proposalId.slice(0, 8)} awaits your signature`), 20_000);
        }
        expect((await fetch(`${north.memberUrl}/proposals/${proposalId}`, json(south.trader))).status).toBe(403);

        // Every party's feed has the story in order.
        for (const org of [north, south, east]) {
            expect(await storyOf(org, proposalId, 'proposal.completed')).toEqual(['proposal.created', 'proposal.signed', 'proposal.signed', 'proposal.signed', 'proposal.completed']);
        }

        // The documents against the ledger's anchors: the same bytes match, a changed one does not.
        const verify = (body: Buffer | string, type: string) => api(`proposals/${proposalId}/verify`, { method: 'POST', headers: { authorization: `Bearer ${south.trader}`, 'content-type': type }, body });
        const verified = await verify(schedule, 'application/pdf');
        // On a failure, what the core logged about it.
        if (verified.status !== 200) console.log(JSON.stringify(host.logs().filter((l) => l.level === 'error' || (typeof l.level === 'number' && l.level >= 50)).slice(-5)));
        const ok = (await verified.json()) as { match: boolean; onChainHash: string; computedHash: string; txHash: string };
        expect(ok).toMatchObject({ match: true, onChainHash: createHash('sha256').update(schedule).digest('hex'), computedHash: createHash('sha256').update(schedule).digest('hex'), txHash: done.anchor!.txHash });
        const changed = Buffer.from(contract);
        changed[changed.length - 1] ^= 1;
        expect(((await (await verify(changed, 'application/pdf')).json()) as { match: boolean }).match).toBe(false);
        const byId = (await (await verify(JSON.stringify({ assetId: (await (await api(`proposals/${proposalId}`, json(north.trader))).json() as { assets: { assetId: string }[] }).assets[0]!.assetId }), 'application/json')).json()) as { match: boolean };
        expect(byId.match).toBe(true);
    }, 150_000);

    it('delivers to a webhook that fails twice then succeeds: once, signed, after back-off; refuses unsafe URLs', async () => {
        const [north, south] = orgs as [(typeof orgs)[0], (typeof orgs)[0]];
        const received: { status: number; eventId: string; body: string; signature: string; attempt: string }[] = [];
        // Fails each event's first two deliveries, then takes it.
        const failures = new Map<string, number>();
        const receiver = http.createServer((req, res) => {
            const chunks: Buffer[] = [];
            req.on('data', (c: Buffer) => chunks.push(c));
            req.on('end', () => {
                const id = String(req.headers['flexchange-event-id']);
                const failed = failures.get(id) ?? 0;
                failures.set(id, failed + 1);
                const status = failed < 2 ? 503 : 200;
                received.push({ status, eventId: String(req.headers['flexchange-event-id']), body: Buffer.concat(chunks).toString(), signature: String(req.headers['flexchange-signature']), attempt: String(req.headers['flexchange-delivery-attempt']) });
                res.writeHead(status).end();
            });
        });
        await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
        try {
            const admin = await devToken(host, { roles: ['Org.Admin'], email: 'sol@south.example' });
            for (const url of ['http://hooks.example/x', 'https://10.1.2.3/x', 'ftp://x.example', 'https://user:pw@hooks.example/x']) {
                expect((await api(`orgs/${south.orgId}/webhooks`, json(admin, { url }))).status).toBe(400);
            }
            const made = await api(`orgs/${south.orgId}/webhooks`, json(admin, { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, description: 'ops' }));
            expect(made.status).toBe(201);
            const { webhookId, secret } = (await made.json()) as { webhookId: string; secret: string };
            expect(secret.length).toBeGreaterThan(30);
            expect(JSON.stringify(await (await api(`orgs/${south.orgId}/webhooks`, json(admin))).json())).not.toContain(secret);
            // A trader may not manage webhooks; another organisation's admin does not see them.
            expect((await api(`orgs/${south.orgId}/webhooks`, json(south.trader))).status).toBe(403);
            expect((await api(`orgs/${south.orgId}/webhooks`, json(await devToken(host, { roles: ['Org.Admin'], email: 'ada@north.example' })))).status).toBe(404);

            const res = await propose(north, [north, south], [Buffer.from(`%PDF webhook ${randomBytes(4).toString('hex')}`)]);
            const { proposalId } = (await res.json()) as { proposalId: string };
            const createdId = `proposal.created:${proposalId}`;
            await waitFor(() => (received.some((r) => r.eventId === createdId && r.status === 200) ? true : undefined), 30_000, 100);
            const attempts = received.filter((r) => r.eventId === createdId);
            expect(attempts.map((a) => [a.status, a.attempt])).toEqual([[503, '1'], [503, '2'], [200, '3']]);
            const ok = attempts[2]!;
            const [, t, v1] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(ok.signature)!;
            expect(createHmac('sha256', secret).update(`${t}.${ok.body}`).digest('hex')).toBe(v1);
            expect(JSON.parse(ok.body)).toMatchObject({ id: createdId, type: 'proposal.created', orgIds: expect.arrayContaining([south.orgId]) });
            const deliveries = (await (await api(`orgs/${south.orgId}/webhooks/${webhookId}/deliveries`, json(admin))).json()) as { items: { eventId: string; state: string; attempts: number }[] };
            expect(deliveries.items.find((d) => d.eventId === createdId)).toMatchObject({ state: 'delivered', attempts: 3 });
            // Removed: nothing more is sent to it.
            expect((await api(`orgs/${south.orgId}/webhooks/${webhookId}`, { method: 'DELETE', headers: { authorization: `Bearer ${admin}` } })).status).toBe(204);
            expect(((await (await api(`orgs/${south.orgId}/webhooks`, json(admin))).json()) as { items: unknown[] }).items).toEqual([]);
        } finally {
            await new Promise<void>((r) => receiver.close(() => r()));
        }
    }, 90_000);

    it("sends a proposal's events to a webhook in the order they happened, a later one waiting while an earlier one is retried", async () => {
        const [north, south] = orgs as [(typeof orgs)[0], (typeof orgs)[0]];
        // Every event's first two deliveries fail: without ordering, a later event overtakes one in back-off.
        const tries = new Map<string, number>();
        const got: { eventId: string; type: string; sequence: number; status: number }[] = [];
        const receiver = http.createServer((req, res) => {
            const chunks: Buffer[] = [];
            req.on('data', (c: Buffer) => chunks.push(c));
            req.on('end', () => {
                const event = JSON.parse(Buffer.concat(chunks).toString()) as { id: string; type: string; sequence: number };
                const n = (tries.get(event.id) ?? 0) + 1;
                tries.set(event.id, n);
                const status = n <= 2 ? 503 : 200;
                got.push({ eventId: event.id, type: event.type, sequence: event.sequence, status });
                res.writeHead(status).end();
            });
        });
        await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
        const admin = await devToken(host, { roles: ['Org.Admin'], email: 'sol@south.example' });
        const made = await api(`orgs/${south.orgId}/webhooks`, json(admin, { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/ordered` }));
        expect(made.status).toBe(201);
        const { webhookId } = (await made.json()) as { webhookId: string };
        try {
            const res = await propose(north, [north, south], [Buffer.from(`%PDF ordered ${randomBytes(4).toString('hex')}`)]);
            const { proposalId } = (await res.json()) as { proposalId: string };
            await until(proposalId, 'AwaitingSignatures');
            expect((await signWhenCopied(north, proposalId)).status).toBe(202);
            expect((await signWhenCopied(south, proposalId)).status).toBe(202);
            await until(proposalId, 'Completed');
            const mine = () => got.filter((g) => g.eventId.includes(proposalId));
            await waitFor(() => mine().some((g) => g.type === 'proposal.completed' && g.status === 200), 60_000, 200);
            const accepted = mine().filter((g) => g.status === 200);
            expect(accepted.map((g) => [g.type, g.sequence])).toEqual([
                ['proposal.created', 1],
                ['proposal.signed', 2],
                ['proposal.signed', 3],
                ['proposal.completed', 4],
            ]);
            // Never an attempt at an event before the one before it was taken.
            for (const [i, g] of mine().entries()) {
                const before = mine().slice(0, i);
                if (g.sequence > 1) expect(before.some((b) => b.sequence === g.sequence - 1 && b.status === 200)).toBe(true);
            }
            // The feed has them in the same order, numbered.
            const feed = (await (await api(`orgs/${south.orgId}/events`, json(south.trader))).json()) as { items: { type: string; subject: string; sequence?: number }[] };
            expect(feed.items.filter((e) => e.subject === `proposals/${proposalId}`).map((e) => e.sequence)).toEqual([1, 2, 3, 4]);
        } finally {
            await api(`orgs/${south.orgId}/webhooks/${webhookId}`, { method: 'DELETE', headers: { authorization: `Bearer ${admin}` } });
            await new Promise<void>((r) => receiver.close(() => r()));
        }
    }, 150_000);

    it('cancels on-chain when a party rejects, and tells every party', async () => {
        const [north, south] = orgs as [(typeof orgs)[0], (typeof orgs)[0]];
        const res = await propose(north, [north, south], [Buffer.from(`%PDF reject me ${randomBytes(4).toString('hex')}`)]);
        const { proposalId } = (await res.json()) as { proposalId: string };
        await until(proposalId, 'AwaitingSignatures');
        expect((await api(`proposals/${proposalId}/rejection`, json(south.trader, { reason: '' }))).status).toBe(400);
        expect((await api(`proposals/${proposalId}/rejection`, json(south.trader, { reason: 'price too low' }))).status).toBe(202);
        const rejected = await until(proposalId, 'Rejected');
        expect(rejected.cancel?.txHash).toMatch(/^0x[0-9a-f]{64}$/);
        // Signing a cancelled proposal is refused by the ledger, as a 409 problem.
        const late = await sign(north, proposalId);
        expect(late.status).toBe(409);
        expect(((await late.json()) as { code: string; detail: string }).detail).toMatch(/ProposalNotOpen/);
        expect(await storyOf(north, proposalId, 'proposal.rejected')).toEqual(['proposal.created', 'proposal.rejected']);
    }, 90_000);

    it('expires at its deadline, cancelled on-chain, and refuses proposals that break the rules', async () => {
        const [north, south] = orgs as [(typeof orgs)[0], (typeof orgs)[0]];
        const res = await propose(north, [north, south], [Buffer.from(`%PDF expire ${randomBytes(4).toString('hex')}`)], 8);
        const { proposalId } = (await res.json()) as { proposalId: string };
        const expired = await until(proposalId, 'Expired', 60_000);
        expect(expired.cancel?.txHash).toMatch(/^0x[0-9a-f]{64}$/);

        // Rules: the proposer among the parties, accounts registered to the parties, own documents, a future expiry.
        const doc = await api('assets', { method: 'POST', headers: { authorization: `Bearer ${south.trader}`, 'content-type': 'application/pdf' }, body: Buffer.from('%PDF south only') });
        const southAsset = ((await doc.json()) as { assetId: string }).assetId;
        const base = { terms: { product: 'peak', direction: 'buy', quantityMWh: 5, priceGbpPerMWh: 90, deliveryStart: '2027-03-01T00:00:00Z', deliveryEnd: '2027-03-02T00:00:00Z' }, expiresAt: new Date(Date.now() + 3600_000).toISOString() };
        const bad = async (body: unknown) => {
            const r = await api('proposals', json(north.trader, body));
            expect(r.status).toBe(400);
            return ((await r.json()) as { errors: { path: string }[] }).errors.map((e) => e.path);
        };
        expect(await bad({ ...base, parties: [{ orgId: south.orgId, account: south.account }, { orgId: 'third', account: north.account }], assets: [southAsset] })).toEqual(expect.arrayContaining(['parties']));
        expect(await bad({ ...base, parties: [{ orgId: north.orgId, account: south.account }, { orgId: south.orgId, account: north.account }], assets: [southAsset] })).toEqual(expect.arrayContaining(['parties.0.account', 'parties.1.account', 'assets.0']));
        expect(await bad({ ...base, expiresAt: new Date(Date.now() - 1000).toISOString(), parties: [{ orgId: north.orgId, account: north.account }, { orgId: south.orgId, account: south.account }], assets: [southAsset] })).toEqual(expect.arrayContaining(['expiresAt']));
        expect(await bad({ ...base, parties: [{ orgId: north.orgId, account: north.account }], assets: [] })).toEqual(expect.arrayContaining(['parties', 'assets']));
    }, 90_000);
    it('completes a proposal whose devhost was restarted while it waited for signatures', async () => {
        const [north, south] = orgs as [(typeof orgs)[0], (typeof orgs)[0]];
        const { proposalId } = (await (await propose(north, [north, south], [Buffer.from(`%PDF restart ${randomBytes(4).toString('hex')}`)])).json()) as { proposalId: string };
        await until(proposalId, 'AwaitingSignatures');
        expect((await signWhenCopied(north, proposalId)).status).toBe(202);
        await waitFor(async () => ((await view(proposalId)).parties.find((p) => p.orgId === north.orgId)?.signed ? true : undefined), 30_000, 250);
        expect(await host.stop('SIGTERM')).toBe(0);
        // The core and its three member instances come back together: more to start than a fresh devhost, so a longer wait for ready.
        host = await startDevhost(hostArgs, { stateDir, storage: true, timeoutMs: 90_000 });
        // The member deployments come back with the devhost (on new ports here: every port is free-chosen in tests).
        const services = (await (await fetch(`${host.consoleUrl}/dev/services`)).json()) as { apps: { name: string; orgId?: string; url: string }[] };
        // ...and so does the issuer, on a new port too: tokens from before name the old issuer.
        for (const org of orgs) {
            org.memberUrl = services.apps.find((a) => a.orgId === org.orgId)!.url;
            org.trader = await devToken(host, { roles: ['Org.Trader'], orgId: org.orgId, email: `trader@${org.orgId}.example` });
        }
        expect((await view(proposalId)).status).toBe('AwaitingSignatures');
        expect((await signWhenCopied(south, proposalId)).status).toBe(202);
        const done = await until(proposalId, 'Completed');
        expect(done.parties.map((p) => p.signed)).toEqual([true, true]);
        expect(await storyOf(south, proposalId, 'proposal.completed')).toEqual(['proposal.created', 'proposal.signed', 'proposal.signed', 'proposal.completed']);
    }, 150_000);
});
