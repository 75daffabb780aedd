import type { Repository } from '../documents/repository';
import { Conflict, NotFound, TooManyRequests } from '../errors';

export interface RateWindow {
    /** `<key>|<window start>` */
    id: string;
    /** The partition: the key (a client address, an email...). */
    key: string;
    windowStart: string;
    count: number;
    /** When the window ends; expired windows are ignored (Cosmos TTL would delete them; the local server has no TTL). */
    expiresAt: string;
}

export interface RateRule {
    /** What is counted, e.g. `ip:203.0.113.9` or `email:a@b.example`. */
    key: string;
    limit: number;
    windowSeconds: number;
}

/**
 * Fixed-window rate limiting for anonymous routes, persisted so that it holds across
 * instances and restarts: one counter document per key and window, incremented
 * atomically. Over the limit is a 429 with the seconds until the window ends.
 */
export class RateLimiter {
    constructor(
        private readonly windows: Repository<RateWindow>,
        private readonly now: () => number = Date.now,
    ) {}

    /** Counts one request against every rule; throws `TooManyRequests` when any is over its limit. */
    async hit(rules: RateRule[]): Promise<void> {
        for (const rule of rules) {
            const windowMs = rule.windowSeconds * 1000;
            const start = Math.floor(this.now() / windowMs) * windowMs;
            const id = `${rule.key}|${start}`;
            const count = await this.#increment(id, rule.key, start, windowMs);
            if (count > rule.limit) {
                const retryAfter = Math.max(1, Math.ceil((start + windowMs - this.now()) / 1000));
                throw Object.assign(new TooManyRequests(`Too many requests; try again in ${retryAfter} s`), { retryAfterSeconds: retryAfter });
            }
        }
    }

    async #increment(id: string, key: string, start: number, windowMs: number): Promise<number> {
        for (let attempt = 0; attempt < 3; attempt++) {
            try {
                return (await this.windows.patch(id, key, [{ op: 'incr', path: '/count', value: 1 }])).item.count;
            } catch (err) {
                if (!(err instanceof NotFound)) throw err;
            }
            try {
                const created = await this.windows.create({
                    id,
                    key,
                    windowStart: new Date(start).toISOString(),
                    count: 1,
                    expiresAt: new Date(start + windowMs).toISOString(),
                });
                return created.item.count;
            } catch (err) {
                // Another request created it first: increment that one.
                if (!(err instanceof Conflict)) throw err;
            }
        }
        throw new TooManyRequests('Too many concurrent requests; try again');
    }
}
