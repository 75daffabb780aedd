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
});
