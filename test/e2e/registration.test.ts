import { BlobServiceClient } from '@azure/storage-blob';
import { unzipSync, zipSync } from 'fflate';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { memberResourceNames } from '../../shared/deployment/resourceNames';
import { removeDir, repoRoot, RunningDevhost, startDevhost, waitFor } from '../harness/devhost';

interface Mail {
    id: string;
    to: string[];
    subject: string;
    text: string;
    links: string[];
}

/** User journey 1 on the devhost: apply, approvers mailed, decide through the link (once), onboarding; reject, expiry, reminder, bad links. */
describe('registration and approval', () => {
    let host: RunningDevhost;

    beforeAll(async () => {
        host = await startDevhost(
            ['--app', repoRoot, '--name', 'core', '--set', 'FLEXCHANGE_APPROVERS=alice@operator.example,bob@operator.example', '--set', 'FLEXCHANGE_REGISTRATION_REMINDER_SECONDS=3', '--set', 'FLEXCHANGE_REGISTRATION_EXPIRY_SECONDS=8'],
            { storage: true },
        );
    });
    afterAll(async () => {
        await host?.stop();
        removeDir(host?.stateDir);
    });

    const api = (p: string, init: RequestInit = {}) => fetch(p.startsWith('http') ? p : `${host.origin('core')}/api/${p}`, init);
    const apply = async (name: string, legalId: string, email: string) => {
        const res = await api('registrations', {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ organization: { name, legalId, country: 'GB', contactEmail: `ops@${email.split('@')[1]}` }, applicant: { name: 'Applicant', email } }),
        });
        return { status: res.status, body: (await res.json()) as { registrationId: string; status: string; statusUrl: string; code?: string } };
    };
    /** A blob in the devhost's Azurite, with the SHA-256 of its content. */
    const storedBlob = async (container: string, name: string) => {
        const { connectionString } = JSON.parse(readFileSync(path.join(host.stateDir, 'storage.json'), 'utf8')) as { connectionString: string };
        const content = await BlobServiceClient.fromConnectionString(connectionString).getContainerClient(container).getBlockBlobClient(name).downloadToBuffer();
        return { size: content.length, sha256: createHash('sha256').update(content).digest('hex'), content };
    };
    const mails = async () => (await (await fetch(`${host.consoleUrl}/dev/mail`)).json()) as Mail[];
    const linkFor = async (approver: string, org: string, subject = /^Approve/) =>
        waitFor(async () => {
            const m = (await mails()).find((x) => x.to.includes(approver) && subject.test(x.subject) && x.subject.includes(org));
            return m?.links.find((l) => l.includes('/api/approvals/'));
        }, 20_000);
    /** On a timeout, what the workflow did (its history), to tell a slow timer from a stuck one. */
    const diagnose = async (registrationId: string) => {
        const res = await fetch(`${host.origin('core')}/runtime/webhooks/durabletask/instances/registration-${registrationId}?showHistory=true&showHistoryOutput=true`);
        console.log(`registration-${registrationId}: ${res.status} ${(await res.text()).slice(0, 4000)}`);
        console.log(JSON.stringify(host.logs().filter((l) => l.level === 'error' || l.level === 'warn' || (typeof l.level === 'number' && l.level >= 40)).slice(-20)));
    };
    const status = async (statusUrl: string) => (await (await api(statusUrl)).json()) as { status: string; steps: { step: string }[]; orgId?: string; decision?: { by: string } };
    const post = (link: string, decision: string) => api(link, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `decision=${decision}` });

    it('approves through the link: a GET decides nothing, the POST does, once; onboarding makes the applicant Org.Admin', async () => {
        const { status: code, body } = await apply('Acme Energy', 'GB-1001', 'ada@acme.example');
        expect(code).toBe(202);
        expect(body.status).toBe('PendingApproval');
        const aliceLink = await linkFor('alice@operator.example', 'Acme Energy');
        const bobLink = await linkFor('bob@operator.example', 'Acme Energy');
        expect(aliceLink).not.toBe(bobLink);

        // Prefetching the page (as a mail scanner does) decides nothing.
        const pageRes = await api(aliceLink);
        expect(pageRes.status).toBe(200);
        expect(pageRes.headers.get('content-type')).toMatch(/text\/html/);
        const html = await pageRes.text();
        expect(html).toContain('Acme Energy');
        expect(html).toContain('value="approve"');
        expect(html).toContain("<dt>Member deployment</dt><dd>in the operator's subscription</dd>");
        await api(aliceLink);
        expect((await status(body.statusUrl)).status).toBe('PendingApproval');

        const approved = await post(aliceLink, 'approve');
        expect(approved.status).toBe(200);
        expect(await approved.text()).toContain('was approved');
        const done = await waitFor(async () => {
            const s = await status(body.statusUrl);
            return s.status === 'Active' ? s : undefined;
        }, 30_000);
        expect(done.steps.map((s) => s.step)).toEqual(['submitted', 'approvers-notified', 'approved', 'organization', 'applicant', 'member-subscription', 'member-deployment', 'app-identity', 'first-account', 'funded', 'announced', 'active']);
        // The member deployment: an app instance of its own on the next port, in the member role, for this organisation.
        const memberUrl = (done.steps.find((s) => s.step === 'member-deployment') as { detail?: string }).detail!;
        const services = (await (await fetch(`${host.consoleUrl}/dev/services`)).json()) as { apps: { name: string; role?: string; orgId?: string; url: string; package?: { container: string; blob: string; sha256: string } }[] };
        // It runs from the release package, which the core placed in the member's deployment container (Azurite).
        const release = await storedBlob('releases', 'flexchange.zip');
        expect(release.sha256).toMatch(/^[0-9a-f]{64}$/);
        const packageRef = { container: memberResourceNames(done.orgId!).deploymentContainer, blob: 'released-package.zip', sha256: release.sha256 };
        expect(services.apps).toContainEqual({ name: `member-${done.orgId}`, role: 'member', orgId: done.orgId, url: memberUrl, package: packageRef });
        expect((await storedBlob(packageRef.container, packageRef.blob)).sha256).toBe(release.sha256);
        expect(existsSync(path.join(host.stateDir, 'releases', release.sha256, 'dist', 'functions'))).toBe(true);
        expect(new URL(memberUrl).port).not.toBe(new URL(host.origin('core')).port);
        const health = await fetch(`${memberUrl}/health`);
        expect(health.status).toBe(200);
        expect(await health.json()).toMatchObject({ role: 'member' });
        expect(services.apps.filter((a) => a.role === 'member')).toHaveLength(1);
        // The member deployment's trigger read its own subscription: the organisation's events, each once.
        const received = await waitFor(() => {
            const seen = host.logs().filter((l) => l.app === `member-${done.orgId}` && l.function === 'memberEvents' && typeof l.msg === 'string' && l.msg.startsWith('event '));
            return seen.length >= 3 ? seen.map((l) => JSON.parse(String(l.msg).slice('event '.length)) as { id: string; type: string; deliveryCount: number }) : undefined;
        }, 20_000);
        expect(received.map((e) => e.type).sort()).toEqual(['account.funded', 'account.registered', 'org.activated']);
        expect(received.map((e) => e.id)).toContain(`org.activated:${done.orgId}`);
        expect(received.every((e) => e.deliveryCount === 1)).toBe(true);
        expect(done.decision?.by).toBe('alice@operator.example');

        // Reused (by Alice again, or Bob's link for the same application): already decided, and by whom.
        for (const link of [aliceLink, bobLink]) {
            const again = await post(link, 'reject');
            expect(again.status).toBe(409);
            expect(await again.text()).toContain('already approved by alice@operator.example');
        }
        // The applicant is told, with the status link.
        const welcome = await waitFor(async () => (await mails()).find((m) => m.to.includes('ada@acme.example') && /Active/.test(m.subject)), 20_000);
        expect(welcome.links).toEqual(expect.arrayContaining([memberUrl, expect.stringMatching(/\/api\/registrations\/.+\?key=/)]));

        // The applicant's token works as Org.Admin of the new organisation.
        const token = ((await (await fetch(`${host.consoleUrl}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ roles: ['Org.Admin'], email: 'ada@acme.example' }) })).json()) as { access_token: string }).access_token;
        const users = await api(`orgs/${done.orgId}/users`, { headers: { authorization: `Bearer ${token}` } });
        expect(users.status).toBe(200);
        expect(((await users.json()) as { items: { email: string; roles: string[] }[] }).items).toEqual([expect.objectContaining({ email: 'ada@acme.example', roles: ['Org.Admin'] })]);

        // The organisation's record, to itself (and the operator), not to others.
        const orgRecord = await api(`orgs/${done.orgId}`, { headers: { authorization: `Bearer ${token}` } });
        expect(orgRecord.status).toBe(200);
        expect(await orgRecord.json()).toMatchObject({ orgId: done.orgId, name: 'Acme Energy', status: 'Active', deployment: { url: memberUrl, kind: 'devhost' } });
        const operator = ((await (await fetch(`${host.consoleUrl}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ roles: ['Flexchange.Admin'], email: 'ops@operator.example' }) })).json()) as { access_token: string }).access_token;
        const orgs = (await (await api('orgs', { headers: { authorization: `Bearer ${operator}` } })).json()) as { items: { orgId: string; status: string }[] };
        expect(orgs.items).toContainEqual(expect.objectContaining({ orgId: done.orgId, status: 'Active' }));
        expect((await api('orgs', { headers: { authorization: `Bearer ${token}` } })).status).toBe(403);

        // ...and on the member deployment: its first account, made there, funded from the treasury.
        const firstAccount = (done.steps.find((s) => s.step === 'first-account') as { detail?: string }).detail!;
        const memberAccounts = await fetch(`${memberUrl}/accounts`, { headers: { authorization: `Bearer ${token}` } });
        expect(memberAccounts.status).toBe(200);
        const accounts = ((await memberAccounts.json()) as { items: { address: string; label: string; custody: string; registered: boolean; balanceWei: string }[] }).items;
        expect(accounts).toEqual([expect.objectContaining({ address: firstAccount, label: 'primary', custody: 'keystore', registered: true, balanceWei: (10n ** 18n).toString() })]);
        // The core knows the address (and nothing else of the key); the member's vault holds the keystore.
        const coreAccounts = ((await (await api(`orgs/${done.orgId}/accounts`, { headers: { authorization: `Bearer ${token}` } })).json()) as { items: { address: string }[] }).items;
        expect(coreAccounts.map((a) => a.address)).toEqual([firstAccount]);
        // Asking the treasury for more: the account is above the top-up threshold, so nothing is granted.
        const topup = await api(`orgs/${done.orgId}/accounts/${firstAccount}/topup`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
        expect(topup.status).toBe(200);
        expect(await topup.json()).toMatchObject({ granted: false, reason: 'above_threshold' });
        expect((await api(`orgs/${done.orgId}/accounts/0x${'1'.repeat(40)}/topup`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })).status).toBe(404);

        // The admin makes a second account there; a retry with the same Idempotency-Key gets the same one back.
        const create = (label: string) => fetch(`${memberUrl}/accounts`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'idempotency-key': 'desk-2' }, body: JSON.stringify({ label }) });
        const second = await create('desk');
        expect(second.status).toBe(201);
        // The retry is answered with the first response, marked as a replay.
        const again = await create('desk');
        expect(again.status).toBe(201);
        expect(again.headers.get('idempotent-replayed')).toBe('true');
        const secondAddress = ((await second.json()) as { address: string }).address;
        expect(((await again.json()) as { address: string }).address).toBe(secondAddress);
        expect((await create('other')).status).toBe(422);
        const registered = ((await (await api(`orgs/${done.orgId}/accounts`, { headers: { authorization: `Bearer ${token}` } })).json()) as { items: { address: string }[] }).items;
        expect(registered.map((a) => a.address).sort()).toEqual([firstAccount, secondAddress].sort());
        // Another organisation's user is refused by the member deployment.
        const outsider = ((await (await fetch(`${host.consoleUrl}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ roles: ['Org.Admin'], orgId: 'someone-else', email: 'eve@else.example' }) })).json()) as { access_token: string }).access_token;
        expect((await fetch(`${memberUrl}/accounts`, { headers: { authorization: `Bearer ${outsider}` } })).status).toBe(403);
        expect((await api(`orgs/${done.orgId}`, { headers: { authorization: `Bearer ${outsider}` } })).status).toBe(404);
        // The organisation's feed has its events in order, and the cursor moves on.
        const feed = (await (await api(`orgs/${done.orgId}/events`, { headers: { authorization: `Bearer ${token}` } })).json()) as { items: { id: string; type: string; seq: number; data: Record<string, unknown> }[]; next: number };
        expect(feed.items.map((e) => e.type)).toEqual(['account.registered', 'account.funded', 'org.activated', 'account.registered']);
        expect(feed.items.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
        expect(feed.items[1].data).toMatchObject({ address: firstAccount, amountWei: (10n ** 18n).toString(), txHash: expect.stringMatching(/^0x[0-9a-f]{64}$/) });
        const after = (await (await api(`orgs/${done.orgId}/events?after=${feed.next}`, { headers: { authorization: `Bearer ${token}` } })).json()) as { items: unknown[]; next: number };
        expect(after).toEqual(expect.objectContaining({ items: [], next: 4 }));
    }, 90_000);

    it('onboards organisations whose ids once cut their vault name at a hyphen (windco, gridco: "Invalid Key Vault name")', async () => {
        const orgs = [
            { name: 'windco Energy Ltd', legalId: 'GB-5005', email: 'wes@windco.example' },
            { name: 'gridco Energy Ltd', legalId: 'GB-5006', email: 'gil@gridco.example' },
        ];
        const ends = await Promise.all(
            orgs.map(async (o) => {
                const { body } = await apply(o.name, o.legalId, o.email);
                expect((await post(await linkFor('alice@operator.example', o.name), 'approve')).status).toBe(200);
                return waitFor(async () => {
                    const s = (await status(body.statusUrl)) as Awaited<ReturnType<typeof status>> & { failure?: string };
                    return s.status === 'Active' || s.status === 'Failed' ? s : undefined;
                }, 60_000);
            }),
        );
        const services = (await (await fetch(`${host.consoleUrl}/dev/services`)).json()) as { apps: { name: string; role?: string; orgId?: string; url: string }[]; services: Record<string, string> };
        for (const end of ends) {
            expect({ status: end.status, failure: end.failure }).toEqual({ status: 'Active', failure: undefined });
            // The id is the one that broke the old name (`fx-member-` + its first 14 characters ended with a hyphen).
            expect(end.orgId!.charAt(13)).toBe('-');
            const member = services.apps.find((a) => a.orgId === end.orgId)!;
            expect(member).toMatchObject({ role: 'member' });
            expect(services.services[`vault:${member.name}`]).toMatch(/^http:\/\/127\.0\.0\.1:\d+/);
            expect((await fetch(`${member.url}/health`)).status).toBe(200);
        }
    }, 120_000);

    it('a member started from a release package that lacks a production dependency fails visibly, and nothing of it stays', async () => {
        const { content } = await storedBlob('releases', 'flexchange.zip');
        const files = unzipSync(content);
        const removed = Object.keys(files).filter((f) => f.startsWith('node_modules/ethers/'));
        expect(removed.length).toBeGreaterThan(100);
        for (const f of removed) delete files[f];
        const { connectionString } = JSON.parse(readFileSync(path.join(host.stateDir, 'storage.json'), 'utf8')) as { connectionString: string };
        const container = BlobServiceClient.fromConnectionString(connectionString).getContainerClient('app-package-broken');
        await container.createIfNotExists();
        const broken = zipSync(files, { level: 0 });
        await container.getBlockBlobClient('released-package.zip').uploadData(broken);

        const res = await fetch(`${host.consoleUrl}/dev/apps/member-broken`, {
            method: 'PUT',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ orgId: 'broken', package: { container: 'app-package-broken', blob: 'released-package.zip' } }),
        });
        expect(res.status).toBe(500);
        const problem = (await res.json()) as { title: string; detail: string };
        expect(problem.title).toBe('The member app did not start');
        expect(problem.detail).toMatch(/failed to start: .*Cannot find module 'ethers'/s);
        const services = (await (await fetch(`${host.consoleUrl}/dev/services`)).json()) as { apps: { name: string }[] };
        expect(services.apps.map((a) => a.name)).not.toContain('member-broken');
        expect((await fetch(`${host.consoleUrl}/dev/apps/member-broken`)).status).toBe(404);
    }, 60_000);

    it('refuses a second open application for the same legal id, and a tampered or unknown link', async () => {
        const first = await apply('Globex Power', 'GB-2002', 'gus@globex.example');
        expect(first.status).toBe(202);
        const second = await apply('Globex Power Ltd', 'gb 2002', 'other@globex.example');
        expect(second.status).toBe(409);
        expect(second.body.code).toBe('registration_exists');

        const link = await linkFor('alice@operator.example', 'Globex Power');
        const [payload, sig] = link.split('/approvals/')[1].split('.');
        const flipped = `${payload.slice(0, -2)}${payload.at(-2) === 'A' ? 'B' : 'A'}${payload.at(-1)}.${sig}`;
        for (const bad of [`approvals/${flipped}`, `approvals/${payload}.${sig.slice(0, -1)}x`, 'approvals/not-a-token']) {
            const res = await post(bad, 'approve');
            expect(res.status).toBe(400);
            expect(await res.text()).toContain('not valid');
            expect((await api(bad)).status).toBe(400);
        }
        expect((await status(first.body.statusUrl)).status).toBe('PendingApproval');
        // The status link's key is checked; without it, only approvers and the operator see the application.
        expect((await api(first.body.statusUrl.replace(/key=[^&]+/, 'key=wrong'))).status).toBe(401);
    }, 60_000);

    it('rejects through the API as an approver, and tells the applicant with the reason', async () => {
        const { body } = await apply('Initech Grid', 'GB-3003', 'ian@initech.example');
        const approver = ((await (await fetch(`${host.consoleUrl}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ roles: ['Flexchange.Approver'], email: 'carol@operator.example' }) })).json()) as { access_token: string }).access_token;
        const res = await api(`registrations/${body.registrationId}/decision`, { method: 'POST', headers: { authorization: `Bearer ${approver}`, 'content-type': 'application/json' }, body: JSON.stringify({ decision: 'reject', reason: 'not a licensed supplier' }) });
        expect(res.status).toBe(200);
        await waitFor(async () => (await status(body.statusUrl)).status === 'Rejected', 20_000);
        const notice = await waitFor(async () => (await mails()).find((m) => m.to.includes('ian@initech.example') && /Rejected/.test(m.subject)), 20_000);
        expect(notice.text).toContain('not a licensed supplier');
        // Rejected: the legal id is free again.
        expect((await apply('Initech Grid', 'GB-3003', 'ian@initech.example')).status).toBe(202);
    }, 60_000);

    it('reminds the approvers once, then expires the application and tells the applicant', async () => {
        const { body } = await apply('Umbrella Volts', 'GB-4004', 'una@umbrella.example');
        await linkFor('alice@operator.example', 'Umbrella Volts', /^Reminder: /);
        const expired = await waitFor(async () => {
            const s = await status(body.statusUrl);
            return s.status === 'Expired' ? s : undefined;
        }, 60_000).catch(async (err) => {
            await diagnose(body.registrationId);
            throw err;
        });
        expect(expired.steps.map((s) => s.step)).toEqual(['submitted', 'approvers-notified', 'reminder-sent', 'expired']);
        expect((await mails()).filter((m) => m.to.includes('alice@operator.example') && m.subject.includes('Umbrella Volts'))).toHaveLength(2);
        await waitFor(async () => (await mails()).some((m) => m.to.includes('una@umbrella.example') && /Expired/.test(m.subject)), 20_000);
        // A link used after expiry says so.
        const link = await linkFor('alice@operator.example', 'Umbrella Volts');
        expect((await post(link, 'approve')).status).toBe(409);
    }, 120_000);
});
