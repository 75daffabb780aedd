import { setTimeout as sleep } from 'node:timers/promises';
import type { AbstractSigner } from 'ethers';
import type { Repository } from '../../documents/repository';
import { Conflict, Unavailable, type AppError } from '../../errors';
import type { FailoverProvider } from '../provider';
import type { NonceHoles, SenderNonces } from './nonceHoles';
import { errorMessage } from './nodeErrors';
import type { NonceLeaseDoc, TxDoc } from './records';
import type { PipelineLog, PipelineSettings } from './settings';
import type { TrackedTransactions } from './tracking';

/** A sender's nonces and lease, as this instance knows them. */
export interface SenderState extends SenderNonces {
    owner: boolean;
    leaseUntil: number;
    etag?: string;
    next: number;
    lastUse: number;
    acquiring?: Promise<void>;
    renewing?: Promise<void>;
}

/** Another instance holds the lease, or took it first: wait and try again. */
class LeaseBusy extends Error {}

/**
 * Who assigns a sender's nonces: this instance only while it holds the sender's lease in the store
 * (ETag-guarded, renewed while in use, released when idle), so two instances never use one nonce.
 * Whoever takes a lease over starts after the highest nonce recorded and the node's pending count.
 */
export class NonceLeases {
    readonly #senders = new Map<string, SenderState>();

    constructor(
        private readonly instanceId: string,
        private readonly provider: FailoverProvider,
        private readonly leases: Repository<NonceLeaseDoc>,
        private readonly txs: Repository<TxDoc>,
        private readonly tracked: TrackedTransactions,
        private readonly holes: NonceHoles,
        private readonly settings: PipelineSettings,
        /** Wakes the polling, which renews and releases leases. */
        private readonly wake: () => void,
        private readonly log?: PipelineLog,
    ) {}

    /** Whether this instance holds the sender's lease with more than a third of it left. */
    holds(sender: string): boolean {
        const lease = this.#senders.get(sender.toLowerCase());
        return !!lease?.owner && lease.leaseUntil - Date.now() > this.settings.leaseMs / 3;
    }

    /** Whether this instance holds any lease (the polling goes on to renew or release it). */
    get anyHeld(): boolean {
        return [...this.#senders.values()].some((s) => s.owner);
    }

    /** The next nonce of a sender leased here: one returned to the pool first. */
    assign(state: SenderState): number {
        const nonce = state.free.length ? state.free.shift()! : state.next++;
        state.lastUse = Date.now();
        return nonce;
    }

    /**
     * The sender's state under a lease held here: renewed first when getting short, taken when free or
     * run out; another instance's is waited for up to `leaseWaitMs`.
     */
    async lease(sender: string, signer: AbstractSigner): Promise<SenderState> {
        const key = sender.toLowerCase();
        let state = this.#senders.get(key);
        if (!state) {
            state = { key, address: sender, owner: false, leaseUntil: 0, next: 0, free: [], lastUse: Date.now(), signer };
            this.#senders.set(key, state);
        }
        state.signer ??= signer;
        const deadline = Date.now() + this.settings.leaseWaitMs;
        for (;;) {
            const remaining = state.leaseUntil - Date.now();
            if (state.owner && remaining > this.settings.leaseMs / 3) {
                if (remaining < (this.settings.leaseMs * 2) / 3 && !state.renewing) this.#renew(state);
                this.wake();
                return state;
            }
            if (state.owner && remaining > 1000) {
                // Getting short: renew before assigning.
                await (state.renewing ?? this.#renew(state));
                continue;
            }
            state.acquiring ??= this.#acquire(state).finally(() => (state!.acquiring = undefined));
            const got = await state.acquiring.then(() => true, (err: unknown) => (err instanceof LeaseBusy ? false : Promise.reject(err)));
            if (got && state.owner) continue;
            if (Date.now() > deadline) throw new Unavailable(`The nonces of ${sender} are leased by another instance; try again later`);
            await sleep(200 + Math.random() * 200);
        }
    }

    async #acquire(state: SenderState): Promise<void> {
        const now = Date.now();
        const existing = await this.leases.read(state.key, state.key);
        if (existing && existing.item.owner !== this.instanceId && existing.item.leaseUntil > now) throw new LeaseBusy();
        const wasOwner = existing?.item.owner === this.instanceId && state.owner;
        let next = state.next;
        if (!wasOwner) {
            // Taking over (or starting): after the highest nonce anyone recorded and after what the node has seen.
            const [pendingHex, recorded] = await Promise.all([
                this.provider.rpc<string>('eth_getTransactionCount', [state.address, 'pending']),
                this.#maxRecordedNonce(state.address, existing?.item.next ?? 0),
            ]);
            next = Math.max(existing?.item.next ?? 0, Number(BigInt(pendingHex)), recorded + 1);
        }
        const doc: NonceLeaseDoc = { id: state.key, owner: this.instanceId, leaseUntil: now + this.settings.leaseMs, next, updatedAt: new Date(now).toISOString() };
        let written;
        try {
            written = existing ? await this.leases.replace(doc, existing.etag) : await this.leases.create(doc);
        } catch (err) {
            if (err instanceof Conflict) throw new LeaseBusy();
            throw err;
        }
        state.owner = true;
        state.etag = written.etag;
        state.leaseUntil = doc.leaseUntil;
        state.next = next;
        if (!wasOwner) {
            this.log?.info({ sender: state.address, next, instance: this.instanceId }, 'chain: nonce lease taken');
            await this.holes.adopt(state, next);
        }
    }

    #renew(state: SenderState): Promise<void> {
        state.renewing = (async () => {
            const now = Date.now();
            const doc: NonceLeaseDoc = { id: state.key, owner: this.instanceId, leaseUntil: now + this.settings.leaseMs, next: state.next, updatedAt: new Date(now).toISOString() };
            try {
                const written = await this.leases.replace(doc, state.etag);
                state.etag = written.etag;
                state.leaseUntil = doc.leaseUntil;
            } catch (err) {
                if (err instanceof Conflict || (err as AppError).status === 404) {
                    // Someone took it over (ours had run out): stop assigning until it is ours again.
                    state.owner = false;
                    state.leaseUntil = 0;
                    this.log?.warn({ sender: state.address }, 'chain: nonce lease lost');
                } else {
                    this.log?.warn({ sender: state.address, err: (err as Error).message }, 'chain: nonce lease renewal failed; retrying');
                }
            }
        })().finally(() => (state.renewing = undefined));
        return state.renewing;
    }

    async #release(state: SenderState): Promise<void> {
        // Nonces nobody took are filled now: the next owner would not know about them.
        for (const nonce of state.free.splice(0)) this.holes.fill(state, nonce, 'unused when the lease was released');
        const doc: NonceLeaseDoc = { id: state.key, owner: this.instanceId, leaseUntil: 0, next: state.next, updatedAt: new Date().toISOString() };
        state.owner = false;
        state.leaseUntil = 0;
        try {
            await this.leases.replace(doc, state.etag);
        } catch (err) {
            if (!(err instanceof Conflict)) throw err;
        }
    }

    async #maxRecordedNonce(sender: string, from: number): Promise<number> {
        let max = -1;
        let continuationToken: string | undefined;
        do {
            const page = await this.txs.query(
                // The nonces only: a record carries its call data (up to a batch's worth), which this needs none of.
                { query: 'SELECT c.id, c.nonce FROM c WHERE c.sender = @sender AND c.nonce >= @from', parameters: [{ name: '@sender', value: sender }, { name: '@from', value: from }] },
                { continuationToken, maxItemCount: 500 },
            );
            for (const d of page.items) if (d.nonce > max) max = d.nonce;
            continuationToken = page.continuationToken;
        } while (continuationToken);
        return max;
    }

    /** Each poll: a lease nothing uses any more is released, one in use renewed once a third of it has gone. */
    async releaseIdle(): Promise<void> {
        const now = Date.now();
        for (const s of this.#senders.values()) {
            if (!s.owner || s.acquiring) continue;
            const busy = [...this.tracked.values()].some((t) => t.doc.sender.toLowerCase() === s.key);
            if (!busy && now - s.lastUse > this.settings.idleReleaseMs) {
                await this.#release(s).catch((err: unknown) => this.log?.warn({ sender: s.address, err: errorMessage(err) }, 'chain: releasing a nonce lease failed'));
            } else if (s.leaseUntil - now < (this.settings.leaseMs * 2) / 3 && !s.renewing) {
                await this.#renew(s);
            }
        }
    }

    /** On close: every lease held here is released (errors ignored; the lease runs out anyway). */
    async releaseAll(): Promise<void> {
        for (const s of this.#senders.values()) if (s.owner) await this.#release(s).catch(() => undefined);
    }
}
