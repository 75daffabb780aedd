import { findDivergence, step, type NodeProbe, type Observation, type WatchedNode, type WatchdogPolicy } from '../../shared/nodes/watchdog';

const policy: WatchdogPolicy = { stallChecks: 3, backoffSeconds: 60, maxRestartsPerHour: 3 };
const node = (): WatchedNode => ({
    id: 'n1',
    orgId: 'acme',
    enode: 'enode://x',
    rpcUrl: 'http://10.0.0.1:8545',
    height: null,
    status: 'healthy',
    lastCheckedAt: null,
    restarts: 0,
    registeredAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z',
    watch: { lastHash: null, quietChecks: 0, lastError: null, recentRestarts: [], failedRestarts: 0, nextRestartAt: null },
    history: [],
});
const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, 0) + s * 1000);
const ok = (height: number): Observation => ({ ok: true, height, hash: `0x${height}` });
const down: Observation = { ok: false, error: 'unreachable (ECONNREFUSED)' };

/** Runs checks, one a second from t=start, and returns the node and the restarts asked for. */
function run(start: WatchedNode, seen: Observation[], t0 = 0) {
    let n = start;
    const restartsAt: number[] = [];
    seen.forEach((o, i) => {
        const r = step(n, o, at(t0 + i), policy);
        n = r.node;
        if (r.restart) restartsAt.push(t0 + i);
    });
    return { n, restartsAt };
}

describe('watchdog state machine', () => {
    it('stays healthy while the height advances', () => {
        const { n, restartsAt } = run(node(), [ok(1), ok(2), ok(3)]);
        expect(n).toMatchObject({ status: 'healthy', height: 3, history: [] });
        expect(restartsAt).toEqual([]);
    });

    it('calls a node stalled after exactly K checks without progress, restarts it, and sees it recover', () => {
        const { n, restartsAt } = run(node(), [ok(5), ok(5), ok(5), ok(5), ok(9)]);
        expect(n.history.map((t) => [t.type, t.from, t.to])).toEqual([
            ['node.stalled', 'healthy', 'stalled'],
            ['node.restarted', 'stalled', 'restarting'],
            ['node.recovered', 'restarting', 'healthy'],
        ]);
        expect(n.history[0]!.data).toMatchObject({ reason: 'no_progress', checks: 3, height: 5 });
        expect(restartsAt).toEqual([3]);
        expect(n).toMatchObject({ status: 'healthy', restarts: 1, height: 9 });
        expect(n.watch).toMatchObject({ quietChecks: 0, failedRestarts: 0, nextRestartAt: null });
    });

    it('counts RPC errors as checks without progress, and says so', () => {
        const { n } = run(node(), [ok(5), down, down, down]);
        expect(n.history[0]).toMatchObject({ type: 'node.stalled', data: { reason: 'rpc_error', error: 'unreachable (ECONNREFUSED)' } });
        expect(n.height).toBe(5);
    });

    it('backs off between restarts (doubling), then calls the node down once the hourly cap is reached', () => {
        // One check a second for 10 minutes, the node never answering.
        const { n, restartsAt } = run(node(), [ok(1), ...Array<Observation>(600).fill(down)]);
        // Stalled at t=3 (3 quiet checks) and restarted; then after 60 s and 120 s.
        expect(restartsAt).toEqual([3, 63, 183]);
        expect(n.status).toBe('down');
        expect(n.history.map((t) => t.type)).toEqual(['node.stalled', 'node.restarted', 'node.restarted', 'node.restarted', 'node.down']);
        expect(n.history.at(-1)).toMatchObject({ at: at(423).toISOString(), data: { restartsInLastHour: 3 } });
    });

    it('restarts a down node again once its restarts have left the hour', () => {
        const first = run(node(), [ok(1), ...Array<Observation>(600).fill(down)]).n;
        const later = step(first, down, at(3600 + 4), policy);
        expect(later.restart).toBe(true);
        expect(later.node.status).toBe('restarting');
        expect(later.node.history.at(-1)).toMatchObject({ type: 'node.restarted', from: 'down' });
    });

    it('never lets the height go back (a node that restarted from an older snapshot is not progress)', () => {
        const { n } = run(node(), [ok(10), ok(8), ok(8), ok(9)]);
        expect(n.height).toBe(10);
        expect(n.status).toBe('restarting');
    });
});

describe('divergence', () => {
    const probe = (hashes: Record<string, string>): NodeProbe => ({
        head: async () => down,
        hashAt: async (url) => hashes[url] ?? null,
    });
    const nodes = (...ids: string[]) => ids.map((id, i) => ({ id, rpcUrl: id, height: 20 + i }));

    it('names the nodes outside the largest group that agrees, at the height all have', async () => {
        const d = await findDivergence(nodes('a', 'b', 'c'), probe({ a: '0x1', b: '0x1', c: '0x2' }));
        expect(d).toEqual({ height: 20, majority: '0x1', diverged: { c: '0x2' } });
    });

    it('finds none when all agree, or when fewer than two answer', async () => {
        expect(await findDivergence(nodes('a', 'b'), probe({ a: '0x1', b: '0x1' }))).toBeNull();
        expect(await findDivergence(nodes('a', 'b'), probe({ a: '0x1' }))).toBeNull();
    });

    it('breaks an even split with the operator’s reference node, else names every node that disagrees', async () => {
        const withRef = [{ id: 'ref', rpcUrl: 'ref', height: 30, reference: true }, ...nodes('m')];
        expect(await findDivergence(withRef, probe({ ref: '0x1', m: '0x2' }))).toEqual({ height: 20, majority: '0x1', diverged: { m: '0x2' } });
        expect(await findDivergence(nodes('a', 'b'), probe({ a: '0x1', b: '0x2' }))).toEqual({ height: 20, majority: '', diverged: { a: '0x1', b: '0x2' } });
    });
});
