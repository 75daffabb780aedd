import type { ChainSignature } from '../chain/energyExchange';
import type { EventEnvelope } from '../events/events';
import type { Proposal, ProposalEventLog } from './model';
import { PROPOSAL_LIFECYCLE, type ProposalEventType, type ProposalStatus } from './vocabulary';

export type { ProposalEventType };

/** What the parties see of a proposal (API.md `GET /proposals/{id}`): terms, parties with signatures, the ledger's records. */
export function proposalView(p: Proposal): Record<string, unknown> {
    return {
        proposalId: p.id,
        chainProposalId: p.chainId,
        status: p.status,
        proposerOrg: p.proposerOrg,
        terms: p.terms,
        parties: p.parties.map((x) => ({ orgId: x.orgId, account: x.account, signed: x.signed, signedAt: x.signedAt ?? null, txHash: x.txHash ?? null, blockNumber: x.blockNumber ?? null })),
        assets: p.assets,
        expiresAt: p.expiresAt,
        contract: p.contract ?? null,
        anchor: p.anchor ?? null,
        cancel: p.cancel ?? null,
        reason: p.reason ?? null,
        rejectedBy: p.rejectedBy?.orgId ?? null,
        createdAt: p.createdAt,
        updatedAt: p.updatedAt,
    };
}

/**
 * The event of a proposal's step, to every party. Its id is fixed by the step (and the signer),
 * so a retried activity republishes the same event and consumers drop the repeat.
 */
export function proposalEvent(p: Proposal, type: ProposalEventType, signature?: { account: string; txHash: string; blockNumber: number }): EventEnvelope {
    const record = signature ?? (type === 'proposal.created' ? p.anchor : type === 'proposal.rejected' || type === 'proposal.expired' ? p.cancel : undefined);
    return {
        id: signature ? `${type}:${p.id}:${signature.account.toLowerCase()}` : `${type}:${p.id}`,
        type,
        occurredAt: new Date().toISOString(),
        orgIds: p.orgIds,
        subject: `proposals/${p.id}`,
        data: proposalView(p),
        ...(record && p.contract && record.txHash ? { chain: { txHash: record.txHash, blockNumber: record.blockNumber, contract: p.contract.address, version: p.contract.version } } : {}),
    };
}

/** The proposal with an event about it recorded (numbered, in its outbox), unless that event was recorded before. */
export function withEvent(p: Proposal, type: ProposalEventType, signature?: ChainSignature): Proposal {
    const log: ProposalEventLog = p.events ?? { seq: {}, outbox: [] };
    const { events: _log, ...state } = p;
    const event = proposalEvent(state, type, signature);
    if (log.seq[event.id]) return p;
    const sequence = Object.keys(log.seq).length + 1;
    return { ...p, events: { seq: { ...log.seq, [event.id]: sequence }, outbox: [...log.outbox, { ...event, sequence }] } };
}

/** The event that reports a proposal's ending. */
export function outcomeEvent(status: ProposalStatus): ProposalEventType {
    const type = PROPOSAL_LIFECYCLE[status].announcedBy;
    if (!type) throw new Error(`No event reports a proposal ending ${status}`);
    return type;
}

/** The proposal with these on-chain signatures of its parties recorded, each with its `proposal.signed` (the same proposal when none is new). */
export function withSignatures(p: Proposal, signatures: ChainSignature[]): Proposal {
    let next = p;
    for (const sig of signatures) {
        const i = next.parties.findIndex((x) => x.account.toLowerCase() === sig.account.toLowerCase());
        if (i < 0 || next.parties[i]!.signed) continue;
        const parties = next.parties.map((x, j) => (j === i ? { ...x, signed: true, signedAt: new Date().toISOString(), txHash: sig.txHash, blockNumber: sig.blockNumber } : x));
        next = withEvent({ ...next, parties }, 'proposal.signed', sig);
    }
    return next;
}
