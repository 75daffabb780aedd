/**
 * The benchmarks' devhost: the compiled CLI (`node dist/devhost/cli.js start`, as `npm start` runs it)
 * on the project's Node (node_modules/.bin/node), every port free and a state folder of its own, so it
 * never meets another devhost on this machine. The object it returns is the test harness's
 * `RunningDevhost`, so the harness's journeys (`onboard`, `devToken`) work on it.
 *
 * The harness's own `startDevhost` runs the devhost from source through tsx; start-up time and memory
 * are measured here on the compiled code instead (tsx's loader would be part of both figures).
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import type { RunningDevhost, StartedApp } from '../test/harness/devhost';
import { repoRoot } from '../test/harness/devhost';

/** The Node the npm scripts run on (the project's own), else this process's. */
export function nodeBinary(): string {
    const own = path.join(repoRoot, 'node_modules', '.bin', 'node');
    return existsSync(own) ? realpathSync(own) : process.execPath;
}

/** A port nobody listens on right now (the kernel's pick; closed again before it is used). */
export function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const server = createServer();
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => {
            const addr = server.address();
            const port = typeof addr === 'object' && addr ? addr.port : 0;
            server.close(() => resolve(port));
        });
    });
}

export interface CompiledDevhost extends RunningDevhost {
    pid: number;
    /** `Date.now()` just before the process was spawned. */
    spawnedAt: number;
    /** From spawn to `<state>/devhost.json` naming this process (every app instance started). */
    readyMs: number;
}

export interface SpawnedDevhost {
    pid: number;
    spawnedAt: number;
    /** Resolves once the devhost is ready (or rejects when it exits first or takes too long). */
    ready: Promise<CompiledDevhost>;
    stop(signal?: NodeJS.Signals): Promise<number | null>;
    exited: Promise<number | null>;
    stderr(): string;
    /** Every JSON log line so far (the last 2,000). */
    logs(): Record<string, unknown>[];
}

const TAIL = 64 * 1024;

/**
 * Spawns `node dist/devhost/cli.js start` with every service on a free port and `appArgs`
 * (e.g. `--app <repo> --name core --app-port <port> --set K=V`). Returns at once: `ready` says
 * when it is up, so a caller can time other things (a health probe) from the same spawn.
 */
export function spawnCompiledDevhost(opts: { stateDir: string; appArgs: string[]; env?: Record<string, string>; timeoutMs?: number }): SpawnedDevhost {
    const cli = path.join(repoRoot, 'dist', 'devhost', 'cli.js');
    if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build first`);
    const args = [cli, 'start', '--port', '0', '--console-port', '0', '--state', opts.stateDir, '--identity-port', '0', '--smtp-port', '0', '--servicebus-port', '0', '--servicebus-admin-port', '0', '--storage-ports', '0', '--cosmos-port', '0', '--ledger-port', '0', ...opts.appArgs];
    const spawnedAt = Date.now();
    const child = spawn(nodeBinary(), args, {
        cwd: repoRoot,
        env: { ...process.env, FLEXCHANGE_LOG_LEVEL: 'warn', ...opts.env },
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    const pid = child.pid;
    if (pid === undefined) throw new Error('the devhost did not spawn');
    let stdout = '';
    let stderr = '';
    const lines: Record<string, unknown>[] = [];
    child.stdout!.on('data', (chunk: Buffer) => {
        stdout += chunk.toString('utf8');
        let nl: number;
        while ((nl = stdout.indexOf('\n')) >= 0) {
            const line = stdout.slice(0, nl);
            stdout = stdout.slice(nl + 1);
            try {
                lines.push(JSON.parse(line) as Record<string, unknown>);
                if (lines.length > 2000) lines.splice(0, lines.length - 2000);
            } catch {
                // not a log line
            }
        }
    });
    child.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString('utf8');
        if (stderr.length > TAIL) stderr = stderr.slice(-TAIL);
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : null))));
    const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
        return exited;
    };
    const runtimeFile = path.join(opts.stateDir, 'devhost.json');
    const ready = new Promise<CompiledDevhost>((resolve, reject) => {
        const deadline = spawnedAt + (opts.timeoutMs ?? 120_000);
        let done = false;
        void exited.then((code) => {
            if (done) return;
            done = true;
            reject(new Error(`devhost exited with ${code} before it was ready\n${stderr}`));
        });
        const poll = () => {
            if (done) return;
            try {
                const info = JSON.parse(readFileSync(runtimeFile, 'utf8')) as { pid: number; console: string; apps: StartedApp[] };
                if (info.pid === pid) {
                    done = true;
                    const readyMs = Date.now() - spawnedAt;
                    const apps: Record<string, StartedApp> = {};
                    for (const a of info.apps) apps[a.name] = a;
                    resolve({
                        child,
                        pid,
                        spawnedAt,
                        readyMs,
                        consoleUrl: info.console,
                        stateDir: opts.stateDir,
                        apps,
                        origin: (name) => {
                            const app = apps[name];
                            if (!app) throw new Error(`no app instance "${name}"`);
                            return `http://localhost:${app.port}`;
                        },
                        logs: () => lines,
                        stderr: () => stderr,
                        stop,
                        exited,
                    });
                    return;
                }
            } catch {
                // not written yet
            }
            if (Date.now() > deadline) {
                done = true;
                child.kill('SIGKILL');
                reject(new Error(`devhost not ready in time\n${stderr}`));
                return;
            }
            setTimeout(poll, 20);
        };
        poll();
    });
    return { pid, spawnedAt, ready, stop, exited, stderr: () => stderr, logs: () => lines };
}

export async function startCompiledDevhost(opts: { stateDir: string; appArgs: string[]; env?: Record<string, string>; timeoutMs?: number }): Promise<CompiledDevhost> {
    const spawned = spawnCompiledDevhost(opts);
    try {
        return await spawned.ready;
    } catch (err) {
        await spawned.stop('SIGKILL');
        throw err;
    }
}

/** Resident set size of a process, in bytes (`VmRSS` of /proc/<pid>/status); undefined once it is gone. */
export function rssBytes(pid: number): number | undefined {
    try {
        const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
        return m ? Number(m[1]) * 1024 : undefined;
    } catch {
        return undefined;
    }
}

/** The processes whose parent is `pid`, with their command lines. */
export function childProcesses(pid: number): { pid: number; cmdline: string }[] {
    const out: { pid: number; cmdline: string }[] = [];
    for (const entry of readdirSync('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        try {
            const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
            // pid (comm) state ppid ...: comm may hold spaces and parentheses; the fields after the last ')' are fixed.
            const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
            if (ppid === pid) out.push({ pid: Number(entry), cmdline: readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ').trim() });
        } catch {
            // gone meanwhile
        }
    }
    return out;
}

export const mb = (bytes: number) => bytes / 1024 / 1024;

/** p-th percentile (0..100) of sorted numbers, nearest rank. */
export function percentile(sorted: readonly number[], p: number): number {
    if (sorted.length === 0) return NaN;
    const rank = Math.ceil((p / 100) * sorted.length);
    return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** The median (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** One row of the summary table `bench/all.ts` prints (and bench/README.md keeps). */
export interface BenchRow {
    script: string;
    what: string;
    figures: string;
}

export interface BenchOutcome {
    rows: BenchRow[];
    /** Anything that makes the run a failure (errors, non-2xx answers): reported loudly, exit 1. */
    failures: string[];
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
