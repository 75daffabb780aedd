import { devToken, removeDir, repoRoot, RunningDevhost, startDevhost, waitFor } from '../harness/devhost';
import { onboard, type OnboardedOrg } from '../harness/journeys';

interface MemberNode {
    nodeId: string;
    status: string;
    height: number | null;
    restarts: number;
    history: { at: string; type: string; from: string; to: string; data: Record<string, unknown> }[];
}
interface LocalNode {
    nodeId: string;
    running: boolean;
    restarts: number;
    stalledAt: number | null;
}

const STALL_CHECKS = 3;
const BACKOFF_SECONDS = 2;
const MAX_RESTARTS = 5;

/**
 * The block-height watchdogs on the devhost: a member's own node (a relay process in front of the
 * shared chain) stalled, killed, killed for good and forked through the console's fault endpoints;
 * the member's watchdog restarts it through the devhost, the core's consortium watchdog sees the fork.
 */
describe('node watchdog', () => {
    let host: RunningDevhost;
    let org: OnboardedOrg;
    let memberAdmin: string;
    let orgAdmin: string;
    let operator: string;
    let nodeId: string;

    beforeAll(async () => {
        const every = '*/1 * * * * *';
        host = await startDevhost(
            [
                '--member-set', `FLEXCHANGE_WATCHDOG_SCHEDULE=${every}`,
                '--member-set', `FLEXCHANGE_WATCHDOG_STALL_CHECKS=${STALL_CHECKS}`,
                '--member-set', `FLEXCHANGE_WATCHDOG_BACKOFF_SECONDS=${BACKOFF_SECONDS}`,
                '--member-set', `FLEXCHANGE_WATCHDOG_MAX_RESTARTS_PER_HOUR=${MAX_RESTARTS}`,
                '--app', repoRoot, '--name', 'core', '--set', 'FLEXCHANGE_APPROVERS=approver@operator.example', '--set', `FLEXCHANGE_WATCHDOG_SCHEDULE=${every}`,
            ],
            { storage: true },
        );
        org = await onboard(host, 'Grid Watch', 'gail@gridwatch.example');
        nodeId = `${org.orgId}-node-0`;
        memberAdmin = await devToken(host, { roles: ['Org.Admin'], email: 'gail@gridwatch.example' });
        orgAdmin = await devToken(host, { roles: ['Org.Admin'], orgId: org.orgId, email: 'gail@gridwatch.example' });
        operator = await devToken(host, { roles: ['Flexchange.Admin'], email: 'ops@operator.example' });
    }, 180_000);
    afterAll(async () => {
        await host?.stop();
        removeDir(host?.stateDir);
    });

    const memberNode = async (): Promise<MemberNode> => {
        const res = await fetch(`${org.memberUrl}/chain/nodes`, { headers: { authorization: `Bearer ${memberAdmin}` } });
        expect(res.status).toBe(200);
        const { items } = (await res.json()) as { items: MemberNode[] };
        return items.find((n) => n.nodeId === nodeId)!;
    };
    const fault = async (action: string, body: unknown = {}): Promise<LocalNode> => {
        const res = await fetch(`${host.consoleUrl}/dev/nodes/${nodeId}/${action}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
        expect(res.status).toBe(200);
        return (await res.json()) as LocalNode;
    };
    const localNode = async (): Promise<LocalNode> => ((await (await fetch(`${host.consoleUrl}/dev/nodes`)).json()) as { items: LocalNode[] }).items.find((n) => n.nodeId === nodeId)!;
    const coreNode = async () => {
        const { items } = (await (await fetch(`${host.origin('core')}/api/chain/nodes`, { headers: { authorization: `Bearer ${operator}` } })).json()) as { items: { nodeId: string; status: string; height: number | null; divergence?: { height: number } }[] };
        return items.find((n) => n.nodeId === nodeId);
    };
    const feed = async () => {
        const res = await fetch(`${host.origin('core')}/api/orgs/${org.orgId}/events?after=0&limit=500`, { headers: { authorization: `Bearer ${orgAdmin}` } });
        return ((await res.json()) as { items: { id: string; type: string; subject: string; data: Record<string, unknown> }[] }).items.filter((e) => e.type.startsWith('node.'));
    };
    /** The history entries after the first `skip` ones, once they include `until`. */
    const transitionsUntil = async (skip: number, until: string, timeoutMs = 30_000) =>
        waitFor(async () => {
            const node = await memberNode();
            const fresh = node.history.slice(skip);
            return fresh.some((t) => t.type === until) ? { node, fresh } : undefined;
        }, timeoutMs);

    it('registers the member’s own node with the core and keeps it healthy while it follows the chain', async () => {
        const node = await waitFor(async () => {
            const n = await memberNode();
            return n && n.height !== null && n.height > 0 ? n : undefined;
        }, 20_000);
        expect(node).toMatchObject({ nodeId, status: 'healthy', restarts: 0, history: [] });
        const registered = await waitFor(coreNode, 20_000);
        expect(registered).toMatchObject({ nodeId, status: 'healthy' });
        // Another organisation's admin cannot read them; the core's list is the operator's.
        expect((await fetch(`${host.origin('core')}/api/chain/nodes`, { headers: { authorization: `Bearer ${orgAdmin}` } })).status).toBe(403);
    });

    it('restarts a stalled node after K checks without progress, and sees it healthy again', async () => {
        const skip = (await memberNode()).history.length;
        const stalled = await fault('stall');
        expect(stalled.stalledAt).toEqual(expect.any(Number));
        const { node, fresh } = await transitionsUntil(skip, 'node.recovered');
        expect(fresh.map((t) => [t.type, t.to])).toEqual([
            ['node.stalled', 'stalled'],
            ['node.restarted', 'restarting'],
            ['node.recovered', 'healthy'],
        ]);
        expect(fresh[0]!.data).toMatchObject({ reason: 'no_progress', checks: STALL_CHECKS, height: stalled.stalledAt });
        expect(node.status).toBe('healthy');
        expect(node.height!).toBeGreaterThan(stalled.stalledAt!);
        expect((await localNode()).restarts).toBe(1);
        // The core published each transition to the organisation's feed, once.
        const events = await waitFor(async () => {
            const all = await feed();
            return all.filter((e) => e.type === 'node.recovered').length >= 1 ? all : undefined;
        }, 15_000);
        expect(events.map((e) => e.type)).toEqual(['node.stalled', 'node.restarted', 'node.recovered']);
        expect(new Set(events.map((e) => e.id)).size).toBe(3);
        expect(events[0]).toMatchObject({ subject: `chain/nodes/${nodeId}`, data: { nodeId, reason: 'no_progress' } });
    });

    it('restarts a killed node (no answer counts as no progress)', async () => {
        const skip = (await memberNode()).history.length;
        const before = (await localNode()).restarts;
        expect((await fault('kill')).running).toBe(false);
        const { fresh } = await transitionsUntil(skip, 'node.recovered');
        expect(fresh.map((t) => t.type)).toEqual(['node.stalled', 'node.restarted', 'node.recovered']);
        expect(fresh[0]!.data).toMatchObject({ reason: 'rpc_error', checks: STALL_CHECKS });
        expect(await localNode()).toMatchObject({ running: true, restarts: before + 1 });
    });

    it('marks a node whose blocks fork from the others as diverged, and clears it when it agrees again', async () => {
        await fault('diverge');
        const diverged = await waitFor(async () => {
            const n = await coreNode();
            return n?.status === 'diverged' ? n : undefined;
        }, 20_000);
        expect(diverged.divergence!.height).toEqual(expect.any(Number));
        const event = await waitFor(async () => (await feed()).find((e) => e.type === 'node.diverged'), 15_000);
        expect(event.data).toMatchObject({ nodeId, height: diverged.divergence!.height, majority: expect.stringMatching(/^0x[0-9a-f]{64}$/) });

        await fault('resume');
        await waitFor(async () => ((await coreNode())?.status === 'healthy' ? true : undefined), 20_000);
        // The record changes first, with the event in its outbox; the event is out right after.
        const after = await waitFor(async () => {
            const all = await feed();
            return all.at(-1)?.type === 'node.recovered' ? all : undefined;
        }, 15_000);
        expect(after.filter((e) => e.type === 'node.diverged')).toHaveLength(1);
        expect(after.at(-1)).toMatchObject({ type: 'node.recovered', data: { after: 'diverged' } });
    });

    it('backs off between restarts of a node that keeps failing, then calls it down with an alert', async () => {
        const skip = (await memberNode()).history.length;
        const restartsBefore = (await localNode()).restarts;
        await fault('kill', { persist: true });
        // The earlier tests used two of the restarts allowed in the hour.
        const { node, fresh } = await transitionsUntil(skip, 'node.down', 60_000);
        const restarts = fresh.filter((t) => t.type === 'node.restarted');
        expect(restarts.length).toBe(MAX_RESTARTS - 2);
        expect(fresh.at(-1)).toMatchObject({ type: 'node.down', to: 'down', data: { reason: 'rpc_error', restartsInLastHour: MAX_RESTARTS } });
        expect(node.status).toBe('down');
        expect((await localNode()).restarts).toBe(restartsBefore + restarts.length);
        // Each restart waited at least the back-off (doubling) after the one before it.
        const times = fresh.filter((t) => t.type === 'node.restarted' || t.type === 'node.down').map((t) => Date.parse(t.at));
        for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(BACKOFF_SECONDS * 1000 * 2 ** (i - 1) - 50);
        await waitFor(async () => ((await feed()).some((e) => e.type === 'node.down') ? true : undefined), 15_000);

        // Brought back by hand: the watchdog sees it advance again.
        await fault('resume');
        const back = await transitionsUntil(skip + fresh.length, 'node.recovered');
        expect(back.node.status).toBe('healthy');
        expect(back.fresh.at(-1)).toMatchObject({ from: 'down', to: 'healthy' });
    });
});
