import { addressAllowed } from '../../shared/nodes/nodeRegistry';
import { devToken, removeDir, repoRoot, RunningDevhost, startDevhost } from '../harness/devhost';

const enode = (c: string, host = '10.1.0.4') => `enode://${c.repeat(128)}@${host}:30303`;

/** The node registry on the core: members register their own nodes; static-nodes.json for member deployments from allowed addresses. */
describe('node registry and static nodes', () => {
    let host: RunningDevhost;
    let api: string;
    beforeAll(async () => {
        host = await startDevhost(['--app', repoRoot, '--name', 'core', '--set', 'FLEXCHANGE_STATIC_NODES_ALLOWED_ADDRESSES=127.0.0.1'], { storage: true });
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

    it('serves static nodes only to allow-listed client addresses', () => {
        expect(addressAllowed('127.0.0.1', ['127.0.0.1'])).toBe(true);
        expect(addressAllowed('::ffff:10.20.1.7', ['10.20.'])).toBe(true);
        expect(addressAllowed('10.21.1.7', ['10.20.'])).toBe(false);
        expect(addressAllowed('203.0.113.9', [])).toBe(false);
    });
});
