/**
 * A document store wrapped to count its calls, their summed latency and the size of what was
 * sent, by store and method (`BENCH_DEBUG=1 npm run bench:chain` prints them per round), and
 * with `BENCH_TIMELINE=1` to keep each call's start and end (`storeTimeline`); without either,
 * the store itself, untouched.
 */
export const storeTimings = new Map<string, { calls: number; ms: number; bytes: number }>();
export const storeTimeline: { call: string; start: number; end: number }[] = [];

export function timed<R extends object>(name: string, repo: R): R {
    // Counting costs the bench's own CPU (each document serialized once more): only when it is printed.
    const [counting, timeline] = [!!process.env.BENCH_DEBUG, !!process.env.BENCH_TIMELINE];
    if (!counting && !timeline) return repo;
    return new Proxy(repo, {
        get(target, prop, receiver) {
            const value: unknown = Reflect.get(target, prop, receiver);
            if (typeof value !== 'function') return value;
            return async (...args: unknown[]) => {
                const t = performance.now();
                try {
                    return await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
                } finally {
                    const key = `${name}.${String(prop)}`;
                    if (timeline) storeTimeline.push({ call: key, start: t, end: performance.now() });
                    if (counting) {
                        const e = storeTimings.get(key) ?? { calls: 0, ms: 0, bytes: 0 };
                        e.calls++;
                        e.ms += performance.now() - t;
                        e.bytes += JSON.stringify(args[0] ?? '').length;
                        storeTimings.set(key, e);
                    }
                }
            };
        },
    });
}
