import { Wallet, parseEther } from 'ethers';
import type { ChainSender } from '../../shared/chain/pipeline';
import { CosmosRepository } from '../../shared/documents/cosmosRepository';
import type { EventEnvelope, EventPublisher } from '../../shared/events/events';
import { Treasury, type Grant, type TopUpPolicy } from '../../shared/treasury/treasury';
import { startChainWorld, type ChainWorld } from '../harness/chainWorld';

const ETH = (n: number) => parseEther(String(n));

/** Ether top-ups from the treasury on anvil, with grants and transactions in the local Cosmos server. */
describe('treasury top-ups', () => {
    let world: ChainWorld;
    let chain: ChainWorld['chain'];
    let pipeline: ChainWorld['pipeline'];
    let db: ChainWorld['db'];
    let operator: ChainSender;
    const published: EventEnvelope[] = [];
    const events: EventPublisher = { publish: async (e) => void published.push(e) };

    beforeAll(async () => {
        world = await startChainWorld();
        ({ chain, pipeline, db } = world);
        operator = await world.funded(0);
    });
    afterAll(() => world?.stop());

    const treasury = () => new Treasury(new CosmosRepository<Grant>(db.database.container('treasury'), (g) => g.id), pipeline, async () => operator);
    const policy: TopUpPolicy = { thresholdWei: ETH(0.5), targetWei: ETH(1), dailyCapWei: ETH(1.5), floorWei: ETH(10), windowSeconds: 3600 };
    // Straight from the node: ethers' provider answers a repeated call from its cache for a moment
    // (250 ms), which made the floor test see the treasury's balance from before it was lowered.
    const onChain = async (a: string) => BigInt(await chain.rpc<string>('eth_getBalance', [a, 'latest']));
    const balanceOf = onChain;

    it('funds an account once when two top-up runs start at the same moment, and not again in the window', async () => {
        await chain.fund(operator.address, 100);
        const account = Wallet.createRandom().address;
        await chain.fund(account, 0.2);
        // An hour into today (UTC), so that the next window below is still the same day for the daily cap.
        const now = Math.floor(Date.now() / 86_400_000) * 86_400_000 + 3600_000;
        // Two instances of the timer, each with its own Treasury, at once.
        const [a, b] = await Promise.all([treasury().topUp({ orgId: 'acme', address: account, balanceOf, policy, events, now }), treasury().topUp({ orgId: 'acme', address: account, balanceOf, policy, events, now })]);
        expect([a.granted, b.granted].filter(Boolean).length).toBeGreaterThanOrEqual(1);
        expect(await onChain(account)).toBe(ETH(1));
        const grants = (await treasury().list({ orgId: 'acme' })).filter((g) => g.address === account);
        expect(grants).toEqual([expect.objectContaining({ state: 'confirmed', amountWei: ETH(0.8).toString(), reason: 'topup' })]);
        // Spent below the threshold again in the same window: the window's grant stands, nothing more.
        await chain.fund(account, 0.1);
        await expect(treasury().topUp({ orgId: 'acme', address: account, balanceOf, policy, events, now: now + 1000 })).resolves.toMatchObject({ granted: false, reason: 'already_topped_up' });
        expect(await onChain(account)).toBe(ETH(0.1));
        // The next window: topped up again, but only up to the daily cap (0.8 given already of 1.5).
        const next = await treasury().topUp({ orgId: 'acme', address: account, balanceOf, policy, events, now: now + 3600_000 });
        expect(next).toMatchObject({ granted: true, grant: { amountWei: ETH(0.7).toString() } });
        expect(await treasury().topUp({ orgId: 'acme', address: account, balanceOf, policy: { ...policy, windowSeconds: 10 }, events, now: now + 3600_000 + 20_000 })).toMatchObject({ granted: false });
        // An account above the threshold gets nothing.
        const rich = Wallet.createRandom().address;
        await chain.fund(rich, 5);
        await expect(treasury().topUp({ orgId: 'acme', address: rich, balanceOf, policy, events, now })).resolves.toMatchObject({ granted: false, reason: 'above_threshold' });
    });

    it('stops at the treasury floor and says treasury.low once per window', async () => {
        await chain.fund(operator.address, 10.5);
        published.length = 0;
        const now = Date.now();
        const accounts = [Wallet.createRandom().address, Wallet.createRandom().address, Wallet.createRandom().address];
        const results = [];
        for (const address of accounts) results.push(await treasury().topUp({ orgId: 'globex', address, balanceOf, policy, events, now }));
        expect(results.map((r) => (r.granted ? 'granted' : r.reason))).toEqual(['treasury_floor', 'treasury_floor', 'treasury_floor']);
        for (const address of accounts) expect(await onChain(address)).toBe(0n);
        // One event id for the window: the bus and the feeds drop the repeats.
        expect(new Set(published.map((e) => e.id))).toEqual(new Set([`treasury.low:${Math.floor(now / 1000 / 3600)}`]));
        expect(published[0]).toMatchObject({ type: 'treasury.low', data: { address: operator.address, floorWei: ETH(10).toString() } });
    });
});
