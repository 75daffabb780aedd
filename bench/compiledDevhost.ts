/**
 * The benchmarks' devhost: the compiled CLI (`node dist/devhost/cli.js start`, as `npm start` runs it)
 * on the project's Node (node_modules/.bin/node), every port free and a state folder of its own, so it
 * never meets another devhost on this machine. The object it returns is the test harness's
 * `RunningDevhost`, so the harness's journeys (`onboard`, `devToken`) work on it.
 *
 * The harness's own `startDevhost` runs the devhost from source through tsx; start-up time and memory
 * are measured here on the compiled code instead (tsx's loader would be part of both figures).
 */
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { repoRoot, spawnDevhost, type RunningDevhost, type SpawnedDevhost } from '../test/harness/devhost';

/** The Node the npm scripts run on (the project's own), else this process's. */
export function nodeBinary(): string {
    const own = path.join(repoRoot, 'node_modules', '.bin', 'node');
    return existsSync(own) ? realpathSync(own) : process.execPath;
}

export type CompiledDevhost = RunningDevhost & { readyMs: number };

/**
 * Spawns `node dist/devhost/cli.js start` with every service on a free port and `appArgs`
 * (e.g. `--app <repo> --name core --app-port <port> --set K=V`). Returns at once: `ready` says
 * when it is up, so a caller can time other things (a health probe) from the same spawn.
 */
export function spawnCompiledDevhost(opts: { stateDir: string; appArgs: string[]; env?: Record<string, string>; timeoutMs?: number }): SpawnedDevhost {
    const cli = path.join(repoRoot, 'dist', 'devhost', 'cli.js');
    if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build first`);
    return spawnDevhost({
        node: nodeBinary(),
        entry: [cli],
        appArgs: opts.appArgs,
        stateDir: opts.stateDir,
        storage: true,
        env: { FLEXCHANGE_LOG_LEVEL: 'warn', ...opts.env },
        timeoutMs: opts.timeoutMs ?? 120_000,
        keepLines: 2000,
    });
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

/** `--name <number>` from the command line, or the fallback. */
export function numberArg(name: string, fallback: number): number {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

/** Runs one benchmark as a script of its own: its failures reported, exit 1 when there are any. */
export function runAsScript(run: () => Promise<BenchOutcome>): void {
    run().then(
        (o) => {
            for (const f of o.failures) console.error(`FAILED: ${f}`);
            process.exit(o.failures.length ? 1 : 0);
        },
        (err: unknown) => {
            console.error(err);
            process.exit(1);
        },
    );
}
