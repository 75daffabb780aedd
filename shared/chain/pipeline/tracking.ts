import type { AbstractSigner, InterfaceAbi } from 'ethers';
import type { TxDoc, TxOutcome } from './records';

/** Where a watched transaction's receipt says it was mined. */
export interface Mined {
    blockNumber: number;
    blockHash: string;
    hash: string;
    status: number;
    gasUsed: string;
    contractAddress?: string;
}

/** A transaction watched until it is final; the parts that send, replace and confirm it share this entry. */
export interface Tracked {
    doc: TxDoc;
    etag?: string;
    /** Absent for a transaction only waited for: it can be re-sent, not re-signed. */
    signer?: AbstractSigner;
    abi?: InterfaceAbi;
    waiters: { resolve: (o: TxOutcome) => void; reject: (e: unknown) => void }[];
    lastBroadcast: number;
    lastAttemptAt: number;
    mined?: Mined;
    needsLookup: boolean;
    finalising?: boolean;
}

/**
 * The transactions this instance watches until they are final, by operation id and by the hash
 * of every attempt (a receipt names only the hash). A newly watched one wakes the polling.
 */
export class TrackedTransactions {
    readonly #byId = new Map<string, Tracked>();
    readonly #byHash = new Map<string, string>();

    constructor(private readonly wake: () => void) {}

    get size(): number {
        return this.#byId.size;
    }

    get(operationId: string): Tracked | undefined {
        return this.#byId.get(operationId);
    }

    has(operationId: string): boolean {
        return this.#byId.has(operationId);
    }

    values(): IterableIterator<Tracked> {
        return this.#byId.values();
    }

    hasHash(hash: string): boolean {
        return this.#byHash.has(hash);
    }

    /** The watched transaction one of whose attempts has this hash. */
    withHash(hash: string): Tracked | undefined {
        const id = this.#byHash.get(hash);
        if (!id) return undefined;
        return this.#byId.get(id);
    }

    track(doc: TxDoc, etag: string | undefined, signer: AbstractSigner | undefined, abi: InterfaceAbi | undefined, needsLookup: boolean): Tracked {
        const existing = this.#byId.get(doc.id);
        if (existing) {
            existing.signer ??= signer;
            existing.abi ??= abi;
            return existing;
        }
        const sentAt = Date.parse(doc.attempts.at(-1)!.sentAt);
        const t: Tracked = { doc, etag, signer, abi, waiters: [], lastBroadcast: needsLookup ? 0 : Date.now(), lastAttemptAt: sentAt, needsLookup };
        this.#byId.set(doc.id, t);
        for (const a of doc.attempts) this.#byHash.set(a.hash, doc.id);
        this.wake();
        return t;
    }

    /** A replacement attempt of a watched transaction: its receipt is matched too. */
    attempted(t: Tracked, hash: string): void {
        this.#byHash.set(hash, t.doc.id);
    }

    untrack(t: Tracked): void {
        this.#byId.delete(t.doc.id);
        for (const a of t.doc.attempts) this.#byHash.delete(a.hash);
    }

    /** Stops watching everything (on close; the attempts' hashes stay known, as a poll may still be running). */
    clear(): void {
        this.#byId.clear();
    }
}
