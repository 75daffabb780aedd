import { z } from 'zod';
import { ethAddress, parseInput } from '../validation';

/**
 * The signing saga's contract with those who start it and send it events (the proposal routes
 * and the chain event pump): its name, instance id, input and the one external event it waits
 * for. Kept apart from the orchestration file, which registers functions when imported.
 */
export const PROPOSAL_SAGA = 'proposalSigning';
export const proposalInstanceId = (proposalId: string) => `proposal-${proposalId}`;

export interface ProposalSigningInput {
    proposalId: string;
    expiresAt: string;
    /** When the traders of parties that have not signed are reminded (skipped when not before the deadline). */
    remindAt: string;
    /**
     * The saga's steps. 2 (every saga started now): the anchoring step publishes `proposal.created`
     * itself, and the last signature is recorded and concluded in one step. Absent: the steps of a saga
     * started before (a publish step after the anchor, a conclude step after the last signature),
     * which it keeps on replay to the end.
     */
    steps?: typeof SAGA_STEPS;
}

/** The steps of the sagas started now (see `ProposalSigningInput.steps`). */
export const SAGA_STEPS = 2;

/** The one external event the saga waits for: a party's signature (from the chain event pump) or a rejection. */
export const PROPOSAL_EVENT = 'ProposalEvent';

export const partySigned = z
    .object({ kind: z.literal('signed'), account: ethAddress, txHash: z.string().regex(/^0x[0-9a-fA-F]{64}$/), blockNumber: z.number().int().nonnegative() })
    .strict();
export const rejection = z.object({ kind: z.literal('rejected'), orgId: z.string().min(1).max(100), by: z.string().min(1).max(200), reason: z.string().min(1).max(2000) }).strict();
export const proposalSagaEvent = z.discriminatedUnion('kind', [partySigned, rejection]);

export type PartySigned = z.infer<typeof partySigned>;
export type Rejection = z.infer<typeof rejection>;
export type ProposalSagaEvent = z.infer<typeof proposalSagaEvent>;

/** An event checked against the saga's schema before it is raised: a producer that sends a malformed one fails there, not in the saga. */
export const checkSagaEvent = (event: unknown): ProposalSagaEvent => parseInput(proposalSagaEvent, event, 'The saga event');
