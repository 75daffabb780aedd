import type { AuditRecord, AuditTrail } from '../audit/auditTrail';
import type { EnergyExchanges } from '../chain/energyExchange';
import { Conflict } from '../errors';
import type { NewProposal, Proposal, Proposals } from './proposals';
import { checkSagaEvent, PROPOSAL_EVENT, PROPOSAL_SAGA, proposalInstanceId, SAGA_STEPS, type ProposalSigningInput } from './sagaContract';

/** The part of a Durable client the proposal routes use (the Functions binding's client is one). */
export interface SagaClient {
    getStatus(instanceId: string): Promise<unknown>;
    startNew(name: string, options: { instanceId: string; input: unknown }): Promise<string>;
    raiseEvent(instanceId: string, eventName: string, eventData: unknown): Promise<void>;
}

type Actor = AuditRecord['actor'];

/**
 * Starting and steering a proposal's signing saga: a proposal is recorded and its saga started
 * exactly once however often the request is retried; a rejection is checked and handed to the
 * saga, which carries it out on the ledger.
 */
export class SigningSagas {
    constructor(private readonly deps: { proposals: Proposals; exchanges: EnergyExchanges; audit: AuditTrail; remindBeforeSeconds: number }) {}

    /**
     * Records the proposal and starts its saga. With no active contract version → 409
     * `no_contract`, nothing recorded: refused now rather than by a saga that would retry the
     * anchoring and end Failed. A retry (same idempotency key) starts the saga if the first
     * attempt recorded the proposal but did not get that far.
     */
    async propose(input: NewProposal, caller: { orgId: string; actor: Actor }, durable: SagaClient, idempotencyKey?: string): Promise<Proposal> {
        const latest = await this.deps.exchanges.latest();
        if (!latest) {
            throw new Conflict('No contract version is active, so the proposal could not be anchored: the operator deploys one first (POST /api/contracts {"artifact":"EnergyExchange"})', 'no_contract');
        }
        const { proposal, created } = await this.deps.proposals.create(input, { orgId: caller.orgId, by: caller.actor.oid }, idempotencyKey, undefined, latest.ref);
        const instanceId = proposalInstanceId(proposal.id);
        if (!created && (await durable.getStatus(instanceId).catch(() => undefined))) return proposal;
        const remindAt = new Date(Date.parse(proposal.expiresAt) - this.deps.remindBeforeSeconds * 1000).toISOString();
        const sagaInput: ProposalSigningInput = { proposalId: proposal.id, expiresAt: proposal.expiresAt, remindAt, steps: SAGA_STEPS };
        // The saga's start and the audit record, at once: neither needs the other.
        await Promise.all([
            durable.startNew(PROPOSAL_SAGA, { instanceId, input: sagaInput }).catch((err: unknown) => {
                // Started by a concurrent retry of the same request: one saga either way.
                if (!/already exists|409/.test(String((err as Error).message))) throw err;
            }),
            created ? this.deps.audit.record({ orgId: caller.orgId, actor: caller.actor, action: 'proposal.created', target: proposal.id, details: { parties: proposal.orgIds } }) : undefined,
        ]);
        return proposal;
    }

    /** A party's trader rejects an open proposal its organisation has not signed: the saga cancels it on-chain. */
    async reject(proposalId: string, caller: { orgId?: string; isOperator: boolean; actor: Actor }, reason: string, durable: SagaClient): Promise<Proposal> {
        const p = await this.deps.proposals.getFor(proposalId, caller);
        this.deps.proposals.assertMayReject(p, caller.orgId);
        const event = checkSagaEvent({ kind: 'rejected', orgId: caller.orgId!, by: caller.actor.oid, reason });
        try {
            await durable.raiseEvent(proposalInstanceId(p.id), PROPOSAL_EVENT, event);
        } catch (err) {
            throw new Conflict('The proposal is no longer open', 'wrong_state', { cause: err });
        }
        return p;
    }

    /** The saga's runtime status as the proposal's view shows it; null when it has none. */
    async sagaOf(proposalId: string, durable: SagaClient): Promise<{ runtimeStatus: unknown; customStatus: unknown } | null> {
        const saga = (await durable.getStatus(proposalInstanceId(proposalId)).catch(() => undefined)) as { runtimeStatus?: unknown; customStatus?: unknown } | undefined;
        return saga ? { runtimeStatus: saga.runtimeStatus, customStatus: saga.customStatus ?? null } : null;
    }
}
