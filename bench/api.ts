/**
 * API latency under autocannon (programmatic API; a fixed duration and a few connections) against the
 * compiled devhost with a world of its own: the contract deployed, two organisations onboarded (member
 * deployments, first accounts), a document uploaded by the first, and a few proposals between them
 * anchored and awaiting signatures.
 *
 * - `GET /api/proposals/{id}` (the first organisation's trader; the ids of those proposals in turn);
 * - `POST /api/proposals`: every request a new, valid proposal (its own `Idempotency-Key`, so none is a
 *   replay; the quantity varies too); each one accepted starts a signing saga, which anchors it on-chain
 *   while the run goes on;
 * - references, same run, same settings: `GET /api/me` (token validation, the directory lookup and the
 *   route pipeline, no store behind it) and `GET /api/health`: 1,000 anonymous calls paced over the
 *   duration, answered from a check at most `FLEXCHANGE_HEALTH_CACHE_SECONDS` old (the first finds none that
 *   young); the component checks they caused are counted
 *   from the operator's health answer (`checksRun.shared`) before and after, and more than one per half
 *   max age of the run (plus one) fails the run.
 *
 * Latencies are autocannon's own per-request times (hrtime), taken from its `response` events so they
 * keep their fractions (its histogram rounds to whole milliseconds); its histogram's p50/p99 are
 * printed too. Any non-2xx answer, connection error or timeout makes the run a failure.
 *
 *   npm run bench:api -- [--duration 10] [--connections 10]
 */
import { randomBytes } from 'node:crypto';
import autocannon from 'autocannon';
import { devToken, removeDir, repoRoot, tempDir, waitFor } from '../test/harness/devhost';
import { onboard } from '../test/harness/journeys';
import { type BenchOutcome, type CompiledDevhost, percentile, startCompiledDevhost, numberArg, runAsScript } from './compiledDevhost';
import { freePort } from '../test/harness/faultProxy';

export interface Measured {
    label: string;
    requests: number;
    seconds: number;
    rps: number;
    p50: number;
    p99: number;
    p999: number;
    /** autocannon's histogram (whole ms). */
    histogram: { p50: number; p99: number; p999: number };
    statusCodes: Record<string, number>;
    non2xx: number;
    errors: number;
    timeouts: number;
}

type Request = autocannon.Request;

/** One autocannon run; `requests` as autocannon takes them (a `setupRequest` per request where the body varies). */
export function cannon(label: string, opts: { url: string; duration: number; connections: number; amount?: number; overallRate?: number; method?: 'GET' | 'POST'; headers?: Record<string, string>; requests?: Request[] }): Promise<Measured> {
    return new Promise((resolve, reject) => {
        const latencies: number[] = [];
        const instance = autocannon(
            { url: opts.url, duration: opts.duration, ...(opts.amount ? { amount: opts.amount } : {}), ...(opts.overallRate ? { overallRate: opts.overallRate } : {}), connections: opts.connections, method: opts.method ?? 'GET', headers: opts.headers, requests: opts.requests, timeout: 30 },
            (err, result) => {
                if (err) return reject(err instanceof Error ? err : new Error(String(err)));
                latencies.sort((a, b) => a - b);
                const statusCodes: Record<string, number> = {};
                for (const [code, stat] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = stat.count ?? 0;
                const completed = latencies.length;
                resolve({
                    label,
                    requests: completed,
                    seconds: result.duration,
                    rps: completed / result.duration,
                    p50: percentile(latencies, 50),
                    p99: percentile(latencies, 99),
                    p999: percentile(latencies, 99.9),
                    histogram: { p50: result.latency.p50, p99: result.latency.p99, p999: result.latency.p99_9 },
                    statusCodes,
                    non2xx: result.non2xx,
                    errors: result.errors,
                    timeouts: result.timeouts,
                });
            },
        );
        instance.on('response', (_client: autocannon.Client, _status: number, _bytes: number, responseTime: number) => latencies.push(responseTime));
    });
}

const ms = (v: number) => (v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0));

export function describe(m: Measured): string {
    const codes = Object.entries(m.statusCodes)
        .map(([c, n]) => `${c}×${n}`)
        .join(' ');
    return `${m.label}: ${m.requests} requests in ${m.seconds.toFixed(1)} s → ${m.rps.toFixed(0)} req/s; latency p50 ${ms(m.p50)} ms, p99 ${ms(m.p99)} ms, p99.9 ${ms(m.p999)} ms (autocannon's histogram ${m.histogram.p50}/${m.histogram.p99}/${m.histogram.p999}); status ${codes || 'none'}; errors ${m.errors}, timeouts ${m.timeouts}`;
}

function problems(m: Measured): string[] {
    const out: string[] = [];
    if (m.non2xx > 0) out.push(`${m.label}: ${m.non2xx} non-2xx answers (${JSON.stringify(m.statusCodes)})`);
    if (m.errors > 0) out.push(`${m.label}: ${m.errors} connection errors (${m.timeouts} timeouts)`);
    if (m.requests === 0) out.push(`${m.label}: no answer at all`);
    return out;
}

interface ProposalView {
    status: string;
}

export async function runApi(opts: { duration?: number; connections?: number; warmup?: number } = {}): Promise<BenchOutcome> {
    const duration = opts.duration ?? 10;
    const connections = opts.connections ?? 10;
    const warmup = opts.warmup ?? 2;
    const failures: string[] = [];
    const stateDir = tempDir('flexchange-bench-api-');
    let host: CompiledDevhost | undefined;
    try {
        host = await startCompiledDevhost({
            stateDir,
            appArgs: ['--app', repoRoot, '--name', 'core', '--app-port', String(await freePort()), '--set', 'FLEXCHANGE_APPROVERS=approver@bench.example', '--set', 'FLEXCHANGE_WEBHOOK_ALLOW_INSECURE_LOOPBACK=true'],
        });
        const origin = host.origin('core');
        const core = `${origin}/api`;
        const admin = await devToken(host, { roles: ['Flexchange.Admin'], email: 'ops@bench.example' });
        const deployed = await fetch(`${core}/contracts`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ artifact: 'EnergyExchange' }) });
        if (deployed.status !== 201) throw new Error(`contract deployment answered ${deployed.status}: ${await deployed.text()}`);
        const a = await onboard(host, 'Bench API North', 'north@bench-api.example');
        const b = await onboard(host, 'Bench API South', 'south@bench-api.example');
        const up = await fetch(`${core}/assets`, { method: 'POST', headers: { authorization: `Bearer ${a.trader}`, 'content-type': 'application/pdf' }, body: randomBytes(64 * 1024) });
        if (up.status !== 201) throw new Error(`asset upload answered ${up.status}: ${await up.text()}`);
        const { assetId } = (await up.json()) as { assetId: string };

        const run = randomBytes(4).toString('hex');
        let seq = 0;
        const proposalBody = () =>
            JSON.stringify({
                parties: [
                    { orgId: a.orgId, account: a.account },
                    { orgId: b.orgId, account: b.account },
                ],
                terms: { product: 'baseload', direction: 'sell', quantityMWh: 1 + (seq % 500), priceGbpPerMWh: 70, deliveryStart: '2027-01-01T00:00:00Z', deliveryEnd: '2027-01-02T00:00:00Z' },
                assets: [assetId],
                expiresAt: new Date(Date.now() + 3600_000).toISOString(),
            });
        const auth = { authorization: `Bearer ${a.trader}` };

        // A few proposals to read, anchored and awaiting signatures before anything is measured.
        const ids: string[] = [];
        for (let i = 0; i < 8; i++) {
            const res = await fetch(`${core}/proposals`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json', 'idempotency-key': `bench-${run}-setup-${i}` }, body: proposalBody() });
            if (res.status !== 202) throw new Error(`POST /proposals answered ${res.status}: ${await res.text()}`);
            ids.push(((await res.json()) as { proposalId: string }).proposalId);
        }
        for (const id of ids) {
            await waitFor(async () => ((await (await fetch(`${core}/proposals/${id}`, { headers: auth })).json()) as ProposalView).status === 'AwaitingSignatures', 120_000, 250);
        }
        console.log(`api: world ready (contract, 2 organisations with member deployments, 1 document, ${ids.length} proposals awaiting signatures); ${connections} connections, ${duration} s per route after a ${warmup} s warm-up`);

        const getProposal: Request[] = [
            {
                method: 'GET',
                setupRequest: (req) => ({ ...req, path: `/api/proposals/${ids[seq++ % ids.length]}` }),
            },
        ];
        // 1,000 anonymous health calls, and the component checks they caused (the operator's answer counts them).
        const operatorHealth = async () => {
            const res = await fetch(`${core}/health`, { headers: { authorization: `Bearer ${admin}` } });
            const body = (await res.json()) as { checksRun?: { shared: number; operator: number }; maxAgeSeconds?: number };
            if (!body.checksRun || body.maxAgeSeconds === undefined) throw new Error(`the operator's GET /api/health answered ${res.status} without checksRun`);
            return { checksRun: body.checksRun, maxAgeSeconds: body.maxAgeSeconds };
        };
        const healthCalls = 1000;
        if (warmup > 0) await cannon('GET /api/health (warm-up)', { url: `${core}/health`, duration: warmup, connections });
        // The calls start on a result older than the max age (the first waits for a check) and are paced over
        // `duration` seconds, so the run spans several max ages: each half max age past, one check behind the answers.
        const before = await operatorHealth();
        await new Promise((r) => setTimeout(r, before.maxAgeSeconds * 1000 + 100));
        const healthRun = await cannon(`GET /api/health ×${healthCalls} anonymous`, { url: `${core}/health`, duration: duration * 10, amount: healthCalls, overallRate: Math.ceil(healthCalls / duration), connections });
        const after = await operatorHealth();
        const healthChecks = after.checksRun.shared - before.checksRun.shared;
        const halfAge = Math.max(after.maxAgeSeconds / 2, 0.001);
        const allowedChecks = 1 + Math.ceil(healthRun.seconds / halfAge);
        console.log(`api: ${describe(healthRun)}; component checks they caused ${healthChecks} (at most ${allowedChecks} allowed: one per ${halfAge} s, half the max age of ${after.maxAgeSeconds} s, plus one)`);
        failures.push(...problems(healthRun));
        if (healthRun.requests !== healthCalls) failures.push(`GET /api/health: ${healthRun.requests} answers to ${healthCalls} calls`);
        if (healthChecks > allowedChecks) failures.push(`GET /api/health: ${healthCalls} anonymous calls caused ${healthChecks} component checks (at most ${allowedChecks} expected)`);
        const results: Record<string, Measured> = { health: healthRun };

        const targets = [
            { key: 'me', label: 'GET /api/me', opts: { url: `${core}/me`, headers: auth } },
            { key: 'get', label: 'GET /api/proposals/{id}', opts: { url: `${core}/proposals/${ids[0]}`, headers: auth, requests: getProposal } },
        ] as const;
        for (const t of targets) {
            if (warmup > 0) await cannon(`${t.label} (warm-up)`, { ...t.opts, duration: warmup, connections });
            const m = await cannon(t.label, { ...t.opts, duration, connections });
            console.log(`api: ${describe(m)}`);
            failures.push(...problems(m));
            results[t.key] = m;
        }

        // Every POST a new proposal: its own Idempotency-Key (a repeated key would be answered from the first).
        const accepted = new Set<string>();
        let replayed = 0;
        const postProposal: Request[] = [
            {
                method: 'POST',
                setupRequest: (req) => {
                    seq++;
                    return { ...req, headers: { ...req.headers, 'idempotency-key': `bench-${run}-${seq}` }, body: proposalBody() };
                },
                onResponse: (status, body, _context, headers) => {
                    if (headers?.['idempotent-replayed']) replayed++;
                    if (status === 202) accepted.add((JSON.parse(body) as { proposalId: string }).proposalId);
                },
            },
        ];
        const post = await cannon('POST /api/proposals', { url: `${core}/proposals`, method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, duration, connections, requests: postProposal });
        console.log(`api: ${describe(post)}; distinct proposals accepted ${accepted.size}, replays ${replayed}`);
        failures.push(...problems(post));
        if (replayed > 0) failures.push(`POST /api/proposals: ${replayed} answers were idempotent replays, not new proposals`);
        if (accepted.size !== post.statusCodes['202']) failures.push(`POST /api/proposals: ${post.statusCodes['202'] ?? 0} answers 202 but ${accepted.size} distinct proposal ids`);

        const { health, me, get } = results as Record<'health' | 'me' | 'get', Measured>;
        const ratio = (x: number, y: number) => (x / y).toFixed(1);
        console.log(`api: p50 ratios to GET /api/me (route pipeline + token + directory, same run): GET /api/proposals/{id} ${ratio(get.p50, me.p50)}, POST /api/proposals ${ratio(post.p50, me.p50)}; to GET /api/health: ${ratio(get.p50, health.p50)} and ${ratio(post.p50, health.p50)}`);
        const fig = (m: Measured) => `p50 ${ms(m.p50)} ms, p99 ${ms(m.p99)} ms, p99.9 ${ms(m.p999)} ms, ${m.rps.toFixed(0)} req/s`;
        return {
            rows: [
                {
                    script: '`npm run bench:api`',
                    what: `autocannon, ${connections} connections, ${duration} s per route (after ${warmup} s warm-up), compiled devhost; GET: the trader's own proposals (awaiting signatures) in turn; POST: every request a new valid proposal (own Idempotency-Key), each starting its saga; references \`GET /api/me\` (token, directory, pipeline) and ${healthCalls} anonymous \`GET /api/health\` paced over ${duration} s (answered from a check at most ${after.maxAgeSeconds} s old; component checks counted by the operator's answer) in the same run`,
                    figures: `GET /api/proposals/{id} ${fig(get)}, ratio to /me ${ratio(get.p50, me.p50)} · POST /api/proposals ${fig(post)}, ratio to /me ${ratio(post.p50, me.p50)} (${accepted.size} proposals, 0 replays) · GET /api/me ${fig(me)} · GET /api/health ×${healthCalls} ${fig(health)}, ${healthChecks} component checks · non-2xx ${get.non2xx + post.non2xx + me.non2xx + health.non2xx}`,
                },
            ],
            failures,
        };
    } finally {
        const code = await host?.stop();
        if (host && code !== 0) failures.push(`api: the devhost exited with ${code} on SIGTERM`);
        removeDir(stateDir);
    }
}

if (require.main === module) runAsScript(() => runApi({ duration: numberArg('duration', 10), connections: numberArg('connections', 10), warmup: numberArg('warmup', 2) }));
