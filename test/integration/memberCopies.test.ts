import { CosmosRepository } from '../../shared/documents/cosmosRepository';
import type { Directory } from '../../shared/directory/directory';
import type { EventEnvelope } from '../../shared/events/events';
import type { Mail } from '../../shared/mail/mailSender';
import { MemberProposalCopies, type MemberProposalCopy } from '../../shared/proposals/memberCopies';
import { startCosmos, type TestCosmos } from '../harness/cosmos';

const ORG = 'org-north';
const created = (proposalId: string): EventEnvelope => ({
    id: `proposal.created:${proposalId}`,
    type: 'proposal.created',
    occurredAt: new Date().toISOString(),
    orgIds: [ORG, 'org-south'],
    subject: `proposals/${proposalId}`,
    data: { proposalId, status: 'AwaitingSignatures', updatedAt: new Date().toISOString() },
});

/** A member's copies of its proposals on the local Cosmos server: a signature asked for early waits for the copy. */
describe("a member's proposal copies", () => {
    let db: TestCosmos;
    let copies: MemberProposalCopies;
    const mails: Mail[] = [];
    beforeAll(async () => {
        db = await startCosmos();
        const repo = new CosmosRepository<MemberProposalCopy>(db.database.container('proposals'), (c) => c.id);
        const directory = { listUsers: async () => [] } as unknown as Directory;
        copies = new MemberProposalCopies(repo, { orgId: ORG, directory, mail: { send: async (m: Mail) => ({ messageId: String(mails.push(m)) }) } });
    });
    afterAll(() => db?.stop());

    it('a wait for a copy ends when the event is applied in this process, with the copy', async () => {
        const id = crypto.randomUUID();
        const started = Date.now();
        const waiting = copies.arrival(id, 10_000);
        await new Promise((r) => setTimeout(r, 100));
        await copies.apply(created(id));
        const copy = await waiting;
        expect(copy).toMatchObject({ proposalId: id, status: 'AwaitingSignatures' });
        // Woken by the apply, not by the end of its 10 s.
        expect(Date.now() - started).toBeLessThan(5_000);
    });

    it('a copy that is there already is answered at once; one that never comes is undefined after the wait', async () => {
        const id = crypto.randomUUID();
        await copies.apply(created(id));
        expect(await copies.arrival(id, 10_000)).toMatchObject({ proposalId: id });
        const absent = crypto.randomUUID();
        const started = Date.now();
        expect(await copies.arrival(absent, 300)).toBeUndefined();
        expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    });

    it('an instance whose copy went stale (another applied a newer event) never writes an older event over it', async () => {
        const id = crypto.randomUUID();
        const other = new MemberProposalCopies(new CosmosRepository<MemberProposalCopy>(db.database.container('proposals'), (c) => c.id), {
            orgId: ORG,
            directory: { listUsers: async () => [] } as unknown as Directory,
            mail: { send: async () => ({ messageId: 'm' }) },
        });
        const at = (ms: number) => new Date(Date.parse('2027-01-01T00:00:00Z') + ms).toISOString();
        const step = (type: EventEnvelope['type'], status: string, ms: number): EventEnvelope => ({ ...created(id), id: `${type}:${id}:${ms}`, type, data: { proposalId: id, status, updatedAt: at(ms) } });
        expect(await copies.apply(step('proposal.created', 'AwaitingSignatures', 0))).toEqual({ applied: true });
        // Another instance applies the ending; this one still holds the copy as it wrote it.
        expect(await other.apply(step('proposal.completed', 'Completed', 2_000))).toEqual({ applied: true });
        // A signature's event, older than the ending but newer than what this instance holds: its write fails the ETag, and read again it is not applied.
        expect(await copies.apply(step('proposal.signed', 'AwaitingSignatures', 1_000))).toEqual({ applied: false });
        expect((await copies.get(id)).status).toBe('Completed');
        // And the next event this instance applies starts from the copy as it is now.
        expect(await copies.apply(step('proposal.completed', 'Completed', 3_000))).toEqual({ applied: true });
        expect((await copies.get(id)).updatedAt).toBe(at(3_000));
    });

    it('a copy written by another instance during the wait is found by the read at its end', async () => {
        const id = crypto.randomUUID();
        const waiting = copies.arrival(id, 500);
        // Another instance (its own waiters, the same store) applies the event.
        const other = new MemberProposalCopies(new CosmosRepository<MemberProposalCopy>(db.database.container('proposals'), (c) => c.id), {
            orgId: ORG,
            directory: { listUsers: async () => [] } as unknown as Directory,
            mail: { send: async () => ({ messageId: 'm' }) },
        });
        await other.apply(created(id));
        expect(await waiting).toMatchObject({ proposalId: id });
    });

    it("a proposal's first event creates the copy without reading first; the event again on another instance finds it and mails nobody twice", async () => {
        const id = crypto.randomUUID();
        const sent: Mail[] = [];
        const instance = () => {
            const repo = new CosmosRepository<MemberProposalCopy>(db.database.container('proposals'), (c) => c.id);
            const directory = { listUsers: async () => [{ email: 'trader@north.example', roles: ['Org.Trader'] }] } as unknown as Directory;
            return { repo, copies: new MemberProposalCopies(repo, { orgId: ORG, directory, mail: { send: async (m: Mail) => ({ messageId: String(sent.push(m)) }) } }) };
        };
        const here = instance();
        const reads = jest.spyOn(here.repo, 'read');
        const event = created(id);
        expect(await here.copies.apply(event)).toEqual({ applied: true });
        expect(reads).not.toHaveBeenCalled();
        expect(sent).toHaveLength(1);
        // Delivered again to another instance (it never met the proposal): its create fails, it reads the copy and applies the event over it.
        const elsewhere = instance();
        expect(await elsewhere.copies.apply(event)).toEqual({ applied: true });
        expect(sent).toHaveLength(1);
        const copy = (await elsewhere.repo.read(id, id))!.item;
        expect(copy).toMatchObject({ proposal: { proposalId: id, status: 'AwaitingSignatures' }, notified: ['proposal.created'] });
    });
});
