import { fork, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Logger } from 'pino';

/** A fault that outlives a restart (a node that keeps failing): applied again to the new process. */
interface Fault {
    stalledAt?: number;
    divergeFrom?: number;
    /** Killed for good: a restart starts a process that dies at once. */
    dead?: boolean;
}

interface NodeSlot {
    nodeId: string;
    port: number;
    child?: ChildProcess;
    stalledAt: number | null;
    divergeFrom: number | null;
    /** Set by `persist: true`: the fault comes back with every restart. */
    sticky?: Fault;
    restarts: number;
}

export interface LocalNodeInfo {
    nodeId: string;
    rpcUrl: string;
    enode: string;
    running: boolean;
    stalledAt: number | null;
    divergeFrom: number | null;
    sticky: boolean;
    restarts: number;
}

/**
 * Each member deployment's own ledger node: a relay process (`nodeRelayProcess`) in front of the
 * shared anvil chain, on a port that stays the node's across restarts. The console's fault endpoints
 * stall, diverge, resume or kill it; the member's watchdog restarts it (`POST /dev/nodes/{id}/restart`).
 */
export class LocalNodes {
    readonly #slots = new Map<string, NodeSlot>();
    #seq = 0;

    constructor(
        private readonly upstream: () => string | undefined,
        private readonly log: Logger,
    ) {}

    /** Starts the node if it is not running (idempotent), and says where it answers. */
    async ensure(nodeId: string): Promise<LocalNodeInfo> {
        let slot = this.#slots.get(nodeId);
        if (!slot) {
            slot = { nodeId, port: 0, stalledAt: null, divergeFrom: null, restarts: 0 };
            this.#slots.set(nodeId, slot);
        }
        if (!slot.child) await this.#spawn(slot);
        return this.#info(slot);
    }

    get(nodeId: string): LocalNodeInfo | undefined {
        const slot = this.#slots.get(nodeId);
        return slot && this.#info(slot);
    }

    list(): LocalNodeInfo[] {
        return [...this.#slots.values()].map((s) => this.#info(s));
    }

    async stall(nodeId: string, opts: { persist?: boolean; height?: number } = {}): Promise<LocalNodeInfo> {
        const slot = this.#running(nodeId);
        const state = await this.#command(slot, { cmd: 'stall', height: opts.height });
        slot.stalledAt = state.stalledAt;
        if (opts.persist) slot.sticky = { ...slot.sticky, stalledAt: state.stalledAt ?? undefined };
        this.log.info({ nodeId, stalledAt: slot.stalledAt, persist: !!opts.persist }, 'local node stalled');
        return this.#info(slot);
    }

    async diverge(nodeId: string, opts: { persist?: boolean; from?: number } = {}): Promise<LocalNodeInfo> {
        const slot = this.#running(nodeId);
        const state = await this.#command(slot, { cmd: 'diverge', from: opts.from });
        slot.divergeFrom = state.divergeFrom;
        if (opts.persist) slot.sticky = { ...slot.sticky, divergeFrom: state.divergeFrom ?? undefined };
        this.log.info({ nodeId, divergeFrom: slot.divergeFrom }, 'local node diverged');
        return this.#info(slot);
    }

    async resume(nodeId: string): Promise<LocalNodeInfo> {
        const slot = this.#slot(nodeId);
        slot.sticky = undefined;
        if (slot.child) {
            await this.#command(slot, { cmd: 'resume' });
            slot.stalledAt = slot.divergeFrom = null;
        } else await this.#spawn(slot);
        this.log.info({ nodeId }, 'local node resumed');
        return this.#info(slot);
    }

    /** SIGKILL: the node stops answering until it is restarted (with `persist`, restarts do not bring it back). */
    async kill(nodeId: string, opts: { persist?: boolean } = {}): Promise<LocalNodeInfo> {
        const slot = this.#slot(nodeId);
        if (opts.persist) slot.sticky = { ...slot.sticky, dead: true };
        await this.#stopChild(slot, 'SIGKILL');
        this.log.info({ nodeId, persist: !!opts.persist }, 'local node killed');
        return this.#info(slot);
    }

    /** What the node's controller does: stop the process (if it runs) and start a new one on the same port. */
    async restart(nodeId: string): Promise<LocalNodeInfo> {
        const slot = this.#slot(nodeId);
        await this.#stopChild(slot, 'SIGTERM');
        slot.restarts += 1;
        slot.stalledAt = slot.divergeFrom = null;
        if (!slot.sticky?.dead) await this.#spawn(slot);
        this.log.info({ nodeId, restarts: slot.restarts, sticky: !!slot.sticky }, 'local node restarted');
        return this.#info(slot);
    }

    async stopAll(): Promise<void> {
        await Promise.all([...this.#slots.values()].map((s) => this.#stopChild(s, 'SIGTERM')));
    }

    #slot(nodeId: string): NodeSlot {
        const slot = this.#slots.get(nodeId);
        if (!slot) throw Object.assign(new Error(`No local node ${nodeId}`), { status: 404 });
        return slot;
    }

    #running(nodeId: string): NodeSlot {
        const slot = this.#slot(nodeId);
        if (!slot.child) throw Object.assign(new Error(`The node ${nodeId} is not running (restart or resume it first)`), { status: 409 });
        return slot;
    }

    #info(slot: NodeSlot): LocalNodeInfo {
        return {
            nodeId: slot.nodeId,
            rpcUrl: `http://127.0.0.1:${slot.port}`,
            enode: localEnode(slot.nodeId, slot.port),
            running: !!slot.child,
            stalledAt: slot.stalledAt,
            divergeFrom: slot.divergeFrom,
            sticky: !!slot.sticky,
            restarts: slot.restarts,
        };
    }

    async #spawn(slot: NodeSlot): Promise<void> {
        const upstream = this.upstream();
        if (!upstream) throw new Error('No local ledger to put a node in front of');
        const ext = path.extname(__filename);
        const child = fork(path.join(__dirname, `nodeRelayProcess${ext}`), [upstream, String(slot.port)], { execArgv: process.execArgv, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
        let stderr = '';
        child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
        const port = await new Promise<number>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`The local node ${slot.nodeId} did not start within 10 s`)), 10_000);
            child.on('message', (m: { type: string; port?: number; message?: string }) => {
                if (m.type === 'ready') {
                    clearTimeout(timer);
                    resolve(m.port!);
                } else if (m.type === 'failed') {
                    clearTimeout(timer);
                    reject(new Error(`The local node ${slot.nodeId} failed to start: ${m.message}`));
                }
            });
            child.once('exit', (code) => {
                clearTimeout(timer);
                reject(new Error(`The local node ${slot.nodeId} exited (${code}) ${stderr.trim()}`));
            });
        });
        slot.port = port;
        slot.child = child;
        child.once('exit', () => {
            if (slot.child === child) slot.child = undefined;
        });
        if (slot.sticky?.stalledAt !== undefined) slot.stalledAt = (await this.#command(slot, { cmd: 'stall', height: slot.sticky.stalledAt })).stalledAt;
        if (slot.sticky?.divergeFrom !== undefined) slot.divergeFrom = (await this.#command(slot, { cmd: 'diverge', from: slot.sticky.divergeFrom })).divergeFrom;
    }

    async #stopChild(slot: NodeSlot, signal: NodeJS.Signals): Promise<void> {
        const child = slot.child;
        if (!child) return;
        slot.child = undefined;
        await new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill(signal);
        });
    }

    #command(slot: NodeSlot, message: { cmd: string; height?: number; from?: number }): Promise<{ stalledAt: number | null; divergeFrom: number | null }> {
        const child = slot.child!;
        const seq = ++this.#seq;
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`The local node ${slot.nodeId} did not answer`)), 10_000);
            const onMessage = (m: { type: string; seq?: number; stalledAt: number | null; divergeFrom: number | null; message?: string }) => {
                if (m.seq !== seq) return;
                clearTimeout(timer);
                child.off('message', onMessage);
                if (m.type === 'error') reject(new Error(m.message));
                else resolve(m);
            };
            child.on('message', onMessage);
            child.send({ ...message, seq });
        });
    }
}

/** A stable enode URL for a local node: its "public key" derived from its id, its port as the p2p port. */
export function localEnode(nodeId: string, port: number): string {
    return `enode://${createHash('sha512').update(`flexchange-local-node:${nodeId}`).digest('hex')}@127.0.0.1:${port || 30303}`;
}
