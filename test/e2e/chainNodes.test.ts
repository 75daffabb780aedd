import { createHash } from 'node:crypto';
import { addressAllowed } from '../../shared/nodes/nodeRegistry';
import { devToken, removeDir, repoRoot, RunningDevhost, startDevhost } from '../harness/devhost';

const enode = (c: string, host = '10.1.0.4') => `enode://${c.repeat(128)}@${host}:30303`;
const CAP = 3;
/** An enode URL whose key is made from a tag: no two tags share a key. */
const keyed = (tag: string, host: string) => `enode://${createHash('sha512').update(tag).digest('hex')}@${host}:30303`;

/** The node registry on the core: members register their own nodes; static-nodes.json for member deployments from allowed addresses. */
describe('node registry and static nodes', () => {
    let host: RunningDevhost;
    let api: string;
    beforeAll(async () => {
        host = await startDevhost(
            ['--app', repoRoot, '--name', 'core', '--set', 'FLEXCHANGE_STATIC_NODES_ALLOWED_ADDRESSES=127.0.0.1', '--set', 'FLEXCHANGE_NODE_NETWORK_RANGES=10.1.0.0/16,10.2.0.0/16,fd00:10::/48', '--set', `FLEXCHANGE_NODE_MAX_PER_ORG=${CAP}`],
            { storage: true },
        );
        api = `${host.origin('core')}/api`;
    });
    afterAll(async () => {
        await host?.stop();
        removeDir(host?.stateDir);
    });

    const call = (method: string, path: string, bearer: string, body?: unknown) =>
        fetch(`${api}${path}`, { method, headers: { authorization: `Bearer ${bearer}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });

    it('lets each member deployment register only its own nodes, and lists them as geth static nodes', async () => {
        const acme = await devToken(host, { roles: ['Deployment.Member'], orgId: 'acme', appOnly: true, name: 'flexchange-member-acme' });
        const globex = await devToken(host, { roles: ['Deployment.Member'], orgId: 'globex', appOnly: true, name: 'flexchange-member-globex' });
        const admin = await devToken(host, { roles: ['Flexchange.Admin'], email: 'ops@operator.example' });

        const first = await call('POST', '/chain/nodes', acme, { nodeId: 'acme-tx-0', enode: enode('a'), rpcUrl: 'http://10.1.0.4:8545' });
        expect(first.status).toBe(201);
        expect(await first.json()).toMatchObject({ nodeId: 'acme-tx-0', orgId: 'acme', status: 'healthy', restarts: 0 });
        expect((await call('POST', '/chain/nodes', acme, { nodeId: 'acme-tx-0', enode: enode('a'), rpcUrl: 'http://10.1.0.4:8545' })).status).toBe(200);
        // Another organisation can neither take the node id nor the node's key.
        expect((await call('POST', '/chain/nodes', globex, { nodeId: 'acme-tx-0', enode: enode('b') })).status).toBe(409);
        expect((await call('POST', '/chain/nodes', globex, { nodeId: 'globex-tx-0', enode: enode('a', '10.2.0.4') })).status).toBe(409);
        expect((await call('POST', '/chain/nodes', globex, { nodeId: 'globex-tx-0', enode: 'enode://nothex@1.2.3.4:30303' })).status).toBe(400);
        expect((await call('POST', '/chain/nodes', globex, { nodeId: 'globex-tx-0', enode: enode('c', '10.2.0.4') })).status).toBe(201);

        const list = (await (await call('GET', '/chain/nodes', admin)).json()) as { items: { nodeId: string; orgId: string }[] };
        expect(list.items.map((n) => [n.nodeId, n.orgId])).toEqual([['acme-tx-0', 'acme'], ['globex-tx-0', 'globex']]);
        expect((await call('GET', '/chain/nodes', acme)).status).toBe(403);

        const statics = await call('GET', '/chain/static-nodes', globex);
        expect(statics.status).toBe(200);
        expect(await statics.json()).toEqual([enode('a'), enode('c', '10.2.0.4')]);
        // A user token is not a member deployment.
        expect((await call('GET', '/chain/static-nodes', await devToken(host, { roles: ['Org.Admin'], orgId: 'acme', email: 'a@acme.example' }))).status).toBe(403);
    });

    const memberToken = (orgId: string) => devToken(host, { roles: ['Deployment.Member'], orgId, appOnly: true, name: `flexchange-member-${orgId}` });
    const problem = async (res: Response) => {
        expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        return (await res.json()) as { status: number; code: string; detail: string; errors?: { path: string; message: string }[] };
    };

    it('takes an rpcUrl only at an address inside the node network (FLEXCHANGE_NODE_NETWORK_RANGES)', async () => {
        const initech = await memberToken('initech');
        const register = (nodeId: string, rpcUrl: string) => call('POST', '/chain/nodes', initech, { nodeId, enode: enode('d', '10.2.0.9'), rpcUrl });
        for (const [rpcUrl, why] of [
            ['http://10.3.0.4:8545', /10\.3\.0\.4 is outside the node network \(FLEXCHANGE_NODE_NETWORK_RANGES: 10\.1\.0\.0\/16, 10\.2\.0\.0\/16, fd00:10::\/48\)/],
            ['http://127.0.0.1:8545', /outside the node network \(FLEXCHANGE_NODE_NETWORK_RANGES/],
            ['http://[::ffff:127.0.0.1]:8545', /outside the node network/],
            ['http://2130706433:8545', /127\.0\.0\.1 is outside/],
            ['http://169.254.169.254/latest', /cloud instance metadata/],
            ['http://168.63.129.16/', /Azure platform endpoint/],
            ['http://node0.initech.example:8545', /is a host name: give the node's IP address in the node network \(FLEXCHANGE_NODE_NETWORK_RANGES\)/],
            ['http://localhost:8545', /localhost is a host name/],
            ['http://ops:secret@10.2.0.9:8545', /no user:password/],
        ] as const) {
            const res = await register('initech-tx-0', rpcUrl);
            expect(res.status).toBe(400);
            const body = await problem(res);
            expect(body.detail).toMatch(why);
            expect(body.errors).toEqual([{ path: 'rpcUrl', message: expect.stringMatching(why) }]);
        }
        // Nothing was registered by the refusals; an address inside the ranges is taken.
        expect((await register('initech-tx-0', 'http://10.2.0.9:8545')).status).toBe(201);
        expect((await register('initech-tx-0', 'http://[fd00:10::9]:8545')).status).toBe(200);
        expect((await register('initech-tx-0', 'http://10.9.0.9:8545')).status).toBe(400);
    });

    it(`caps the nodes of one organisation at FLEXCHANGE_NODE_MAX_PER_ORG (${CAP}), even registered all at once`, async () => {
        const capco = await memberToken('capco');
        const tags = ['1', '2', '3', '4', '5', '6'];
        const results = await Promise.all(tags.map((c) => call('POST', '/chain/nodes', capco, { nodeId: `capco-tx-${c}`, enode: keyed(`capco-${c}`, '10.1.7.7') })));
        expect(results.map((r) => r.status).sort()).toEqual([201, 201, 201, 409, 409, 409]);
        for (const refused of results.filter((r) => r.status === 409)) {
            expect(await problem(refused)).toMatchObject({ status: 409, code: 'node_limit', detail: expect.stringContaining(`FLEXCHANGE_NODE_MAX_PER_ORG=${CAP}`) });
        }
        const admin = await devToken(host, { roles: ['Flexchange.Admin'], email: 'ops@operator.example' });
        const held = ((await (await call('GET', '/chain/nodes', admin)).json()) as { items: { nodeId: string; orgId: string }[] }).items.filter((n) => n.orgId === 'capco');
        expect(held).toHaveLength(CAP);
        // A node it holds can still be registered again and changed.
        expect((await call('POST', '/chain/nodes', capco, { nodeId: held[0]!.nodeId, enode: keyed('capco-new-key', '10.1.7.8') })).status).toBe(200);
        // The node id and enode key a refused registration asked for were given back: another organisation may take them.
        const refused = tags.find((c) => !held.some((n) => n.nodeId === `capco-tx-${c}`))!;
        expect((await call('POST', '/chain/nodes', await memberToken('capco-neighbour'), { nodeId: `capco-tx-${refused}`, enode: keyed(`capco-${refused}`, '10.1.8.8') })).status).toBe(201);
    });

    it('lets exactly one of two organisations racing for one node id or one enode key win; the other gets 409', async () => {
        for (let round = 0; round < 5; round++) {
            const [a, b] = await Promise.all([memberToken(`race-a${round}`), memberToken(`race-b${round}`)]);
            // The same enode key under two node ids.
            const byKey = await Promise.all([
                call('POST', '/chain/nodes', a, { nodeId: `race-a${round}-key`, enode: keyed(`race-${round}`, '10.2.1.1') }),
                call('POST', '/chain/nodes', b, { nodeId: `race-b${round}-key`, enode: keyed(`race-${round}`, '10.2.1.2') }),
            ]);
            expect(byKey.map((r) => r.status).sort()).toEqual([201, 409]);
            expect((await problem(byKey.find((r) => r.status === 409)!)).code).toBe('enode_taken');
            // The same node id with two keys.
            const byId = await Promise.all([
                call('POST', '/chain/nodes', a, { nodeId: `race-${round}-id`, enode: keyed(`race-a${round}-id`, '10.2.2.1') }),
                call('POST', '/chain/nodes', b, { nodeId: `race-${round}-id`, enode: keyed(`race-b${round}-id`, '10.2.2.2') }),
            ]);
            expect(byId.map((r) => r.status).sort()).toEqual([201, 409]);
            expect((await problem(byId.find((r) => r.status === 409)!)).code).toBe('node_taken');
        }
        const admin = await devToken(host, { roles: ['Flexchange.Admin'], email: 'ops@operator.example' });
        const items = ((await (await call('GET', '/chain/nodes', admin)).json()) as { items: { nodeId: string; enode: string }[] }).items;
        const keys = items.map((n) => n.enode.slice(8, 136));
        expect(new Set(keys).size).toBe(keys.length);
        expect(items.filter((n) => /^race-\d-id$/.test(n.nodeId))).toHaveLength(5);
    });

    it('serves static nodes only to allow-listed client addresses', () => {
        expect(addressAllowed('127.0.0.1', ['127.0.0.1'])).toBe(true);
        expect(addressAllowed('::ffff:10.20.1.7', ['10.20.'])).toBe(true);
        expect(addressAllowed('10.21.1.7', ['10.20.'])).toBe(false);
        expect(addressAllowed('203.0.113.9', [])).toBe(false);
    });
});
