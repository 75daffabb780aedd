import { updateExisting, updateExistingStored } from '../../shared/documents/updateExisting';
import type { Repository } from '../../shared/documents/repository';
import { Conflict, NotFound } from '../../shared/errors';
import { MemoryRepository } from './fakes/memoryStores';

type Doc = { id: string; kind: 'thing'; n: number; updatedAt: string } | { id: string; kind: 'claim' };
type Thing = Extract<Doc, { kind: 'thing' }>;
const isThing = (d: Doc): d is Thing => d.kind === 'thing';
const opts = { is: isThing, missing: () => new NotFound('No such thing'), conflict: () => new Conflict('The thing is being changed; try again') };
const OLD = '2020-01-01T00:00:00.000Z';

describe('updating a record that must exist', () => {
    it('writes the change with a fresh updatedAt, and leaves the record alone when the change is none', async () => {
        const repo = new MemoryRepository<Doc>((d) => d.id);
        await repo.create({ id: 't1', kind: 'thing', n: 1, updatedAt: OLD });
        const changed = await updateExisting(repo, 't1', (t) => ({ ...t, n: t.n + 1 }), opts);
        expect(changed.n).toBe(2);
        expect(changed.updatedAt > OLD).toBe(true);
        const before = (await repo.read('t1', 't1'))!;
        expect(await updateExisting(repo, 't1', () => undefined, opts)).toEqual(before.item);
        expect((await repo.read('t1', 't1'))!.etag).toBe(before.etag);
    });

    it('fails with `missing` for no record, and for a record of another kind', async () => {
        const repo = new MemoryRepository<Doc>((d) => d.id);
        await repo.create({ id: 'c1', kind: 'claim' });
        await expect(updateExisting(repo, 'nope', (t) => t, opts)).rejects.toThrow('No such thing');
        await expect(updateExisting(repo, 'c1', (t) => t, opts)).rejects.toBeInstanceOf(NotFound);
        expect((await repo.read('c1', 'c1'))!.item).toEqual({ id: 'c1', kind: 'claim' });
    });

    it('reads again and retries when someone else changed the record in between, then gives up with `conflict`', async () => {
        const repo = new MemoryRepository<Doc>((d) => d.id);
        await repo.create({ id: 't1', kind: 'thing', n: 1, updatedAt: OLD });
        let races = 2;
        const racing = await updateExisting(
            repo,
            't1',
            (t) => {
                // Someone else writes between this read and the replace, twice.
                if (races-- > 0) void repo.upsert({ ...t, n: t.n + 10 });
                return { ...t, n: t.n + 1 };
            },
            opts,
        );
        expect(racing.n).toBe(22);
        const forever = updateExisting(repo, 't1', (t) => (void repo.upsert({ ...t, n: t.n + 10 }), { ...t, n: t.n + 1 }), opts);
        await expect(forever).rejects.toThrow('The thing is being changed; try again');
    });
    it('starts from the record the caller holds (no read) while it is current, and reads again when it is stale or gone', async () => {
        const repo = new MemoryRepository<Doc>((d) => d.id);
        let reads = 0;
        const counted: Repository<Doc> = {
            create: (d) => repo.create(d),
            createEach: (d) => repo.createEach(d),
            read: (id, pk) => (reads++, repo.read(id, pk)),
            replace: (d, etag) => repo.replace(d, etag),
            upsert: (d) => repo.upsert(d),
            delete: (id, pk, etag) => repo.delete(id, pk, etag),
            query: () => repo.query(),
            patch: () => repo.patch(),
        };
        await repo.create({ id: 't1', kind: 'thing', n: 1, updatedAt: OLD });
        const first = (await repo.read('t1', 't1')) as { item: Thing; etag: string };
        const second = await updateExistingStored(counted, 't1', (t) => ({ ...t, n: t.n + 1 }), { ...opts, known: first });
        expect([second.item.n, reads]).toEqual([2, 0]);
        // The next step goes on from what the last one wrote: still no read.
        const third = await updateExistingStored(counted, 't1', (t) => ({ ...t, n: t.n * 10 }), { ...opts, known: second });
        expect([third.item.n, reads]).toEqual([20, 0]);
        // Stale (someone wrote since): its ETag is refused, the record read again and the change made on that.
        await repo.upsert({ ...third.item, n: 100 });
        const fourth = await updateExistingStored(counted, 't1', (t) => ({ ...t, n: t.n + 1 }), { ...opts, known: third });
        expect([fourth.item.n, reads]).toEqual([101, 1]);
        // Gone since: read again, and `missing`.
        await repo.delete('t1', 't1');
        await expect(updateExistingStored(counted, 't1', (t) => ({ ...t, n: 0 }), { ...opts, known: fourth })).rejects.toThrow('No such thing');
    });
});
