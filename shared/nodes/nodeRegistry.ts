import type { Repository } from '../documents/repository';
import { Conflict, Invalid } from '../errors';

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
}

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
