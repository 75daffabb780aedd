/**
 * Memory per app instance. App instances are worker threads of one devhost process (devhost/devHost.ts:
 * a Worker per instance, own env and module registry), so the process RSS the health route reports
 * (`checks.process.rssMb`) is the whole devhost's, the same figure from every instance. What is measured:
 *
 * - the devhost process's RSS (`VmRSS` of /proc/<pid>/status; the median of samples over a few seconds
 *   once it has settled) with the core alone, then with 1, 2, ... N+1 member instances. Members are made
 *   as the system makes them: an organisation onboarded through the public API (`onboard`: registration,
 *   approval, the core's member deployment, which starts the instance through the console's
 *   `PUT /dev/apps/{name}`, its subscription, its first account). The first member is the warm-up: it
 *   also pays the core's one-time cost of running onboarding (code compiled, clients made), so the
 *   figure per member instance is the least-squares slope of RSS over members 1..N+1. It covers a whole
 *   instance: its isolate, its own copy of every module, its HTTP server, timers, bus receiver and clients.
 *   Azurite, the Cosmos stand-in and anvil are processes of their own and are not in it; each member's
 *   ledger node (a relay process in front of anvil) neither: reported apart;
 * - each instance's V8 heap in use (`checks.process.heapUsedMb` of its own `GET /api/health`, asked with the operator's token: in a
 *   worker thread `process.memoryUsage().heapUsed` is that thread's isolate).
 *
 * RSS moves with every isolate's garbage collections (a step can be negative); hence the slope, and the
 * steps printed with it.
 *
 *   npm run bench:memory -- [--members 4]
 */
import { devToken, removeDir, repoRoot, tempDir } from '../test/harness/devhost';
import { onboard } from '../test/harness/journeys';
import { type BenchOutcome, childProcesses, type CompiledDevhost, mb, median, rssBytes, sleep, startCompiledDevhost, numberArg, runAsScript } from './compiledDevhost';
import { freePort } from '../test/harness/faultProxy';

interface ProcessHealth {
    rssMb: number;
    heapUsedMb: number;
}

/** The operator's health answer (anonymous callers get each component's status only) and its process figures. */
async function processHealth(apiBase: string, operatorToken: string): Promise<ProcessHealth & { status: number }> {
    const res = await fetch(`${apiBase}/health`, { headers: { authorization: `Bearer ${operatorToken}` }, signal: AbortSignal.timeout(15_000) });
    const body = (await res.json()) as { checks?: { process?: ProcessHealth } };
    if (!body.checks?.process) throw new Error(`${apiBase}/health answered ${res.status} without checks.process`);
    return { status: res.status, ...body.checks.process };
}

/** The devhost's RSS once it has settled: samples every 250 ms for `windowMs` after `settleMs`, their median. */
async function settledRss(pid: number, settleMs: number, windowMs = 3000): Promise<number> {
    await sleep(settleMs);
    const samples: number[] = [];
    for (const until = Date.now() + windowMs; Date.now() < until; ) {
        const rss = rssBytes(pid);
        if (rss === undefined) throw new Error('the devhost is gone');
        samples.push(rss);
        await sleep(250);
    }
    return median(samples);
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
    const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
    const my = ys.reduce((a, b) => a + b, 0) / ys.length;
    let num = 0;
    let den = 0;
    for (let i = 0; i < xs.length; i++) {
        num += (xs[i]! - mx) * (ys[i]! - my);
        den += (xs[i]! - mx) ** 2;
    }
    return num / den;
}

export async function runMemory(opts: { members?: number; settleMs?: number } = {}): Promise<BenchOutcome> {
    const members = opts.members ?? 4;
    const settleMs = opts.settleMs ?? 3000;
    const failures: string[] = [];
    const stateDir = tempDir('flexchange-bench-memory-');
    const port = await freePort();
    let host: CompiledDevhost | undefined;
    try {
        host = await startCompiledDevhost({ stateDir, appArgs: ['--app', repoRoot, '--name', 'core', '--app-port', String(port), '--set', 'FLEXCHANGE_APPROVERS=approver@bench.example'] });
        const core = `${host.origin('core')}/api`;
        const operator = await devToken(host, { roles: ['Flexchange.Admin'], email: 'ops@bench.example' });
        // Every lazily built client of the core made once (the health route touches each component).
        for (let i = 0; i < 3; i++) await processHealth(core, operator);
        const alone = await settledRss(host.child.pid!, settleMs);
        const coreHealth = await processHealth(core, operator);
        console.log(`memory: devhost with the core alone: RSS ${mb(alone).toFixed(0)} MB (/proc; its health route says ${coreHealth.rssMb} MB for the same process); core heap used ${coreHealth.heapUsedMb} MB`);

        const counts: number[] = [];
        const rss: number[] = [];
        const memberUrls: string[] = [];
        for (let i = 1; i <= members + 1; i++) {
            const started = Date.now();
            const org = await onboard(host, `Bench Memory ${i}`, `m${i}@bench.example`);
            const onboardMs = Date.now() - started;
            memberUrls.push(org.memberUrl);
            for (let k = 0; k < 2; k++) await processHealth(org.memberUrl, operator);
            const now = await settledRss(host.child.pid!, settleMs);
            console.log(`memory: + member ${i}${i === 1 ? ' (warm-up: the core runs its first onboarding too)' : ''}, onboarded in ${(onboardMs / 1000).toFixed(1)} s: devhost RSS ${mb(now).toFixed(0)} MB (${now >= (rss.at(-1) ?? alone) ? '+' : ''}${mb(now - (rss.at(-1) ?? alone)).toFixed(0)} MB)`);
            counts.push(i);
            rss.push(now);
        }
        const heaps: { name: string; heapUsedMb: number }[] = [{ name: 'core', heapUsedMb: (await processHealth(core, operator)).heapUsedMb }];
        for (const [i, url] of memberUrls.entries()) heaps.push({ name: `member ${i + 1}`, heapUsedMb: (await processHealth(url, operator)).heapUsedMb });
        const perMember = slope(counts, rss);
        const steps = rss.slice(1).map((r, i) => r - rss[i]!);
        const relays = childProcesses(host.child.pid!)
            .filter((p) => p.cmdline.includes('nodeRelayProcess'))
            .map((p) => rssBytes(p.pid) ?? 0);
        const relayMb = relays.length ? mb(median(relays)) : NaN;
        const memberHeap = median(heaps.slice(1).map((h) => h.heapUsedMb));
        const sign = (d: number) => `${d >= 0 ? '+' : '−'}${Math.abs(mb(d)).toFixed(0)}`;
        console.log(`memory: per member instance (least-squares slope of devhost RSS over members 1..${members + 1}): ${mb(perMember).toFixed(0)} MB (steps after the warm-up ${steps.map(sign).join(', ')} MB; (last − first) / ${members} = ${mb((rss.at(-1)! - rss[0]!) / members).toFixed(0)} MB)`);
        console.log(`memory: V8 heap in use by instance: ${heaps.map((h) => `${h.name} ${h.heapUsedMb} MB`).join(', ')} → a member's median ${memberHeap} MB, ${((memberHeap / mb(perMember)) * 100).toFixed(0)} % of its RSS share; the core's heap went from ${coreHealth.heapUsedMb} to ${heaps[0]!.heapUsedMb} MB`);
        console.log(`memory: each member's node relay process (not in the devhost's RSS): ${relayMb.toFixed(0)} MB RSS (${relays.length} relays)`);
        return {
            rows: [
                {
                    script: '`npm run bench:memory`',
                    what: `RSS of the compiled devhost process (/proc, median over 3 s once settled) with the core alone, then with 1..${members + 1} onboarded organisations' member instances (worker threads of the same process, started by the core's member deployment through \`PUT /dev/apps/{name}\`); per instance = least-squares slope over members 1..${members + 1} (the first is the warm-up); V8 heap in use of each instance from its own \`GET /api/health\``,
                    figures: `core alone ${mb(alone).toFixed(0)} MB RSS (heap ${coreHealth.heapUsedMb} MB) · ${members + 1} members ${mb(rss.at(-1)!).toFixed(0)} MB → ${mb(perMember).toFixed(0)} MB RSS per member instance (steps ${steps.map(sign).join(', ')}), heap in use ${memberHeap} MB each · a member's node relay process ${relayMb.toFixed(0)} MB more`,
                },
            ],
            failures,
        };
    } finally {
        const code = await host?.stop();
        if (host && code !== 0) failures.push(`memory: the devhost exited with ${code} on SIGTERM`);
        removeDir(stateDir);
    }
}

if (require.main === module) runAsScript(() => runMemory({ members: numberArg('members', 4) }));
