import { keptUntilFailed } from '../boundedMap';
import type { Repository } from '../documents/repository';
import { Conflict, NotFound } from '../errors';
import { checkEvent, type EventEnvelope, type EventPublisher } from './events';

/** An event in one organisation's feed (container `events`, partition `/orgId`), numbered in that feed. */
export interface FeedEntry {
    id: string;
    kind: 'event';
    orgId: string;
    seq: number;
    event: EventEnvelope;
    storedAt: string;
}

/** The feed's counter (one per organisation, in the same partition). */
interface FeedSequence {
    id: '_sequence';
    kind: 'sequence';
    orgId: string;
    value: number;
}

export type FeedDoc = FeedEntry | FeedSequence;

/**
 * How long a gap in the numbering may be an append still in flight: a reader stops before a
 * gap younger than this, so a late-committing append is never skipped by a cursor.
 */
const IN_FLIGHT_MS = 5_000;

/** How many appends a process remembers, to know a repeat without asking the store. */
const MAX_REMEMBERED_APPENDS = 20_000;

/**
 * The per-organisation event feed (`GET /orgs/{orgId}/events?after=`): every event an
 * organisation is concerned by, numbered in the order it was appended, read with a cursor.
 * Appending the same event again (an at-least-once publisher) is a no-op: the event id is
 * the entry's id in the organisation's partition, written create-only.
 */
export class EventFeed {
    /** This process's appends by organisation and event id, the recent ones kept: a repeat joins or skips its first. */
    readonly #appends = new Map<string, Promise<void>>();

    constructor(private readonly repo: Repository<FeedDoc>) {}

    /**
     * Appends the event to the organisation's feed once. A repeat in this process (an activity or delivery
     * run again) waits for the first append, or, when that one is done, is nothing; only a failed append is
     * tried again. A repeat from another process takes a number and finds the entry there: a gap in the
     * numbering, which readers wait out (`IN_FLIGHT_MS`), and no second entry. (Each append read the entry
     * first: one request more for every event and organisation, to spare a gap in a rare retry.)
     */
    append(orgId: string, event: EventEnvelope): Promise<void> {
        return keptUntilFailed(this.#appends, `${orgId}\n${event.id}`, () => this.#append(orgId, event), MAX_REMEMBERED_APPENDS);
    }

    async #append(orgId: string, event: EventEnvelope): Promise<void> {
        const seq = await this.#next(orgId);
        try {
            await this.repo.create({ id: event.id, kind: 'event', orgId, seq, event, storedAt: new Date().toISOString() });
        } catch (err) {
            // A concurrent append of the same event won; its number stands, this one is a harmless gap.
            if (!(err instanceof Conflict)) throw err;
        }
    }

    /**
     * Events after `after` (a sequence number from an earlier page), oldest first, at most `limit`.
     * `next` is the cursor for the following call.
     */
    async read(orgId: string, after = 0, limit = 100): Promise<{ items: (EventEnvelope & { seq: number })[]; next: number }> {
        const page = await this.repo.query(
            // The organisation in the filter as well as the partition key: a store that ignores the latter must not leak another feed.
            { query: 'SELECT * FROM c WHERE c.orgId = @org AND c.kind = "event" AND c.seq > @after ORDER BY c.seq', parameters: [{ name: '@org', value: orgId }, { name: '@after', value: after }] },
            { partitionKey: orgId, maxItemCount: limit },
        );
        const items: (EventEnvelope & { seq: number })[] = [];
        let last = after;
        let expected = after + 1;
        for (const doc of page.items as FeedEntry[]) {
            // A gap may be an append that has its number but is not written yet: stop before a fresh one.
            if (doc.seq !== expected && Date.now() - Date.parse(doc.storedAt) < IN_FLIGHT_MS) break;
            items.push({ ...doc.event, seq: doc.seq });
            last = doc.seq;
            expected = doc.seq + 1;
            if (items.length >= limit) break;
        }
        return { items, next: last };
    }

    /** The next number of the organisation's feed: one increment, the counter made first only when it is missing. */
    async #next(orgId: string): Promise<number> {
        const increment = async () => ((await this.repo.patch('_sequence', orgId, [{ op: 'incr', path: '/value', value: 1 }])).item as FeedSequence).value;
        try {
            return await increment();
        } catch (err) {
            if (!(err instanceof NotFound)) throw err;
        }
        try {
            await this.repo.create({ id: '_sequence', kind: 'sequence', orgId, value: 0 });
        } catch (err) {
            // Made meanwhile by a concurrent first append: its counter is the one to increment.
            if (!(err instanceof Conflict)) throw err;
        }
        return increment();
    }
}

/**
 * Publishes into the feed of every organisation concerned, then to whatever follows an append
 * (webhook deliveries), then to the bus. Each step tolerates a repeat, so a retry after a failure
 * fills whatever is missing.
 */
export class FeedingPublisher implements EventPublisher {
    constructor(
        private readonly feed: EventFeed,
        private readonly next: EventPublisher,
        private readonly afterAppend: ((orgId: string, event: EventEnvelope) => Promise<void>)[] = [],
    ) {}

    async publish(event: EventEnvelope): Promise<void> {
        checkEvent(event);
        // Each organisation's feed is its own, and the bus waits for none of them (a member's copy of a
        // proposal comes from the bus: a burst's feed appends held it back by their round trips). Done
        // when all have it; a failure of any fails the publish, and its retry fills in what was missed
        // (the feed keeps an event once by its id; bus consumers drop a repeat by id).
        const settled = await Promise.allSettled([
            ...[...new Set(event.orgIds)].map(async (orgId) => {
                await this.feed.append(orgId, event);
                for (const hook of this.afterAppend) await hook(orgId, event);
            }),
            this.next.publish(event),
        ]);
        const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) throw failed.reason;
    }
}
