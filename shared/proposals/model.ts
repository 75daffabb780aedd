import { id as keccakText } from 'ethers';
import { z } from 'zod';
import type { EventEnvelope } from '../events/events';
import { ethAddress } from '../validation';
import { AMOUNT_DECIMALS, toUnits } from './terms';
import { isOpen, PROPOSAL_STATUSES, type ProposalStatus } from './vocabulary';

export { PROPOSAL_STATUSES, type ProposalStatus };

/**
 * What a proposal is: the schema of a new one, the record the core keeps, and the outbox of
 * its events (which the record carries, so an event is written with the change it reports).
 */

const address = ethAddress;
const orgId = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'an organisation id');

/** `POST /proposals` (API.md): the one schema for validation, types and the OpenAPI document. */
export const newProposal = z
    .object({
        parties: z.array(z.object({ orgId, account: address }).strict()).min(2).max(8),
        terms: z
            .object({
                product: z.string().trim().min(1).max(100),
                direction: z.enum(['buy', 'sell']),
                quantityMWh: z
                    .number()
                    .positive()
                    .max(1e9)
                    .refine((v) => toUnits(v, AMOUNT_DECIMALS.quantityMWh) !== undefined, 'at most 3 decimals (the ledger holds whole kWh)'),
                priceGbpPerMWh: z
                    .number()
                    .min(-1e6)
                    .max(1e6)
                    .refine((v) => toUnits(v, AMOUNT_DECIMALS.priceGbpPerMWh) !== undefined, 'at most 2 decimals (the ledger holds whole pence)'),
                deliveryStart: z.string().datetime(),
                deliveryEnd: z.string().datetime(),
            })
            .strict()
            .refine((t) => Date.parse(t.deliveryEnd) > Date.parse(t.deliveryStart), { message: 'deliveryEnd must be after deliveryStart', path: ['deliveryEnd'] }),
        assets: z.array(z.string().uuid()).min(1).max(16),
        expiresAt: z.string().datetime(),
    })
    .strict();
export type NewProposal = z.infer<typeof newProposal>;

export interface ProposalParty {
    orgId: string;
    account: string;
    signed: boolean;
    signedAt?: string;
    txHash?: string;
    blockNumber?: number;
}

export interface ChainRecord {
    txHash: string;
    blockNumber: number;
}

/** A proposal (container `proposals`, partition `/id`): terms stay here, off-chain; the ledger has hashes only. */
export interface Proposal {
    id: string;
    kind: 'proposal';
    /** The id on the ledger: keccak256 of the proposal id. */
    chainId: string;
    proposerOrg: string;
    createdBy: string;
    parties: ProposalParty[];
    /** The organisations concerned, for queries. */
    orgIds: string[];
    terms: NewProposal['terms'];
    assets: { assetId: string; sha256: string; algorithm: 'sha256'; location: string }[];
    expiresAt: string;
    status: ProposalStatus;
    /** The contract version it was anchored on, for its whole life. */
    contract?: { version: number; address: string };
    anchor?: ChainRecord;
    cancel?: ChainRecord;
    reason?: string;
    rejectedBy?: { orgId: string; by: string };
    /** The proposal's events: each one's sequence number, and those not yet published (written with the change they report). */
    events?: ProposalEventLog;
    createdAt: string;
    updatedAt: string;
}

/**
 * A proposal's own outbox. An event is added in the same write as the change it reports and
 * numbered then (1, 2, … per proposal, `sequence` in the envelope); publishing drains the outbox
 * in that order, so the feeds and webhooks see a proposal's events in the order they happened,
 * and a step that crashed after its write publishes on its retry what it had recorded.
 */
export interface ProposalEventLog {
    /** Event id → its sequence number, for every event ever recorded (a repeat keeps its number). */
    seq: Record<string, number>;
    outbox: EventEnvelope[];
}

export const isTerminal = (status: ProposalStatus) => !isOpen(status);

export interface ProposalPolicy {
    maxLifetimeSeconds: number;
    /** At least this far in the future (the ledger needs time to anchor it). */
    minLifetimeSeconds: number;
}


/** The ledger id of a proposal. */
export const chainProposalId = (proposalId: string) => keccakText(`flexchange:proposal:${proposalId}`);

/** What is wrong with a new proposal before anything is looked up (each party once, the caller's organisation among them, the deadline within the policy, each asset once). */
export function proposalInputErrors(input: NewProposal, callerOrg: string, now: number, policy: ProposalPolicy): { path: string; message: string }[] {
    const errors: { path: string; message: string }[] = [];
    const orgs = input.parties.map((p) => p.orgId);
    if (new Set(orgs).size !== orgs.length) errors.push({ path: 'parties', message: 'each organisation is a party once' });
    const accounts = input.parties.map((p) => p.account.toLowerCase());
    if (new Set(accounts).size !== accounts.length) errors.push({ path: 'parties', message: 'each account is a party once' });
    if (!orgs.includes(callerOrg)) errors.push({ path: 'parties', message: 'your organisation must be one of the parties' });
    const expires = Date.parse(input.expiresAt);
    if (expires < now + policy.minLifetimeSeconds * 1000) errors.push({ path: 'expiresAt', message: `must be at least ${policy.minLifetimeSeconds} s in the future` });
    if (expires > now + policy.maxLifetimeSeconds * 1000) errors.push({ path: 'expiresAt', message: `must be within ${policy.maxLifetimeSeconds} s from now` });
    if (new Set(input.assets).size !== input.assets.length) errors.push({ path: 'assets', message: 'each asset once' });
    return errors;
}
