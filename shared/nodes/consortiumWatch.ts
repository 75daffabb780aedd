import type { EventEnvelope, EventPublisher } from '../events/events';
import type { NodeRegistry, ReportedTransition } from './nodeRegistry';
import { findDivergence, type NodeProbe } from './watchdog';

/** What the core's round needs: the registry, a probe, the operator's own ledger endpoints and the events out. */
export interface ConsortiumWatchPorts {
    nodes: Pick<NodeRegistry, 'probeable' | 'observe' | 'markDivergence' | 'publishOutbox'>;
    probe: NodeProbe;
    /** The core's own ledger endpoints: the operator's nodes, the reference when the others split evenly. */
    referenceRpcUrls: string[];
    events: () => EventPublisher;
    /** Where each event published is logged, as a warning. */
    log: { warn(message: string): void };
    now?: () => Date;
}

/**
 * One round of the core's consortium watchdog: every probeable node's height observed, divergence at a
 * common height looked for across the nodes that answered (and the operator's own), the nodes marked
 * or cleared, and the events that came of it published (each logged as a warning).
 */
export async function watchConsortium(ports: ConsortiumWatchPorts): Promise<EventEnvelope[]> {
    const { nodes, probe } = ports;
    const at = (ports.now ?? (() => new Date()))().toISOString();
    // Only nodes whose rpcUrl is in the node network as the settings say now (a range removed since: not probed).
    const observed = await Promise.all(
        (await nodes.probeable()).map(async (n) => {
            const seen = await probe.head(n.rpcUrl);
            return { node: await nodes.observe(n, seen, at), seen };
        }),
    );
    const answering = observed.flatMap(({ node, seen }) => (seen.ok ? [{ id: node.id, rpcUrl: node.rpcUrl!, height: seen.height }] : []));
    const references = await Promise.all(ports.referenceRpcUrls.map(async (rpcUrl, i) => ({ id: `operator-${i}`, rpcUrl, seen: await probe.head(rpcUrl), reference: true })));
    const answeringReferences = references.flatMap(({ seen, ...r }) => (seen.ok ? [{ ...r, height: seen.height }] : []));
    const divergence = await findDivergence([...answering, ...answeringReferences], probe);
    // Only nodes that answered are judged: a node that did not answer keeps its mark until it does.
    await nodes.markDivergence(
        observed.filter((o) => o.seen.ok).map((o) => o.node),
        divergence,
        at,
    );
    const events = ports.events();
    const sent = await nodes.publishOutbox((e) => events.publish(e));
    for (const event of sent) ports.log.warn(JSON.stringify({ event: event.type, nodeId: event.data.nodeId, data: event.data }));
    return sent;
}

/**
 * A state change a member's watchdog reports for one of its own nodes: recorded in the registry, then
 * published as the event of its type (one id per transition, so a report sent again is the same event).
 */
export async function recordNodeTransition(
    ports: { nodes: Pick<NodeRegistry, 'recordTransition'>; events: () => EventPublisher },
    orgId: string,
    nodeId: string,
    transition: ReportedTransition,
): Promise<EventEnvelope> {
    const event = await ports.nodes.recordTransition(orgId, nodeId, transition);
    await ports.events().publish(event);
    return event;
}
