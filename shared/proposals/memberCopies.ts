import { setBounded } from '../boundedMap';
import type { Directory } from '../directory/directory';
import { updateStored, type Repository, type Stored } from '../documents/repository';
import { Conflict, NotFound } from '../errors';
import type { EventEnvelope } from '../events/events';
import type { MailSender } from '../mail/mailSender';
import { ENDING_EVENTS } from './vocabulary';

/** A member's own copy of a proposal that concerns it (its own database, container `proposals`), fed by the core's events. */
export interface MemberProposalCopy {
    id: string;
    kind: 'proposal-copy';
    /** The proposal as the latest event showed it (API.md `GET /proposals/{id}`). */
    proposal: Record<string, unknown> & { proposalId: string; status: string; updatedAt: string };
    lastEvent: { id: string; type: string; occurredAt: string };
    /** Event types the traders were mailed about (once each). */
    notified: string[];
    receivedAt: string;
}

/** How many requests may wait for a copy at once in one process (`arrival`). */
const MAX_WAITERS = 1_000;

/**
 * Keeps the member's copies: an event newer than the copy replaces it (events may arrive out of
 * order and more than once: the proposal's own `updatedAt` decides), and the member's traders are
 * mailed once when a proposal arrives and when it ends.
 */
export class MemberProposalCopies {
    /** Callers waiting in this process for a proposal's copy to arrive (`arrival`), by proposal id. */
    readonly #waiting = new Map<string, Set<() => void>>();
    #waiters = 0;
    /**
     * The copies this process last wrote, with their ETags (10,000 at most): the next event's write starts
     * from them instead of reading (a stale one fails its ETag, is read again and the event applied anew;
     * a copy only moves forward, so a stale one never makes an event look newer than it is).
     */
    readonly #stored = new Map<string, Stored<MemberProposalCopy>>();

    constructor(
        private readonly repo: Repository<MemberProposalCopy>,
        private readonly deps: { orgId: string; directory: Directory; mail: MailSender },
    ) {}

    async apply(event: EventEnvelope): Promise<{ applied: boolean }> {
        if (!event.type.startsWith('proposal.') || !event.orgIds.includes(this.deps.orgId)) return { applied: false };
        const proposal = event.data as MemberProposalCopy['proposal'];
        if (typeof proposal.proposalId !== 'string' || typeof proposal.updatedAt !== 'string') return { applied: false };
        let applied = false;
        const stored = await updateStored(
            this.repo,
            proposal.proposalId,
            proposal.proposalId,
            (current) => {
                applied = !current || Date.parse(proposal.updatedAt) >= Date.parse(current.proposal.updatedAt);
                if (!applied) return undefined;
                return { id: proposal.proposalId, kind: 'proposal-copy' as const, proposal, lastEvent: { id: event.id, type: event.type, occurredAt: event.occurredAt }, notified: current?.notified ?? [], receivedAt: new Date().toISOString() };
            },
            {
                conflict: () => new Conflict(`The copy of proposal ${proposal.proposalId} kept changing`),
                // A proposal's first event, not met here before: its copy is most likely not there yet (created without a read first).
                known: this.#stored.get(proposal.proposalId) ?? (event.type === 'proposal.created' ? null : undefined),
            },
        );
        if (stored) this.#keep(stored);
        if (applied) for (const wake of this.#waiting.get(proposal.proposalId) ?? []) wake();
        if (event.type === 'proposal.created' || (ENDING_EVENTS as readonly string[]).includes(event.type)) await this.#notify(proposal.proposalId, event, stored);
        return { applied };
    }

    #keep(stored: Stored<MemberProposalCopy>): void {
        setBounded(this.#stored, stored.item.id, stored, 10_000);
    }

    async list(): Promise<MemberProposalCopy['proposal'][]> {
        const page = await this.repo.query({ query: 'SELECT * FROM c WHERE c.kind = "proposal-copy" ORDER BY c.receivedAt DESC' }, { maxItemCount: 100 });
        return page.items.map((c) => c.proposal);
    }

    async get(id: string): Promise<MemberProposalCopy['proposal']> {
        const found = await this.repo.read(id, id);
        if (!found) throw new NotFound('No such proposal');
        return found.item.proposal;
    }

    /**
     * The copy of a proposal, waiting up to `ms` for it when it has not arrived yet (a client that learnt of
     * the proposal from the core may ask before the bus brought it here). An event applied in this process
     * ends the wait at once; one applied by another instance is found by the read at the end of the wait.
     * Undefined when there is still none. At most `MAX_WAITERS` wait at once; beyond that, no wait.
     */
    async arrival(id: string, ms: number): Promise<MemberProposalCopy['proposal'] | undefined> {
        // From the store, never from this process's memory: what is signed is the copy as the store holds it.
        const read = async () => (await this.repo.read(id, id))?.item.proposal;
        if (ms <= 0 || this.#waiters >= MAX_WAITERS) return read();
        let wake!: () => void;
        const arrived = new Promise<void>((resolve) => (wake = resolve));
        // Listening before the first read: a copy applied between the read and the wait is not missed.
        const waiting = this.#waiting.get(id) ?? new Set();
        this.#waiting.set(id, waiting.add(wake));
        this.#waiters++;
        let timer: NodeJS.Timeout | undefined;
        try {
            const now = await read();
            if (now) return now;
            await Promise.race([arrived, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
            return await read();
        } finally {
            clearTimeout(timer);
            this.#waiters--;
            waiting.delete(wake);
            if (waiting.size === 0 && this.#waiting.get(id) === waiting) this.#waiting.delete(id);
        }
    }

    /**
     * Mails the member's traders about the event once (marked after sending: at least once, never on every
     * redelivery). `known`: the copy as the event just left it (read again only when there is none).
     */
    async #notify(id: string, event: EventEnvelope, known: Stored<MemberProposalCopy> | undefined): Promise<void> {
        const copy = known ?? (await this.repo.read(id, id));
        if (!copy || copy.item.notified.includes(event.type)) return;
        const traders = (await this.deps.directory.listUsers(this.deps.orgId)).filter((u) => u.roles.includes('Org.Trader') && u.email);
        if (traders.length > 0) {
            const p = event.data as { terms?: { product?: string; quantityMWh?: number; priceGbpPerMWh?: number }; expiresAt?: string; status?: string };
            const what = event.type === 'proposal.created' ? 'awaits your signature' : `is ${String(p.status ?? event.type.split('.')[1]).toLowerCase()}`;
            await this.deps.mail.send({
                to: traders.map((t) => t.email!),
                subject: `Proposal ${id.slice(0, 8)} ${what}`,
                text: `Proposal ${id}: ${p.terms?.product ?? ''} ${p.terms?.quantityMWh ?? ''} MWh at ${p.terms?.priceGbpPerMWh ?? ''} GBP/MWh, expires ${p.expiresAt ?? ''}.\n${event.type === 'proposal.created' ? `Sign: POST /api/proposals/${id}/signature on your member deployment.\n` : ''}`,
            });
        }
        try {
            this.#keep(await this.repo.replace({ ...copy.item, notified: [...copy.item.notified, event.type] }, copy.etag));
        } catch (err) {
            // A newer event replaced the copy meanwhile: mark on the next delivery (a repeat mail at worst).
            if (!(err instanceof Conflict)) throw err;
            this.#stored.delete(id);
        }
    }
}
