import { z } from 'zod';
import { PROPOSAL_EVENT_TYPES } from '../proposals/vocabulary';
import { parseInput } from '../validation';

/** Event types of API.md ("Events"). */
export const EVENT_TYPES = [
    'registration.submitted', 'registration.approved', 'registration.rejected', 'registration.expired',
    'org.activated',
    'account.registered', 'account.funded',
    ...PROPOSAL_EVENT_TYPES,
    'node.stalled', 'node.restarted', 'node.diverged', 'node.recovered', 'node.down',
    'treasury.low',
    'keystore.backed_up',
] as const;

/** One envelope for every event: on the topic, in the per-org feed and on webhooks. Consumers dedupe by `id`. */
export const eventEnvelope = z
    .object({
        id: z.string().min(1).max(128),
        type: z.enum(EVENT_TYPES),
        occurredAt: z.string().datetime(),
        orgIds: z.array(z.string().min(1).max(100)).min(1),
        subject: z.string().min(1).max(200),
        data: z.record(z.string(), z.unknown()),
        chain: z.object({ txHash: z.string(), blockNumber: z.number().int().nonnegative(), contract: z.string(), version: z.number().int().positive() }).optional(),
        /** Events about one proposal: 1, 2, … in the order they happened, and delivered in that order. */
        sequence: z.number().int().positive().optional(),
    })
    .strict();

export type EventEnvelope = z.infer<typeof eventEnvelope>;

/** The event publisher port. Delivery is at least once; publishing the same event again is harmless. */
export interface EventPublisher {
    publish(event: EventEnvelope): Promise<void>;
}

/** The envelope checked against its schema before anything is published. */
export const checkEvent = (event: unknown): EventEnvelope => parseInput(eventEnvelope, event, 'The event');
