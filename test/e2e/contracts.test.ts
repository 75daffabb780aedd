import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { removeDir, repoRoot, RunningDevhost, startDevhost, waitFor } from '../harness/devhost';

/** Contract versions through the core's API on the devhost, and the chain event pump timer reading the new contract. */
describe('contract versions API', () => {
    let host: RunningDevhost;
    const token = async (roles: string[], orgId?: string) => {
        const res = await fetch(`${host.consoleUrl}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ roles, orgId, email: `${roles[0].toLowerCase()}@contracts.example` }) });
        return ((await res.json()) as { access_token: string }).access_token;
    };
    const api = (p: string, init: RequestInit & { bearer?: string } = {}) =>
        fetch(`${host.origin('core')}/api/${p}`, { ...init, headers: { ...(init.bearer ? { authorization: `Bearer ${init.bearer}` } : {}), ...(init.body ? { 'content-type': 'application/json' } : {}) } });

    beforeAll(async () => {
        host = await startDevhost(['--app', repoRoot, '--name', 'core'], { storage: true });
    });
    afterAll(async () => {
        await host?.stop();
        removeDir(host?.stateDir);
    });

    it('deploys with `npm run contracts:deploy`, lists and reads the version, and the pump reads its events', async () => {
        const before = await api('contracts', { bearer: await token(['Org.Trader'], 'acme') });
        expect(await before.json()).toEqual({ items: [] });

        const out = execFileSync(process.execPath, [require.resolve('tsx/cli'), path.join(repoRoot, 'contracts', 'deploy.ts'), '--api', `${host.origin('core')}/api`, '--console', host.consoleUrl], { encoding: 'utf8' });
        const m = /EnergyExchange v1 at (0x[0-9a-fA-F]{40}) \(tx (0x[0-9a-f]{64}), block (\d+)\)/.exec(out);
        expect(m).not.toBeNull();

        const list = (await (await api('contracts', { bearer: await token(['Org.Trader'], 'acme') })).json()) as { items: Record<string, unknown>[] };
        expect(list.items).toEqual([expect.objectContaining({ version: 1, state: 'ready', origin: 'deployed', address: m![1], txHash: m![2], blockNumber: Number(m![3]), active: true })]);
        const one = (await (await api('contracts/1', { bearer: await token(['Deployment.Member'], 'acme') })).json()) as { abi: unknown[] };
        expect(one.abi.length).toBeGreaterThan(10);
        expect((await api('contracts/7', { bearer: await token(['Org.Admin'], 'acme') })).status).toBe(404);
        expect((await api('contracts/abc', { bearer: await token(['Org.Admin'], 'acme') })).status).toBe(400);

        // The pump (a timer every 5 s) hands the deployment's OwnershipTransferred over.
        const line = await waitFor(() => host.logs().find((l) => String(l.msg).startsWith('chain event {') && String(l.msg).includes('"OwnershipTransferred"')), 30_000);
        expect(JSON.parse(String(line.msg).slice('chain event '.length))).toMatchObject({ name: 'OwnershipTransferred', version: 1, block: Number(m![3]) });
        await waitFor(() => host.logs().some((l) => String(l.msg).startsWith('chain events pumped')), 10_000);
    }, 90_000);

    it('registers only real contracts, and only for the operator', async () => {
        const admin = await token(['Flexchange.Admin']);
        const v1 = ((await (await api('contracts/1', { bearer: admin })).json()) as { address: string; abi: unknown[] });
        const again = await api('contracts', { method: 'POST', bearer: admin, body: JSON.stringify({ address: v1.address, abi: v1.abi }) });
        expect(again.status).toBe(200);
        expect(await again.json()).toMatchObject({ version: 1 });
        const nothing = await api('contracts', { method: 'POST', bearer: admin, body: JSON.stringify({ address: '0x00000000000000000000000000000000000000aa', abi: v1.abi }) });
        expect(nothing.status).toBe(400);
        expect(await nothing.json()).toMatchObject({ errors: [{ path: 'body.address', message: 'no code at this address' }] });
        const both = await api('contracts', { method: 'POST', bearer: admin, body: JSON.stringify({ artifact: 'EnergyExchange', address: v1.address }) });
        expect(both.status).toBe(400);
        const trader = await api('contracts', { method: 'POST', bearer: await token(['Org.Trader'], 'acme'), body: JSON.stringify({ artifact: 'EnergyExchange' }) });
        expect(trader.status).toBe(403);
        // The second deployment is version 2, and the latest.
        const v2 = await api('contracts', { method: 'POST', bearer: admin, body: JSON.stringify({ artifact: 'EnergyExchange' }) });
        expect(v2.status).toBe(201);
        expect(v2.headers.get('location')).toBe('/api/contracts/2');
        expect(((await (await api('contracts', { bearer: admin })).json()) as { items: unknown[] }).items).toHaveLength(2);
        const off = await api('contracts/2', { method: 'PATCH', bearer: admin, body: JSON.stringify({ active: false }) });
        expect(off.status).toBe(200);
        expect(await off.json()).toMatchObject({ version: 2, active: false });
        expect((await api('contracts/2', { method: 'PATCH', bearer: admin, body: JSON.stringify({ active: 'no' }) })).status).toBe(400);
    }, 60_000);
});
