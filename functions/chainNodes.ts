import { app, type InvocationContext } from '@azure/functions';
import { z } from 'zod';
import { getServices } from '../shared/composition';
import { Forbidden, Invalid, NotFound } from '../shared/errors';
import { addressAllowed, NODE_STATUSES, type ChainNode } from '../shared/nodes/nodeRegistry';
import { recordNodeTransition, watchConsortium } from '../shared/nodes/consortiumWatch';
import { watchOwnNodes } from '../shared/nodes/memberWatch';
import { NODE_EVENT_TYPES, type WatchedNode } from '../shared/nodes/watchdog';
import { clientAddress, deploymentRole, httpRoute, OPERATOR_ROLE } from './http/route';

const nodeView = (n: ChainNode) => ({
    nodeId: n.id,
    orgId: n.orgId,
    enode: n.enode,
    rpcUrl: n.rpcUrl ?? null,
    height: n.height,
    status: n.status,
    lastCheckedAt: n.lastCheckedAt,
    restarts: n.restarts,
    ...(n.divergence ? { divergence: n.divergence } : {}),
});
const nodeIdSchema = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lower-case letters, digits and -');

/**
 * POST /api/chain/nodes (core; a member deployment, for its own nodes): `{ nodeId, enode, rpcUrl? }`.
 * The node id and enode key are claimed for good (another organisation's: 409), at most
 * FLEXCHANGE_NODE_MAX_PER_ORG nodes per organisation (409 `node_limit`).
 */
httpRoute('chainNodesRegister', {
    route: 'chain/nodes',
    methods: ['POST'],
    access: { roles: ['Deployment.Member'] },
    body: z
        .object({
            nodeId: nodeIdSchema,
            enode: z.string().max(400),
            // Checked against the node network by the registry (400 naming FLEXCHANGE_NODE_NETWORK_RANGES otherwise).
            rpcUrl: z.string().url().max(400).optional().describe('http(s)://<IP address>:<port>: an address inside the node network (FLEXCHANGE_NODE_NETWORK_RANGES); host names are refused'),
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

/**
 * POST /api/chain/nodes/{nodeId}/transitions (core; the node's own member deployment): a state change its
 * watchdog saw. Recorded in the registry and published as the event of that type (one id per transition,
 * so a report sent again is the same event).
 */
httpRoute('chainNodeTransitions', {
    route: 'chain/nodes/{nodeId}/transitions',
    methods: ['POST'],
    access: { roles: ['Deployment.Member'] },
    body: z
        .object({
            at: z.string().datetime(),
            type: z.enum(NODE_EVENT_TYPES).exclude(['node.diverged']),
            from: z.enum(NODE_STATUSES),
            to: z.enum(NODE_STATUSES),
            data: z.record(z.string(), z.unknown()).refine((d) => JSON.stringify(d).length <= 4096, 'at most 4 KiB'),
            height: z.number().int().nonnegative().nullable(),
            restarts: z.number().int().nonnegative(),
        })
        .strict(),
    summary: 'Report a state change of one of your nodes (its watchdog)',
    handler: async ({ body, caller, params }) => {
        if (!caller!.orgId) throw new Invalid('This deployment belongs to no organisation');
        if (!nodeIdSchema.safeParse(params.nodeId).success) throw new NotFound(`Your organisation has no node ${params.nodeId}`);
        const event = await recordNodeTransition(getServices(), caller!.orgId, params.nodeId!, body);
        return { jsonBody: { eventId: event.id } };
    },
});

/** GET /api/chain/nodes (member, its admins): this deployment's own nodes, their watchdog state and recent transitions. */
httpRoute('memberChainNodes', {
    route: 'chain/nodes',
    methods: ['GET'],
    deployments: ['member'],
    access: { roles: ['Org.Admin'] },
    summary: 'This deployment’s nodes, their watchdog state and history',
    handler: async () => ({
        jsonBody: {
            items: (await getServices().nodeWatchdog().watchdog.list()).map((n: WatchedNode) => ({
                ...nodeView(n),
                quietChecks: n.watch.quietChecks,
                lastError: n.watch.lastError,
                nextRestartAt: n.watch.nextRestartAt,
                history: n.history.map(({ reported: _r, ...t }) => t).slice(-20),
            })),
        },
    }),
});

/** The member's watchdog: its configured nodes registered with the core, then each one checked (and restarted when stalled). */
const memberWatchdog = (context: InvocationContext) => {
    const services = getServices();
    return watchOwnNodes({ ...services.nodeWatchdog(), configured: services.settings.FLEXCHANGE_NODES, log: context });
};

/** The core's consortium view: every registered node's height, and divergence across them. */
const consortiumWatchdog = async (context: InvocationContext) => {
    const services = getServices();
    await watchConsortium({ nodes: services.nodes, probe: services.nodeProbe, referenceRpcUrls: services.settings.FLEXCHANGE_LEDGER_RPC_URLS, events: () => services.events(), log: context });
};

if (deploymentRole() === 'member') {
    app.timer('nodeWatchdog', { schedule: '%FLEXCHANGE_WATCHDOG_SCHEDULE%', handler: (_t, context) => memberWatchdog(context) });
} else {
    app.timer('consortiumWatchdog', { schedule: '%FLEXCHANGE_WATCHDOG_SCHEDULE%', handler: (_t, context) => consortiumWatchdog(context) });
}
