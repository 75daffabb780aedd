/**
 * A proposal's vocabulary in one place: its statuses, which of them are still open, how the
 * signing saga can end one, and the event that announces each. Every user reads these; a new
 * outcome added here without its event does not compile.
 */
export const PROPOSAL_STATUSES = ['Anchoring', 'AwaitingSignatures', 'Completed', 'Rejected', 'Expired', 'Cancelled', 'Failed'] as const;
export type ProposalStatus = (typeof PROPOSAL_STATUSES)[number];

export const PROPOSAL_EVENT_TYPES = ['proposal.created', 'proposal.signed', 'proposal.completed', 'proposal.rejected', 'proposal.expired', 'proposal.cancelled'] as const;
export type ProposalEventType = (typeof PROPOSAL_EVENT_TYPES)[number];

/** Each status: whether the proposal still takes signatures or a rejection, and the event that announces reaching it. */
export const PROPOSAL_LIFECYCLE = {
    Anchoring: { open: true, announcedBy: undefined },
    AwaitingSignatures: { open: true, announcedBy: 'proposal.created' },
    Completed: { open: false, announcedBy: 'proposal.completed' },
    Rejected: { open: false, announcedBy: 'proposal.rejected' },
    Expired: { open: false, announcedBy: 'proposal.expired' },
    Cancelled: { open: false, announcedBy: 'proposal.cancelled' },
    Failed: { open: false, announcedBy: undefined },
} as const satisfies Record<ProposalStatus, { open: boolean; announcedBy: ProposalEventType | undefined }>;

/** How the signing saga asks for a proposal to end (the ledger may still end it `Completed`). */
export const SAGA_OUTCOMES = ['Completed', 'Rejected', 'Expired'] as const;
export type SagaOutcome = (typeof SAGA_OUTCOMES)[number];

/** The events that end a proposal's story (members tell their traders about these and `proposal.created`). */
export const ENDING_EVENTS: readonly ProposalEventType[] = PROPOSAL_STATUSES.filter((s) => !PROPOSAL_LIFECYCLE[s].open).flatMap((s) => PROPOSAL_LIFECYCLE[s].announcedBy ?? []);

export const isOpen = (status: ProposalStatus): boolean => PROPOSAL_LIFECYCLE[status].open;
