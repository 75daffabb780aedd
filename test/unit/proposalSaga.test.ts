import { PROPOSAL_EVENT, proposalSigningSaga, type ProposalSagaEvent } from '../../orchestrations/proposalSigning';
import { checkSagaEvent, SAGA_STEPS } from '../../shared/proposals/sagaContract';
import { OrchestrationReplay } from '../harness/orchestrationReplay';

const PROPOSAL = '8d5f1f3a-3c1b-4a57-9f0e-2b0c6d1e7a10';
const A = '0x00000000000000000000000000000000000000aa';
const B = '0x00000000000000000000000000000000000000bb';
const txHash = (block: number) => `0x${String(block).padStart(64, '0')}`;
const signed = (account: string, block: number): ProposalSagaEvent => ({ kind: 'signed', account, txHash: txHash(block), blockNumber: block });
const REMIND_AT = '2027-01-01T01:00:00.000Z';
const EXPIRES_AT = '2027-01-01T02:00:00.000Z';

/**
 * The signing saga replayed against made-up histories, with no host: what it schedules for each
 * order of signatures, duplicates, a rejection, the reminder and the deadline, and how the
 * ledger's answer to its conclusion becomes its result.
 */
describe.each([
    ['started now (steps: 2)', SAGA_STEPS],
    ['started before steps: 2, replayed to its end', undefined],
] as const)('the proposal signing saga, %s, replayed', (_, steps) => {
    const input = (opts: { remindAt?: string; expiresAt?: string } = {}) => ({ proposalId: PROPOSAL, expiresAt: opts.expiresAt ?? EXPIRES_AT, remindAt: opts.remindAt ?? REMIND_AT, ...(steps ? { steps } : {}) });

    /** A saga started and anchored for parties A and B, waiting for signatures. */
    async function waiting(opts: { remindAt?: string; expiresAt?: string } = {}): Promise<OrchestrationReplay> {
        const saga = new OrchestrationReplay(proposalSigningSaga, `proposal-${PROPOSAL}`, input(opts));
        await saga.start();
        expect(saga.only('proposalAnchor').input).toEqual({ proposalId: PROPOSAL });
        await saga.complete(saga.activities[0]!, { status: 'AwaitingSignatures', accounts: [A, B] });
        if (!steps) {
            // Before steps 2, publishing proposal.created was a step of its own.
            expect(saga.only('proposalPublish').input).toEqual({ proposalId: PROPOSAL, type: 'proposal.created' });
            await saga.complete(saga.activities[0]!, { status: 'AwaitingSignatures' });
        }
        expect(saga.activities).toEqual([]);
        expect(saga.outcome.customStatus).toEqual({ signed: [], pending: [A, B] });
        // Waiting for the first signature, with the reminder's timer set.
        expect(saga.timers.map((t) => t.fireAt)).toEqual([REMIND_AT]);
        return saga;
    }

    /**
     * The last signature raised: recorded and concluded in one step (steps 2), or recorded, then
     * concluded in a step of its own; the step's answer is what the ledger holds.
     */
    async function lastSigned(saga: OrchestrationReplay, account: string, block: number, ledger = 'Completed'): Promise<void> {
        if (steps) {
            expect(saga.only('proposalSignedLast').input).toEqual({ proposalId: PROPOSAL, account, txHash: txHash(block), blockNumber: block });
            await saga.complete(saga.activities[0]!, ledger);
        } else {
            expect(saga.only('proposalSigned').input).toEqual({ proposalId: PROPOSAL, account, txHash: txHash(block), blockNumber: block });
            await saga.complete(saga.activities[0]!, { account });
            expect(saga.only('proposalConclude').input).toEqual({ proposalId: PROPOSAL, outcome: 'Completed' });
            await saga.complete(saga.activities[0]!, ledger);
        }
        expect(saga.outcome).toMatchObject({ isDone: true, output: ledger, customStatus: { pending: [] } });
    }

    it('records signatures in the order they arrive (B before A) and completes after the last', async () => {
        const saga = await waiting();
        await saga.raise(PROPOSAL_EVENT, signed(B, 10));
        expect(saga.only('proposalSigned').input).toEqual({ proposalId: PROPOSAL, account: B, txHash: txHash(10), blockNumber: 10 });
        await saga.complete(saga.activities[0]!, { account: B });
        expect(saga.outcome.customStatus).toEqual({ signed: [B], pending: [A] });
        await saga.raise(PROPOSAL_EVENT, signed(A, 12));
        await lastSigned(saga, A, 12);
        expect(saga.history.filter((e) => e.EventType === 4).map((e) => e.Name)).toEqual(
            steps ? ['proposalAnchor', 'proposalSigned', 'proposalSignedLast'] : ['proposalAnchor', 'proposalPublish', 'proposalSigned', 'proposalSigned', 'proposalConclude'],
        );
    });

    it('drops a signature delivered twice and one from an account that is no party', async () => {
        const saga = await waiting();
        await saga.raise(PROPOSAL_EVENT, signed(A, 10));
        await saga.complete(saga.only('proposalSigned'), { account: A });
        // The pump delivers at least once: the same signature again, and a stranger's.
        await saga.raise(PROPOSAL_EVENT, signed(A, 10));
        expect(saga.activities).toEqual([]);
        await saga.raise(PROPOSAL_EVENT, signed('0x00000000000000000000000000000000000000cc', 11));
        expect(saga.activities).toEqual([]);
        expect(saga.outcome).toMatchObject({ isDone: false, customStatus: { signed: [A], pending: [B] } });
        // Addresses compare without case.
        const upper = B.toUpperCase().replace('0X', '0x');
        await saga.raise(PROPOSAL_EVENT, signed(upper, 12));
        await lastSigned(saga, upper, 12);
        expect(saga.history.filter((e) => e.EventType === 4 && String(e.Name).startsWith('proposalSigned'))).toHaveLength(2);
    });

    it('concludes a rejection through the ledger, and ends with what the ledger says (Rejected, or Completed when the last signature won the race)', async () => {
        for (const ledger of ['Rejected', 'Completed']) {
            const saga = await waiting();
            await saga.raise(PROPOSAL_EVENT, { kind: 'rejected', orgId: 'south', by: 'trader-b', reason: 'price moved' } satisfies ProposalSagaEvent);
            expect(saga.only('proposalConclude').input).toEqual({ proposalId: PROPOSAL, outcome: 'Rejected', reason: 'price moved', rejectedBy: { orgId: 'south', by: 'trader-b' } });
            await saga.complete(saga.activities[0]!, ledger);
            expect(saga.outcome).toMatchObject({ isDone: true, output: ledger });
        }
    });

    it('reminds once at remindAt, then at the deadline concludes Expired, or Completed when the ledger completed it first', async () => {
        for (const ledger of ['Expired', 'Completed']) {
            const saga = await waiting();
            await saga.fire(REMIND_AT);
            expect(saga.only('proposalRemind').input).toEqual({ proposalId: PROPOSAL });
            await saga.complete(saga.activities[0]!, { reminded: 2 });
            // Reminded: now only the deadline.
            expect(saga.timers.at(-1)!.fireAt).toBe(EXPIRES_AT);
            await saga.fire(EXPIRES_AT);
            expect(saga.only('proposalConclude').input).toEqual({ proposalId: PROPOSAL, outcome: 'Expired' });
            await saga.complete(saga.activities[0]!, ledger);
            expect(saga.outcome).toMatchObject({ isDone: true, output: ledger });
            expect(saga.history.filter((e) => e.EventType === 4 && e.Name === 'proposalRemind')).toHaveLength(1);
        }
    });

    it('a signature arriving after the reminder still counts, and the deadline then no longer fires a conclusion', async () => {
        const saga = await waiting();
        await saga.fire(REMIND_AT);
        await saga.complete(saga.only('proposalRemind'), { reminded: 1 });
        await saga.raise(PROPOSAL_EVENT, signed(A, 20));
        await saga.complete(saga.only('proposalSigned'), { account: A });
        await saga.raise(PROPOSAL_EVENT, signed(B, 21));
        await lastSigned(saga, B, 21);
        expect(saga.history.filter((e) => e.EventType === 4 && (e.Name === 'proposalConclude' || e.Name === 'proposalSignedLast'))).toHaveLength(1);
    });

    it('ends Failed when the ledger refuses the anchor, publishing nothing', async () => {
        const saga = new OrchestrationReplay(proposalSigningSaga, `proposal-${PROPOSAL}`, input());
        await saga.start();
        await saga.complete(saga.only('proposalAnchor'), { status: 'Failed', accounts: [] });
        expect(saga.activities).toEqual([]);
        expect(saga.outcome).toMatchObject({ isDone: true, output: 'Failed' });
    });

    it('takes only events that fit its schema from its producers (the pump and the rejection route)', () => {
        expect(checkSagaEvent(signed(A, 1))).toEqual(signed(A, 1));
        expect(checkSagaEvent({ kind: 'rejected', orgId: 'south', by: 'trader-b', reason: 'price' })).toMatchObject({ kind: 'rejected' });
        for (const bad of [
            { kind: 'signed', account: A, txHash: '0x12', blockNumber: 1 },
            { kind: 'signed', account: 'not-an-address', txHash: txHash(1), blockNumber: 1 },
            { kind: 'signed', account: A, txHash: txHash(1), blockNumber: -1 },
            { kind: 'rejected', orgId: 'south', by: 'b', reason: '' },
            { kind: 'cancelled', orgId: 'south' },
            { kind: 'signed', account: A, txHash: txHash(1), blockNumber: 1, extra: true },
        ]) {
            expect(() => checkSagaEvent(bad)).toThrow('The saga event is not valid');
        }
    });
});
