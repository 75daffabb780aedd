/** A dependency the app can check: the ledger, Cosmos, storage, the vault, the bus, the process itself. */
export interface HealthCheck {
    readonly name: string;
    check(): Promise<ComponentHealth>;
}

export interface ComponentHealth {
    /** `not_configured`: the component is not part of this deployment yet; it does not make the app unhealthy. */
    status: 'up' | 'down' | 'not_configured';
    detail?: string;
    latencyMs?: number;
    [extra: string]: unknown;
}

export interface HealthReport {
    status: 'healthy' | 'unhealthy';
    role: string;
    checkedAt: string;
    checks: Record<string, ComponentHealth>;
}

/** Runs every check at once, each bounded by `timeoutMs`; one down component makes the whole unhealthy. */
export async function checkHealth(
    checks: readonly HealthCheck[],
    opts: { role: string; timeoutMs: number; now?: () => Date },
): Promise<HealthReport> {
    const results = await Promise.all(
        checks.map(async (c): Promise<[string, ComponentHealth]> => {
            const started = Date.now();
            let timer: NodeJS.Timeout | undefined;
            try {
                const timeout = new Promise<ComponentHealth>((resolve) => {
                    timer = setTimeout(() => resolve({ status: 'down', detail: `no answer within ${opts.timeoutMs} ms` }), opts.timeoutMs);
                });
                const result = await Promise.race([c.check(), timeout]);
                return [c.name, { latencyMs: Date.now() - started, ...result }];
            } catch (err) {
                // The reason stays generic: internal messages do not leave the app.
                return [c.name, { status: 'down', detail: (err as { code?: string }).code ?? 'check failed', latencyMs: Date.now() - started }];
            } finally {
                clearTimeout(timer);
            }
        }),
    );
    const checksByName = Object.fromEntries(results);
    const healthy = results.every(([, r]) => r.status !== 'down');
    return {
        status: healthy ? 'healthy' : 'unhealthy',
        role: opts.role,
        checkedAt: (opts.now ?? (() => new Date()))().toISOString(),
        checks: checksByName,
    };
}
