import { z } from 'zod';
import type { Repository } from '../documents/repository';
import { updateItem } from '../documents/repository';
import { Conflict } from '../errors';
import type { ChainNode } from './types';

/** What one look at a node saw: its head block, or why it did not answer. */
export type Observation = { ok: true; height: number; hash: string } | { ok: false; error: string };

/** Reads a node's head (and a block's hash) over JSON-RPC. */
export interface NodeProbe {
    head(rpcUrl: string): Promise<Observation>;
    hashAt(rpcUrl: string, height: number): Promise<string | null>;
}

/** Restarts one node: a VM scale set instance in Azure, the devhost's relay process locally. */
export interface NodeController {
    readonly kind: string;
    restart(node: WatchedNode): Promise<void>;
}

export interface WatchdogPolicy {
    /** Checks without progress (or with RPC errors) before a healthy node is `stalled`. */
    stallChecks: number;
    /** Wait after a restart before the next one, doubling with each restart that did not help. */
    backoffSeconds: number;
    /** Restarts within any hour; past it the node is `down` and `node.down` is published. */
    maxRestartsPerHour: number;
}

export const NODE_EVENT_TYPES = ['node.stalled', 'node.restarted', 'node.recovered', 'node.down', 'node.diverged'] as const;
export type NodeEventType = (typeof NODE_EVENT_TYPES)[number];

/** One transition of a node's state, kept on the node (newest last) and reported until the core has it. */
export interface Transition {
    at: string;
    type: NodeEventType;
    from: ChainNode['status'];
    to: ChainNode['status'];
    data: Record<string, unknown>;
    reported: boolean;
}

export interface WatchState {
    lastHash: string | null;
    /** Consecutive checks without progress or with errors. */
    quietChecks: number;
    lastError: string | null;
    /** Restarts within the last hour (ISO times). */
    recentRestarts: string[];
    /** Restarts since the node last made progress. */
    failedRestarts: number;
    nextRestartAt: string | null;
}

/** A member's own node (container `nodes` of the member's database, partition `/orgId`). */
export interface WatchedNode extends ChainNode {
    rpcUrl: string;
    /** Where the node runs, for its controller: a scale set instance in Azure. */
    vmss?: VmssInstance;
    watch: WatchState;
    history: Transition[];
    /** The enode and RPC URL the core's registry has for this node (registered again when they change). */
    coreRegisteredAs?: string;
}

export const vmssInstance = z
    .object({ subscriptionId: z.string().min(1), resourceGroup: z.string().min(1), scaleSet: z.string().min(1), instanceId: z.string().min(1) })
    .strict();
export type VmssInstance = z.infer<typeof vmssInstance>;

/** A node of this member deployment as its settings list it (`FLEXCHANGE_NODES`). */
export const nodeConfig = z
    .object({
        nodeId: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/),
        rpcUrl: z.string().url(),
        enode: z.string().min(1).max(400),
        vmss: vmssInstance.optional(),
    })
    .strict();
export type NodeConfig = z.infer<typeof nodeConfig>;

const HISTORY_KEPT = 50;
const HOUR_MS = 3600_000;

const freshWatch = (): WatchState => ({ lastHash: null, quietChecks: 0, lastError: null, recentRestarts: [], failedRestarts: 0, nextRestartAt: null });

/**
 * One check of one node, as a pure function of its state, what the check saw and the time:
 * the next state, whether to restart it now, and the transitions to publish.
 *
 * healthy ──(K quiet checks)──▶ stalled ──restart──▶ restarting ──(progress)──▶ healthy
 *                                   ▲                     │ no progress after the back-off: restart again
 *                                   └── down ◀── (cap of restarts per hour reached)
 */
export function step(node: WatchedNode, seen: Observation, now: Date, policy: WatchdogPolicy): { node: WatchedNode; restart: boolean } {
    const at = now.toISOString();
    const watch: WatchState = { ...node.watch, recentRestarts: node.watch.recentRestarts.filter((t) => now.getTime() - Date.parse(t) < HOUR_MS) };
    let { status, restarts } = node;
    const transitions: Transition[] = [];
    const move = (type: NodeEventType, to: ChainNode['status'], data: Record<string, unknown>) => {
        transitions.push({ at, type, from: status, to, data, reported: false });
        status = to;
    };
    const progress = seen.ok && (node.height === null || seen.height > node.height);
    let height = node.height;
    let restart = false;
    if (seen.ok) {
        height = Math.max(seen.height, node.height ?? 0);
        watch.lastHash = seen.hash;
    }
    if (progress) {
        if (status !== 'healthy' && status !== 'diverged') move('node.recovered', 'healthy', { height: seen.height, after: node.status, restarts: watch.failedRestarts });
        Object.assign(watch, { quietChecks: 0, lastError: null, failedRestarts: 0, nextRestartAt: null });
    } else {
        watch.quietChecks += 1;
        watch.lastError = seen.ok ? null : seen.error;
        const reason = seen.ok ? 'no_progress' : 'rpc_error';
        if ((status === 'healthy' || status === 'diverged') && watch.quietChecks >= policy.stallChecks) {
            move('node.stalled', 'stalled', { height, reason, checks: watch.quietChecks, ...(seen.ok ? {} : { error: seen.error }) });
        }
        if (status === 'stalled' || status === 'restarting' || status === 'down') {
            const due = !watch.nextRestartAt || now.getTime() >= Date.parse(watch.nextRestartAt);
            if (due && watch.recentRestarts.length < policy.maxRestartsPerHour) {
                restart = true;
                restarts += 1;
                watch.failedRestarts += 1;
                watch.recentRestarts.push(at);
                watch.nextRestartAt = new Date(now.getTime() + policy.backoffSeconds * 1000 * 2 ** (watch.failedRestarts - 1)).toISOString();
                move('node.restarted', 'restarting', { height, reason, attempt: watch.failedRestarts, restartsInLastHour: watch.recentRestarts.length });
            } else if (due && status !== 'down') {
                move('node.down', 'down', { height, reason, restartsInLastHour: watch.recentRestarts.length, ...(seen.ok ? {} : { error: seen.error }) });
            }
        }
    }
    const history = [...node.history, ...transitions];
    // Reported transitions beyond the kept window go; unreported ones stay until the core has them.
    while (history.length > HISTORY_KEPT && history[0]!.reported) history.shift();
    return { node: { ...node, status, restarts, height, lastCheckedAt: at, updatedAt: at, watch, history }, restart };
}

/** Where a member's transitions go: the core records them in its registry and publishes them as events. */
export interface TransitionReporter {
    report(node: WatchedNode, transition: Transition): Promise<void>;
}

/**
 * A member deployment's watchdog over its own nodes: each check probes every node, moves its
 * state (stored with its ETag, so an overlapping run cannot double a restart), restarts it
 * through the controller when `step` says so, then reports the transitions not yet reported.
 */
export class NodeWatchdog {
    constructor(
        private readonly repo: Repository<WatchedNode>,
        private readonly deps: { orgId: string; probe: NodeProbe; controller: NodeController; reporter: TransitionReporter; policy: WatchdogPolicy; now?: () => Date; log?: (message: string) => void },
    ) {}

    /** Makes sure every configured node has a record (and the record follows the configuration). */
    async configure(nodes: NodeConfig[]): Promise<void> {
        for (const cfg of nodes) {
            await updateItem(
                this.repo,
                cfg.nodeId,
                this.deps.orgId,
                (current) => {
                    if (current && current.rpcUrl === cfg.rpcUrl && current.enode === cfg.enode && JSON.stringify(current.vmss) === JSON.stringify(cfg.vmss)) return undefined;
                    const now = new Date().toISOString();
                    return current
                        ? { ...current, rpcUrl: cfg.rpcUrl, enode: cfg.enode, vmss: cfg.vmss, updatedAt: now }
                        : { id: cfg.nodeId, orgId: this.deps.orgId, enode: cfg.enode, rpcUrl: cfg.rpcUrl, vmss: cfg.vmss, height: null, status: 'healthy' as const, lastCheckedAt: null, restarts: 0, registeredAt: now, updatedAt: now, watch: freshWatch(), history: [] };
                },
                { conflict: () => new Conflict(`The node ${cfg.nodeId} changed under the watchdog`) },
            );
        }
    }

    async markRegistered(nodeId: string, as: string): Promise<void> {
        await this.#annotate(nodeId, (n) => ({ ...n, coreRegisteredAs: as }));
    }

    async list(): Promise<WatchedNode[]> {
        const page = await this.repo.query({ query: 'SELECT * FROM c WHERE c.orgId = @org ORDER BY c.registeredAt', parameters: [{ name: '@org', value: this.deps.orgId }] }, { partitionKey: this.deps.orgId, maxItemCount: 100 });
        return page.items;
    }

    /** One round over every node. Returns each node's state after it. */
    async checkAll(): Promise<WatchedNode[]> {
        const out: WatchedNode[] = [];
        for (const node of await this.list()) out.push(await this.check(node.id));
        return out;
    }

    async check(nodeId: string): Promise<WatchedNode> {
        const current = await this.repo.read(nodeId, this.deps.orgId);
        if (!current) throw new Conflict(`No node ${nodeId}`);
        const seen = await this.deps.probe.head(current.item.rpcUrl);
        const { node, restart } = step(current.item, seen, (this.deps.now ?? (() => new Date()))(), this.deps.policy);
        // The ETag claims the check: a concurrent run that read the same state loses here and restarts nothing.
        let stored = (await this.repo.replace(node, current.etag)).item;
        if (restart) {
            try {
                await this.deps.controller.restart(stored);
                this.deps.log?.(`node ${nodeId}: restarted through ${this.deps.controller.kind}`);
            } catch (err) {
                this.deps.log?.(`node ${nodeId}: restart through ${this.deps.controller.kind} failed: ${(err as Error).message}`);
                stored = await this.#annotate(nodeId, (n) => ({ ...n, watch: { ...n.watch, lastError: `restart failed: ${(err as Error).message}` } }));
            }
        }
        return this.#reportPending(stored);
    }

    async #reportPending(node: WatchedNode): Promise<WatchedNode> {
        let current = node;
        for (const t of node.history.filter((h) => !h.reported)) {
            try {
                await this.deps.reporter.report(current, t);
            } catch (err) {
                // Reported on a later check: the transition stays unreported until the core has it.
                this.deps.log?.(`node ${node.id}: reporting ${t.type} failed: ${(err as Error).message}`);
                break;
            }
            current = await this.#annotate(node.id, (n) => ({ ...n, history: n.history.map((h) => (h.at === t.at && h.type === t.type ? { ...h, reported: true } : h)) }));
        }
        return current;
    }

    async #annotate(nodeId: string, change: (n: WatchedNode) => WatchedNode): Promise<WatchedNode> {
        const out = await updateItem(this.repo, nodeId, this.deps.orgId, (n) => (n ? change(n) : undefined), { conflict: () => new Conflict(`The node ${nodeId} changed under the watchdog`) });
        return out!;
    }
}

/** The consortium's view (core): which nodes disagree with the others about a block they all have. */
export interface Divergence {
    height: number;
    /** The hash most nodes have at that height. */
    majority: string;
    /** Node id → the hash it has, for the nodes that disagree. */
    diverged: Record<string, string>;
}

/**
 * Compares the nodes' block hashes at the highest height all of them have reached. Nodes outside the
 * largest group of agreeing nodes are diverged; between groups of the same size, the one with a
 * reference node (the operator's own) wins, else every node that disagrees is diverged.
 */
export async function findDivergence(nodes: { id: string; rpcUrl: string; height: number; reference?: boolean }[], probe: NodeProbe): Promise<Divergence | null> {
    if (nodes.length < 2) return null;
    const height = Math.min(...nodes.map((n) => n.height));
    const hashes = await Promise.all(nodes.map(async (n) => ({ id: n.id, hash: await probe.hashAt(n.rpcUrl, height).catch(() => null) })));
    const known = hashes.filter((h): h is { id: string; hash: string } => h.hash !== null);
    if (known.length < 2) return null;
    const groups = new Map<string, string[]>();
    for (const h of known) groups.set(h.hash, [...(groups.get(h.hash) ?? []), h.id]);
    if (groups.size === 1) return null;
    const references = new Set(nodes.filter((n) => n.reference).map((n) => n.id));
    const weight = (ids: string[]) => ids.length * 2 + (ids.some((id) => references.has(id)) ? 1 : 0);
    const sorted = [...groups.entries()].sort((a, b) => weight(b[1]) - weight(a[1]));
    const tie = weight(sorted[0]![1]) === weight(sorted[1]![1]);
    const majority = tie ? '' : sorted[0]![0];
    const diverged = Object.fromEntries(known.filter((h) => h.hash !== majority && !references.has(h.id)).map((h) => [h.id, h.hash]));
    return { height, majority, diverged };
}

/** JSON-RPC over fetch, with a timeout: `eth_getBlockByNumber`. */
export class JsonRpcProbe implements NodeProbe {
    constructor(private readonly timeoutMs = 3000) {}

    async head(rpcUrl: string): Promise<Observation> {
        try {
            const block = await this.#block(rpcUrl, 'latest');
            if (!block) return { ok: false, error: 'no latest block' };
            return { ok: true, height: Number(BigInt(block.number)), hash: block.hash };
        } catch (err) {
            return { ok: false, error: (err as Error).message };
        }
    }

    async hashAt(rpcUrl: string, height: number): Promise<string | null> {
        return (await this.#block(rpcUrl, `0x${height.toString(16)}`))?.hash ?? null;
    }

    async #block(rpcUrl: string, tag: string): Promise<{ number: string; hash: string } | null> {
        const res = await fetch(rpcUrl, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_getBlockByNumber', params: [tag, false] }),
            // A node is asked at its own address only: a redirect could point anywhere.
            redirect: 'error',
            signal: AbortSignal.timeout(this.timeoutMs),
        }).catch((err: Error) => {
            throw new Error(`unreachable (${(err.cause as Error | undefined)?.message ?? err.message})`);
        });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        const body = (await res.json()) as { result?: { number: string; hash: string } | null; error?: { message: string } };
        if (body.error) throw new Error(`RPC error: ${body.error.message}`);
        return body.result ?? null;
    }
}
