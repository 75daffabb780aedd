import { AccountRegistry, type AddressClaim, type RegisteredAccount } from '../../shared/accounts/accountRegistry';
import { CosmosRepository } from '../../shared/documents/cosmosRepository';
import { Conflict, Invalid, NotFound } from '../../shared/errors';
import { EventFeed, FeedingPublisher, type FeedDoc } from '../../shared/events/eventFeed';
import type { EventEnvelope, EventPublisher } from '../../shared/events/events';
import { startCosmos, type TestCosmos } from '../harness/cosmos';

const event = (id: string, orgIds = ['acme']): EventEnvelope => ({ id, type: 'account.registered', occurredAt: new Date().toISOString(), orgIds, subject: `orgs/${orgIds[0]}`, data: { n: id } });

/** The per-organisation feed and the account registry on the local Cosmos server. */
describe('event feed and account registry', () => {
    let db: TestCosmos;
    beforeAll(async () => {
        db = await startCosmos();
    });
    afterAll(() => db?.stop());

    const feedRepo = () => new CosmosRepository<FeedDoc>(db.database.container('events'), (d) => d.orgId);

    it('numbers concurrent appends without gaps or repeats, drops a republished event, and pages with the cursor', async () => {
        const feed = new EventFeed(feedRepo());
        const ids = Array.from({ length: 30 }, (_, i) => `e-${i}`);
        // Every event appended twice at once, as an at-least-once publisher may.
        await Promise.all([...ids, ...ids].map((id) => feed.append('acme', event(id))));
        const all: { id: string; seq: number }[] = [];
        let after = 0;
        for (let page = 0; page < 10; page++) {
            const { items, next } = await feed.read('acme', after, 7);
            if (items.length === 0) break;
            expect(items.length).toBeLessThanOrEqual(7);
            all.push(...items);
            after = next;
        }
        expect(all.map((e) => e.id).sort()).toEqual([...ids].sort());
        const seqs = all.map((e) => e.seq);
        expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
        expect(new Set(seqs).size).toBe(30);
        expect((await feed.read('globex')).items).toEqual([]);
    });

    it('stops before a fresh gap (an append still in flight), so the cursor never skips it', async () => {
        const repo = feedRepo();
        const feed = new EventFeed(repo);
        await feed.append('initech', event('first', ['initech']));
        // Another writer has taken number 2 but not written its entry yet.
        await repo.patch('_sequence', 'initech', [{ op: 'incr', path: '/value', value: 1 }]);
        await feed.append('initech', event('third', ['initech']));
        const { items, next } = await feed.read('initech');
        expect(items.map((e) => [e.id, e.seq])).toEqual([['first', 1]]);
        expect(next).toBe(1);
    });

    it('publishes into every organisation’s feed before the bus, and refuses an invalid event before anything is written', async () => {
        const sent: EventEnvelope[] = [];
        const bus: EventPublisher = { publish: async (e) => void sent.push(e) };
        const feed = new EventFeed(feedRepo());
        const publisher = new FeedingPublisher(feed, bus);
        await publisher.publish(event('shared-1', ['north', 'south']));
        expect((await feed.read('north')).items.map((e) => e.id)).toEqual(['shared-1']);
        expect((await feed.read('south')).items.map((e) => e.id)).toEqual(['shared-1']);
        expect(sent.map((e) => e.id)).toEqual(['shared-1']);
        await expect(publisher.publish({ ...event('bad', ['west']), type: 'nope' as never })).rejects.toBeInstanceOf(Invalid);
        expect((await feed.read('west')).items).toEqual([]);
        expect(sent).toHaveLength(1);
    });

    it('names the organisation’s subscribers with each append: looked up once for a counter naming none, then read from the counter until a change is recorded; a repeat names none', async () => {
        const repo = feedRepo();
        const hooks: string[] = [];
        let lookups = 0;
        const feed = new EventFeed(repo, async () => (lookups++, [...hooks]));
        expect(await feed.append('umbrella', event('u-1', ['umbrella']))).toEqual({ subscribers: [] });
        expect(await feed.append('umbrella', event('u-2', ['umbrella']))).toEqual({ subscribers: [] });
        expect(lookups).toBe(1);
        hooks.push('hook-1');
        await feed.recordSubscribers('umbrella');
        expect(await feed.append('umbrella', event('u-3', ['umbrella']))).toEqual({ subscribers: ['hook-1'] });
        // A repeat (an at-least-once publisher): nothing appended, no subscribers named (the caller looks them up).
        expect(await feed.append('umbrella', event('u-3', ['umbrella']))).toEqual({});
        expect(lookups).toBe(2);
        expect((await feed.read('umbrella')).items.map((e) => [e.id, e.seq])).toEqual([['u-1', 1], ['u-2', 2], ['u-3', 3]]);
    });

    it('names the subscribers on a counter made before counters named them, keeping its number', async () => {
        const repo = feedRepo();
        await repo.create({ id: '_sequence', kind: 'sequence', orgId: 'hooli', value: 41 } as FeedDoc);
        const feed = new EventFeed(repo, async () => ['hook-a']);
        expect(await feed.append('hooli', event('h-42', ['hooli']))).toEqual({ subscribers: ['hook-a'] });
        expect((await repo.read('_sequence', 'hooli'))!.item).toMatchObject({ value: 42, subscribers: ['hook-a'] });
        expect((await feed.read('hooli', 41)).items.map((e) => e.seq)).toEqual([42]);
    });

    it('ends naming both of two subscribers recorded at once, and what a change leaves while appends take numbers, each append numbered once', async () => {
        const repo = feedRepo();
        const hooks: string[] = [];
        // The first recording's look at the authority is slow (it sees only its own webhook), the second's quick:
        // written in the order they finish, the second's list would be overwritten by the first's.
        const feed = new EventFeed(repo, async () => {
            const now = [...hooks];
            if (now.length === 1) await new Promise((r) => setTimeout(r, 40));
            return now;
        });
        await feed.append('wayne', event('w-first', ['wayne']));
        const record = async (change: () => void) => {
            change();
            await feed.recordSubscribers('wayne');
        };
        await Promise.all([record(() => hooks.push('hook-1')), record(() => hooks.push('hook-2'))]);
        expect((await feed.append('wayne', event('w-both', ['wayne']))).subscribers!.sort()).toEqual(['hook-1', 'hook-2']);
        // A removal while appends keep changing the counter under it: recorded all the same, nothing numbered twice.
        const appends = Array.from({ length: 20 }, (_, i) => feed.append('wayne', event(`w-${i}`, ['wayne'])));
        await Promise.all([record(() => hooks.splice(0, 1)), ...appends]);
        expect((await feed.append('wayne', event('w-last', ['wayne']))).subscribers).toEqual(['hook-2']);
        expect((await feed.read('wayne')).items.map((e) => e.seq)).toEqual(Array.from({ length: 23 }, (_, i) => i + 1));
    });

    it('keeps an address to one organisation: registering again changes nothing, another organisation is refused', async () => {
        const registry = new AccountRegistry(
            new CosmosRepository<RegisteredAccount>(db.database.container('accounts'), (a) => a.orgId),
            new CosmosRepository<AddressClaim>(db.database.container('addresses'), (c) => c.id),
        );
        const address = '0x52908400098527886E0F7030069857D2E4169EE7';
        const results = await Promise.all([1, 2, 3].map(() => registry.register('acme', { address: address.toLowerCase(), label: 'primary' }, 'member-app')));
        expect(results.filter((r) => r.created)).toHaveLength(1);
        expect(results.every((r) => r.account.address === address)).toBe(true);
        await expect(registry.register('globex', { address, label: 'mine' }, 'other-app')).rejects.toMatchObject({ constructor: Conflict, code: 'address_taken' });
        expect((await registry.list('acme')).map((a) => a.address)).toEqual([address]);
        expect(await registry.list('globex')).toEqual([]);
        expect(await registry.ownerOf(address)).toBe('acme');
        await expect(registry.get('globex', address)).rejects.toBeInstanceOf(NotFound);
        await expect(registry.register('acme', { address: '0x1234', label: 'x' }, 'a')).rejects.toBeInstanceOf(Invalid);
    });
});
