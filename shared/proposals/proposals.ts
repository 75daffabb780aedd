import { randomUUID } from 'node:crypto';
import type { AccountRegistry } from '../accounts/accountRegistry';
import { checksumAddress } from '../accounts/accountRegistry';
import type { Assets } from '../assets/assets';
import { uuidFromName } from '../ids';
import { revertedOutcome, type ChainSender, type TransactionPipeline, type TxOutcome } from '../chain/pipeline';
import type { CallBatcher } from '../chain/batcher';
import type { AnchorInput, ChainSignature, ContractCall, ContractRef, EnergyExchange, EnergyExchanges, OnChainProposal } from '../chain/energyExchange';
import type { Repository, Stored } from '../documents/repository';
import { updateExistingStored } from '../documents/updateExisting';
import { AppError, Conflict, Forbidden, Invalid, NotFound, Unavailable } from '../errors';
import type { EventPublisher } from '../events/events';
import { outcomeEvent, withEvent, withSignatures } from './proposalEvents';
import { proposalTypedData, termsDigest, termsStructHash, type ProposalTypedData } from './terms';
import { chainProposalId, isTerminal, proposalInputErrors, type NewProposal, type Proposal, type ProposalParty, type ProposalPolicy } from './model';
import { isOpen, type ProposalStatus, type SagaOutcome } from './vocabulary';
import { setBounded } from '../boundedMap';

export * from './model';
export { withEvent } from './proposalEvents';

/**
 * Proposals on the core: validation against the directory of accounts and documents,
 * the record the signing saga moves on, and the ledger calls it makes (through the
 * pipeline, one operation id each, so a retried activity never sends a second one).
 */
export class Proposals {
    /**
     * Typed data and digests already worked out, by proposal and contract (on this chain): a proposal's terms
     * never change once it is created, and each read of a proposal shows them (EIP-712 hashing in
     * JavaScript was the largest single cost of `GET /proposals/{id}`). The oldest go past 2,000.
     */
    readonly #terms = new Map<string, { typedData: ProposalTypedData; digest: string }>();
    /** Proposal ids by their id on the chain, as this process met them (10,000 at most): a chain id is derived from its proposal's id, so an entry never goes stale. */
    readonly #idByChainId = new Map<string, string>();
    /** The proposals this process last read or wrote, with their ETags (10,000 at most): where a saga's step starts (`#forStep`). */
    readonly #stored = new Map<string, Stored<Proposal>>();

    constructor(
        private readonly repo: Repository<Proposal>,
        private readonly deps: {
            accounts: AccountRegistry;
            assets: Assets;
            /** The contract port, at the version each proposal pinned. */
            exchanges: EnergyExchanges;
            /** The ledger's chain id (EIP-155), part of the terms' signing domain. */
            chainId: number;
            /** The batcher of anchors for a contract that binds terms (absent: each anchor is a transaction of its own). */
            anchors?: (exchange: EnergyExchange) => CallBatcher<AnchorInput>;
            pipeline: TransactionPipeline;
            operator: () => Promise<ChainSender>;
            events: () => EventPublisher;
        },
        private readonly policy: ProposalPolicy,
    ) {}

    /**
     * Validates and records a new proposal (status `Anchoring`); with an idempotency key, a retry returns the first.
     * `contract`: the version new work uses now, pinned from the start (the saga then anchors on it without asking again).
     */
    async create(input: NewProposal, caller: { orgId: string; by: string }, idempotencyKey?: string, now = Date.now(), contract?: ContractRef): Promise<{ proposal: Proposal; created: boolean }> {
        const id = idempotencyKey ? uuidFromName(`${caller.orgId}\nproposal\n${idempotencyKey}`) : randomUUID();
        // A retry's first proposal is found by its id when the create fails, or the input no longer passes (expired since): no read for every new one.
        const firstOr = async (fail: unknown) => {
            const known = idempotencyKey ? await this.repo.read(id, id) : undefined;
            if (known) return { proposal: known.item, created: false };
            throw fail;
        };
        const errors = proposalInputErrors(input, caller.orgId, now, this.policy);
        if (errors.length) return firstOr(new Invalid('The proposal is not valid', errors));
        const expires = Date.parse(input.expiresAt);

        const parties: ProposalParty[] = input.parties.map((p, i) => ({ orgId: p.orgId, account: checksumAddress(p.account, `parties.${i}.account`), signed: false }));
        // The accounts' owners and the documents, read at once (each a round trip to the store).
        const [owners, documents] = await Promise.all([
            Promise.all(parties.map((p) => this.deps.accounts.ownerOf(p.account))),
            Promise.all(input.assets.map((assetId) => this.deps.assets.get(assetId, caller.orgId).catch((err: unknown) => (err instanceof NotFound ? undefined : Promise.reject(err))))),
        ]);
        parties.forEach((p, i) => owners[i] !== p.orgId && errors.push({ path: `parties.${i}.account`, message: `not an account registered to ${p.orgId}` }));
        const assets: Proposal['assets'] = [];
        for (const [i, a] of documents.entries()) {
            if (a?.orgId === caller.orgId) assets.push({ assetId: a.id, sha256: a.sha256, algorithm: a.algorithm, location: a.location });
            else errors.push({ path: `assets.${i}`, message: 'not a document your organisation uploaded' });
        }
        if (errors.length) return firstOr(new Invalid('The proposal is not valid', errors));
        const at = new Date(now).toISOString();
        const proposal: Proposal = {
            id,
            kind: 'proposal',
            chainId: chainProposalId(id),
            proposerOrg: caller.orgId,
            createdBy: caller.by,
            parties,
            orgIds: [...new Set(parties.map((p) => p.orgId))].sort(),
            terms: input.terms,
            assets,
            expiresAt: new Date(expires).toISOString(),
            status: 'Anchoring',
            ...(contract ? { contract: { version: contract.version, address: contract.address } } : {}),
            createdAt: at,
            updatedAt: at,
        };
        const made = await this.repo.create(proposal).then(
            (stored) => (this.#keep(stored), { proposal, created: true }),
            (err: unknown) => (err instanceof Conflict ? firstOr(err) : Promise.reject(err)),
        );
        // The parties may read the documents of a proposal they are party to (a document shared with them before is left alone;
        // a retry shares what a first attempt that stopped after its create did not).
        const p = made.proposal;
        const unshared = documents.filter((a) => a && p.assets.some((x) => x.assetId === a.id) && p.orgIds.some((o) => o !== a.orgId && !a.sharedWith.includes(o)));
        await Promise.all(unshared.map((a) => this.deps.assets.share(a!.id, p.orgIds)));
        return made;
    }

    async get(id: string): Promise<Proposal> {
        return (await this.#read(id)).item;
    }

    /** The proposal with its ETag, for the steps that change it next (each write then starts from what it has). */
    async #read(id: string): Promise<Stored<Proposal>> {
        const found = await this.repo.read(id, id);
        if (!found || found.item.kind !== 'proposal') throw new NotFound('No such proposal');
        return this.#keep(found);
    }

    /**
     * Where a saga's step starts: the proposal as this process last had it (else read). Its write goes under that ETag: a stale
     * one fails, is read again and the change made anew (a proposal only moves forward, so what a step decides still holds).
     */
    async #forStep(id: string): Promise<Stored<Proposal>> {
        return this.#stored.get(id) ?? this.#read(id);
    }

    #remember(p: Proposal): void {
        setBounded(this.#idByChainId, p.chainId.toLowerCase(), p.id, 10_000);
    }

    #keep(stored: Stored<Proposal>): Stored<Proposal> {
        this.#remember(stored.item);
        setBounded(this.#stored, stored.item.id, stored, 10_000);
        return stored;
    }

    /** The proposal, for a party or the operator (anyone else: `NotFound`). */
    async getFor(id: string, caller: { orgId?: string; isOperator: boolean }): Promise<Proposal> {
        const p = await this.get(id).catch((err: unknown) => {
            if (err instanceof NotFound) return undefined; // an unknown id, or a malformed one
            throw err; // a store that is down is a 503, not a 404
        });
        if (!p || (!caller.isOperator && (!caller.orgId || !p.orgIds.includes(caller.orgId)))) throw new NotFound('No such proposal');
        return p;
    }

    /**
     * The proposal with this id on the chain (the pump's question for every signature): as this process last had it (a stale
     * status says open where it ended: the saga refuses, reconciliation follows), else a point read if it met it, else a query.
     */
    async byChainId(chainId: string): Promise<Proposal | undefined> {
        const key = chainId.toLowerCase();
        const known = this.#idByChainId.get(key);
        if (known) {
            const found = this.#stored.get(known) ?? (await this.repo.read(known, known));
            if (found?.item.kind === 'proposal' && found.item.chainId.toLowerCase() === key) return found.item;
        }
        const page = await this.repo.query({ query: 'SELECT * FROM c WHERE c.kind = "proposal" AND c.chainId = @c', parameters: [{ name: '@c', value: key }] }, { maxItemCount: 2 });
        const p = page.items[0];
        if (p) this.#remember(p);
        return p;
    }

    async list(filter: { orgId?: string; status?: ProposalStatus }, continuationToken?: string): Promise<{ items: Proposal[]; continuationToken?: string }> {
        const where = ['c.kind = "proposal"'];
        const parameters: { name: string; value: string }[] = [];
        if (filter.orgId) {
            where.push('ARRAY_CONTAINS(c.orgIds, @org)');
            parameters.push({ name: '@org', value: filter.orgId });
        }
        if (filter.status) {
            where.push('c.status = @status');
            parameters.push({ name: '@status', value: filter.status });
        }
        return this.repo.query({ query: `SELECT * FROM c WHERE ${where.join(' AND ')} ORDER BY c.createdAt DESC`, parameters }, { continuationToken, maxItemCount: 50 });
    }

    async update(id: string, change: (p: Proposal) => Proposal | undefined): Promise<Proposal> {
        return (await this.#update(id, change)).item;
    }

    /** A change under the proposal's ETag, starting from `known` (as this step last read or wrote it) when given: no read unless someone changed it meanwhile. */
    #update(id: string, change: (p: Proposal) => Proposal | undefined, known?: Stored<Proposal>): Promise<Stored<Proposal>> {
        return updateExistingStored(this.repo, id, change, {
            missing: () => new NotFound('No such proposal'),
            conflict: () => new AppError('The proposal is being changed; try again', 409, 'conflict'),
            is: (doc): doc is Proposal => doc.kind === 'proposal',
            known,
        }).then((stored) => this.#keep(stored));
    }

    /** Pins the latest active contract version (once) and anchors the proposal on it; `proposal.created` is recorded with the anchor. */
    async anchor(id: string): Promise<Proposal> {
        let stored = await this.#forStep(id);
        if (stored.item.anchor) return this.publishPending(id, stored);
        if (!stored.item.contract) {
            const latest = await this.deps.exchanges.latest();
            if (!latest) throw new Unavailable('No contract version is deployed yet (POST /api/contracts)');
            stored = await this.#update(id, (cur) => (cur.contract ? undefined : { ...cur, contract: latest.ref }), stored);
        }
        const p = stored.item;
        const exchange = await this.deps.exchanges.at(p.contract!);
        // A contract that binds terms anchors their EIP-712 hash: what the parties' signatures are checked against.
        const termsHash = exchange.bindsTerms ? termsStructHash(this.typedDataOn(p, exchange)) : undefined;
        const input = { chainProposalId: p.chainId, parties: p.parties.map((x) => x.account), assets: p.assets, expiresAt: p.expiresAt, termsHash };
        // On v2 anchors share transactions: the batcher carries this one with those that arrive meanwhile.
        const batcher = exchange.bindsTerms ? this.deps.anchors?.(exchange) : undefined;
        const outcome = batcher ? await revertedOutcome(batcher.send(`proposal:${id}:create`, input, { timeoutMs: 120_000 })) : await this.#send(`proposal:${id}:create`, exchange.createProposal(input));
        // A batch skips an item it refuses rather than reverting: the ledger's status says whether the proposal is there.
        const skipped = outcome.state === 'confirmed' && exchange.bindsTerms && (await exchange.statusOf(p.chainId)) === 'None';
        if (outcome.state !== 'confirmed' || skipped) {
            const reason = `The ledger refused the proposal: ${skipped ? 'skipped by createProposals (see its ProposalSkipped event)' : (outcome.revert?.errorName ?? 'reverted')}`;
            await this.#update(id, (cur) => ({ ...cur, status: 'Failed', reason }), stored);
            throw new AppError(reason, 502, 'anchor_failed');
        }
        stored = await this.#update(
            id,
            (cur) => (cur.anchor ? undefined : withEvent({ ...cur, status: cur.status === 'Anchoring' ? 'AwaitingSignatures' : cur.status, anchor: { txHash: outcome.hash, blockNumber: outcome.blockNumber } }, 'proposal.created')),
            stored,
        );
        return this.publishPending(id, stored);
    }

    /** Records a party's on-chain signature (from the chain event pump) with its `proposal.signed`; a repeat changes nothing. */
    async recordSignature(id: string, sig: ChainSignature): Promise<{ proposal: Proposal; changed: boolean }> {
        let changed = false;
        const stored = await this.#update(
            id,
            (cur) => {
                const next = withSignatures(cur, [sig]);
                changed = next !== cur;
                return changed ? next : undefined;
            },
            await this.#forStep(id),
        );
        return { proposal: await this.publishPending(id, stored), changed };
    }

    /**
     * The last party's signature: recorded with its `proposal.signed`, then the proposal concluded
     * `Completed` as the ledger holds it (`conclude`), in one step of the saga.
     */
    async recordLastSignature(id: string, sig: ChainSignature): Promise<Proposal> {
        // One read and one write: the signature, with the ending when the ledger holds it complete; else the signature alone and a retry.
        const stored = await this.#forStep(id);
        const p = stored.item;
        const open = !isTerminal(p.status);
        if (open && (!p.anchor || !p.contract)) {
            await this.recordSignature(id, sig);
            throw new Conflict('A proposal that is not anchored cannot be complete', 'wrong_state');
        }
        const chain = open ? await this.onChain(p) : undefined;
        const ended = await this.#update(
            id,
            (cur) => {
                let next = withSignatures(cur, [sig]);
                if (chain?.status === 'Completed' && !isTerminal(next.status)) next = withEvent({ ...withSignatures(next, chain.signatures), status: 'Completed' }, outcomeEvent('Completed'));
                return next === cur ? undefined : next;
            },
            stored,
        );
        const proposal = await this.publishPending(id, ended);
        if (isTerminal(proposal.status)) return proposal;
        throw new AppError(`The ledger holds the proposal as ${chain?.status}, not completed; will look again`, 503, 'ledger_behind');
    }

    /**
     * Ends an open proposal the way the ledger ends it. Asked to reject or expire it, the
     * proposal is cancelled on-chain, unless every party signed first: then it is `Completed`,
     * whichever the saga saw first. Either way every signature the chain holds is recorded
     * (from its logs, with `proposal.signed` for those not seen yet) before the outcome's event.
     */
    async conclude(id: string, outcome: SagaOutcome, detail: { reason?: string; rejectedBy?: { orgId: string; by: string } } = {}): Promise<Proposal> {
        const stored = await this.#read(id);
        const p = stored.item;
        if (isTerminal(p.status)) return this.publishPending(id, stored);
        if (!p.anchor || !p.contract) {
            if (outcome === 'Completed') throw new Conflict('A proposal that is not anchored cannot be complete', 'wrong_state');
            const ended = await this.#update(id, (cur) => (isTerminal(cur.status) ? undefined : withEvent({ ...cur, status: outcome, reason: detail.reason ?? cur.reason, rejectedBy: detail.rejectedBy ?? cur.rejectedBy }, outcomeEvent(outcome))), stored);
            return this.publishPending(id, ended);
        }
        let chain = await this.onChain(p);
        let cancel: { txHash: string; blockNumber: number } | undefined;
        // Cancelled already (a retry after the cancel was mined): the pipeline answers the same operation with its first outcome.
        if (chain.status !== 'Completed' && outcome !== 'Completed') {
            const tx = await this.#send(`proposal:${id}:cancel`, (await this.exchangeOf(p)).cancelProposal(p.chainId));
            // Refused with ProposalNotOpen: the last signature was mined first (or a retry cancelled it already).
            if (tx.state === 'confirmed') cancel = { txHash: tx.hash, blockNumber: tx.blockNumber };
            else if (tx.revert?.errorName !== 'ProposalNotOpen') throw new AppError(`The ledger refused to close the proposal: ${tx.revert?.errorName ?? 'reverted'}`, 502, 'cancel_failed');
            chain = await this.onChain(p);
        }
        const ending: ProposalStatus | undefined = chain.status === 'Completed' ? 'Completed' : chain.status === 'Cancelled' && outcome !== 'Completed' ? outcome : undefined;
        if (!ending) throw new AppError(`The ledger holds the proposal as ${chain.status}, not ${outcome === 'Completed' ? 'completed' : 'closed'}; will look again`, 503, 'ledger_behind');
        const ended = await this.#update(
            id,
            (cur) => {
                if (isTerminal(cur.status)) return undefined;
                const signed = withSignatures(cur, chain.signatures);
                const closing = ending === 'Completed' ? {} : { cancel: cancel ?? cur.cancel, reason: detail.reason ?? cur.reason, rejectedBy: detail.rejectedBy ?? cur.rejectedBy };
                return withEvent({ ...signed, status: ending, ...closing }, outcomeEvent(ending));
            },
            stored,
        );
        return this.publishPending(id, ended);
    }

    /**
     * Brings the record in line with the ledger after the saga has ended (the chain event pump
     * calls this for events of ended sagas): signatures the record lacks are recorded and
     * announced, and a proposal the ledger completed is `Completed`, whatever the record said.
     */
    async reconcile(id: string): Promise<{ proposal: Proposal; changed: boolean }> {
        const stored = await this.#read(id);
        const p = stored.item;
        if (!p.anchor || !p.contract) return { proposal: p, changed: false };
        const chain = await this.onChain(p);
        let changed = false;
        const next = await this.#update(
            id,
            (cur) => {
                let next = withSignatures(cur, chain.signatures);
                if (chain.status === 'Completed' && next.status !== 'Completed') next = withEvent({ ...next, status: 'Completed' }, 'proposal.completed');
                changed = next !== cur;
                return changed ? next : undefined;
            },
            stored,
        );
        return { proposal: await this.publishPending(id, next), changed };
    }

    /** What the ledger holds for this proposal now. */
    async onChain(p: Proposal): Promise<OnChainProposal> {
        if (!p.contract || !p.anchor) return { status: 'None', signatures: [] };
        return (await this.exchangeOf(p)).read(p.chainId, p.anchor.blockNumber);
    }

    /**
     * The proposal's terms as EIP-712 typed data under the signing domain of the contract it is
     * pinned to, and their digest; null until a contract version is pinned.
     */
    async termsOf(p: Proposal): Promise<{ typedData: ProposalTypedData; digest: string } | null> {
        if (!p.contract) return null;
        const exchange = await this.exchangeOf(p);
        const key = `${p.id}:${exchange.ref.address}`;
        const known = this.#terms.get(key);
        if (known) return structuredClone(known);
        const typedData = this.typedDataOn(p, exchange);
        const terms = { typedData, digest: termsDigest(typedData) };
        setBounded(this.#terms, key, structuredClone(terms), 2000);
        return terms;
    }

    /** A proposal's terms (or terms put in its place, to check them) as typed data under `exchange`'s signing domain on this chain. */
    typedDataOn(p: Proposal, exchange: EnergyExchange): ProposalTypedData {
        return proposalTypedData(p, exchange.signingDomain(this.deps.chainId));
    }

    /** The contract the proposal was anchored on (its pinned version). */
    async exchangeOf(p: Proposal): Promise<EnergyExchange> {
        if (!p.contract) throw new Conflict('The proposal is not anchored yet', 'wrong_state');
        return this.deps.exchanges.at(p.contract);
    }

    /**
     * Publishes the proposal's recorded events that are not out yet, in their order, then takes
     * them out of its outbox. Two callers at once publish an event twice at worst (consumers
     * dedupe by id), never one before an earlier one. `known`: the proposal as the caller just
     * read or wrote it (its outbox is then read from that, and taken out under its ETag).
     */
    async publishPending(id: string, known?: Stored<Proposal>): Promise<Proposal> {
        const stored = known ?? (await this.#read(id));
        const p = stored.item;
        const pending = [...(p.events?.outbox ?? [])].sort((a, b) => (a.sequence ?? 0) - (b.sequence ?? 0));
        if (pending.length === 0) return p;
        for (const event of pending) await this.deps.events().publish(event);
        const done = new Set(pending.map((e) => e.id));
        const published = await this.#update(id, (cur) => (cur.events?.outbox.some((e) => done.has(e.id)) ? { ...cur, events: { ...cur.events, outbox: cur.events.outbox.filter((e) => !done.has(e.id)) } } : undefined), stored);
        return published.item;
    }

    /** A party's trader asks for the proposal to be rejected: checked here, carried out by the saga. */
    assertMayReject(p: Proposal, orgId: string | undefined): void {
        if (!orgId || !p.orgIds.includes(orgId)) throw new NotFound('No such proposal');
        if (!isOpen(p.status)) throw new Conflict(`The proposal is ${p.status}`, 'wrong_state');
        if (p.parties.find((x) => x.orgId === orgId)?.signed) throw new Forbidden('Your organisation has signed this proposal already');
    }

    /** The call's outcome; a revert caught at estimation (nothing sent) comes back like a mined one. */
    async #send(operationId: string, call: ContractCall): Promise<Pick<TxOutcome, 'state' | 'hash' | 'blockNumber' | 'revert'>> {
        return revertedOutcome(this.deps.operator().then((from) => this.deps.pipeline.send({ operationId, from, ...call, label: operationId }, { timeoutMs: 120_000 })));
    }
}
