/**
 * A document store wrapped to count its calls, their summed latency and the size of what was
 * sent, by store and method (`BENCH_DEBUG=1 npm run bench:chain` prints them per round).
 */
export const storeTimings = new Map<string, { calls: number; ms: number; bytes: number }>();

export function timed<R extends object>(name: string, repo: R): R {
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
                    const e = storeTimings.get(key) ?? { calls: 0, ms: 0, bytes: 0 };
                    e.calls++;
                    e.ms += performance.now() - t;
                    e.bytes += JSON.stringify(args[0] ?? '').length;
                    storeTimings.set(key, e);
                }
            };
        },
    });
}
