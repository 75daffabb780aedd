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

/** What an anonymous caller is told: the overall status and each component's, no details (no addresses, versions, memory). */
export interface HealthSummary {
    status: HealthReport['status'];
    role: string;
    checkedAt: string;
    checks: Record<string, { status: ComponentHealth['status'] }>;
}

export function summaryOf(report: HealthReport): HealthSummary {
    return {
        status: report.status,
        role: report.role,
        checkedAt: report.checkedAt,
        checks: Object.fromEntries(Object.entries(report.checks).map(([name, c]) => [name, { status: c.status }])),
    };
}

/** How many full checks (every component once) have run since the app started, by who caused them. */
export interface ChecksRun {
    /** Checks that answered anonymous callers (one at a time, shared by every caller waiting for it). */
    shared: number;
    /** Fresh checks the operator asked for. */
    operator: number;
}

/**
 * The app's health, checked at most once per `maxAgeMs` for anonymous callers: they are answered from the
 * latest result while it is younger than that (a load balancer, a monitor or anyone on the internet polling
 * it costs no bus connection, vault listing or ledger call per request). One check runs at a time and every
 * caller arriving meanwhile waits for that one. Past half its age a result is still answered while a new
 * check runs behind it, so a steady poller does not wait for the components. The operator asks for a fresh
 * check (`fresh`), whose result also serves the others.
 */
export class HealthMonitor {
    #latest?: { report: HealthReport; startedAt: number };
    #inFlight?: Promise<HealthReport>;
    readonly #runs: ChecksRun = { shared: 0, operator: 0 };
    readonly #now: () => number;

    constructor(
        private readonly check: () => Promise<HealthReport>,
        private readonly opts: { maxAgeMs: number; now?: () => number },
    ) {
        this.#now = opts.now ?? Date.now;
    }

    get maxAgeMs(): number {
        return this.opts.maxAgeMs;
    }

    get checksRun(): ChecksRun {
        return { ...this.#runs };
    }

    /** A result at most `maxAgeMs` old (its age counted from when its check started). */
    async recent(): Promise<HealthReport> {
        const latest = this.#latest;
        const age = latest ? this.#now() - latest.startedAt : Infinity;
        if (latest && age < this.opts.maxAgeMs) {
            if (age >= this.opts.maxAgeMs / 2) void this.#shared().catch(() => undefined);
            return latest.report;
        }
        return this.#shared();
    }

    /** A check run now, for the operator. */
    async fresh(): Promise<HealthReport> {
        this.#runs.operator++;
        return this.#run();
    }

    #shared(): Promise<HealthReport> {
        if (!this.#inFlight) {
            this.#runs.shared++;
            this.#inFlight = this.#run().finally(() => {
                this.#inFlight = undefined;
            });
        }
        return this.#inFlight;
    }

    async #run(): Promise<HealthReport> {
        const startedAt = this.#now();
        const report = await this.check();
        if (!this.#latest || this.#latest.startedAt <= startedAt) this.#latest = { report, startedAt };
        return report;
    }
}
