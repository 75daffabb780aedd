import { z } from 'zod';
import { getServices } from '../shared/composition';
import { Forbidden, Invalid } from '../shared/errors';
import { addressAllowed, type ChainNode } from '../shared/nodes/nodeRegistry';
import { clientAddress, httpRoute, OPERATOR_ROLE } from './http/route';

const nodeView = (n: ChainNode) => ({ nodeId: n.id, orgId: n.orgId, enode: n.enode, rpcUrl: n.rpcUrl ?? null, height: n.height, status: n.status, lastCheckedAt: n.lastCheckedAt, restarts: n.restarts });

/** POST /api/chain/nodes (core; a member deployment, for its own nodes): `{ nodeId, enode, rpcUrl? }`. */
httpRoute('chainNodesRegister', {
    route: 'chain/nodes',
    methods: ['POST'],
    access: { roles: ['Deployment.Member'] },
    body: z
        .object({
            nodeId: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lower-case letters, digits and -'),
            enode: z.string().max(400),
            rpcUrl: z.string().url().max(400).optional(),
        })
        .strict(),
    summary: 'Register one of your organisation’s ledger nodes',
    handler: async ({ body, caller }) => {
        if (!caller!.orgId) throw new Invalid('This deployment belongs to no organisation');
        const { node, created } = await getServices().nodes.register(caller!.orgId, body);
        return { status: created ? 201 : 200, headers: { location: `/api/chain/nodes/${node.id}` }, jsonBody: nodeView(node) };
    },
});

/** GET /api/chain/nodes (core, operator): the node registry with the watchdog's view. */
httpRoute('chainNodesList', {
    route: 'chain/nodes',
    methods: ['GET'],
    access: { roles: [OPERATOR_ROLE] },
    summary: 'The consortium’s nodes and their state',
    handler: async () => ({ jsonBody: { items: (await getServices().nodes.list()).map(nodeView) } }),
});

/**
 * GET /api/chain/static-nodes (core; member deployments, from allow-listed addresses): the
 * consortium's enode URLs as geth's `static-nodes.json` (a JSON array).
 */
httpRoute('chainStaticNodes', {
    route: 'chain/static-nodes',
    methods: ['GET'],
    access: { roles: ['Deployment.Member'] },
    summary: 'The consortium’s nodes as geth static-nodes.json',
    handler: async ({ request }) => {
        const services = getServices();
        const from = clientAddress(request);
        if (!addressAllowed(from, services.settings.FLEXCHANGE_STATIC_NODES_ALLOWED_ADDRESSES)) throw new Forbidden(`Static nodes are not served to ${from}`);
        return { headers: { 'cache-control': 'no-store' }, jsonBody: await services.nodes.staticNodes() };
    },
});
