import { getAddress, type InterfaceAbi } from 'ethers';
import type { Repository } from '../documents/repository';
import { Conflict } from '../errors';
import { eventDecoder, type EventArgs, type RawLog } from './energyExchange';
import type { FailoverProvider } from './provider';

/** A contract event, decoded with the ABI of the version that emitted it. */
export interface ChainEvent {
    /** `<txHash>:<logIndex>`: stable, for consumers to drop a redelivered event. */
    id: string;
    name: string;
    args: EventArgs;
    contract: string;
    version: number;
    blockNumber: number;
    blockHash: string;
    txHash: string;
    logIndex: number;
}

/** Where decoded events go (the saga and publishing plug in here). Must tolerate redelivery. */
export interface ChainEventHandler {
    handle(events: ChainEvent[]): Promise<void>;
}

/** The pump's position (container `checkpoints`, id = the pump's name). */
export interface PumpCheckpoint {
    id: string;
    /** The last block whose events were handled. */
    block: number;
    /** Hashes of the last blocks handled, newest last: a mismatch later means a reorg. */
    recent: { number: number; hash: string }[];
    updatedAt: string;
}

export interface PumpOptions {
    name?: string;
    /** Blocks deep before their events are read (1 = in a block). */
    confirmations: number;
    /** Blocks re-checked for a reorg (default 12). */
    reorgDepth?: number;
    /** At most this many blocks per run (default 2000). */
    maxBlocksPerRun?: number;
    /** Where a pump without a checkpoint starts (default: the first version's deployment block, else 0). */
    startBlock?: number;
}

export interface PumpRun {
    from: number;
    to: number;
    events: number;
    /** Set when a reorg sent the pump back. */
    rewoundTo?: number;
    /** Another instance moved the checkpoint first: this run's events were handled, its checkpoint dropped. */
    lostRace?: boolean;
}

/**
 * Reads the logs of every recorded contract version from a checkpoint, only past
 * the confirmation depth; re-checks the last blocks' hashes first and goes back
 * before a reorg; decodes the logs and hands them to the handler; writes the
 * checkpoint only after the handler succeeded (ETag-guarded). At least once,
 * never skipped.
 */
export class ChainEventPump {
    readonly #name: string;
    readonly #reorgDepth: number;
    readonly #maxBlocks: number;

    constructor(
        private readonly provider: FailoverProvider,
        private readonly checkpoints: Repository<PumpCheckpoint>,
        private readonly contracts: () => Promise<{ version: number; address: string; abi: InterfaceAbi; blockNumber?: number }[]>,
        private readonly handler: ChainEventHandler,
        private readonly opts: PumpOptions,
    ) {
        this.#name = opts.name ?? 'chain-events';
        this.#reorgDepth = opts.reorgDepth ?? 12;
        this.#maxBlocks = opts.maxBlocksPerRun ?? 2000;
    }

    async runOnce(): Promise<PumpRun> {
        const contracts = await this.contracts();
        if (contracts.length === 0) return { from: 0, to: -1, events: 0 };
        const stored = await this.checkpoints.read(this.#name, this.#name);
        const head = Number(BigInt(await this.provider.rpc<string>('eth_blockNumber')));
        const safe = head - (this.opts.confirmations - 1);
        const start = this.opts.startBlock ?? Math.min(...contracts.map((c) => c.blockNumber ?? 0), Number.MAX_SAFE_INTEGER);
        let checkpoint: PumpCheckpoint = stored?.item ?? { id: this.#name, block: (start === Number.MAX_SAFE_INTEGER ? 0 : start) - 1, recent: [], updatedAt: new Date(0).toISOString() };

        // Reorg: the newest handled block whose hash still matches is where the chain agrees with us.
        let rewoundTo: number | undefined;
        if (checkpoint.recent.length) {
            const current = await Promise.all(checkpoint.recent.map((b) => this.#blockHash(b.number)));
            let agreed = -1;
            for (let i = checkpoint.recent.length - 1; i >= 0; i--) {
                if (current[i] === checkpoint.recent[i].hash) {
                    agreed = i;
                    break;
                }
            }
            if (agreed < checkpoint.recent.length - 1) {
                const back = agreed >= 0 ? checkpoint.recent[agreed].number : checkpoint.recent[0].number - 1;
                rewoundTo = back;
                checkpoint = { ...checkpoint, block: back, recent: checkpoint.recent.slice(0, agreed + 1) };
            }
        }

        const from = checkpoint.block + 1;
        const to = Math.min(safe, from + this.#maxBlocks - 1);
        if (to < from) {
            if (rewoundTo !== undefined) await this.#save(checkpoint, stored?.etag);
            return { from, to: from - 1, events: 0, rewoundTo };
        }
        const byAddress = new Map(contracts.map((c) => [getAddress(c.address), { version: c.version, decode: eventDecoder(c.abi) }]));
        const logs = await this.provider.rpc<RawLog[]>('eth_getLogs', [{ fromBlock: hex(from), toBlock: hex(to), address: [...byAddress.keys()] }]);
        const events: ChainEvent[] = [];
        for (const log of logs) {
            if (log.removed) continue;
            const contract = byAddress.get(getAddress(log.address));
            if (!contract) continue;
            const decoded = contract.decode(log);
            if (!decoded) continue;
            const logIndex = Number(BigInt(log.logIndex));
            events.push({
                id: `${log.transactionHash}:${logIndex}`,
                name: decoded.name,
                args: decoded.args,
                contract: getAddress(log.address),
                version: contract.version,
                blockNumber: Number(BigInt(log.blockNumber)),
                blockHash: log.blockHash,
                txHash: log.transactionHash,
                logIndex,
            });
        }
        events.sort((a, b) => a.blockNumber - b.blockNumber || a.logIndex - b.logIndex);

        // The hashes of the blocks just read, for the next run's reorg check (read before handling, so they match the logs).
        const recentFrom = Math.max(from, to - this.#reorgDepth + 1);
        const recentNew = await Promise.all(Array.from({ length: to - recentFrom + 1 }, (_, i) => recentFrom + i).map(async (n) => ({ number: n, hash: (await this.#blockHash(n))! })));
        // Logs from a block replaced while reading would not match the hash read: the next run redoes them.
        if (events.some((e) => recentNew.find((b) => b.number === e.blockNumber && b.hash !== e.blockHash))) {
            return { from, to: from - 1, events: 0, rewoundTo };
        }

        if (events.length) await this.handler.handle(events);
        const next: PumpCheckpoint = {
            id: this.#name,
            block: to,
            recent: [...checkpoint.recent, ...recentNew].filter((b) => b.number > to - this.#reorgDepth).slice(-this.#reorgDepth),
            updatedAt: new Date().toISOString(),
        };
        const saved = await this.#save(next, stored?.etag);
        return { from, to, events: events.length, rewoundTo, lostRace: !saved || undefined };
    }

    /** Runs until caught up with the safe head (a timer calls this). */
    async catchUp(maxRuns = 20): Promise<PumpRun[]> {
        const runs: PumpRun[] = [];
        for (let i = 0; i < maxRuns; i++) {
            const run = await this.runOnce();
            runs.push(run);
            if (run.lostRace || run.to - run.from + 1 < this.#maxBlocks) break;
        }
        return runs;
    }

    /**
     * Follows the chain for `forMs`: catches up at once, then asks for the head every `pollMs` and
     * catches up again as soon as it moves (a block's events reach the handler within a poll of
     * being mined, not at the next timer). Only the head is polled while nothing happens. Stops
     * early when `signal` aborts (the host shutting down).
     */
    async follow(opts: { forMs: number; pollMs: number; signal?: AbortSignal }): Promise<PumpRun[]> {
        const until = Date.now() + opts.forMs;
        const runs = await this.catchUp();
        let seen = Number(BigInt(await this.provider.rpc<string>('eth_blockNumber')));
        while (!opts.signal?.aborted && Date.now() + opts.pollMs < until && !runs.at(-1)?.lostRace) {
            await new Promise((resolve) => setTimeout(resolve, opts.pollMs));
            const head = Number(BigInt(await this.provider.rpc<string>('eth_blockNumber')));
            if (head === seen) continue;
            seen = head;
            runs.push(...(await this.catchUp()));
        }
        return runs;
    }

    async #save(checkpoint: PumpCheckpoint, etag: string | undefined): Promise<boolean> {
        try {
            if (etag) await this.checkpoints.replace(checkpoint, etag);
            else await this.checkpoints.create(checkpoint);
            return true;
        } catch (err) {
            if (err instanceof Conflict) return false;
            throw err;
        }
    }

    async #blockHash(n: number): Promise<string | undefined> {
        const block = await this.provider.rpc<{ hash: string } | null>('eth_getBlockByNumber', [hex(n), false]);
        return block?.hash;
    }
}

const hex = (n: number) => '0x' + n.toString(16);
