import { updateItem, type Repository } from '../documents/repository';
import { Conflict, Invalid, NotFound } from '../errors';
import type { EventEnvelope } from '../events/events';
import { inRange, neverReachable, parseIp, type IpRange } from '../net/addresses';
import type { ChainNode } from './types';
import type { Divergence, NodeEventType, Observation } from './watchdog';

export { NODE_STATUSES, type ChainNode } from './types';

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

/**
 * Who holds what in the node registry (container `nodeClaims`, partition `/id`), each written create-only
 * so two organisations racing for one node id or one enode key cannot both win:
 * `node:<nodeId>` → its organisation; `enode:<public key>` → its organisation and node;
 * `org:<orgId>` → the node ids the organisation holds (its slots, under the per-organisation cap, ETag-guarded).
 */
export interface NodeClaim {
    id: string;
    orgId: string;
    nodeId?: string;
    nodeIds?: string[];
    claimedAt: string;
}

export interface NodeNetworkPolicy {
    /** The consortium's node network (`FLEXCHANGE_NODE_NETWORK_RANGES`): the only addresses the core sends JSON-RPC to. */
    ranges: IpRange[];
    /** Nodes one organisation may register (`FLEXCHANGE_NODE_MAX_PER_ORG`). */
    maxPerOrg: number;
    /** The consortium's own nodes, not registered by any member (the core's validators: `FLEXCHANGE_LEDGER_BOOTNODES`). */
    consortiumNodes?: string[];
}

/**
 * Why the core must not send JSON-RPC to `rpcUrl` (undefined when it may): http(s), no credentials, an IP
 * address (not a host name: a name could be pointed elsewhere after the check, and the core probes it on
 * every watchdog run) inside the node network's ranges, and never a metadata or unspecified address.
 */
export function rpcUrlProblem(rpcUrl: string, ranges: IpRange[]): string | undefined {
    let u: URL;
    try {
        u = new URL(rpcUrl);
    } catch {
        return 'not a URL';
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return 'http or https only';
    if (u.username || u.password) return 'no user:password@ in the URL';
    const ip = parseIp(u.hostname);
    if (!ip) return `${u.hostname} is a host name: give the node's IP address in the node network (FLEXCHANGE_NODE_NETWORK_RANGES)`;
    const never = neverReachable(ip);
    if (never) return `${u.hostname} is ${never}`;
    if (!ranges.some((r) => inRange(ip, r))) {
        return ranges.length
            ? `${u.hostname} is outside the node network (FLEXCHANGE_NODE_NETWORK_RANGES: ${ranges.map((r) => r.text).join(', ')})`
            : `no node network is configured (FLEXCHANGE_NODE_NETWORK_RANGES is empty), so no rpcUrl is accepted`;
    }
    return undefined;
}

/** `enode://<128 hex>@<host>:<port>[?discport=<port>]`, as geth's static-nodes.json lists them. */
export const ENODE_RE = /^enode:\/\/[0-9a-f]{128}@(\[[0-9a-f:]+\]|[0-9]{1,3}(\.[0-9]{1,3}){3}|[a-z0-9.-]{1,253}):[0-9]{1,5}(\?discport=[0-9]{1,5})?$/;

/**
 * The node registry: each member deployment registers its own nodes (a node id belongs to one
 * organisation for good); the consortium's static nodes list is made from it. Replaces the seed's
 * unauthenticated registrar port.
 */
export class NodeRegistry {
    constructor(
        private readonly repo: Repository<ChainNode>,
        private readonly claims: Repository<NodeClaim>,
        private readonly network: NodeNetworkPolicy,
    ) {}

    /**
     * Registers (or updates) one of the organisation's nodes. The node id, the enode key and a slot under
     * the organisation's cap are each claimed create-only (or under an ETag) before the record is written;
     * what this call claimed is given back when a later claim fails.
     */
    async register(orgId: string, input: { nodeId: string; enode: string; rpcUrl?: string }): Promise<{ node: ChainNode; created: boolean }> {
        if (!ENODE_RE.test(input.enode)) throw new Invalid('The enode URL is not valid', [{ path: 'enode', message: 'enode://<128 hex>@<host>:<port>' }]);
        if (input.rpcUrl !== undefined) {
            const problem = rpcUrlProblem(input.rpcUrl, this.network.ranges);
            if (problem) throw new Invalid(`The node's rpcUrl is not in the consortium's node network: ${problem}`, [{ path: 'rpcUrl', message: problem }]);
        }
        const { nodeId } = input;
        const now = new Date().toISOString();
        const undo: (() => Promise<unknown>)[] = [];
        const giveBack = async () => {
            for (const step of undo.reverse()) await step().catch(() => undefined);
        };
        try {
            if (await this.#claim({ id: `node:${nodeId}`, orgId, claimedAt: now }, (c) => c.orgId === orgId)) {
                undo.push(() => this.claims.delete(`node:${nodeId}`, `node:${nodeId}`));
                // A node registered before ids were claimed: its record is the claim.
                const legacy = await this.#find(nodeId);
                if (legacy && legacy.orgId !== orgId) throw new Conflict(`The node ${nodeId} belongs to another organisation`, 'node_taken');
            }
            const existing = (await this.repo.read(nodeId, orgId))?.item;
            if (existing && existing.enode === input.enode && existing.rpcUrl === input.rpcUrl) return { node: existing, created: false };
            if (!existing) undo.push(...(await this.#takeSlot(orgId, nodeId, now)));
            const key = enodeKey(input.enode);
            if (!existing || enodeKey(existing.enode) !== key) {
                if (await this.#claim({ id: `enode:${key}`, orgId, nodeId, claimedAt: now }, (c) => c.orgId === orgId && c.nodeId === nodeId)) {
                    undo.push(() => this.claims.delete(`enode:${key}`, `enode:${key}`));
                    const legacy = (await this.list()).find((n) => n.id !== nodeId && enodeKey(n.enode) === key);
                    if (legacy) throw new Conflict(`That enode is registered as node ${legacy.id}`, 'enode_taken');
                }
            }
            if (existing) {
                const node = (await this.repo.upsert({ ...existing, enode: input.enode, rpcUrl: input.rpcUrl, updatedAt: now })).item;
                const oldKey = enodeKey(existing.enode);
                if (oldKey !== key) await this.claims.delete(`enode:${oldKey}`, `enode:${oldKey}`).catch(() => false);
                return { node, created: false };
            }
            try {
                const node = (await this.repo.create({ id: nodeId, orgId, enode: input.enode, rpcUrl: input.rpcUrl, height: null, status: 'healthy', lastCheckedAt: null, restarts: 0, registeredAt: now, updatedAt: now })).item;
                return { node, created: true };
            } catch (err) {
                // The same organisation registering the same node twice at once: the other call made it.
                if (!(err instanceof Conflict)) throw err;
                undo.length = 0;
                return this.register(orgId, input);
            }
        } catch (err) {
            await giveBack();
            throw err;
        }
    }

    /** Nodes the core may probe: those whose rpcUrl is in the node network as the settings say now. */
    async probeable(): Promise<(ChainNode & { rpcUrl: string })[]> {
        return (await this.list()).filter((n): n is ChainNode & { rpcUrl: string } => !!n.rpcUrl && !rpcUrlProblem(n.rpcUrl, this.network.ranges));
    }

    /**
     * A create-only claim: true when this call made it, false when one that `mine` accepts was there
     * already; a claim held by someone else is a 409.
     */
    async #claim(claim: NodeClaim, mine: (c: NodeClaim) => boolean): Promise<boolean> {
        try {
            await this.claims.create(claim);
            return true;
        } catch (err) {
            if (!(err instanceof Conflict)) throw err;
        }
        const held = (await this.claims.read(claim.id, claim.id))?.item;
        if (!held) return this.#claim(claim, mine); // given back in between: try again
        if (mine(held)) return false;
        throw claim.id.startsWith('node:')
            ? new Conflict(`The node ${claim.id.slice(5)} belongs to another organisation`, 'node_taken')
            : new Conflict(`That enode is registered as node ${held.nodeId ?? ''}`.trim(), 'enode_taken');
    }

    /** One of the organisation's slots for `nodeId` (under the cap, ETag-guarded); returns how to give it back. */
    async #takeSlot(orgId: string, nodeId: string, now: string): Promise<(() => Promise<unknown>)[]> {
        const id = `org:${orgId}`;
        // The first time: the organisation's nodes registered before slots were kept.
        const seed = (await this.claims.read(id, id)) ? [] : (await this.list(orgId)).map((n) => n.id);
        let took = false;
        await updateItem(
            this.claims,
            id,
            id,
            (cur) => {
                const held = [...new Set([...(cur?.nodeIds ?? seed)])];
                took = false;
                if (held.includes(nodeId)) return cur ? undefined : { id, orgId, nodeIds: held, claimedAt: now };
                if (held.length >= this.network.maxPerOrg) {
                    throw new Conflict(`Your organisation has ${held.length} nodes registered, the most allowed (FLEXCHANGE_NODE_MAX_PER_ORG=${this.network.maxPerOrg})`, 'node_limit');
                }
                took = true;
                return { id, orgId, nodeIds: [...held, nodeId], claimedAt: cur?.claimedAt ?? now };
            },
            { conflict: () => new Conflict(`Your organisation's nodes changed while this one was registered; try again`) },
        );
        if (!took) return [];
        return [() => updateItem(this.claims, id, id, (cur) => (cur?.nodeIds?.includes(nodeId) ? { ...cur, nodeIds: cur.nodeIds.filter((n) => n !== nodeId) } : undefined), { conflict: () => new Conflict('slot') })];
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

    /**
     * The nodes a node of the consortium connects to (static-nodes.json, a new member's bootnodes): the consortium's own
     * (the validators) first, then every registered node's enode URL, except those that are down.
     */
    async staticNodes(): Promise<string[]> {
        const registered = (await this.list()).filter((n) => n.status !== 'down').map((n) => n.enode);
        return [...new Set([...(this.network.consortiumNodes ?? []), ...registered])];
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

/** The node's public key: the part of its enode URL that identifies it. */
const enodeKey = (enode: string) => enode.slice('enode://'.length, 'enode://'.length + 128);

/** True when `address` is allowed by one of the entries: an exact address, or an IPv4 prefix ending in '.' (e.g. `10.20.`). */
export function addressAllowed(address: string, allowed: string[]): boolean {
    const a = address.replace(/^::ffff:/, '');
    return allowed.some((entry) => (entry.endsWith('.') ? a.startsWith(entry) : a === entry));
}
