import { updateItem, type Repository } from '../documents/repository';
import { Conflict, Invalid, NotFound } from '../errors';
import type { EventEnvelope } from '../events/events';
import type { Divergence, NodeEventType, Observation } from './watchdog';

export const NODE_STATUSES = ['healthy', 'stalled', 'diverged', 'restarting', 'down'] as const;

/** A consortium node (container `nodes`, partition `/orgId`): registered by its member deployment, watched by the watchdog. */
export interface ChainNode {
    /** The node id, unique across the consortium. */
    id: string;
    orgId: string;
    enode: string;
    rpcUrl?: string;
    height: number | null;
    status: (typeof NODE_STATUSES)[number];
    lastCheckedAt: string | null;
    restarts: number;
    registeredAt: string;
    updatedAt: string;
    /** Core: the state the member's watchdog last reported, and when it changed. */
    reportedStatus?: ChainNode['status'];
    lastTransitionAt?: string;
    /** Core: the block this node disagrees about with the others, while it does. */
    divergence?: { height: number; hash: string; majority: string; since: string } | null;
    /** Core: events decided with a change of this record and not yet published (published, then removed). */
    outbox?: EventEnvelope[];
}

/** A transition a member's watchdog reports for one of its nodes. */
export interface ReportedTransition {
    at: string;
    type: Exclude<NodeEventType, 'node.diverged'>;
    from: ChainNode['status'];
    to: ChainNode['status'];
    data: Record<string, unknown>;
    height: number | null;
    restarts: number;
}

const nodeEvent = (node: ChainNode, type: NodeEventType, at: string, data: Record<string, unknown>): EventEnvelope => ({
    // One id per transition: a report sent again (or a check run twice) is the same event.
    id: `node:${node.id}:${type}:${at}`,
    type,
    occurredAt: at,
    orgIds: [node.orgId],
    subject: `chain/nodes/${node.id}`,
    data: { nodeId: node.id, ...data },
});

/** `enode://<128 hex>@<host>:<port>[?discport=<port>]`, as geth's static-nodes.json lists them. */
export const ENODE_RE = /^enode:\/\/[0-9a-f]{128}@(\[[0-9a-f:]+\]|[0-9]{1,3}(\.[0-9]{1,3}){3}|[a-z0-9.-]{1,253}):[0-9]{1,5}(\?discport=[0-9]{1,5})?$/;

/**
 * The node registry: each member deployment registers its own nodes (a node id belongs to one
 * organisation for good); the consortium's static nodes list is made from it. Replaces the seed's
 * unauthenticated registrar port.
 */
export class NodeRegistry {
    constructor(private readonly repo: Repository<ChainNode>) {}

    async register(orgId: string, input: { nodeId: string; enode: string; rpcUrl?: string }): Promise<{ node: ChainNode; created: boolean }> {
        if (!ENODE_RE.test(input.enode)) throw new Invalid('The enode URL is not valid', [{ path: 'enode', message: 'enode://<128 hex>@<host>:<port>' }]);
        const owner = await this.#find(input.nodeId);
        if (owner && owner.orgId !== orgId) throw new Conflict(`The node ${input.nodeId} belongs to another organisation`, 'node_taken');
        const now = new Date().toISOString();
        if (owner) {
            if (owner.enode === input.enode && owner.rpcUrl === input.rpcUrl) return { node: owner, created: false };
            return { node: (await this.repo.upsert({ ...owner, enode: input.enode, rpcUrl: input.rpcUrl, updatedAt: now })).item, created: false };
        }
        // The enode's public key identifies the node too: one registration per key across the consortium.
        const key = input.enode.slice('enode://'.length, 'enode://'.length + 128);
        const sameKey = (await this.list()).find((n) => n.enode.includes(key));
        if (sameKey) throw new Conflict(`That enode is registered as node ${sameKey.id}`, 'enode_taken');
        try {
            const node = (await this.repo.create({ id: input.nodeId, orgId, enode: input.enode, rpcUrl: input.rpcUrl, height: null, status: 'healthy', lastCheckedAt: null, restarts: 0, registeredAt: now, updatedAt: now })).item;
            return { node, created: true };
        } catch (err) {
            if (err instanceof Conflict) return this.register(orgId, input);
            throw err;
        }
    }

    async list(orgId?: string): Promise<ChainNode[]> {
        const out: ChainNode[] = [];
        let continuationToken: string | undefined;
        do {
            const page = await this.repo.query(orgId ? { query: 'SELECT * FROM c WHERE c.orgId = @org ORDER BY c.registeredAt', parameters: [{ name: '@org', value: orgId }] } : { query: 'SELECT * FROM c ORDER BY c.registeredAt' }, { continuationToken, maxItemCount: 200, ...(orgId ? { partitionKey: orgId } : {}) });
            out.push(...page.items);
            continuationToken = page.continuationToken;
        } while (continuationToken);
        return out;
    }

    /** geth's static-nodes.json: every registered node's enode URL, except those that are down. */
    async staticNodes(): Promise<string[]> {
        return (await this.list()).filter((n) => n.status !== 'down').map((n) => n.enode);
    }

    /**
     * Records a transition the node's own member reported (a report older than the last one recorded
     * changes nothing) and returns the event to publish for it.
     */
    async recordTransition(orgId: string, nodeId: string, t: ReportedTransition): Promise<EventEnvelope> {
        // A point read in the reporter's own partition (its owner checked too: the local server ignores partitions).
        const found = (await this.repo.read(nodeId, orgId))?.item;
        if (!found || found.orgId !== orgId) throw new NotFound(`Your organisation has no node ${nodeId}`);
        const node = await updateItem(
            this.repo,
            nodeId,
            orgId,
            (n) => {
                if (!n || (n.lastTransitionAt && n.lastTransitionAt >= t.at)) return undefined;
                const status = n.divergence ? 'diverged' : t.to;
                return { ...n, reportedStatus: t.to, status, lastTransitionAt: t.at, height: t.height ?? n.height, restarts: t.restarts, lastCheckedAt: t.at, updatedAt: new Date().toISOString() };
            },
            { conflict: () => new Conflict(`The node ${nodeId} changed while the report was recorded`) },
        );
        return nodeEvent(node ?? found, t.type, t.at, { ...t.data, from: t.from, to: t.to });
    }

    /** The consortium watchdog's look at one node: its height as the core sees it. */
    async observe(node: ChainNode, seen: Observation, at: string): Promise<ChainNode> {
        const out = await updateItem(
            this.repo,
            node.id,
            node.orgId,
            (n) => (n ? { ...n, height: seen.ok ? Math.max(seen.height, n.height ?? 0) : n.height, lastCheckedAt: at } : undefined),
            { conflict: () => new Conflict(`The node ${node.id} changed while it was observed`) },
        );
        return out ?? node;
    }

    /**
     * Marks the nodes a divergence names (and clears those it no longer names), each change written
     * with its event in the node's outbox: `node.diverged` when a node starts to disagree,
     * `node.recovered` when it agrees again. `publishOutbox` sends them.
     */
    async markDivergence(nodes: ChainNode[], divergence: Divergence | null, at: string): Promise<void> {
        for (const node of nodes) {
            const hash = divergence?.diverged[node.id];
            if ((hash === undefined) === !node.divergence) continue;
            await updateItem(
                this.repo,
                node.id,
                node.orgId,
                (n) => {
                    if (!n) return undefined;
                    const outbox = n.outbox ?? [];
                    if (hash !== undefined) {
                        if (n.divergence) return undefined;
                        const event = nodeEvent(n, 'node.diverged', at, { height: divergence!.height, hash, majority: divergence!.majority || null, others: Object.keys(divergence!.diverged).filter((id) => id !== n.id) });
                        return { ...n, status: 'diverged' as const, divergence: { height: divergence!.height, hash, majority: divergence!.majority, since: at }, outbox: [...outbox, event], updatedAt: at };
                    }
                    if (!n.divergence) return undefined;
                    const event = nodeEvent(n, 'node.recovered', at, { after: 'diverged', divergedSince: n.divergence.since, divergedAt: n.divergence.height });
                    return { ...n, status: n.reportedStatus ?? 'healthy', divergence: null, outbox: [...outbox, event], updatedAt: at };
                },
                { conflict: () => new Conflict(`The node ${node.id} changed while its divergence was recorded`) },
            );
        }
    }

    /** Publishes every node's outbox, removing each event once it is out (at least once: ids are stable). */
    async publishOutbox(publish: (event: EventEnvelope) => Promise<void>): Promise<EventEnvelope[]> {
        const sent: EventEnvelope[] = [];
        for (const node of (await this.list()).filter((n) => n.outbox?.length)) {
            for (const event of node.outbox!) {
                await publish(event);
                sent.push(event);
                await updateItem(this.repo, node.id, node.orgId, (n) => (n && n.outbox?.some((e) => e.id === event.id) ? { ...n, outbox: n.outbox.filter((e) => e.id !== event.id) } : undefined), {
                    conflict: () => new Conflict(`The node ${node.id} changed while its events were published`),
                });
            }
        }
        return sent;
    }

    async #find(nodeId: string): Promise<ChainNode | undefined> {
        const page = await this.repo.query({ query: 'SELECT * FROM c WHERE c.id = @id', parameters: [{ name: '@id', value: nodeId }] }, { maxItemCount: 2 });
        return page.items[0];
    }
}

/** True when `address` is allowed by one of the entries: an exact address, or an IPv4 prefix ending in '.' (e.g. `10.20.`). */
export function addressAllowed(address: string, allowed: string[]): boolean {
    const a = address.replace(/^::ffff:/, '');
    return allowed.some((entry) => (entry.endsWith('.') ? a.startsWith(entry) : a === entry));
}
