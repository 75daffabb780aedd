import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CosmosRepository } from '../../shared/documents/cosmosRepository';
import { Conflict, Invalid } from '../../shared/errors';
import { parseRange } from '../../shared/net/addresses';
import { NodeRegistry, type ChainNode, type NodeClaim } from '../../shared/nodes/nodeRegistry';
import { JsonRpcProbe } from '../../shared/nodes/watchdog';
import { startCosmos, type TestCosmos } from '../harness/cosmos';

const enode = (tag: string, host = '10.1.0.4') => `enode://${createHash('sha512').update(tag).digest('hex')}@${host}:30303`;

/** The core's node registry on the local Cosmos server: the node network it probes, claims made create-only. */
describe('node registry', () => {
    let db: TestCosmos;
    beforeAll(async () => {
        db = await startCosmos();
    });
    afterAll(() => db?.stop());

    const registry = (ranges: string[], maxPerOrg = 8, consortiumNodes?: string[]) =>
        new NodeRegistry(
            new CosmosRepository<ChainNode>(db.database.container('nodes'), (n) => n.orgId),
            new CosmosRepository<NodeClaim>(db.database.container('nodeClaims'), (c) => c.id),
            { ranges: ranges.map(parseRange), maxPerOrg, consortiumNodes },
        );

    it("lists the consortium's own nodes (the validators) first among the static nodes, each once", async () => {
        const validators = [enode('validator-0', '10.10.3.4'), enode('validator-1', '10.10.3.5')];
        const r = registry(['10.1.0.0/16'], 8, validators);
        await r.register('statics', { nodeId: 'statics-node-0', enode: enode('statics-0') });
        const statics = await r.staticNodes();
        expect(statics.slice(0, 2)).toEqual(validators);
        expect(statics).toContain(enode('statics-0'));
        expect(new Set(statics).size).toBe(statics.length);
        // Without them, the registered nodes only.
        expect(await registry(['10.1.0.0/16']).staticNodes()).not.toContain(validators[0]);
    });

    it('probes only nodes whose rpcUrl is in the node network as the setting says now', async () => {
        const before = registry(['10.1.0.0/16', '10.2.0.0/16']);
        await before.register('acme', { nodeId: 'acme-probe-0', enode: enode('p0'), rpcUrl: 'http://10.1.0.4:8545' });
        await before.register('acme', { nodeId: 'acme-probe-1', enode: enode('p1'), rpcUrl: 'http://10.2.0.4:8545' });
        await before.register('acme', { nodeId: 'acme-probe-2', enode: enode('p2') });
        expect((await before.probeable()).map((n) => n.id).sort()).toEqual(['acme-probe-0', 'acme-probe-1']);
        // The setting changed: 10.2.0.0/16 is no longer the node network; the node stays registered, unprobed.
        const after = registry(['10.1.0.0/16']);
        expect((await after.probeable()).map((n) => n.id)).toEqual(['acme-probe-0']);
        expect((await after.list('acme')).map((n) => n.id).sort()).toEqual(['acme-probe-0', 'acme-probe-1', 'acme-probe-2']);
        // No ranges: nothing is probed, and no rpcUrl is taken.
        expect(await registry([]).probeable()).toEqual([]);
        await expect(registry([]).register('acme', { nodeId: 'acme-probe-3', enode: enode('p3'), rpcUrl: 'http://10.1.0.9:8545' })).rejects.toThrow(/FLEXCHANGE_NODE_NETWORK_RANGES is empty/);
    });

    it('refuses an rpcUrl outside the ranges and a host name, and writes nothing for them', async () => {
        const r = registry(['10.1.0.0/16']);
        for (const rpcUrl of ['http://10.3.0.1:8545', 'http://nodes.initech.example:8545', 'http://[::ffff:169.254.169.254]/']) {
            await expect(r.register('initech', { nodeId: 'initech-0', enode: enode('i0'), rpcUrl })).rejects.toBeInstanceOf(Invalid);
        }
        expect(await r.list('initech')).toEqual([]);
    });

    it('gives one of two organisations racing for an enode key or a node id the claim, the other a Conflict', async () => {
        const r = registry(['10.1.0.0/16']);
        for (let round = 0; round < 10; round++) {
            const byKey = await Promise.allSettled([
                r.register(`north-${round}`, { nodeId: `north-${round}-k`, enode: enode(`shared-${round}`) }),
                r.register(`south-${round}`, { nodeId: `south-${round}-k`, enode: enode(`shared-${round}`) }),
            ]);
            expect(byKey.map((o) => o.status).sort()).toEqual(['fulfilled', 'rejected']);
            expect((byKey.find((o) => o.status === 'rejected') as PromiseRejectedResult).reason).toMatchObject({ code: 'enode_taken' });
            const byId = await Promise.allSettled([
                r.register(`north-${round}`, { nodeId: `contested-${round}`, enode: enode(`north-${round}`) }),
                r.register(`south-${round}`, { nodeId: `contested-${round}`, enode: enode(`south-${round}`) }),
            ]);
            expect(byId.map((o) => o.status).sort()).toEqual(['fulfilled', 'rejected']);
            expect((byId.find((o) => o.status === 'rejected') as PromiseRejectedResult).reason).toMatchObject({ code: 'node_taken' });
        }
        const all = await r.list();
        const keys = all.map((n) => n.enode.slice(8, 136));
        expect(new Set(keys).size).toBe(keys.length);
        expect(new Set(all.map((n) => n.id)).size).toBe(all.length);
    });

    it('holds an organisation to its cap under concurrent registrations, and a node it holds may change its key', async () => {
        const r = registry(['10.1.0.0/16'], 2);
        const outcomes = await Promise.allSettled([0, 1, 2, 3, 4].map((i) => r.register('capped', { nodeId: `capped-${i}`, enode: enode(`capped-${i}`) })));
        expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(2);
        for (const o of outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected')) {
            expect(o.reason).toBeInstanceOf(Conflict);
            expect(o.reason).toMatchObject({ code: 'node_limit', message: expect.stringContaining('FLEXCHANGE_NODE_MAX_PER_ORG=2') });
        }
        const held = await r.list('capped');
        expect(held).toHaveLength(2);
        const moved = await r.register('capped', { nodeId: held[0]!.id, enode: enode('capped-moved') });
        expect(moved).toMatchObject({ created: false, node: { enode: enode('capped-moved') } });
        // Its old key was given back; its new one is its own.
        await expect(r.register('other', { nodeId: 'other-0', enode: enode(held[0]!.id) })).resolves.toMatchObject({ created: true });
        await expect(r.register('other', { nodeId: 'other-1', enode: enode('capped-moved') })).rejects.toMatchObject({ code: 'enode_taken' });
    });

    it('probes a node at its own address only: a redirect is not followed', async () => {
        const served: string[] = [];
        const listen = (handler: http.RequestListener) =>
            new Promise<http.Server>((resolve) => {
                const server = http.createServer(handler);
                server.listen(0, '127.0.0.1', () => resolve(server));
            });
        // Where a redirect would lead (standing in for a metadata endpoint): it answers a valid head.
        const elsewhere = await listen((req, res) => {
            served.push(req.url ?? '');
            res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { number: '0x10', hash: `0x${'ab'.repeat(32)}` } }));
        });
        const node = await listen((_req, res) => res.writeHead(307, { location: `http://127.0.0.1:${(elsewhere.address() as AddressInfo).port}/steal` }).end());
        try {
            const seen = await new JsonRpcProbe(2000).head(`http://127.0.0.1:${(node.address() as AddressInfo).port}`);
            expect(seen.ok).toBe(false);
            expect(served).toEqual([]);
        } finally {
            await Promise.all([node, elsewhere].map((s) => new Promise((r) => s.close(r))));
        }
    });
});
