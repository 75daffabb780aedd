import type { EventEnvelope } from '../../shared/events/events';
import { recordNodeTransition, watchConsortium } from '../../shared/nodes/consortiumWatch';
import { watchOwnNodes, type MemberWatchPorts } from '../../shared/nodes/memberWatch';
import type { ChainNode, ReportedTransition } from '../../shared/nodes/nodeRegistry';
import type { Divergence, NodeConfig, NodeProbe, Observation, WatchedNode } from '../../shared/nodes/watchdog';

const T0 = '2026-01-01T00:00:00.000Z';

const watched = (id: string, over: Partial<WatchedNode> = {}): WatchedNode => ({
    id,
    orgId: 'acme',
    enode: `enode://${id}`,
    rpcUrl: `http://10.0.0.1:${id.length}`,
    height: 1,
    status: 'healthy',
    lastCheckedAt: null,
    restarts: 0,
    registeredAt: T0,
    updatedAt: T0,
    watch: { lastHash: null, quietChecks: 0, lastError: null, recentRestarts: [], failedRestarts: 0, nextRestartAt: null },
    history: [],
    ...over,
});

const lines = () => {
    const out: { level: 'log' | 'warn' | 'error'; line: string }[] = [];
    return { out, log: { log: (line: string) => out.push({ level: 'log', line }), warn: (line: string) => out.push({ level: 'warn', line }), error: (line: string) => out.push({ level: 'error', line }) } };
};

/** A member's watchdog whose nodes are kept in memory; `checkAll` moves them to what `after` says. */
function memberPorts(nodes: WatchedNode[], after: Record<string, Partial<WatchedNode>> = {}) {
    const state = new Map(nodes.map((n) => [n.id, n]));
    const registered: string[] = [];
    const configureCalls: NodeConfig[][] = [];
    const { out, log } = lines();
    let configureFails = 0;
    let coreRefuses = new Set<string>();
    const ports: MemberWatchPorts = {
        configured: [{ nodeId: 'a', rpcUrl: 'http://10.0.0.1:1', enode: 'enode://a' }],
        watchdog: {
            configure: async (cfg) => {
                configureCalls.push(cfg);
                if (configureFails-- > 0) throw new Error('store unavailable');
            },
            list: async () => [...state.values()],
            markRegistered: async (id, as) => void state.set(id, { ...state.get(id)!, coreRegisteredAs: as }),
            checkAll: async () => [...state.values()].map((n) => ({ ...n, ...after[n.id] })),
        },
        core: {
            register: async (node) => {
                if (coreRefuses.has(node.id)) throw new Error('the core answered 503');
                registered.push(node.id);
            },
        },
        log,
    };
    return {
        ports,
        state,
        registered,
        configureCalls,
        out,
        failConfigure: (times: number) => (configureFails = times),
        refuse: (...ids: string[]) => (coreRefuses = new Set(ids)),
    };
}

describe('a member’s watch round', () => {
    it('registers with the core only the nodes the core does not have as they are now', async () => {
        const m = memberPorts([
            watched('a', { coreRegisteredAs: 'enode://a http://10.0.0.1:1' }),
            watched('bb', { coreRegisteredAs: 'enode://bb-old http://10.0.0.1:2' }),
            watched('ccc'),
        ]);
        await watchOwnNodes(m.ports);
        expect(m.registered).toEqual(['bb', 'ccc']);
        expect(m.state.get('bb')!.coreRegisteredAs).toBe('enode://bb http://10.0.0.1:2');
        expect(m.state.get('ccc')!.coreRegisteredAs).toBe('enode://ccc http://10.0.0.1:3');
        // Next round: nothing left to register.
        await watchOwnNodes(m.ports);
        expect(m.registered).toEqual(['bb', 'ccc']);
    });

    it('goes on checking when the core refuses a node, and registers it on a later round', async () => {
        const m = memberPorts([watched('a'), watched('bb')], { a: { status: 'stalled' } });
        m.refuse('a');
        await watchOwnNodes(m.ports);
        expect(m.registered).toEqual(['bb']);
        expect(m.state.get('a')!.coreRegisteredAs).toBeUndefined();
        expect(m.out[0]).toEqual({ level: 'warn', line: 'registering node a with the core failed: the core answered 503' });
        expect(m.out.some((o) => o.line.includes('"to":"stalled"'))).toBe(true);
        m.refuse();
        await watchOwnNodes(m.ports);
        expect(m.registered).toEqual(['bb', 'a']);
    });

    it('records the configured nodes once per watchdog, and again after a failed try', async () => {
        const m = memberPorts([watched('a', { coreRegisteredAs: 'enode://a http://10.0.0.1:1' })]);
        m.failConfigure(1);
        await expect(watchOwnNodes(m.ports)).rejects.toThrow('store unavailable');
        await watchOwnNodes(m.ports);
        await watchOwnNodes(m.ports);
        expect(m.configureCalls).toEqual([m.ports.configured, m.ports.configured]);
        // Another watchdog (another instance of the app) records them for itself.
        await watchOwnNodes({ ...m.ports, watchdog: { ...m.ports.watchdog } });
        expect(m.configureCalls).toHaveLength(3);
    });

    it('logs each change of status, a node that went down as an alert, and nothing for a node that stayed as it was', async () => {
        const m = memberPorts([watched('a', { coreRegisteredAs: 'enode://a http://10.0.0.1:1' }), watched('bb', { coreRegisteredAs: 'enode://bb http://10.0.0.1:2' }), watched('ccc', { coreRegisteredAs: 'enode://ccc http://10.0.0.1:3' })], {
            a: { status: 'down', restarts: 3, watch: { ...watched('a').watch, lastError: 'unreachable (ECONNREFUSED)' } },
            bb: { status: 'restarting', height: 7, restarts: 1 },
        });
        await watchOwnNodes(m.ports);
        expect(m.out).toEqual([
            { level: 'error', line: 'ALERT {"event":"node.status","nodeId":"a","from":"healthy","to":"down","height":1,"restarts":3,"error":"unreachable (ECONNREFUSED)"}' },
            { level: 'log', line: '{"event":"node.status","nodeId":"bb","from":"healthy","to":"restarting","height":7,"restarts":1,"error":null}' },
        ]);
    });
});

const chainNode = (id: string, over: Partial<ChainNode> = {}): ChainNode & { rpcUrl: string } => ({
    id,
    orgId: `org-${id}`,
    enode: `enode://${id}`,
    rpcUrl: `http://${id}`,
    height: null,
    status: 'healthy',
    lastCheckedAt: null,
    restarts: 0,
    registeredAt: T0,
    updatedAt: T0,
    ...over,
});

/** Heads by URL (a missing one does not answer) and each URL's block hash at any height. */
const probeOf = (heads: Record<string, number>, hashes: Record<string, string>): NodeProbe => ({
    head: async (url): Promise<Observation> => (url in heads ? { ok: true, height: heads[url]!, hash: `head-of-${url}` } : { ok: false, error: 'unreachable' }),
    hashAt: async (url) => hashes[url] ?? null,
});

/** The core's registry in memory: what the round observed, marked and published. */
function registryOf(nodes: (ChainNode & { rpcUrl: string })[], outbox: EventEnvelope[] = []) {
    const observed: { id: string; seen: Observation; at: string }[] = [];
    const marked: { ids: string[]; divergence: Divergence | null; at: string }[] = [];
    return {
        observed,
        marked,
        registry: {
            probeable: async () => nodes,
            observe: async (n: ChainNode, seen: Observation, at: string) => {
                observed.push({ id: n.id, seen, at });
                return { ...n, height: seen.ok ? seen.height : n.height, lastCheckedAt: at };
            },
            markDivergence: async (judged: ChainNode[], divergence: Divergence | null, at: string) => void marked.push({ ids: judged.map((n) => n.id), divergence, at }),
            publishOutbox: async (publish: (e: EventEnvelope) => Promise<void>) => {
                for (const e of outbox) await publish(e);
                return outbox;
            },
        },
    };
}

const event = (nodeId: string): EventEnvelope => ({ id: `node:${nodeId}:node.diverged:${T0}`, type: 'node.diverged', occurredAt: T0, orgIds: [`org-${nodeId}`], subject: `chain/nodes/${nodeId}`, data: { nodeId } });

describe('the consortium’s watch round', () => {
    const now = () => new Date(T0);

    it('observes every probeable node and judges divergence among those that answered, with the operator’s nodes as reference', async () => {
        const { registry, observed, marked } = registryOf([chainNode('a'), chainNode('b'), chainNode('c'), chainNode('quiet')]);
        const probe = probeOf({ 'http://a': 12, 'http://b': 10, 'http://c': 11, 'http://op': 15 }, { 'http://a': '0x1', 'http://b': '0x1', 'http://c': '0x2', 'http://op': '0x1' });
        const published: EventEnvelope[] = [];
        await watchConsortium({ nodes: registry, probe, referenceRpcUrls: ['http://op'], events: () => ({ publish: async (e) => void published.push(e) }), log: { warn: () => undefined }, now });
        expect(observed.map((o) => [o.id, o.seen.ok, o.at])).toEqual([
            ['a', true, T0],
            ['b', true, T0],
            ['c', true, T0],
            ['quiet', false, T0],
        ]);
        // The node that did not answer is not judged: it keeps its mark until it answers.
        expect(marked).toEqual([{ ids: ['a', 'b', 'c'], divergence: { height: 10, majority: '0x1', diverged: { c: '0x2' } }, at: T0 }]);
        expect(published).toEqual([]);
    });

    it('lets the operator’s node break an even split, and publishes the events that came of it, each logged', async () => {
        const { registry, marked } = registryOf([chainNode('a'), chainNode('b')], [event('b')]);
        const probe = probeOf({ 'http://a': 5, 'http://b': 5, 'http://op-0': 5, 'http://op-1': 5 }, { 'http://a': '0xa', 'http://b': '0xb', 'http://op-0': '0xa' });
        const published: EventEnvelope[] = [];
        const warned: string[] = [];
        const sent = await watchConsortium({
            nodes: registry,
            probe,
            // The second endpoint answers its head but not the block: it takes no side.
            referenceRpcUrls: ['http://op-0', 'http://op-1'],
            events: () => ({ publish: async (e) => void published.push(e) }),
            log: { warn: (m) => warned.push(m) },
            now,
        });
        expect(marked[0]!.divergence).toEqual({ height: 5, majority: '0xa', diverged: { b: '0xb' } });
        expect(published).toEqual([event('b')]);
        expect(sent).toEqual([event('b')]);
        expect(warned).toEqual([JSON.stringify({ event: 'node.diverged', nodeId: 'b', data: { nodeId: 'b' } })]);
    });

    it('finds no divergence when fewer than two nodes answer, and clears none of the silent ones', async () => {
        const { registry, marked } = registryOf([chainNode('a'), chainNode('b', { divergence: { height: 3, hash: '0xb', majority: '0xa', since: T0 } })]);
        await watchConsortium({ nodes: registry, probe: probeOf({ 'http://a': 9 }, { 'http://a': '0xa' }), referenceRpcUrls: [], events: () => ({ publish: async () => undefined }), log: { warn: () => undefined }, now });
        expect(marked).toEqual([{ ids: ['a'], divergence: null, at: T0 }]);
    });
});

describe('a reported node transition', () => {
    const transition: ReportedTransition = { at: T0, type: 'node.stalled', from: 'healthy', to: 'stalled', data: { checks: 3 }, height: 4, restarts: 0 };

    it('is recorded first, then published as the event the registry made of it', async () => {
        const steps: string[] = [];
        const made = event('n1');
        const out = await recordNodeTransition(
            {
                nodes: { recordTransition: async (orgId, nodeId, t) => (steps.push(`record ${orgId}/${nodeId} ${t.type}`), made) },
                events: () => ({ publish: async (e) => void steps.push(`publish ${e.id}`) }),
            },
            'acme',
            'n1',
            transition,
        );
        expect(out).toBe(made);
        expect(steps).toEqual(['record acme/n1 node.stalled', `publish ${made.id}`]);
    });

    it('publishes nothing when the registry refuses the report', async () => {
        const published: string[] = [];
        const refused = recordNodeTransition(
            { nodes: { recordTransition: async () => Promise.reject(new Error('Your organisation has no node n1')) }, events: () => ({ publish: async (e) => void published.push(e.id) }) },
            'acme',
            'n1',
            transition,
        );
        await expect(refused).rejects.toThrow('no node n1');
        expect(published).toEqual([]);
    });
});
