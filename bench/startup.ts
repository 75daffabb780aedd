/**
 * Start-up: how long the devhost takes from spawning `node dist/devhost/cli.js start --app .` (the
 * core only, every service on a free port) to its first healthy `GET /api/health` (200, every
 * component up), cold (a fresh state folder: Azurite, the Cosmos stand-in and anvil start empty, the
 * operator's key and account are made) and warm (the same state folder again); and the app's own
 * module import time: `require()` of every compiled module of dist/functions and dist/orchestrations
 * in a fresh `node`, timed with `process.hrtime` inside that process.
 *
 *   npm run bench:startup -- [--rounds 2] [--imports 3]
 */
import { spawn } from 'node:child_process';
import { removeDir, repoRoot, tempDir } from '../test/harness/devhost';
import { type BenchOutcome, median, nodeBinary, sleep, spawnCompiledDevhost, numberArg, runAsScript } from './compiledDevhost';
import { freePort } from '../test/harness/faultProxy';

/** Runs inside the fresh node: every .js under dist/functions and dist/orchestrations, in a stable order. */
const IMPORT_SCRIPT = `
const fs = require('node:fs');
const path = require('node:path');
const walk = (d) => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => e.isDirectory() ? walk(path.join(d, e.name)) : e.name.endsWith('.js') ? [path.join(d, e.name)] : []);
const files = [...walk(path.resolve('dist/functions')), ...walk(path.resolve('dist/orchestrations'))].sort();
const before = Object.keys(require.cache).length;
const t0 = process.hrtime.bigint();
for (const f of files) require(f);
const t1 = process.hrtime.bigint();
process.stdout.write(JSON.stringify({ files: files.length, modules: Object.keys(require.cache).length - before, ms: Number(t1 - t0) / 1e6, rssMb: process.memoryUsage().rss / 1048576 }) + '\\n');
`;

export interface ImportTiming {
    files: number;
    modules: number;
    ms: number;
    rssMb: number;
}

/** One fresh `node` requiring the app's compiled modules (its "not in the Functions runtime" warnings go to stderr and are dropped). */
export function importOnce(): Promise<ImportTiming> {
    return new Promise((resolve, reject) => {
        const child = spawn(nodeBinary(), ['-e', IMPORT_SCRIPT], { cwd: repoRoot, env: { ...process.env, FLEXCHANGE_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
        child.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
        child.once('error', reject);
        child.once('exit', (code) => {
            const line = out.trim().split('\n').at(-1);
            if (code !== 0 || !line) return reject(new Error(`importing the app's modules exited with ${code}: ${err.slice(-2000)}`));
            resolve(JSON.parse(line) as ImportTiming);
        });
    });
}

export interface StartTiming {
    /** Spawn → the core's HTTP port first answers anything. */
    listeningMs: number;
    /** Spawn → the first `GET /api/health` answered 200 with status healthy. */
    healthyMs: number;
    /** How long that first healthy answer itself took (the health route checks every component, the bus among them). */
    healthRequestMs: number;
    /** Spawn → `<state>/devhost.json` written (every app instance started, the operator ensured). */
    readyMs: number;
    /**
     * Phases from the devhost's own info log lines (their `time`, same clock): spawn → the devhost's code
     * loaded and its first service up (the bus broker listening); → the storage processes up (Azurite,
     * the Cosmos stand-in, anvil: the core's vault is started right after them); → ready (the core's worker
     * thread booted, the app's modules loaded, its appStart hooks run, the operator's account ensured).
     */
    phases?: { devhostMs: number; storageMs: number; appMs: number };
    /** SIGTERM → exit (graceful stop of the app instance and the local services). */
    stopMs: number;
    exitCode: number | null;
}

/** Starts the compiled devhost (core only) on `stateDir` and times it; stops it again. */
export async function startOnce(stateDir: string): Promise<StartTiming> {
    const port = await freePort();
    const spawned = spawnCompiledDevhost({ stateDir, appArgs: ['--app', repoRoot, '--name', 'core', '--app-port', String(port)], env: { FLEXCHANGE_LOG_LEVEL: 'info' } });
    let exited = false;
    void spawned.exited.then(() => (exited = true));
    let readyMs: number | undefined;
    const ready = spawned.ready.then(
        (h) => (readyMs = h.readyMs),
        (err: Error) => err,
    );
    let listeningMs: number | undefined;
    let healthyMs: number | undefined;
    let healthRequestMs = 0;
    try {
        const deadline = spawned.spawnedAt + 120_000;
        while (healthyMs === undefined) {
            if (exited) throw new Error(`the devhost exited before it was healthy\n${spawned.stderr()}`);
            if (Date.now() > deadline) throw new Error(`no healthy GET /api/health within 120 s\n${spawned.stderr()}`);
            const sent = Date.now();
            try {
                const res = await fetch(`http://localhost:${port}/api/health`, { signal: AbortSignal.timeout(10_000) });
                listeningMs ??= Date.now() - spawned.spawnedAt;
                const body = (await res.json()) as { status?: string };
                if (res.status === 200 && body.status === 'healthy') {
                    healthyMs = Date.now() - spawned.spawnedAt;
                    healthRequestMs = Date.now() - sent;
                }
            } catch {
                // not listening yet (or an answer that is not JSON yet)
            }
            if (healthyMs === undefined) await sleep(20);
        }
        const r = await ready;
        if (r instanceof Error) throw r;
    } catch (err) {
        await spawned.stop('SIGKILL');
        throw err;
    }
    const at = (msg: string) => {
        const line = spawned.logs().find((l) => l.msg === msg);
        return typeof line?.time === 'string' ? Date.parse(line.time) - spawned.spawnedAt : undefined;
    };
    const bus = at('service bus: listening');
    const vault = at('key vault: listening');
    const phases = bus !== undefined && vault !== undefined ? { devhostMs: bus, storageMs: vault - bus, appMs: readyMs! - vault } : undefined;
    const stopping = Date.now();
    const exitCode = await spawned.stop('SIGTERM');
    return { listeningMs: listeningMs!, healthyMs: healthyMs!, healthRequestMs, readyMs: readyMs!, phases, stopMs: Date.now() - stopping, exitCode };
}

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const phaseText = (t: StartTiming) => (t.phases ? ` (devhost code and bus ${s(t.phases.devhostMs)}, storage processes +${s(t.phases.storageMs)}, core worker, modules, appStart and operator +${s(t.phases.appMs)})` : '');

export async function runStartup(opts: { rounds?: number; imports?: number } = {}): Promise<BenchOutcome> {
    const rounds = opts.rounds ?? 2;
    const failures: string[] = [];

    const imports: ImportTiming[] = [];
    for (let i = 0; i < (opts.imports ?? 3); i++) imports.push(await importOnce());
    const importMs = median(imports.map((t) => t.ms));
    console.log(`module import: ${imports[0]!.files} entry files (${imports[0]!.modules} modules with their dependencies) in a fresh node: ${imports.map((t) => `${t.ms.toFixed(0)} ms`).join(', ')} → median ${importMs.toFixed(0)} ms, RSS after ${imports[0]!.rssMb.toFixed(0)} MB`);

    const cold: StartTiming[] = [];
    const warm: StartTiming[] = [];
    for (let round = 1; round <= rounds; round++) {
        const stateDir = tempDir('flexchange-bench-startup-');
        try {
            const c = await startOnce(stateDir);
            cold.push(c);
            console.log(`start-up cold #${round} (fresh state folder): listening ${s(c.listeningMs)}, first healthy GET /api/health ${s(c.healthyMs)} (that request took ${c.healthRequestMs} ms), devhost ready ${s(c.readyMs)}${phaseText(c)}; graceful stop ${s(c.stopMs)} (exit ${c.exitCode})`);
            const w = await startOnce(stateDir);
            warm.push(w);
            console.log(`start-up warm #${round} (same state folder): listening ${s(w.listeningMs)}, first healthy GET /api/health ${s(w.healthyMs)} (that request took ${w.healthRequestMs} ms), devhost ready ${s(w.readyMs)}${phaseText(w)}; graceful stop ${s(w.stopMs)} (exit ${w.exitCode})`);
            for (const t of [c, w]) if (t.exitCode !== 0) failures.push(`startup: the devhost exited with ${t.exitCode} on SIGTERM`);
        } finally {
            removeDir(stateDir);
        }
    }
    const coldMs = median(cold.map((t) => t.healthyMs));
    const warmMs = median(warm.map((t) => t.healthyMs));
    const stopMs = median([...cold, ...warm].map((t) => t.stopMs));
    const firstAnswerHealthy = [...cold, ...warm].every((t) => t.healthyMs - t.listeningMs < 50);
    const phased = [...cold, ...warm].filter((t) => t.phases);
    const phase = (k: 'devhostMs' | 'storageMs' | 'appMs') => s(median(phased.map((t) => t.phases![k])));
    const phaseSummary = phased.length ? `phases (median of all starts): devhost code and bus ${phase('devhostMs')}, storage processes ${phase('storageMs')}, core worker to ready ${phase('appMs')}` : 'phases: not found in the logs';
    const listening = firstAnswerHealthy ? `the core's first answer is already healthy (that health request ${median([...cold, ...warm].map((t) => t.healthRequestMs)).toFixed(0)} ms of it)` : `core first answers after ${s(median(warm.map((t) => t.listeningMs)))} (warm)`;
    console.log(`start-up: cold ${s(coldMs)}, warm ${s(warmMs)} to the first healthy GET /api/health (median of ${rounds}); warm/cold ratio ${(warmMs / coldMs).toFixed(2)}; ${listening}; ${phaseSummary}; the app's module import (${importMs.toFixed(0)} ms) is ${((importMs / warmMs) * 100).toFixed(0)} % of the warm start`);
    return {
        rows: [
            {
                script: '`npm run bench:startup`',
                what: `\`node dist/devhost/cli.js start --app .\` (core only, every service on a free port) to the first healthy \`GET /api/health\`, cold (fresh state folder) and warm (same folder again), median of ${rounds}; the app's module import: \`require()\` of the ${imports[0]!.files} compiled entry files of dist/functions and dist/orchestrations in a fresh node, median of ${imports.length}`,
                figures: `cold ${s(coldMs)} · warm ${s(warmMs)}, ratio ${(warmMs / coldMs).toFixed(2)} · ${listening} · ${phaseSummary} · module import ${importMs.toFixed(0)} ms (${imports[0]!.modules} modules), ${((importMs / warmMs) * 100).toFixed(0)} % of the warm start · graceful stop ${s(stopMs)}`,
            },
        ],
        failures,
    };
}

if (require.main === module) runAsScript(() => runStartup({ rounds: numberArg('rounds', 2), imports: numberArg('imports', 3) }));
