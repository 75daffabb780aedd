import { randomUUID } from 'node:crypto';
import { Interface } from 'ethers';
import { ENERGY_EXCHANGE } from '../../shared/chain/artifact';
import { EnergyExchanges } from '../../shared/chain/energyExchange';
import type { ChainEvent } from '../../shared/chain/eventPump';
import type { ChainSender } from '../../shared/chain/pipeline';
import { ContractRevert } from '../../shared/chain/reverts';
import { ContractVersions, type ContractVersion } from '../../shared/chain/versions';
import { CosmosRepository } from '../../shared/documents/cosmosRepository';
import { EventFeed, FeedingPublisher, type FeedDoc } from '../../shared/events/eventFeed';
import type { EventEnvelope } from '../../shared/events/events';
import { routeSignature } from '../../shared/proposals/chainSignatures';
import { chainProposalId, Proposals, type Proposal } from '../../shared/proposals/proposals';
import { startChainWorld, type ChainWorld } from '../harness/chainWorld';
import { waitFor } from '../harness/devhost';

const exchange = new Interface(ENERGY_EXCHANGE.abi);

/**
 * The ledger's outcome is the proposal's outcome: each race between the saga's deadline timer,
 * a rejection, the last signature and the chain event pump, driven on anvil, ends with the
 * record, the published events and the chain agreeing.
 */
describe('a proposal ends as the ledger ends it', () => {
    let world: ChainWorld;
    let versions: ContractVersions;
    let version: ContractVersion;
    let operator: ChainSender;
    let proposals: Proposals;
    let feed: EventFeed;
    const bus: EventEnvelope[] = [];

    beforeAll(async () => {
        world = await startChainWorld({ mining: 'instant' });
        operator = await world.funded();
        versions = new ContractVersions(new CosmosRepository<ContractVersion>(world.db.database.container('contracts'), (v) => v.id), world.provider);
        version = await versions.deploy(ENERGY_EXCHANGE, world.pipeline, operator, 'test');
        feed = new EventFeed(new CosmosRepository<FeedDoc>(world.db.database.container('events'), (d) => d.orgId));
        const events = new FeedingPublisher(feed, { publish: async (e) => void bus.push(e) });
        proposals = new Proposals(
            new CosmosRepository<Proposal>(world.db.database.container('proposals'), (p) => p.id),
            // Accounts and documents are checked when a proposal is made; these tests start from proposals already made.
            { accounts: undefined as never, assets: undefined as never, exchanges: new EnergyExchanges(versions, world.provider), chainId: 31337, pipeline: world.pipeline, operator: async () => operator, events: () => events },
            { minLifetimeSeconds: 1, maxLifetimeSeconds: 86_400 },
        );
    }, 120_000);
    afterAll(async () => {
        await world?.stop();
    });

    /** A two-party proposal as `POST /proposals` records it, anchored on the ledger (the saga's first step). */
    async function anchored(): Promise<{ id: string; a: ChainSender; b: ChainSender; orgA: string; orgB: string }> {
        const [a, b] = [await world.funded(), await world.funded()];
        const id = randomUUID();
        const [orgA, orgB] = [`org-a-${id.slice(0, 8)}`, `org-b-${id.slice(0, 8)}`];
        const at = new Date().toISOString();
        await world.db.database.container('proposals').items.create<Proposal>({
            id,
            kind: 'proposal',
            chainId: chainProposalId(id),
            proposerOrg: orgA,
            createdBy: 'trader',
            parties: [
                { orgId: orgA, account: a.address, signed: false },
                { orgId: orgB, account: b.address, signed: false },
            ],
            orgIds: [orgA, orgB].sort(),
            terms: { product: 'baseload', direction: 'buy', quantityMWh: 10, priceGbpPerMWh: 80, deliveryStart: '2027-01-01T00:00:00.000Z', deliveryEnd: '2027-01-01T01:00:00.000Z' },
            assets: [{ assetId: randomUUID(), sha256: 'ab'.repeat(32), algorithm: 'sha256', location: 'https://example.invalid/doc' }],
            expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
            status: 'Anchoring',
            createdAt: at,
            updatedAt: at,
        });
        const p = await proposals.anchor(id);
        expect(p.status).toBe('AwaitingSignatures');
        return { id, a, b, orgA, orgB };
    }

    /** A party signs on the ledger itself (through its member deployment): mined, not yet seen by the pump. */
    const signOnChain = (id: string, party: ChainSender) =>
        world.pipeline.send({ operationId: `sign-${id}-${party.address}`, from: party, to: version.address!, data: exchange.encodeFunctionData('sign', [chainProposalId(id)]) }, { timeoutMs: 20_000 });
    const chainStatus = async (id: string) => Number(exchange.decodeFunctionResult('statusOf', await world.provider.call({ to: version.address!, data: exchange.encodeFunctionData('statusOf', [chainProposalId(id)]) }))[0]);
    const signedLogs = async (id: string) =>
        (await world.provider.getLogs({ address: version.address!, fromBlock: 0, topics: [exchange.getEvent('ProposalSigned')!.topicHash, chainProposalId(id)] })).map((l) => ({ account: exchange.parseLog(l)!.args.party as string, txHash: l.transactionHash }));
    /** The proposal's events in an organisation's feed: type and sequence, in feed order. */
    const feedOf = async (orgId: string, id: string) => (await feed.read(orgId, 0, 100)).items.filter((e) => e.subject === `proposals/${id}`).map((e) => [e.type, e.sequence]);
    /** A two-party proposal's events in the feed once it completed: created, both signatures, completed, in sequence (a gap a repeat left is waited out). */
    const expectCompletedFeed = async (orgId: string, id: string) => {
        await waitFor(async () => (await feedOf(orgId, id)).length === 4 || undefined, 15_000, 250);
        expect(await feedOf(orgId, id)).toEqual([
            ['proposal.created', 1],
            ['proposal.signed', 2],
            ['proposal.signed', 3],
            ['proposal.completed', 4],
        ]);
    };
    /** What the pump hands over for a signature: its decoded `ProposalSigned`. */
    const pumped = (id: string, party: string, tx: { hash: string; blockNumber: number }): ChainEvent => ({
        id: `${tx.hash}:0`,
        name: 'ProposalSigned',
        args: { id: chainProposalId(id), party, signatures: 2 },
        contract: version.address!,
        version: version.version,
        blockNumber: tx.blockNumber,
        blockHash: '0x',
        txHash: tx.hash,
        logIndex: 0,
    });

    it('the last signature mined just before the deadline, the pump not yet run: the expiry finds it Completed with every signature', async () => {
        const { id, a, b, orgA, orgB } = await anchored();
        const [sa, sb] = [await signOnChain(id, a), await signOnChain(id, b)];
        expect(await chainStatus(id)).toBe(2);

        // The saga's deadline timer fires first.
        const p = await proposals.conclude(id, 'Expired');

        expect(p.status).toBe('Completed');
        expect(p.cancel).toBeUndefined();
        expect(p.parties.map((x) => [x.account, x.signed, x.txHash])).toEqual([
            [a.address, true, sa.hash],
            [b.address, true, sb.hash],
        ]);
        expect(await signedLogs(id)).toEqual([
            { account: a.address, txHash: sa.hash },
            { account: b.address, txHash: sb.hash },
        ]);
        expect(await chainStatus(id)).toBe(2);
        const expected = [
            ['proposal.created', 1],
            ['proposal.signed', 2],
            ['proposal.signed', 3],
            ['proposal.completed', 4],
        ];
        expect(await feedOf(orgA, id)).toEqual(expected);
        expect(await feedOf(orgB, id)).toEqual(expected);
        expect(bus.filter((e) => e.subject === `proposals/${id}`).map((e) => e.type)).not.toContain('proposal.expired');
        expect((await proposals.get(id)).events?.outbox).toEqual([]);

        // The pump then sees both signatures: the saga has ended, the record already agrees, nothing more is published.
        const toSaga = jest.fn(async () => false);
        expect(await routeSignature(proposals, pumped(id, a.address, sa), toSaga)).toEqual({ route: 'unchanged', proposalId: id });
        expect(await routeSignature(proposals, pumped(id, b.address, sb), toSaga)).toEqual({ route: 'unchanged', proposalId: id });
        expect(toSaga).not.toHaveBeenCalled();
        expect(await feedOf(orgA, id)).toEqual(expected);
    });

    it('a rejection racing the last signature: the signature mined first, the proposal is Completed and never rejected', async () => {
        const { id, a, b, orgB } = await anchored();
        const sa = await signOnChain(id, a);
        // The pump raised the first signature on the saga, which recorded it.
        await proposals.recordSignature(id, { account: a.address, txHash: sa.hash, blockNumber: sa.blockNumber });
        const sb = await signOnChain(id, b);

        const p = await proposals.conclude(id, 'Rejected', { reason: 'price moved', rejectedBy: { orgId: orgB, by: 'trader-b' } });

        expect(p.status).toBe('Completed');
        expect(p.reason).toBeUndefined();
        expect(p.rejectedBy).toBeUndefined();
        expect(p.parties.every((x) => x.signed)).toBe(true);
        expect(p.parties[1]!.txHash).toBe(sb.hash);
        expect(await chainStatus(id)).toBe(2);
        expect(await feedOf(orgB, id)).toEqual([
            ['proposal.created', 1],
            ['proposal.signed', 2],
            ['proposal.signed', 3],
            ['proposal.completed', 4],
        ]);
    });

    it('a rejection that wins the race cancels on-chain; the signature in flight is refused by the ledger and the record keeps the one mined before', async () => {
        const { id, a, b, orgA } = await anchored();
        const sa = await signOnChain(id, a);

        const p = await proposals.conclude(id, 'Rejected', { reason: 'wrong volume', rejectedBy: { orgId: orgA, by: 'trader-a' } });
        expect(p.status).toBe('Rejected');
        expect(p.cancel?.txHash).toMatch(/^0x[0-9a-f]{64}$/);
        expect(await chainStatus(id)).toBe(3);
        // The in-flight signature lands after the cancel: the ledger refuses it.
        await expect(signOnChain(id, b)).rejects.toBeInstanceOf(ContractRevert);

        expect(p.parties.map((x) => x.signed)).toEqual([true, false]);
        expect(p.parties[0]!.txHash).toBe(sa.hash);
        expect(await signedLogs(id)).toEqual([{ account: a.address, txHash: sa.hash }]);
        expect(await feedOf(orgA, id)).toEqual([
            ['proposal.created', 1],
            ['proposal.signed', 2],
            ['proposal.rejected', 3],
        ]);
    });

    it('expiry with a signature in flight that is mined first: Completed; twice at once (an activity run again) still one outcome and each event once', async () => {
        const { id, a, b, orgA } = await anchored();
        const sa = await signOnChain(id, a);
        // The pump raised it; the saga recorded it and told the parties.
        await proposals.recordSignature(id, { account: a.address, txHash: sa.hash, blockNumber: sa.blockNumber });
        // The second party's transaction was in flight when the deadline timer fired, and is mined before the cancel.
        const sb = await signOnChain(id, b);
        const [p1, p2] = await Promise.all([proposals.conclude(id, 'Expired'), proposals.conclude(id, 'Expired')]);
        expect([p1.status, p2.status]).toEqual(['Completed', 'Completed']);
        expect((await proposals.get(id)).parties[1]).toMatchObject({ signed: true, txHash: sb.hash });
        // Two appends of one event at once: in one process they are one; from two, a gap in the numbering that readers wait out.
        await expectCompletedFeed(orgA, id);
    });

    it('the last signature: recorded with the ending in one write, twice at once still one outcome and each event once; before the ledger completes it, the signature alone and a 503 to look again', async () => {
        const { id, a, b, orgA } = await anchored();
        const sa = await signOnChain(id, a);
        // The saga took a's signature for the last one, but the ledger still waits for b: a is recorded and announced, the step fails to be retried.
        const behind = await proposals.recordLastSignature(id, { account: a.address, txHash: sa.hash, blockNumber: sa.blockNumber }).then(
            () => undefined,
            (err: { status?: number; code?: string }) => err,
        );
        expect(behind).toMatchObject({ status: 503, code: 'ledger_behind' });
        expect((await proposals.get(id)).parties.map((x) => [x.signed, x.txHash ?? null])).toEqual([
            [true, sa.hash],
            [false, null],
        ]);
        const sb = await signOnChain(id, b);
        const [p1, p2] = await Promise.all([
            proposals.recordLastSignature(id, { account: b.address, txHash: sb.hash, blockNumber: sb.blockNumber }),
            proposals.recordLastSignature(id, { account: b.address, txHash: sb.hash, blockNumber: sb.blockNumber }),
        ]);
        expect([p1.status, p2.status]).toEqual(['Completed', 'Completed']);
        const p = await proposals.get(id);
        expect(p.parties.map((x) => x.txHash)).toEqual([sa.hash, sb.hash]);
        expect(p.events?.outbox).toEqual([]);
        await expectCompletedFeed(orgA, id);
        // A retry after the step finished changes nothing and publishes nothing new.
        expect((await proposals.recordLastSignature(id, { account: b.address, txHash: sb.hash, blockNumber: sb.blockNumber })).status).toBe('Completed');
        expect(await feedOf(orgA, id)).toHaveLength(4);
    });

    it('a step that starts from a record gone stale (another instance took the step before) still ends as the ledger says, each event once', async () => {
        const { id, a, b, orgA } = await anchored();
        // Another instance of the core: its own memory of proposals, the same store, ledger and feed.
        const elsewhere = new Proposals(
            new CosmosRepository<Proposal>(world.db.database.container('proposals'), (p) => p.id),
            { accounts: undefined as never, assets: undefined as never, exchanges: new EnergyExchanges(versions, world.provider), chainId: 31337, pipeline: world.pipeline, operator: async () => operator, events: () => new FeedingPublisher(feed, { publish: async (e) => void bus.push(e) }) },
            { minLifetimeSeconds: 1, maxLifetimeSeconds: 86_400 },
        );
        const sa = await signOnChain(id, a);
        expect((await elsewhere.recordSignature(id, { account: a.address, txHash: sa.hash, blockNumber: sa.blockNumber })).changed).toBe(true);
        const sb = await signOnChain(id, b);
        // This instance still holds the proposal as it anchored it: no signature. Its write fails the ETag, and read again, it records b and the ending.
        const p = await proposals.recordLastSignature(id, { account: b.address, txHash: sb.hash, blockNumber: sb.blockNumber });
        expect(p.status).toBe('Completed');
        expect(p.parties.map((x) => x.txHash)).toEqual([sa.hash, sb.hash]);
        await expectCompletedFeed(orgA, id);
        // The first signature again, from the instance whose memory is stale: nothing changes.
        expect((await proposals.recordSignature(id, { account: a.address, txHash: sa.hash, blockNumber: sa.blockNumber })).changed).toBe(false);
        expect((await elsewhere.get(id)).events?.outbox).toEqual([]);
    });

    it('expiry with nothing mined in between cancels once, even when the step runs twice at once', async () => {
        const { id, orgA } = await anchored();
        const before = await world.provider.getBlockNumber();
        const [p1, p2] = await Promise.all([proposals.conclude(id, 'Expired'), proposals.conclude(id, 'Expired')]);
        expect([p1.status, p2.status]).toEqual(['Expired', 'Expired']);
        expect(await chainStatus(id)).toBe(3);
        const cancels = await world.provider.getLogs({ address: version.address!, fromBlock: before, topics: [exchange.getEvent('ProposalCancelled')!.topicHash, chainProposalId(id)] });
        expect(cancels).toHaveLength(1);
        expect((await proposals.get(id)).cancel?.txHash).toBe(cancels[0]!.transactionHash);
        // A retry after the step finished changes nothing and publishes nothing new.
        expect((await proposals.conclude(id, 'Expired')).status).toBe('Expired');
        expect(await feedOf(orgA, id)).toEqual([
            ['proposal.created', 1],
            ['proposal.expired', 2],
        ]);
    });

    it('signatures the pump sees for an ended saga reconcile the record instead of being dropped', async () => {
        const { id, a, b, orgA } = await anchored();
        const sa = await signOnChain(id, a);
        const sb = await signOnChain(id, b);
        // The saga has gone (the durable client answers 410), its record never saw the signatures.
        const toSaga = jest.fn(async () => false);
        expect(await routeSignature(proposals, pumped(id, a.address, sa), toSaga)).toEqual({ route: 'reconciled', proposalId: id });
        expect(toSaga).toHaveBeenCalledTimes(1);
        const p = await proposals.get(id);
        expect(p.status).toBe('Completed');
        expect(p.parties.map((x) => x.txHash)).toEqual([sa.hash, sb.hash]);
        await expectCompletedFeed(orgA, id);
        // The second signature's event finds it reconciled already.
        expect(await routeSignature(proposals, pumped(id, b.address, sb), toSaga)).toEqual({ route: 'unchanged', proposalId: id });
    });

    it('finds a proposal by its chain id: from memory in a process that read or wrote it, a point read in one that met it, a query in another', async () => {
        const { id } = await anchored();
        const chainId = chainProposalId(id);
        // Another process (a second core instance) over the same store, its calls counted.
        const calls: string[] = [];
        const repo = new CosmosRepository<Proposal>(world.db.database.container('proposals'), (p) => p.id);
        const counted = new Proxy(repo, {
            get: (target, name, receiver) => {
                const value = Reflect.get(target, name, receiver) as unknown;
                return typeof value === 'function' ? (...args: unknown[]) => (calls.push(String(name)), (value as (...a: unknown[]) => unknown).apply(target, args)) : value;
            },
        });
        const elsewhere = new Proposals(counted, { accounts: undefined as never, assets: undefined as never, exchanges: new EnergyExchanges(versions, world.provider), chainId: 31337, pipeline: world.pipeline, operator: async () => operator, events: () => feed as never }, { minLifetimeSeconds: 1, maxLifetimeSeconds: 86_400 });
        expect((await elsewhere.byChainId(chainId.toUpperCase().replace('0X', '0x')))?.id).toBe(id);
        expect(calls).toEqual(['query']);
        // Asked again, it knows the proposal: one point read.
        calls.length = 0;
        expect((await elsewhere.byChainId(chainId))?.id).toBe(id);
        expect(calls).toEqual(['read']);
        // An id on the chain that is no proposal of ours: the query says so.
        calls.length = 0;
        expect(await elsewhere.byChainId('0x' + 'ab'.repeat(32))).toBeUndefined();
        expect(calls).toEqual(['query']);
        // Once it has read or written the proposal itself, it answers from that: no request.
        await elsewhere.get(id);
        calls.length = 0;
        expect((await elsewhere.byChainId(chainId))?.id).toBe(id);
        expect(calls).toEqual([]);
        // The process that anchored it reads it at once.
        expect((await proposals.byChainId(chainId))?.status).toBe('AwaitingSignatures');
    });

    it('a saga still waiting gets the signature raised, and nothing is reconciled behind its back', async () => {
        const { id, a } = await anchored();
        const sa = await signOnChain(id, a);
        const toSaga = jest.fn(async () => true);
        expect(await routeSignature(proposals, pumped(id, a.address, sa), toSaga)).toEqual({ route: 'saga', proposalId: id });
        expect(toSaga).toHaveBeenCalledWith(id, { account: a.address, txHash: sa.hash, blockNumber: sa.blockNumber });
        expect((await proposals.get(id)).parties[0]!.signed).toBe(false);
    });
});
