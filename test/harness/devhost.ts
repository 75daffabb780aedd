import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const repoRoot = path.resolve(__dirname, '..', '..');
export const fixture = (name: string) => path.join(repoRoot, 'test', 'fixtures', name);
/** Flexchange's devhost profile as built (`--profile`): what a generic fixture app needs to stand in for Flexchange in the local world. */
export const flexchangeProfile = path.join(repoRoot, 'dist', 'devprofile', 'index.js');

export interface StartedApp {
    name: string;
    url: string;
    port: number;
    role?: string;
}

export interface RunningDevhost {
    child: ChildProcess;
    consoleUrl: string;
    stateDir: string;
    apps: Record<string, StartedApp>;
    /** Base URL of an app instance, e.g. http://localhost:40123 (no route prefix). */
    origin(app: string): string;
    /** Every JSON log line so far. */
    logs(): Record<string, unknown>[];
    stderr(): string;
    /** Sends a signal and waits for the exit code. */
    stop(signal?: NodeJS.Signals): Promise<number | null>;
    exited: Promise<number | null>;
}

export function tempDir(prefix = 'flexchange-test-'): string {
    return mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Every service port on a free one (0): a devhost started this way never meets another on this machine. */
const FREE_PORTS = ['--port', '0', '--console-port', '0', '--identity-port', '0', '--smtp-port', '0', '--servicebus-port', '0', '--servicebus-admin-port', '0'];
const FREE_STORAGE_PORTS = ['--storage-ports', '0', '--cosmos-port', '0', '--ledger-port', '0'];

export interface SpawnedDevhost {
    child: ChildProcess;
    /** `Date.now()` just before the process was spawned. */
    spawnedAt: number;
    /** Resolves once `<state>/devhost.json` names this process (every app instance started), or rejects when it exits first or takes too long. */
    ready: Promise<RunningDevhost & { readyMs: number }>;
    stop(signal?: NodeJS.Signals): Promise<number | null>;
    exited: Promise<number | null>;
    stderr(): string;
    logs(): Record<string, unknown>[];
}

/**
 * Spawns `<node> <entry...> start` on free ports with its own state folder and returns at once
 * (`ready` says when it is up, so a caller can time other things from the same spawn). `entry` is
 * the CLI from source through tsx (tests) or the compiled one (the benchmarks).
 */
export function spawnDevhost(opts: {
    node?: string;
    entry: string[];
    appArgs: string[];
    stateDir: string;
    storage?: boolean;
    env?: Record<string, string>;
    timeoutMs?: number;
    /** Keep only the newest N log lines (long benchmark runs); all of them by default. */
    keepLines?: number;
}): SpawnedDevhost {
    // DEVHOST_CPU_PROFILE_DIR (benchmarks): a V8 CPU profile of the devhost and of each app worker thread, written there on exit.
    const profile = process.env.DEVHOST_CPU_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.DEVHOST_CPU_PROFILE_DIR}`] : [];
    const args = [...profile, ...opts.entry, 'start', ...FREE_PORTS, '--state', opts.stateDir, ...(opts.storage ? FREE_STORAGE_PORTS : ['--no-storage']), ...opts.appArgs];
    const spawnedAt = Date.now();
    const child = spawn(opts.node ?? process.execPath, args, {
        cwd: repoRoot,
        env: { ...process.env, FLEXCHANGE_LOG_LEVEL: 'debug', ...opts.env },
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const lines: Record<string, unknown>[] = [];
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
        return exited;
    };
    const runtimeFile = path.join(opts.stateDir, 'devhost.json');
    child.stdout!.on('data', (chunk: Buffer) => {
        stdout += chunk.toString('utf8');
        let nl: number;
        while ((nl = stdout.indexOf('\n')) >= 0) {
            const line = stdout.slice(0, nl);
            stdout = stdout.slice(nl + 1);
            try {
                lines.push(JSON.parse(line) as Record<string, unknown>);
                if (opts.keepLines && lines.length > opts.keepLines) lines.splice(0, lines.length - opts.keepLines);
            } catch {
                // not a log line
            }
        }
    });
    child.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString('utf8');
        if (opts.keepLines && stderr.length > 64 * 1024) stderr = stderr.slice(-64 * 1024);
    });
    // Ready = the devhost has written <state>/devhost.json for this process (whatever the log level).
    const ready = new Promise<RunningDevhost & { readyMs: number }>((resolve, reject) => {
        const deadline = spawnedAt + (opts.timeoutMs ?? 30000);
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
                if (info.pid === child.pid) {
                    done = true;
                    const apps: Record<string, StartedApp> = {};
                    for (const a of info.apps) apps[a.name] = a;
                    resolve({
                        child,
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
                        exited,
                        stop,
                        readyMs: Date.now() - spawnedAt,
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
            setTimeout(poll, 25);
        };
        poll();
    });
    return { child, spawnedAt, ready, stop, exited, stderr: () => stderr, logs: () => lines };
}

/**
 * Starts the devhost CLI from source (tsx) in a child process, on free ports,
 * with its own state folder, and resolves once it is ready.
 */
export async function startDevhost(
    appArgs: string[],
    opts: { env?: Record<string, string>; stateDir?: string; timeoutMs?: number; storage?: boolean } = {},
): Promise<RunningDevhost> {
    const stateDir = opts.stateDir ?? tempDir('flexchange-state-');
    return spawnDevhost({ entry: ['--import', 'tsx', path.join(repoRoot, 'devhost', 'cli.ts')], appArgs, stateDir, storage: opts.storage, env: opts.env, timeoutMs: opts.timeoutMs }).ready;
}

export function readJsonLines(file: string): Record<string, unknown>[] {
    try {
        return readFileSync(file, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as Record<string, unknown>);
    } catch {
        return [];
    }
}

export function removeDir(dir: string): void {
    rmSync(dir, { recursive: true, force: true });
}

type Maybe<T> = T | undefined | false;

export async function waitFor<T>(probe: () => Maybe<T> | Promise<Maybe<T>>, timeoutMs = 15000, everyMs = 50): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const value = await probe();
        if (value) return value;
        if (Date.now() > deadline) throw new Error('condition not met in time');
        await new Promise((r) => setTimeout(r, everyMs));
    }
}

/** A token from the devhost's issuer (console `POST /dev/token`): with an `orgId`, the principal is entered in the core's directory. */
export async function devToken(host: RunningDevhost, body: { roles: string[]; orgId?: string; email?: string; name?: string; appOnly?: boolean }): Promise<string> {
    const res = await fetch(`${host.consoleUrl}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`POST /dev/token answered ${res.status}: ${await res.text()}`);
    return ((await res.json()) as { access_token: string }).access_token;
}
