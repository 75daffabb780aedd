import { readFileSync } from 'node:fs';
import path from 'node:path';
import { devToken, removeDir, repoRoot, RunningDevhost, startDevhost } from '../harness/devhost';
import { FaultProxy } from '../harness/faultProxy';

const ORG = 'outage-org';
const APP = `member-${ORG}`;

/**
 * A member deployment whose document store (Cosmos) or vault is unreachable: requests answer 503
 * problem+json, nothing is half-written, and the same request retried (same Idempotency-Key) once the
 * dependency is back makes exactly one account.
 */
describe('a dependency down', () => {
    let host: RunningDevhost;
    let cosmos: FaultProxy;
    let memberUrl: string;
    let admin: string;

    beforeAll(async () => {
        host = await startDevhost(['--app', repoRoot, '--name', 'core'], { storage: true });
        const storage = JSON.parse(readFileSync(path.join(host.stateDir, 'storage.json'), 'utf8')) as { cosmos: { endpoint: string } };
        const endpoint = new URL(storage.cosmos.endpoint);
        cosmos = new FaultProxy({ host: endpoint.hostname, port: Number(endpoint.port) });
        await cosmos.up();
        // A member deployment whose Cosmos account is reached through the proxy.
        const started = await fetch(`${host.consoleUrl}/dev/apps/${APP}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ orgId: ORG, settings: { COSMOS_ENDPOINT: cosmos.url } }) });
        expect(started.status).toBe(201);
        memberUrl = ((await started.json()) as { url: string }).url;
        // The member deployment's identity and an admin of the organisation, in the core's directory (as onboarding enters them).
        await devToken(host, { roles: ['Deployment.Member'], orgId: ORG, appOnly: true, name: `flexchange-${APP}` });
        admin = await devToken(host, { roles: ['Org.Admin'], orgId: ORG, email: 'olga@outage.example' });
    }, 120_000);
    afterAll(async () => {
        await cosmos?.up();
        await host?.stop();
        await cosmos?.down();
        removeDir(host?.stateDir);
    });

    const accounts = async () => {
        const res = await fetch(`${memberUrl}/accounts`, { headers: { authorization: `Bearer ${admin}` } });
        return { status: res.status, type: res.headers.get('content-type'), body: (await res.json()) as { items?: { address: string; label: string }[]; status?: number; title?: string; detail?: string } };
    };
    const create = async (label: string, key: string) => {
        const res = await fetch(`${memberUrl}/accounts`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json', 'idempotency-key': key }, body: JSON.stringify({ label }) });
        return { status: res.status, type: res.headers.get('content-type'), body: (await res.json()) as { address?: string; status?: number; title?: string; detail?: string } };
    };
    const coreAccounts = async () => {
        const operator = await devToken(host, { roles: ['Flexchange.Admin'], email: 'ops@operator.example' });
        return ((await (await fetch(`${host.origin('core')}/api/orgs/${ORG}/accounts`, { headers: { authorization: `Bearer ${operator}` } })).json()) as { items: { address: string }[] }).items;
    };
    const problem503 = (r: { status: number; type: string | null; body: { status?: number; title?: string; detail?: string } }) => {
        expect(r.status).toBe(503);
        expect(r.type).toMatch(/^application\/problem\+json/);
        expect(r.body).toMatchObject({ status: 503, title: expect.any(String) });
        expect(JSON.stringify(r.body)).not.toMatch(/\n\s+at |ECONNREFUSED|127\.0\.0\.1/);
    };

    it('answers 503 while Cosmos is unreachable, writes nothing, and a retry afterwards makes one account', async () => {
        expect((await accounts()).body.items).toEqual([]);
        await cosmos.down();
        problem503(await accounts());
        problem503(await create('desk one', 'outage-cosmos-1'));
        await cosmos.up();
        expect((await accounts()).body.items).toEqual([]);
        expect(await coreAccounts()).toEqual([]);
        const made = await create('desk one', 'outage-cosmos-1');
        expect(made.status).toBe(201);
        const again = await create('desk one', 'outage-cosmos-1');
        expect(again.body.address).toBe(made.body.address);
        expect((await accounts()).body.items!.map((a) => a.address)).toEqual([made.body.address]);
        expect((await coreAccounts()).map((a) => a.address)).toEqual([made.body.address]);
    });

    it('answers 503 while the vault is unreachable, keeps serving what needs no vault, and a retry afterwards makes one account', async () => {
        const before = (await accounts()).body.items!;
        expect((await fetch(`${host.consoleUrl}/dev/apps/${APP}/vault/stop`, { method: 'POST' })).status).toBe(200);
        problem503(await create('desk two', 'outage-vault-1'));
        // Reads that need no key still answer.
        expect((await accounts()).status).toBe(200);
        expect((await fetch(`${host.consoleUrl}/dev/apps/${APP}/vault/start`, { method: 'POST' })).status).toBe(200);
        expect((await accounts()).body.items).toEqual(before);
        const made = await create('desk two', 'outage-vault-1');
        expect(made.status).toBe(201);
        expect((await create('desk two', 'outage-vault-1')).body.address).toBe(made.body.address);
        const after = (await accounts()).body.items!;
        expect(after).toHaveLength(before.length + 1);
        expect((await coreAccounts()).map((a) => a.address).sort()).toEqual(after.map((a) => a.address).sort());
    });
});
