import { ChildProcess, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

export const CHAIN_ID = 31337;

/** The anvil binary shipped in the npm package for this platform (spawned directly: one PID to supervise). */
export function anvilBinary(): string {
    const pkg = `@foundry-rs/anvil-${process.platform === 'darwin' ? 'darwin' : process.platform === 'win32' ? 'win32' : 'linux'}-${process.arch === 'arm64' ? 'arm64' : 'amd64'}`;
    return path.join(path.dirname(require.resolve(`${pkg}/package.json`)), 'bin', process.platform === 'win32' ? 'anvil.exe' : 'anvil');
}

function miningArgs(mining: NonNullable<LedgerOptions['mining']>): string[] {
    if (mining === 'manual') return ['--no-mining'];
    if (mining === 'instant') return [];
    if (mining === 'blocktime') return ['--block-time', '1'];
    return ['--block-time', '1', '--mixed-mining'];
}

/**
 * The local ledger: anvil (chain id 31337), its state dumped to `<state>/anvil/state.json`
 * on exit (SIGTERM) and every few seconds, and loaded on start. No dev accounts are
 * generated: accounts are funded explicitly (`anvil_setBalance`), so no well-known key holds ether.
 */
export interface LedgerOptions {
    /**
     * `interval` (the devhost): a block every second and one as soon as a transaction arrives;
     * `instant`: a block per transaction; `blocktime`: a block every second only (as a real network);
     * `manual`: blocks only on `evm_mine` (tests of stuck transactions).
     */
    mining?: 'interval' | 'instant' | 'blocktime' | 'manual';
    /** Seconds between state dumps (default 5). */
    stateIntervalSeconds?: number;
    /** The EVM hardfork anvil runs (`--hardfork`, e.g. `cancun`): the app's chain's, from its profile. Default: anvil's newest. */
    hardfork?: string;
}

export class LocalLedger {
    url = '';
    #child?: ChildProcess;
    readonly #dir: string;
    readonly #opts: LedgerOptions;

    constructor(stateDir: string, opts: LedgerOptions = {}) {
        this.#dir = path.join(stateDir, 'anvil');
        this.#opts = opts;
    }

    get pid(): number | undefined {
        return this.#child?.pid;
    }

    async start(port: number): Promise<void> {
        mkdirSync(this.#dir, { recursive: true });
        const stateFile = path.join(this.#dir, 'state.json');
        const args = [
            '--host', '127.0.0.1',
            '--port', String(port),
            '--chain-id', String(CHAIN_ID),
            '--accounts', '0',
            '--prune-history',
            // A private network's blocks hold far more than mainnet's 30 M gas: a burst of transactions fits in one.
            '--gas-limit', '300000000',
            ...miningArgs(this.#opts.mining ?? 'interval'),
            '--state', stateFile,
            '--state-interval', String(this.#opts.stateIntervalSeconds ?? 5),
            ...(this.#opts.hardfork ? ['--hardfork', this.#opts.hardfork] : []),
        ];
        let stderr = '';
        let stdout = '';
        const child = spawn(anvilBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
        child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
        child.stdout!.on('data', (c: Buffer) => {
            if (stdout.length < 65536) stdout += c.toString();
        });
        this.#child = child;
        const deadline = Date.now() + 20_000;
        for (;;) {
            const m = /Listening on 127\.0\.0\.1:(\d+)/.exec(stdout);
            if (m) {
                this.url = `http://127.0.0.1:${m[1]}`;
                break;
            }
            if (child.exitCode !== null) {
                const reason = /Address already in use/i.test(stderr + stdout) ? `port ${port} is already in use` : (stderr || stdout).trim().split('\n').slice(-3).join(' ');
                throw new Error(`The ledger (anvil) failed to start: ${reason}`);
            }
            if (Date.now() > deadline) throw new Error('The ledger (anvil) did not start within 20 s');
            await new Promise((r) => setTimeout(r, 50));
        }
        // Drain output from now on so the pipes never fill.
        child.stdout!.removeAllListeners('data');
        child.stdout!.resume();
        // Answering JSON-RPC, not just listening.
        const res = await fetch(this.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }), signal: AbortSignal.timeout(2000) });
        if (!res.ok) throw new Error(`The ledger (anvil) answered eth_chainId with HTTP ${res.status}`);
    }

    /** A crash: no state dump, so what happened since the last periodic dump is lost (tests of recovery). */
    async kill(): Promise<void> {
        const child = this.#child;
        if (!child || child.exitCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGKILL');
        await exited;
    }

    /** SIGTERM makes anvil dump its state before exiting. */
    async stop(): Promise<void> {
        const child = this.#child;
        if (!child || child.exitCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
    }
}
