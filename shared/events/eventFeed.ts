import type { Repository, Stored } from '../documents/repository';
import { Conflict, NotFound, Unavailable } from '../errors';
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

/**
 * The feed's counter (one per organisation, in the same partition). It also names the organisation's
 * webhooks (`subscribers`), so each append learns from its own increment who gets the event, with no
 * lookup of its own; absent on a counter made before, until it is first recorded.
 */
interface FeedSequence {
    id: '_sequence';
    kind: 'sequence';
    orgId: string;
    value: number;
    subscribers?: string[];
}

export type FeedDoc = FeedEntry | FeedSequence;

/**
 * How long a gap in the numbering may be an append still in flight: a reader stops before a
 * gap younger than this, so a late-committing append is never skipped by a cursor.
 */
const IN_FLIGHT_MS = 5_000;

/**
 * The per-organisation event feed (`GET /orgs/{orgId}/events?after=`): every event an
 * organisation is concerned by, numbered in the order it was appended, read with a cursor.
 * Appending the same event again (an at-least-once publisher) is a no-op: the event id is
 * the entry's id in the organisation's partition, written create-only.
 */
export class EventFeed {
    /**
     * `subscribersOf`: the organisation's webhooks as their own store says (the authority), read when a
     * counter names none yet and whenever they change (`recordSubscribers`).
     */
    constructor(
        private readonly repo: Repository<FeedDoc>,
        private readonly subscribersOf?: (orgId: string) => Promise<string[]>,
    ) {}

    /**
     * Appends the event (a repeat is a no-op) and says who subscribes to the organisation's events as of
     * its number: undefined for a repeat, or without `subscribersOf` (the caller looks them up itself).
     */
    async append(orgId: string, event: EventEnvelope): Promise<{ subscribers?: string[] }> {
        if (await this.repo.read(event.id, orgId)) return {};
        const counter = await this.#next(orgId);
        try {
            await this.repo.create({ id: event.id, kind: 'event', orgId, seq: counter.item.value, event, storedAt: new Date().toISOString() });
        } catch (err) {
            // A concurrent append of the same event won; its number stands, this one is a harmless gap.
            if (!(err instanceof Conflict)) throw err;
            return {};
        }
        if (!this.subscribersOf) return {};
        if (counter.item.subscribers) return { subscribers: counter.item.subscribers };
        // A counter that names nobody yet (new, or made before counters named subscribers): recorded once.
        const subscribers = await this.subscribersOf(orgId);
        await this.repo.replace({ ...counter.item, subscribers }, counter.etag).catch((err: unknown) => {
            // Changed meanwhile (another append or a recording): whoever wrote last read the authority after this did.
            if (!(err instanceof Conflict)) throw err;
        });
        return { subscribers };
    }

    /**
     * The organisation's subscribers changed (a webhook registered or removed): the counter names them
     * again, read from `subscribersOf` after the counter, and written under the counter's ETag, so of two
     * changes at once the later recording always includes both.
     */
    async recordSubscribers(orgId: string, opts: { ifNaming?: string } = {}): Promise<void> {
        if (!this.subscribersOf) return;
        for (let attempt = 0; attempt < 20; attempt++) {
            const current = await this.repo.read('_sequence', orgId);
            // Mending only (`ifNaming`: a webhook already gone): nothing to write unless the counter still names it.
            if (opts.ifNaming && !(current?.item as FeedSequence | undefined)?.subscribers?.includes(opts.ifNaming)) return;
            const subscribers = await this.subscribersOf(orgId);
            try {
                if (current) await this.repo.replace({ ...(current.item as FeedSequence), subscribers }, current.etag);
                else await this.repo.create({ id: '_sequence', kind: 'sequence', orgId, value: 0, subscribers });
                return;
            } catch (err) {
                // An append took a number, or another recording won: read both again.
                if (!(err instanceof Conflict)) throw err;
                await new Promise((r) => setTimeout(r, Math.random() * 20 * (attempt + 1)));
            }
        }
        throw new Unavailable(`The subscribers of ${orgId}'s events could not be recorded (its feed is busy); try again`);
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

    /** The counter with the organisation's next number: one increment, the counter made first only when it is missing. */
    async #next(orgId: string): Promise<Stored<FeedSequence>> {
        const increment = async () => (await this.repo.patch('_sequence', orgId, [{ op: 'incr', path: '/value', value: 1 }])) as Stored<FeedSequence>;
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
        /** Given the subscribers the append learnt of (undefined: unknown, look them up). */
        private readonly afterAppend: ((orgId: string, event: EventEnvelope, subscribers?: string[]) => Promise<void>)[] = [],
    ) {}

    async publish(event: EventEnvelope): Promise<void> {
        checkEvent(event);
        // Each organisation's feed is its own: theirs at once.
        await Promise.all(
            [...new Set(event.orgIds)].map(async (orgId) => {
                const { subscribers } = await this.feed.append(orgId, event);
                for (const hook of this.afterAppend) await hook(orgId, event, subscribers);
            }),
        );
        await this.next.publish(event);
    }
}
