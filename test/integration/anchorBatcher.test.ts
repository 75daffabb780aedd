import { Wallet, id as keccakId } from 'ethers';
import { ENERGY_EXCHANGE_V2 } from '../../shared/chain/artifact';
import { CallBatcher, type BatchDoc } from '../../shared/chain/batcher';
import { EnergyExchange, type AnchorInput, type TermsSignature } from '../../shared/chain/energyExchange';
import { proposalTypedData, termsDigest, termsStructHash } from '../../shared/proposals/terms';
import { InsufficientFunds, type ChainSender, type TxDoc } from '../../shared/chain/pipeline';
import { ContractVersions, type ContractVersion } from '../../shared/chain/versions';
import { CosmosRepository } from '../../shared/documents/cosmosRepository';
import type { Repository } from '../../shared/documents/repository';
import { startChainWorld, type ChainWorld } from '../harness/chainWorld';

/**
 * The batcher of anchors on anvil, with its records in the document store: at low load an anchor
 * goes at once, under load anchors share transactions, and an item asked again (a retried
 * activity, another process, a sender that crashed before sending) never sends twice.
 */
describe('anchors batched into shared transactions', () => {
    let world: ChainWorld;
    let operator: ChainSender;
    let exchange: EnergyExchange;
    let store: CosmosRepository<BatchDoc>;
    let seq = 0;
    const parties = [Wallet.createRandom().address, Wallet.createRandom().address];

    const batcher = (maxItems = 100, maxWaitMs = 200) =>
        new CallBatcher<AnchorInput>({ pipeline: world.pipeline, store, from: async () => operator, build: (items) => exchange.createProposals(items) }, { maxItems, maxWaitMs, name: `anchor:${exchange.ref.address}` });
    const anchor = (): { operationId: string; input: AnchorInput } => {
        const id = keccakId(`batched proposal ${++seq}`);
        const input = { chainProposalId: id, parties, assets: [], expiresAt: new Date(Date.now() + 3_600_000).toISOString(), termsHash: keccakId(`terms ${seq}`) };
        return { operationId: `proposal:${seq}:create`, input };
    };
    /** Transactions the operator sent: what the batches cost. */
    const operatorNonce = async () => Number(BigInt(await world.provider.rpc<string>('eth_getTransactionCount', [operator.address, 'latest'])));

    beforeAll(async () => {
        // The pipeline's warnings and errors in the test's output (none when all is well): a stalled batch says why.
        const say = (level: string) => (o: object, m: string) => console.warn(`pipeline ${level}: ${m} ${JSON.stringify(o)}`);
        world = await startChainWorld({ mining: 'instant', pipeline: { abis: [ENERGY_EXCHANGE_V2.abi], log: { info: () => undefined, warn: say('warn'), error: say('error') } } });
        operator = await world.funded(1000);
        const versions = new ContractVersions(new CosmosRepository<ContractVersion>(world.db.database.container('contracts'), (v) => v.id), world.provider);
        const v = await versions.deploy(ENERGY_EXCHANGE_V2, world.pipeline, operator, 'test');
        exchange = new EnergyExchange({ version: v.version, address: v.address! }, v.abi, world.provider);
        store = new CosmosRepository<BatchDoc>(world.db.database.container('batches'), (d) => d.id);
    }, 120_000);
    afterAll(async () => {
        await world?.stop();
    });

    it('sends an anchor at once when nothing else is being sent, in a transaction of its own', async () => {
        const b = batcher(100, 60_000);
        const before = await operatorNonce();
        const { operationId, input } = anchor();
        const outcome = await b.send(operationId, input, { timeoutMs: 30_000 });
        expect(outcome.state).toBe('confirmed');
        expect(await exchange.statusOf(input.chainProposalId)).toBe('Open');
        expect((await operatorNonce()) - before).toBe(1);
    });

    it('carries anchors that arrive together in fewer transactions, each proposal anchored, at most maxItems a transaction', async () => {
        const b = batcher(10, 200);
        const before = await operatorNonce();
        const items = Array.from({ length: 40 }, anchor);
        // Each stage bounded below the test's own timeout: a stall fails naming the operation (submitted, not final) instead of the test timing out.
        const outcomes = await Promise.all(items.map(({ operationId, input }) => b.send(operationId, input, { timeoutMs: 30_000 })));
        expect(outcomes.every((o) => o.state === 'confirmed')).toBe(true);
        for (const { input } of items) expect(await exchange.statusOf(input.chainProposalId)).toBe('Open');
        const sent = (await operatorNonce()) - before;
        const hashes = new Set(outcomes.map((o) => o.hash));
        expect(hashes.size).toBe(sent);
        // Asked for in one turn of the event loop while nothing was being sent: they go together, ten a transaction.
        expect(sent).toBe(4);
        const perTx = [...hashes].map((h) => outcomes.filter((o) => o.hash === h).length);
        expect(perTx).toEqual([10, 10, 10, 10]);
    }, 90_000); // past the document store's own request timeout (60 s), so a stalled write fails with its error

    it('sends the first of a trickle at once, and what arrives while it is being sent after it, together', async () => {
        const b = batcher(10, 60_000);
        const before = await operatorNonce();
        const first = anchor();
        const sending = b.send(first.operationId, first.input, { timeoutMs: 30_000 });
        await new Promise((r) => setImmediate(r));
        const later = Array.from({ length: 5 }, anchor);
        const outcomes = await Promise.all([sending, ...later.map(({ operationId, input }) => b.send(operationId, input, { timeoutMs: 30_000 }))]);
        expect(outcomes.every((o) => o.state === 'confirmed')).toBe(true);
        // Not held for the 60-second timer: they went as soon as the first batch was handed over.
        expect(new Set(outcomes.slice(1).map((o) => o.hash)).size).toBe(1);
        expect(outcomes[1]!.hash).not.toBe(outcomes[0]!.hash);
        expect((await operatorNonce()) - before).toBe(2);
    });

    it('answers an item asked again with the outcome of the batch that carried it, sending nothing', async () => {
        const b = batcher();
        const { operationId, input } = anchor();
        const first = await b.send(operationId, input, { timeoutMs: 30_000 });
        const before = await operatorNonce();
        // The retried activity, in this process or another one.
        expect(await b.send(operationId, input, { timeoutMs: 30_000 })).toMatchObject({ state: 'confirmed', hash: first.hash });
        expect(await batcher().send(operationId, input, { timeoutMs: 30_000 })).toMatchObject({ state: 'confirmed', hash: first.hash });
        expect(await operatorNonce()).toBe(before);
    });

    it('carries an item asked for twice at once in one process once: both answers name the same transaction', async () => {
        // The store as the batcher uses it, its claim writes recorded.
        const claimWrites: number[] = [];
        const watched: Repository<BatchDoc> = {
            create: (d) => store.create(d),
            createEach: (docs) => (claimWrites.push(docs.length), store.createEach(docs)),
            read: (id, pk) => store.read(id, pk),
            replace: (d, etag) => store.replace(d, etag),
            upsert: (d) => store.upsert(d),
            delete: (id, pk, etag) => store.delete(id, pk, etag),
            query: (q, o) => store.query(q, o),
            patch: (id, pk, ops, etag) => store.patch(id, pk, ops, etag),
        };
        const b = new CallBatcher<AnchorInput>({ pipeline: world.pipeline, store: watched, from: async () => operator, build: (items) => exchange.createProposals(items) }, { maxItems: 100, maxWaitMs: 200, name: `anchor:${exchange.ref.address}` });
        const before = await operatorNonce();
        const busy = anchor();
        const twice = anchor();
        // The first goes at once; the same item asked twice while it is being sent waits for it, queued once.
        const first = b.send(busy.operationId, busy.input, { timeoutMs: 30_000 });
        await new Promise((r) => setImmediate(r));
        const [, one, two] = await Promise.all([first, b.submit(twice.operationId, twice.input), b.submit(twice.operationId, twice.input)]);
        expect(two.hash).toBe(one.hash);
        const batch = (await store.read(one.operationId, one.operationId))!.item as Extract<BatchDoc, { kind: 'batch' }>;
        expect(batch.items).toEqual([twice.operationId]);
        // One claim for it, never a second item in the batch to write and take out again.
        expect(claimWrites).toEqual([1, 1]);
        expect((await world.pipeline.wait(one.operationId, { timeoutMs: 30_000 })).state).toBe('confirmed');
        expect((await operatorNonce()) - before).toBe(2);
    });

    it('sends the batch a crashed sender wrote but never sent, once, when one of its items comes back', async () => {
        const [x, y] = [anchor(), anchor()];
        const batchId = `batch:crashed:${seq}`;
        const call = exchange.createProposals([x.input, y.input]);
        // What a sender leaves when it dies after writing the batch and its claims, before handing it to the pipeline.
        await store.create({ id: batchId, kind: 'batch', operationId: batchId, items: [x.operationId, y.operationId], to: call.to, data: call.data, createdAt: new Date().toISOString() });
        for (const item of [x, y]) await store.create({ id: `claim:${item.operationId}`, kind: 'claim', batch: batchId, createdAt: new Date().toISOString() });
        const before = await operatorNonce();
        const [ox, oy] = await Promise.all([batcher().send(x.operationId, x.input, { timeoutMs: 30_000 }), batcher().send(y.operationId, y.input, { timeoutMs: 30_000 })]);
        expect(ox).toMatchObject({ state: 'confirmed', hash: oy.hash });
        expect((await operatorNonce()) - before).toBe(1);
        for (const item of [x, y]) expect(await exchange.statusOf(item.input.chainProposalId)).toBe('Open');
        const tx = (await world.db.database.container('transactions').item(batchId, batchId).read<TxDoc>()).resource;
        expect(tx?.state).toBe('confirmed');
    });

    it('gathers one account’s signatures; short of ether it refuses and sends nothing, and once funded the same items go in the batch that claimed them', async () => {
        const wallet = Wallet.createRandom();
        const member: ChainSender = { address: wallet.address, signer: wallet };
        const signatures = new CallBatcher<TermsSignature>({ pipeline: world.pipeline, store, from: async () => member, build: (items) => exchange.submitSignatures(items) }, { maxItems: 10, maxWaitMs: 200, name: `sign:${exchange.ref.address}:${member.address}` });
        const signers = [Wallet.createRandom(), Wallet.createRandom()];
        const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
        const proposals = Array.from({ length: 3 }, (_, i) => {
            const id = keccakId(`signed proposal ${++seq}`);
            const td = proposalTypedData({ chainId: id, parties: signers.map((w) => ({ account: w.address })), terms: { product: 'baseload', direction: 'sell', quantityMWh: 1 + i, priceGbpPerMWh: 70, deliveryStart: '2027-01-01T00:00:00Z', deliveryEnd: '2027-01-01T00:30:00Z' }, assets: [{ sha256: 'ab'.repeat(32), algorithm: 'sha256' }], expiresAt }, exchange.signingDomain(31337));
            return { id, td, items: signers.map((w, k) => ({ operationId: `proposal:${seq}:sign:${k}`, item: { chainProposalId: id, party: w.address, signature: w.signingKey.sign(termsDigest(td)).serialized } })) };
        });
        for (const outcome of await Promise.all(proposals.map(({ id, td }) => batcher().send(`proposal:${id}:create`, { chainProposalId: id, parties: signers.map((w) => w.address), assets: [], expiresAt, termsHash: termsStructHash(td) }, { timeoutMs: 30_000 })))) {
            expect(outcome.state).toBe('confirmed');
        }
        const all = proposals.flatMap((p) => p.items);
        const nonce = async () => Number(BigInt(await world.provider.rpc<string>('eth_getTransactionCount', [member.address, 'latest'])));
        // No ether: every item is refused before anything is signed or sent.
        const refused = await Promise.all(all.map((x) => signatures.submit(x.operationId, x.item, { requireFunds: true }).then(() => null, (err: unknown) => err)));
        expect(refused.every((err) => err instanceof InsufficientFunds)).toBe(true);
        expect(await nonce()).toBe(0);
        await world.provider.rpc('anvil_setBalance', [member.address, '0x' + (10n ** 20n).toString(16)]);
        const outcomes = await Promise.all(all.map((x) => signatures.send(x.operationId, x.item, { timeoutMs: 30_000 })));
        expect(outcomes.every((o) => o.state === 'confirmed')).toBe(true);
        for (const { id } of proposals) expect(await exchange.statusOf(id)).toBe('Completed');
        // Asked again, each item answers with the transaction that carried it; nothing more is sent.
        const sent = await nonce();
        expect(sent).toBeLessThan(all.length);
        const again = await Promise.all(all.map((x) => signatures.submit(x.operationId, x.item, { requireFunds: true })));
        expect(again.map((t) => t.hash).sort()).toEqual(outcomes.map((o) => o.hash).sort());
        expect(await nonce()).toBe(sent);
    });

    it('lets one of two processes carry an item both were asked for at once; the other follows it', async () => {
        const [one, two] = [batcher(), batcher()];
        const shared = anchor();
        const [own1, own2] = [anchor(), anchor()];
        const before = await operatorNonce();
        const outcomes = await Promise.all([one.send(shared.operationId, shared.input, { timeoutMs: 30_000 }), two.send(shared.operationId, shared.input, { timeoutMs: 30_000 }), one.send(own1.operationId, own1.input, { timeoutMs: 30_000 }), two.send(own2.operationId, own2.input, { timeoutMs: 30_000 })]);
        expect(outcomes.every((o) => o.state === 'confirmed')).toBe(true);
        expect(outcomes[0]!.hash).toBe(outcomes[1]!.hash);
        for (const item of [shared, own1, own2]) expect(await exchange.statusOf(item.input.chainProposalId)).toBe('Open');
        // The claim names one batch, and it carries the shared anchor.
        const claim = (await store.read(`claim:${shared.operationId}`, `claim:${shared.operationId}`))!.item as Extract<BatchDoc, { kind: 'claim' }>;
        const carrying = (await store.read(claim.batch, claim.batch))!.item as Extract<BatchDoc, { kind: 'batch' }>;
        expect(carrying.items).toContain(shared.operationId);
        // Each process sends what it was asked for together: one claims the shared anchor, the other's batch is
        // written again without it. Sent twice, it would be in both transactions (or cost a third).
        expect(carrying.items).toHaveLength(2);
        expect([own1.operationId, own2.operationId].filter((op) => carrying.items.includes(op))).toHaveLength(1);
        expect((await operatorNonce()) - before).toBe(2);
    });
});
