import type { Repository } from '../documents/repository';
import { NotFound } from '../errors';

export interface UsageCounter {
    /** `<orgId>|<route>|<day>` */
    id: string;
    orgId: string;
    route: string;
    day: string;
    calls: number;
}

/**
 * Counts authenticated calls per organisation, route and day for billing. Counting
 * is in memory; every `flushMs` the counts are added to Cosmos with an atomic
 * increment (one write per counter and interval, not per request). Counts not yet
 * flushed when an instance dies are lost: billing tolerates that, a request never waits on it.
 */
export class UsageMeter {
    readonly #pending = new Map<string, { orgId: string; route: string; day: string; calls: number }>();
    #timer?: NodeJS.Timeout;
    #flushing?: Promise<void>;

    constructor(
        private readonly counters: Repository<UsageCounter>,
        private readonly flushMs = 10_000,
    ) {}

    count(orgId: string, route: string, at = new Date()): void {
        const day = at.toISOString().slice(0, 10);
        const id = `${orgId}|${route}|${day}`;
        const entry = this.#pending.get(id) ?? { orgId, route, day, calls: 0 };
        entry.calls++;
        this.#pending.set(id, entry);
        this.#timer ??= setTimeout(() => {
            this.#timer = undefined;
            void this.flush().catch(() => undefined);
        }, this.flushMs);
        this.#timer.unref?.();
    }

    /** Adds the counts gathered so far to the store. */
    async flush(): Promise<void> {
        await this.#flushing;
        const batch = [...this.#pending.entries()];
        this.#pending.clear();
        this.#flushing = (async () => {
            for (const [id, c] of batch) {
                try {
                    await this.counters.patch(id, c.orgId, [{ op: 'incr', path: '/calls', value: c.calls }]);
                } catch (err) {
                    if (!(err instanceof NotFound)) {
                        this.#requeue(id, c);
                        continue;
                    }
                    try {
                        await this.counters.create({ id, orgId: c.orgId, route: c.route, day: c.day, calls: c.calls });
                    } catch {
                        // Created meanwhile by another instance, or the store is down: count again next time.
                        this.#requeue(id, c);
                    }
                }
            }
        })();
        await this.#flushing;
        this.#flushing = undefined;
    }

    #requeue(id: string, c: { orgId: string; route: string; day: string; calls: number }): void {
        const existing = this.#pending.get(id);
        this.#pending.set(id, { ...c, calls: c.calls + (existing?.calls ?? 0) });
    }

    async report(orgId: string, from: string, to: string): Promise<UsageCounter[]> {
        const out: UsageCounter[] = [];
        let token: string | undefined;
        do {
            const page = await this.counters.query(
                {
                    query: 'SELECT * FROM c WHERE c.orgId = @org AND c.day >= @from AND c.day <= @to ORDER BY c.day',
                    parameters: [
                        { name: '@org', value: orgId },
                        { name: '@from', value: from },
                        { name: '@to', value: to },
                    ],
                },
                { partitionKey: orgId, continuationToken: token },
            );
            out.push(...page.items);
            token = page.continuationToken;
        } while (token);
        return out;
    }
}

/**
 * An organisation's usage between two days (by default the last 30 days up to today), this instance's
 * counts not yet flushed included.
 */
export async function usageReport(meter: Pick<UsageMeter, 'flush' | 'report'>, orgId: string, asked: { from?: string; to?: string }, now = new Date()): Promise<{ from: string; to: string; rows: UsageCounter[] }> {
    const to = asked.to ?? now.toISOString().slice(0, 10);
    const from = asked.from ?? new Date(now.getTime() - 30 * 86_400_000).toISOString().slice(0, 10);
    await meter.flush();
    return { from, to, rows: await meter.report(orgId, from, to) };
}
