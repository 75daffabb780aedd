import { getAddress } from 'ethers';
import type { FailoverProvider } from '../provider';
import { errorMessage } from './nodeErrors';
import type { Outcomes } from './outcomes';
import type { PipelineLog, PipelineSettings } from './settings';
import type { TrackedTransactions } from './tracking';

/** A receipt as the node sends it (quantities in hex). */
interface Receipt {
    transactionHash: string;
    blockNumber: string;
    blockHash: string;
    status: string;
    gasUsed: string;
    contractAddress?: string | null;
}

/**
 * Which watched transactions are mined, and which are final: new blocks' receipts matched against
 * them (or receipts looked up by hash where no block was scanned), final once `confirmations`
 * deep with their block still on the chain; a reorg or a node that went back puts them back.
 */
export class ReceiptWatch {
    /** Block hashes read in the current poll. */
    readonly #seen = new Map<number, string>();
    #head = -1;
    #scanned = -1;
    #getBlockReceipts = true;

    constructor(
        private readonly provider: FailoverProvider,
        private readonly tracked: TrackedTransactions,
        private readonly outcomes: Outcomes,
        private readonly settings: PipelineSettings,
        private readonly log?: PipelineLog,
    ) {}

    /** Receipts are matched block by block from after this head, unless scanning is under way already. */
    startAt(head: number): void {
        if (this.#scanned < 0) this.#scanned = head - 1;
    }

    /** Nothing to watch: the next submission sets where scanning starts. */
    idle(): void {
        this.#scanned = -1;
    }

    /** One poll's look at the chain: new receipts matched, missing ones looked up, deep enough ones made final. */
    async check(): Promise<void> {
        const head = Number(BigInt(await this.provider.rpc<string>('eth_blockNumber')));
        if (this.#head >= 0 && head < this.#head) {
            // The node went back (restarted from an older state, or a reorg): nothing mined above head stands.
            this.log?.warn({ from: this.#head, to: head }, 'chain: the head went back; re-checking transactions');
            for (const t of this.tracked.values()) {
                if (t.mined && t.mined.blockNumber > head) t.mined = undefined;
                t.needsLookup = true;
                t.lastBroadcast = 0;
            }
            this.#scanned = Math.min(this.#scanned, head);
        }
        this.#head = head;
        this.#seen.clear();
        if (this.#scanned < 0) {
            // Scanning starts at this head: a transaction tracked while it was idle may be mined below it
            // already (a poll found nothing watched between its submission and its tracking). Looked up by hash.
            for (const t of this.tracked.values()) if (!t.mined) t.needsLookup = true;
        }
        this.startAt(head);
        await this.#scan(head);
        await this.#lookups();
        await this.#finalise(head);
    }

    /** New blocks' receipts, matched against the transactions being watched. */
    async #scan(head: number): Promise<void> {
        const from = this.#scanned + 1;
        if (from > head) return;
        // Far behind (e.g. after a long pause): look pending transactions up one by one instead.
        if (head - from > 5000) {
            for (const t of this.tracked.values()) if (!t.mined) t.needsLookup = true;
            this.#scanned = head;
            return;
        }
        const numbers = Array.from({ length: head - from + 1 }, (_, i) => from + i);
        const blocks = await Promise.all(numbers.map((n) => this.#receiptsOf(n)));
        for (const receipts of blocks) {
            for (const r of receipts) {
                this.#seen.set(Number(BigInt(r.blockNumber)), r.blockHash);
                this.#matched(r);
            }
        }
        this.#scanned = head;
    }

    async #receiptsOf(n: number): Promise<Receipt[]> {
        const tag = '0x' + n.toString(16);
        if (this.#getBlockReceipts) {
            try {
                return (await this.provider.rpc<Receipt[] | null>('eth_getBlockReceipts', [tag])) ?? [];
            } catch (err) {
                if (!/not (found|supported|available)|does not exist|unknown method/i.test(errorMessage(err))) throw err;
                this.#getBlockReceipts = false;
            }
        }
        const block = await this.provider.rpc<{ transactions: string[] } | null>('eth_getBlockByNumber', [tag, false]);
        const ours = (block?.transactions ?? []).filter((h) => this.tracked.hasHash(h));
        const receipts = await Promise.all(ours.map((h) => this.provider.rpc<Receipt | null>('eth_getTransactionReceipt', [h])));
        return receipts.filter((r): r is Receipt => r !== null);
    }

    #matched(r: Receipt): void {
        const t = this.tracked.withHash(r.transactionHash);
        if (!t) return;
        t.mined = {
            blockNumber: Number(BigInt(r.blockNumber)),
            blockHash: r.blockHash,
            hash: r.transactionHash,
            status: Number(BigInt(r.status)),
            gasUsed: BigInt(r.gasUsed).toString(),
            contractAddress: r.contractAddress ? getAddress(r.contractAddress) : undefined,
        };
        t.needsLookup = false;
    }

    /** Receipts by hash for transactions whose blocks were not scanned (adopted, or after the node went back). */
    async #lookups(): Promise<void> {
        const todo = [...this.tracked.values()].filter((t) => t.needsLookup && !t.mined);
        await Promise.all(
            todo.map(async (t) => {
                const receipts = await Promise.all(t.doc.attempts.map((a) => this.provider.rpc<Receipt | null>('eth_getTransactionReceipt', [a.hash])));
                const r = receipts.find((x) => x !== null);
                if (r) this.#matched(r);
                else t.needsLookup = false;
            }),
        );
    }

    /** Transactions deep enough, whose block is still on the chain, become final. */
    async #finalise(head: number): Promise<void> {
        const ready = [...this.tracked.values()].filter((t) => t.mined && !t.finalising && head - t.mined.blockNumber + 1 >= this.settings.confirmations);
        if (ready.length === 0) return;
        const heights = [...new Set(ready.map((t) => t.mined!.blockNumber))];
        const hashes = new Map<number, string | undefined>();
        // One block deep and read in this very poll: its hash is the chain's now. Deeper: ask again.
        const fresh = this.settings.confirmations === 1 ? heights.filter((n) => this.#seen.has(n)) : [];
        for (const n of fresh) hashes.set(n, this.#seen.get(n));
        await Promise.all(
            heights.filter((n) => !hashes.has(n)).map(async (n) => {
                const b = await this.provider.rpc<{ hash: string } | null>('eth_getBlockByNumber', ['0x' + n.toString(16), false]);
                hashes.set(n, b?.hash);
            }),
        );
        await Promise.all(
            ready.map(async (t) => {
                const mined = t.mined!;
                if (hashes.get(mined.blockNumber) !== mined.blockHash) {
                    this.log?.warn({ operationId: t.doc.id, block: mined.blockNumber }, 'chain: the block of a mined transaction left the chain; back to pending');
                    t.mined = undefined;
                    t.needsLookup = true;
                    t.lastBroadcast = 0;
                    return;
                }
                t.finalising = true;
                try {
                    await this.outcomes.settle(t, mined);
                } catch (err) {
                    t.finalising = false;
                    this.log?.warn({ operationId: t.doc.id, err: errorMessage(err) }, 'chain: recording a final transaction failed; retrying');
                }
            }),
        );
    }
}
