import type { EventEnvelope } from '../events/events';

/** A node's record, which the registry (core) and the watchdogs (members) share. */

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
