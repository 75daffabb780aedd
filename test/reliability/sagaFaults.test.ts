import { randomBytes } from 'node:crypto';
import { devToken, removeDir, repoRoot, RunningDevhost, startDevhost, tempDir, waitFor } from '../harness/devhost';
import { FaultProxy, freePort } from '../harness/faultProxy';
import { onboard, type OnboardedOrg } from '../harness/journeys';

interface View {
    proposalId: string;
    chainProposalId: string;
    status: string;
    contract: { address: string } | null;
    anchor: { txHash: string; blockNumber: number } | null;
}

/**
 * The signing saga under faults: the core's ledger unreachable for 30 s, and the devhost SIGKILLed in
 * the middle of the signatures. Each time the saga completes, and the ledger holds exactly the
 * transactions one clean run makes (a create and one signature per party), no second of any.
 */
describe('signing saga under faults', () => {
    const stateDir = tempDir('flexchange-state-');
    let ledgerPort: number;
    let proxy: FaultProxy;
    let args: string[];
    let host: RunningDevhost;
    let admin: string;
    let orgs: OnboardedOrg[] = [];
    let cleanCount: number;

    const api = (path: string, bearer: string, body?: unknown, headers: Record<string, string> = {}) =>
        fetch(`${host.origin('core')}/api/${path}`, {
            method: body === undefined ? 'GET' : 'POST',
            headers: { authorization: `Bearer ${bearer}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
            body: body === undefined ? undefined : JSON.stringify(body),
        });
    const view = async (id: string): Promise<View> => (await (await api(`proposals/${id}`, orgs[0]!.trader)).json()) as View;
    const until = (id: string, status: string, timeoutMs = 120_000) => waitFor(async () => ((await view(id)).status === status ? view(id) : undefined), timeoutMs, 500);
    const sign = (org: OnboardedOrg, id: string) =>
        fetch(`${org.memberUrl}/proposals/${id}/signature`, { method: 'POST', headers: { authorization: `Bearer ${org.trader}`, 'content-type': 'application/json' }, body: JSON.stringify({ account: org.account }) });
    const propose = async (): Promise<string> => {
        const [a, b] = orgs as [OnboardedOrg, OnboardedOrg];
        const upload = await fetch(`${host.origin('core')}/api/assets`, { method: 'POST', headers: { authorization: `Bearer ${a.trader}`, 'content-type': 'application/pdf' }, body: `%PDF deal ${randomBytes(6).toString('hex')}` });
        expect(upload.status).toBe(201);
        const { assetId } = (await upload.json()) as { assetId: string };
        const res = await api('proposals', a.trader, {
            parties: [{ orgId: a.orgId, account: a.account }, { orgId: b.orgId, account: b.account }],
            terms: { product: 'baseload', direction: 'sell', quantityMWh: 5, priceGbpPerMWh: 71, deliveryStart: '2027-02-01T00:00:00Z', deliveryEnd: '2027-02-02T00:00:00Z' },
            assets: [assetId],
            expiresAt: new Date(Date.now() + 3600_000).toISOString(),
        });
        expect(res.status).toBe(202);
        return ((await res.json()) as { proposalId: string }).proposalId;
    };
    /** Every transaction on the ledger that touches this proposal on its contract (create, signatures, cancel), read from anvil itself. */
    const ledgerTransactions = async (p: View): Promise<string[]> => {
        const rpc = async <T>(method: string, params: unknown[]): Promise<T> =>
            ((await (await fetch(`http://127.0.0.1:${ledgerPort}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) })).json()) as { result: T }).result;
        const head = Number(BigInt(await rpc<string>('eth_blockNumber', [])));
        const needle = p.chainProposalId.replace(/^0x/, '').toLowerCase();
        const found: string[] = [];
        for (let n = p.anchor!.blockNumber; n <= head; n++) {
            const block = await rpc<{ transactions: { hash: string; to: string | null; input: string }[] }>('eth_getBlockByNumber', [`0x${n.toString(16)}`, true]);
            for (const tx of block?.transactions ?? []) if (tx.to?.toLowerCase() === p.contract!.address.toLowerCase() && tx.input.toLowerCase().includes(needle)) found.push(tx.hash);
        }
        return found;
    };
    const start = async () => {
        host = await startDevhost(args, { stateDir, storage: true, timeoutMs: 60_000 });
        admin = await devToken(host, { roles: ['Flexchange.Admin'], email: 'ops@operator.example' });
    };

    beforeAll(async () => {
        // The ledger on a port chosen here, so the core can be given a proxy in front of it.
        ledgerPort = await freePort();
        proxy = new FaultProxy({ host: '127.0.0.1', port: ledgerPort });
        await proxy.up();
        args = ['--ledger-port', String(ledgerPort), '--app', repoRoot, '--name', 'core', '--set', 'FLEXCHANGE_APPROVERS=approver@operator.example', '--set', `FLEXCHANGE_LEDGER_RPC_URLS=${proxy.url}`, '--set', 'FLEXCHANGE_HEALTH_TIMEOUT_MS=1000'];
        await start();
        expect((await api('contracts', admin, { artifact: 'EnergyExchange' })).status).toBe(201);
        orgs = [await onboard(host, 'Fault North', 'ada@fault-north.example'), await onboard(host, 'Fault South', 'sol@fault-south.example')];

        // One clean run: how many ledger transactions a completed two-party proposal takes.
        const id = await propose();
        await until(id, 'AwaitingSignatures');
        for (const o of orgs) expect((await sign(o, id)).status).toBe(202);
        cleanCount = (await ledgerTransactions(await until(id, 'Completed'))).length;
        expect(cleanCount).toBe(3);
    }, 300_000);
    afterAll(async () => {
        await proxy?.up();
        await host?.stop();
        await proxy?.down();
        removeDir(stateDir);
    });

    it('waits while the core cannot reach the ledger for 30 s (health says ledger: down), then completes', async () => {
        await proxy.down();
        const downSince = Date.now();
        const id = await propose();
        const health = await waitFor(async () => {
            const res = await fetch(`${host.origin('core')}/api/health`);
            const body = (await res.json()) as { status: string; checks: { ledger: { status: string } } };
            return body.checks.ledger.status === 'down' ? { status: res.status, body } : undefined;
        }, 20_000, 500);
        expect(health.status).toBe(503);
        expect(health.body.checks.ledger.status).toBe('down');
        await new Promise((r) => setTimeout(r, Math.max(0, 30_000 - (Date.now() - downSince))));
        // Thirty seconds without a ledger: the saga is still waiting to anchor, not failed.
        expect((await view(id)).status).toBe('Anchoring');
        await proxy.up();
        await until(id, 'AwaitingSignatures', 120_000);
        // Anonymous health answers from a check at most FLEXCHANGE_HEALTH_CACHE_SECONDS old: the next check sees the ledger back.
        await waitFor(async () => (((await (await fetch(`${host.origin('core')}/api/health`)).json()) as { checks: { ledger: { status: string } } }).checks.ledger.status === 'up' ? true : undefined), 20_000, 500);
        for (const o of orgs) expect((await sign(o, id)).status).toBe(202);
        const done = await until(id, 'Completed');
        expect(await ledgerTransactions(done)).toHaveLength(cleanCount);
    }, 240_000);

    it('completes a saga whose devhost was SIGKILLed between the signatures, with no transaction twice', async () => {
        const [a, b] = orgs as [OnboardedOrg, OnboardedOrg];
        const id = await propose();
        await until(id, 'AwaitingSignatures');
        expect((await sign(a, id)).status).toBe(202);
        // Killed while the first signature travels: ledger → chain event pump → saga.
        host.child.kill('SIGKILL');
        await host.exited;

        await start();
        // New ports, a new issuer address: the members' URLs and the tokens are read again.
        for (const o of orgs) {
            const app = (await (await fetch(`${host.consoleUrl}/dev/apps/member-${o.orgId}`)).json()) as { url: string };
            o.memberUrl = app.url;
            o.trader = await devToken(host, { roles: ['Org.Trader'], orgId: o.orgId, email: `trader@${o.orgId}.example` });
        }
        await waitFor(async () => ((await fetch(`${a.memberUrl}/health`)).status === 200 ? true : undefined), 60_000, 500);
        // The first party asks again (it cannot know whether it went through): the same signature, not a second.
        for (const o of [a, b]) expect((await sign(o, id)).status).toBe(202);
        const done = await until(id, 'Completed');
        const txs = await ledgerTransactions(done);
        expect(txs).toHaveLength(cleanCount);
        expect(new Set(txs).size).toBe(cleanCount);
    }, 240_000);
});
