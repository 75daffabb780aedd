import { Interface, Wallet, id as keccakId } from 'ethers';
import { ENERGY_EXCHANGE } from '../../shared/chain/artifact';
import { ChainEventPump, type ChainEvent, type PumpCheckpoint } from '../../shared/chain/eventPump';
import { TransactionPipeline, type ChainSender, type NonceLeaseDoc, type TxDoc } from '../../shared/chain/pipeline';
import { FailoverProvider } from '../../shared/chain/provider';
import { ContractVersions, type ContractVersion } from '../../shared/chain/versions';
import { CosmosRepository } from '../../shared/documents/cosmosRepository';
import { startCosmos, type TestCosmos } from '../harness/cosmos';
import { startLedger, type TestLedger } from '../harness/ledger';

const exchange = new Interface(ENERGY_EXCHANGE.abi);

/** The chain event pump over real contract logs on anvil, with its checkpoint in the document store. */
describe('chain event pump', () => {
    let db: TestCosmos;
    let chain: TestLedger;
    let provider: FailoverProvider;
    let pipeline: TransactionPipeline;
    let versions: ContractVersions;
    let checkpoints: CosmosRepository<PumpCheckpoint>;
    let operator: ChainSender;
    let party: ChainSender;
    let n = 0;

    beforeAll(async () => {
        [db, chain] = await Promise.all([startCosmos(), startLedger({ mining: 'instant' })]);
        provider = new FailoverProvider({ urls: [chain.url], chainId: 31337 });
        pipeline = new TransactionPipeline(
            provider,
            {
                transactions: new CosmosRepository<TxDoc>(db.database.container('transactions'), (d) => d.id),
                leases: new CosmosRepository<NonceLeaseDoc>(db.database.container('nonces'), (d) => d.id),
            },
            { chainId: 31337, maxFeePerGasCap: 100n * 10n ** 9n, pollIntervalMs: 50, abis: [ENERGY_EXCHANGE.abi] },
        );
        versions = new ContractVersions(new CosmosRepository<ContractVersion>(db.database.container('contracts'), (v) => v.id), provider);
        checkpoints = new CosmosRepository<PumpCheckpoint>(db.database.container('checkpoints'), (c) => c.id);
        const [o, p] = [Wallet.createRandom(), Wallet.createRandom()];
        await chain.fund(o.address);
        await chain.fund(p.address);
        operator = { address: o.address, signer: o };
        party = { address: p.address, signer: p };
    });
    afterAll(async () => {
        await pipeline?.close();
        provider?.destroy();
        await chain?.stop();
        await db?.stop();
    });

    const contracts = async () => (await versions.list()).filter((v) => v.state === 'ready').map((v) => ({ version: v.version, address: v.address!, abi: v.abi, blockNumber: v.blockNumber }));
    const recorder = () => {
        const got: ChainEvent[] = [];
        return { got, handler: { handle: async (events: ChainEvent[]) => void got.push(...events) } };
    };
    const pump = (name: string, handler: { handle(e: ChainEvent[]): Promise<void> }, confirmations = 1) => new ChainEventPump(provider, checkpoints, contracts, handler, { name, confirmations });
    const now = async () => Number(BigInt((await chain.rpc<{ timestamp: string }>('eth_getBlockByNumber', ['latest', false])).timestamp));
    /** A proposal between the party and someone else, signed by the party: ProposalCreated then ProposalSigned. */
    const proposeAndSign = async (v: ContractVersion) => {
        const id = keccakId(`proposal-${++n}`);
        const deadline = (await now()) + 3600;
        await pipeline.send({ operationId: `create-${id}`, from: operator, to: v.address!, data: exchange.encodeFunctionData('createProposal', [id, [party.address, Wallet.createRandom().address], [[keccakId('doc'), 'sha256', 'blob://x']], deadline]) }, { timeoutMs: 20_000 });
        await pipeline.send({ operationId: `sign-${id}`, from: party, to: v.address!, data: exchange.encodeFunctionData('sign', [id]) }, { timeoutMs: 20_000 });
        return id;
    };

    it('hands over the events of every version in chain order, decoded, only past the confirmation depth', async () => {
        const v1 = await versions.deploy(ENERGY_EXCHANGE, pipeline, operator, 't');
        const a = await proposeAndSign(v1);
        const v2 = await versions.deploy(ENERGY_EXCHANGE, pipeline, operator, 't');
        const b = await proposeAndSign(v2);
        const { got, handler } = recorder();
        // Three blocks deep: the last two blocks (b's creation and signature) wait.
        const deep = pump('deep', handler, 3);
        await deep.catchUp();
        // From the first version's deployment on: its constructor's event first.
        expect(got[0]).toMatchObject({ name: 'OwnershipTransferred', version: 1, args: { previousOwner: '0x0000000000000000000000000000000000000000', newOwner: operator.address } });
        expect(got.filter((e) => e.name.startsWith('Proposal')).map((e) => [e.name, e.version, e.args.id])).toEqual([
            ['ProposalCreated', 1, a],
            ['ProposalSigned', 1, a],
        ]);
        expect(got.at(-1)).toMatchObject({ name: 'OwnershipTransferred', version: 2 });
        expect(got[1]).toMatchObject({ name: 'ProposalCreated', args: { id: a, assetCount: 1, parties: [party.address, expect.any(String)] } });
        expect(got[2]).toMatchObject({ name: 'ProposalSigned', args: { id: a, party: party.address, signatures: 1 } });
        await chain.mine(2);
        await deep.catchUp();
        expect(got.filter((e) => e.name.startsWith('Proposal')).map((e) => [e.name, e.version, e.args.id])).toEqual([
            ['ProposalCreated', 1, a],
            ['ProposalSigned', 1, a],
            ['ProposalCreated', 2, b],
            ['ProposalSigned', 2, b],
        ]);
        expect(got).toHaveLength(6);
        expect(new Set(got.map((e) => e.id)).size).toBe(6);
        expect(got.every((e, i) => i === 0 || e.blockNumber > got[i - 1].blockNumber || (e.blockNumber === got[i - 1].blockNumber && e.logIndex > got[i - 1].logIndex))).toBe(true);
        // Nothing new: nothing handed over again.
        await deep.catchUp();
        expect(got).toHaveLength(6);
    });

    it('keeps the checkpoint when the handler fails, so the next run hands the same events over again', async () => {
        const v = await versions.latestActive();
        let fail = false;
        const seen: string[][] = [];
        const flaky = pump('flaky', {
            handle: async (events) => {
                seen.push(events.map((e) => e.id));
                if (fail) throw new Error('handler down');
            },
        });
        await flaky.catchUp();
        const before = (await checkpoints.read('flaky', 'flaky'))!.item.block;
        const id = await proposeAndSign(v);
        fail = true;
        await expect(flaky.runOnce()).rejects.toThrow('handler down');
        expect((await checkpoints.read('flaky', 'flaky'))!.item.block).toBe(before);
        fail = false;
        await flaky.runOnce();
        expect(seen.at(-1)).toEqual(seen.at(-2));
        expect(seen.at(-1)).toHaveLength(2);
        expect((await checkpoints.read('flaky', 'flaky'))!.item.block).toBeGreaterThan(before);
        expect(id).toMatch(/^0x/);
    });

    it('goes back before a reorg and hands over the events of the blocks that replaced the old ones', async () => {
        const v = await versions.latestActive();
        // Signatures are sent straight from the parties' wallets here: the pipeline is not part of this test.
        const [p1, p2] = [Wallet.createRandom().connect(provider), Wallet.createRandom().connect(provider)];
        await chain.fund(p1.address);
        await chain.fund(p2.address);
        const id = keccakId(`reorg-${++n}`);
        await pipeline.send({ operationId: `create-${id}`, from: operator, to: v.address!, data: exchange.encodeFunctionData('createProposal', [id, [p1.address, p2.address], [[keccakId('doc'), 'sha256', 'blob://x']], (await now()) + 3600]) }, { timeoutMs: 20_000 });
        const { got, handler } = recorder();
        const watcher = pump('reorg', handler);
        await watcher.catchUp();
        const seenBefore = got.length;
        const snapshot = await chain.rpc<string>('evm_snapshot');
        await (await p1.sendTransaction({ to: v.address!, data: exchange.encodeFunctionData('sign', [id]) })).wait();
        await watcher.catchUp();
        expect(got.slice(seenBefore).map((e) => [e.name, e.args.party])).toEqual([['ProposalSigned', p1.address]]);
        // The chain drops that block and takes another branch, longer than the old one.
        await chain.rpc('evm_revert', [snapshot]);
        await (await p2.sendTransaction({ to: v.address!, data: exchange.encodeFunctionData('sign', [id]) })).wait();
        await chain.mine(3);
        const runs = await watcher.catchUp();
        expect(runs[0].rewoundTo).toBeDefined();
        expect(got.slice(seenBefore + 1).map((e) => [e.name, e.args.party])).toEqual([['ProposalSigned', p2.address]]);
    });

    it('follows the chain: what is mined while it follows is handed over in the same call, and the logs are read only when the head moved', async () => {
        const v = await versions.latestActive();
        const { got, handler } = recorder();
        const follower = pump('follow', handler);
        await follower.catchUp();
        const before = got.length;
        const runOnce = jest.spyOn(follower, 'runOnce');
        const following = follower.follow({ forMs: 3000, pollMs: 100 });
        await new Promise((r) => setTimeout(r, 300));
        const id = await proposeAndSign(v);
        const runs = await following;
        expect(got.filter((e) => e.args.id === id).map((e) => e.name)).toEqual(['ProposalCreated', 'ProposalSigned']);
        expect(runs.reduce((sum, r) => sum + r.events, 0)).toBe(got.length - before);
        // About thirty polls of the head; a run (checkpoint, block hashes, logs) only at the start and for each of the two new blocks.
        expect(runOnce.mock.calls.length).toBeGreaterThanOrEqual(2);
        expect(runOnce.mock.calls.length).toBeLessThanOrEqual(3);
        // Told to stop, it stops after its first catch-up.
        const stop = new AbortController();
        stop.abort();
        runOnce.mockClear();
        await follower.follow({ forMs: 3000, pollMs: 100, signal: stop.signal });
        expect(runOnce).toHaveBeenCalledTimes(1);
    });

    it('lets one of two racing pumps move the checkpoint; the other’s run is reported, not lost', async () => {
        const v = await versions.latestActive();
        const one = recorder();
        const two = recorder();
        await pump('race', one.handler).catchUp();
        await proposeAndSign(v);
        const [r1, r2] = await Promise.all([pump('race', one.handler).runOnce(), pump('race', two.handler).runOnce()]);
        expect([r1.lostRace, r2.lostRace].filter(Boolean)).toHaveLength(1);
        const after = (await checkpoints.read('race', 'race'))!.item.block;
        expect(after).toBe(Math.max(r1.to, r2.to));
    });
});
