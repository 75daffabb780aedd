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

    it('a repeat from another process leaves one entry and a gap that readers wait out; an append that failed is tried again in full', async () => {
        const [here, there] = [new EventFeed(feedRepo()), new EventFeed(feedRepo())];
        await here.append('umbrella', event('u-1', ['umbrella']));
        // The same event from another instance (an activity run again there): it takes number 2 and finds the entry.
        await there.append('umbrella', event('u-1', ['umbrella']));
        await here.append('umbrella', event('u-2', ['umbrella']));
        // Number 2 stays empty: young, it may be an append in flight, so the reader stops before it.
        expect((await here.read('umbrella')).items.map((e) => [e.id, e.seq])).toEqual([['u-1', 1]]);
        const entries = await feedRepo().query({ query: 'SELECT c.id, c.seq FROM c WHERE c.orgId = "umbrella" AND c.kind = "event" ORDER BY c.seq' }, { partitionKey: 'umbrella' });
        expect(entries.items.map((e) => [e.id, (e as unknown as { seq: number }).seq])).toEqual([
            ['u-1', 1],
            ['u-2', 3],
        ]);

        // A failed append is not remembered: its repeat appends.
        const failing = feedRepo();
        const create = failing.create.bind(failing);
        let down = true;
        failing.create = async (doc) => (down ? Promise.reject(new Error('store unreachable')) : create(doc));
        const flaky = new EventFeed(failing);
        await expect(flaky.append('wayne', event('w-1', ['wayne']))).rejects.toThrow('store unreachable');
        down = false;
        await flaky.append('wayne', event('w-1', ['wayne']));
        await flaky.append('wayne', event('w-1', ['wayne']));
        const wayne = await feedRepo().query({ query: 'SELECT c.id, c.seq FROM c WHERE c.orgId = "wayne" AND c.kind = "event"' }, { partitionKey: 'wayne' });
        expect(wayne.items.map((e) => e.id)).toEqual(['w-1']);
    });

    it('publishes into every organisation’s feed and the bus, and refuses an invalid event before anything is written', async () => {
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

    it('fails the publish when the bus or a feed fails, after the others are done, and a retry fills in what was missed', async () => {
        const sent: EventEnvelope[] = [];
        let busDown = true;
        const bus: EventPublisher = {
            publish: async (e) => {
                if (busDown) throw new Error('bus unreachable');
                sent.push(e);
            },
        };
        const feed = new EventFeed(feedRepo());
        const publisher = new FeedingPublisher(feed, bus);
        await expect(publisher.publish(event('retry-1', ['retry-east', 'retry-west']))).rejects.toThrow('bus unreachable');
        // The feeds took it all the same; the retry adds nothing to them and sends it once.
        expect((await feed.read('retry-east')).items.map((e) => e.id)).toEqual(['retry-1']);
        busDown = false;
        await publisher.publish(event('retry-1', ['retry-east', 'retry-west']));
        expect((await feed.read('retry-east')).items.map((e) => [e.id, e.seq])).toEqual([['retry-1', 1]]);
        expect((await feed.read('retry-west')).items.map((e) => [e.id, e.seq])).toEqual([['retry-1', 1]]);
        expect(sent.map((e) => e.id)).toEqual(['retry-1']);

        // A feed that fails: the bus has it, the publish fails, the retry writes the feed.
        const once = { n: 0 };
        const flaky = new FeedingPublisher({ append: async (orgId: string, e: EventEnvelope) => (once.n++ === 0 ? Promise.reject(new Error('feed unreachable')) : feed.append(orgId, e)) } as unknown as EventFeed, bus);
        await expect(flaky.publish(event('retry-2', ['retry-north']))).rejects.toThrow('feed unreachable');
        expect(sent.map((e) => e.id)).toEqual(['retry-1', 'retry-2']);
        expect((await feed.read('retry-north')).items).toEqual([]);
        await flaky.publish(event('retry-2', ['retry-north']));
        expect((await feed.read('retry-north')).items.map((e) => e.id)).toEqual(['retry-2']);
        // At least once: the bus got it again with the retry (its consumers drop the repeat by id).
        expect(sent.map((e) => e.id)).toEqual(['retry-1', 'retry-2', 'retry-2']);
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

    it("knows an address's owner once read (a claim is for good), and asks again while it has none", async () => {
        const claims = new CosmosRepository<AddressClaim>(db.database.container('addresses'), (c) => c.id);
        const reads = jest.spyOn(claims, 'read');
        const accounts = () => new CosmosRepository<RegisteredAccount>(db.database.container('accounts'), (a) => a.orgId);
        const here = new AccountRegistry(accounts(), claims);
        const elsewhere = new AccountRegistry(accounts(), new CosmosRepository<AddressClaim>(db.database.container('addresses'), (c) => c.id));
        const address = '0x8ba1f109551bD432803012645Ac136ddd64DBA72';
        expect(await here.ownerOf(address)).toBeUndefined();
        // Registered through another instance: no answer of "none" is kept here.
        await elsewhere.register('initech', { address, label: 'primary' }, 'member-app');
        expect(await here.ownerOf(address.toLowerCase())).toBe('initech');
        const readsSoFar = reads.mock.calls.length;
        expect(await Promise.all([here.ownerOf(address), here.ownerOf(address.toLowerCase())])).toEqual(['initech', 'initech']);
        expect(reads).toHaveBeenCalledTimes(readsSoFar);
    });
});
