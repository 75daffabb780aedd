import type { NodeConfig, NodeWatchdog, WatchedNode } from './watchdog';

/** Where a watch round's lines go (the timer's invocation log; the host collects it). */
export interface WatchLog {
    log(message: string): void;
    warn(message: string): void;
    error(message: string): void;
}

/** What a member's round needs: its own nodes as its settings list them, its watchdog, and the core's registry. */
export interface MemberWatchPorts {
    configured: NodeConfig[];
    watchdog: Pick<NodeWatchdog, 'configure' | 'list' | 'markRegistered' | 'checkAll'>;
    core: { register(node: WatchedNode): Promise<void> };
    log: WatchLog;
}

// The node list is a setting: recorded once per watchdog (again after a failed try).
const configuring = new WeakMap<object, Promise<void>>();

function configureOnce({ watchdog, configured }: MemberWatchPorts): Promise<void> {
    let done = configuring.get(watchdog);
    if (!done) {
        done = watchdog.configure(configured).catch((err: unknown) => {
            configuring.delete(watchdog);
            throw err;
        });
        configuring.set(watchdog, done);
    }
    return done;
}

/** How the core's registry should have the node: registered again when this changes. */
const registeredAs = (node: WatchedNode) => `${node.enode} ${node.rpcUrl}`;

/**
 * One round of a member's watchdog: its configured nodes recorded, each registered with the core
 * when the core does not have it as it is (a failure is logged and tried again next round), then
 * every node checked (and restarted when stalled); a node whose status changed is logged, `down` as an alert.
 */
export async function watchOwnNodes(ports: MemberWatchPorts): Promise<void> {
    const { watchdog, core, log } = ports;
    await configureOnce(ports);
    const before = new Map((await watchdog.list()).map((n) => [n.id, n]));
    for (const node of before.values()) {
        if (node.coreRegisteredAs === registeredAs(node)) continue;
        try {
            await core.register(node);
            await watchdog.markRegistered(node.id, registeredAs(node));
        } catch (err) {
            log.warn(`registering node ${node.id} with the core failed: ${(err as Error).message}`);
        }
    }
    for (const node of await watchdog.checkAll()) {
        const was = before.get(node.id)?.status;
        if (node.status === was) continue;
        const line = JSON.stringify({ event: 'node.status', nodeId: node.id, from: was, to: node.status, height: node.height, restarts: node.restarts, error: node.watch.lastError });
        if (node.status === 'down') log.error(`ALERT ${line}`);
        else log.log(line);
    }
}
