/**
 * `npm run bench`: every benchmark of the issue in one run, each printing its own figures (and its
 * reference, measured in the same run), then a markdown summary table for bench/README.md.
 *
 * 1. start-up: cold and warm to the first healthy GET /api/health, and the app's module import (bench/startup.ts);
 * 2. memory per app instance (bench/memory.ts);
 * 3. API latency under autocannon: GET /api/proposals/{id}, POST /api/proposals, against GET /api/me and
 *    GET /api/health (bench/api.ts);
 * 4. completed 2-party proposals per second at 1, 8, 32 proposers against the ledger's raw rate
 *    (bench/proposals.ts, run as it is, in a child process).
 *
 * Each benchmark starts its own devhost (state folder of its own, every port free) and stops it.
 * Exits 1 when a benchmark failed (an error, a non-2xx answer, a devhost that did not stop cleanly).
 *
 *   npm run bench [-- --only startup,memory,api,proposals --proposals 8 --levels 1,8,32
 *                     --duration 10 --connections 10 --members 4 --rounds 2]
 */
import { execFileSync, spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from '../test/harness/devhost';
import { runApi } from './api';
import { type BenchOutcome, type BenchRow, nodeBinary } from './compiledDevhost';
import { runMemory } from './memory';
import { runStartup } from './startup';

function arg(name: string): string | undefined {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? process.argv[i + 1] : undefined;
}
const num = (name: string, fallback: number) => {
    const v = arg(name);
    const n = v === undefined ? fallback : Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} needs a positive number`);
    return n;
};

/** bench/proposals.ts as it is, in a child process on the project's Node; its lines echoed and parsed. */
export function runProposals(opts: { proposals: number; levels: string }): Promise<BenchOutcome> {
    return new Promise((resolve, reject) => {
        const child = spawn(nodeBinary(), ['--import', 'tsx', path.join(repoRoot, 'bench', 'proposals.ts'), '--proposals', String(opts.proposals), '--levels', opts.levels], { cwd: repoRoot, env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
        const lines: string[] = [];
        let buffered = '';
        child.stdout.on('data', (chunk: Buffer) => {
            buffered += chunk.toString('utf8');
            let nl: number;
            while ((nl = buffered.indexOf('\n')) >= 0) {
                const line = buffered.slice(0, nl);
                buffered = buffered.slice(nl + 1);
                lines.push(line);
                console.log(`proposals: ${line}`);
            }
        });
        let stderr = '';
        child.stderr.on('data', (chunk: Buffer) => {
            stderr += chunk.toString('utf8');
            process.stderr.write(chunk);
        });
        child.once('error', reject);
        child.once('exit', (code) => {
            if (buffered) lines.push(buffered);
            const failures = code === 0 ? [] : [`proposals: bench/proposals.ts exited with ${code}${stderr ? `: ${stderr.trim().split('\n').slice(-3).join(' | ')}` : ''}`];
            const raw = lines.map((l) => /^ledger raw: (\d+) tx\/s .*→ (\d+) proposals\/s/.exec(l)).find(Boolean);
            const levels = lines
                .map((l) => /^\s*(\d+) proposers: (\d+) completed in ([\d.]+) s → ([\d.]+) proposals\/s \(ratio to the raw limit ([\d.]+)\); end-to-end p50 ([\d.]+) s, p99 ([\d.]+) s; signatures retried after a 503: (\d+)/.exec(l))
                .filter((m): m is RegExpExecArray => m !== null);
            const wanted = opts.levels.split(',').length;
            if (code === 0 && (!raw || levels.length !== wanted)) failures.push(`proposals: expected the raw rate and ${wanted} levels in its output, found ${raw ? 1 : 0} and ${levels.length}`);
            const retried = levels.reduce((n, m) => n + Number(m[8]), 0);
            const grand = (s: string) => Number(s).toLocaleString('en-GB');
            const figures = [
                raw ? `raw ${grand(raw[1]!)} tx/s → ${grand(raw[2]!)} proposals/s` : 'raw: not measured',
                ...levels.map((m) => `${m[1]} proposer${m[1] === '1' ? '' : 's'} ${m[4]}/s (${m[2]} done, p50 ${m[6]} s, p99 ${m[7]} s), ratio ${m[5]}`),
            ].join(' · ');
            const rows: BenchRow[] = [
                {
                    script: '`npm run bench:proposals`',
                    what: `completed 2-party proposals end to end (core saga, two onboarded member deployments signing with their own keys, the chain event pump), ${opts.proposals} per level (at least the level's concurrency), against the ledger's raw rate (1,000 pre-signed transfers) / 3 transactions per proposal, same run`,
                    figures: `${figures}${retried ? ` · ${retried} signatures retried after a 503` : ''}`,
                },
            ];
            resolve({ rows, failures });
        });
    });
}

function machine(): string {
    const cpus = os.cpus();
    let mem = `${Math.round(os.totalmem() / 1024 / 1024)} MB total`;
    try {
        const free = execFileSync('free', ['-m'], { encoding: 'utf8' });
        const m = /^Mem:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(free);
        if (m) mem = `free -m: ${m[1]} MB total, ${m[6]} MB available`;
    } catch {
        // no free(1): os.totalmem it is
    }
    const node = execFileSync(nodeBinary(), ['--version'], { encoding: 'utf8' }).trim();
    return `nproc ${os.availableParallelism()} (${cpus[0]?.model.trim() ?? 'unknown CPU'}), ${mem}, ${os.type()} ${os.release()}, node ${node} (${path.relative(repoRoot, nodeBinary()) || nodeBinary()}), load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} at the start, ${new Date().toISOString()}`;
}

async function main(): Promise<void> {
    const all = ['startup', 'memory', 'api', 'proposals'];
    const only = (arg('only') ?? all.join(',')).split(',');
    for (const o of only) if (!all.includes(o)) throw new Error(`--only takes ${all.join(',')}; got ${o}`);
    const started = Date.now();
    const where = machine();
    console.log(`machine: ${where}`);

    const benches: { name: string; run: () => Promise<BenchOutcome> }[] = [
        { name: 'startup', run: () => runStartup({ rounds: num('rounds', 2), imports: 3 }) },
        { name: 'memory', run: () => runMemory({ members: num('members', 4) }) },
        { name: 'api', run: () => runApi({ duration: num('duration', 10), connections: num('connections', 10) }) },
        { name: 'proposals', run: () => runProposals({ proposals: num('proposals', 8), levels: arg('levels') ?? '1,8,32' }) },
    ];
    const rows: BenchRow[] = [];
    const failures: string[] = [];
    for (const bench of benches.filter((b) => only.includes(b.name))) {
        const t0 = Date.now();
        console.log(`\n== ${bench.name}`);
        try {
            const outcome = await bench.run();
            rows.push(...outcome.rows);
            failures.push(...outcome.failures);
        } catch (err) {
            console.error(err);
            failures.push(`${bench.name}: ${(err as Error).message?.split('\n')[0] ?? String(err)}`);
        }
        console.log(`== ${bench.name}: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    }

    const cell = (s: string) => s.replace(/\|/g, '\\|');
    console.log(`\n## Summary (paste into bench/README.md)\n`);
    console.log(`Machine: ${where}; load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} at the end.\n`);
    console.log('| script | what | figures |');
    console.log('|---|---|---|');
    for (const r of rows) console.log(`| ${cell(r.script)} | ${cell(r.what)} | ${cell(r.figures)} |`);
    console.log(`\nnpm run bench: ${((Date.now() - started) / 1000 / 60).toFixed(1)} min (after the build).`);
    if (failures.length) {
        console.error(`\n!!! ${failures.length} benchmark failure${failures.length === 1 ? '' : 's'}:`);
        for (const f of failures) console.error(`!!! ${f}`);
        process.exit(1);
    }
    process.exit(0);
}

main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
});
