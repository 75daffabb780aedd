import type { AbstractSigner } from 'ethers';
import { z } from 'zod';
import type { FundedSubmission, MemberAccounts } from '../accounts/memberAccounts';
import type { ContractRef, EnergyExchange } from '../chain/energyExchange';
import type { TransactionPipeline } from '../chain/pipeline';
import type { AccountKeyRef } from '../chain/signers';
import { Conflict, Forbidden, NotFound, Upstream } from '../errors';
import { ethAddress } from '../validation';
import { PROPOSAL_STATUSES } from './vocabulary';

/** What a member reads of a proposal from the core (`GET /api/proposals/{id}`), checked before it is used. */
export const coreProposalView = z.object({
    proposalId: z.string().uuid(),
    chainProposalId: z.string().regex(/^0x[0-9a-fA-F]{64}$/),
    status: z.enum(PROPOSAL_STATUSES),
    parties: z.array(z.object({ orgId: z.string(), account: ethAddress, signed: z.boolean() })).min(1),
    contract: z.object({ version: z.number().int().positive(), address: ethAddress }).nullable(),
});
export type CoreProposalView = z.infer<typeof coreProposalView>;

/** The part of a deployment client the member needs to read from its core. */
export interface CoreReader {
    request(method: string, path: string): Promise<{ status: number; body: unknown }>;
}

export interface SignatureSubmitted extends FundedSubmission {
    proposalId: string;
    account: string;
}

/**
 * A member signs a proposal on-chain with its organisation's party account, its key in this
 * deployment's vault. The proposal is read from the core and checked: a proposal the
 * organisation is not party to → 404, an account that is not its party account or not
 * this deployment's → 403, a proposal not AwaitingSignatures → 409 `wrong_state`. One operation
 * per proposal and account, so a retried request is the same transaction.
 */
export class MemberSigning {
    constructor(
        private readonly deps: {
            orgId: string;
            core: CoreReader;
            accounts: Pick<MemberAccounts, 'keyOf' | 'submitFunded'>;
            signerOf: (key: AccountKeyRef) => AbstractSigner;
            pipeline: Pick<TransactionPipeline, 'submit'>;
            exchangeAt: (ref: ContractRef) => EnergyExchange;
        },
    ) {}

    async sign(proposalId: string, account: string, log?: (message: string) => void): Promise<SignatureSubmitted> {
        const p = await this.#proposal(proposalId);
        const party = p.parties.find((x) => x.orgId === this.deps.orgId);
        if (!party) throw new NotFound('No such proposal');
        if (party.account.toLowerCase() !== account.toLowerCase()) throw new Forbidden(`${account} is not your organisation's account on this proposal`);
        const key = await this.deps.accounts.keyOf(account);
        if (!key) throw new Forbidden(`${account} is not an account of this deployment`);
        if (!p.contract || p.status === 'Anchoring') throw new Conflict('The proposal is not on the ledger yet (Anchoring): sign once it is AwaitingSignatures', 'wrong_state');
        if (p.status !== 'AwaitingSignatures') throw new Conflict(`The proposal is ${p.status} and takes no more signatures (on the ledger: ProposalNotOpen)`, 'wrong_state');
        const submitted = await this.deps.accounts.submitFunded(
            this.deps.pipeline,
            {
                operationId: `proposal:${p.proposalId}:sign:${key.address.toLowerCase()}`,
                from: { address: key.address, signer: this.deps.signerOf(key) },
                ...this.deps.exchangeAt(p.contract).sign(p.chainProposalId),
                label: `sign ${p.proposalId}`,
            },
            log,
        );
        return { proposalId: p.proposalId, account: key.address, ...submitted };
    }

    /** The proposal as the core has it; an answer that is not a proposal view is the core's fault (502), not ours. */
    async #proposal(proposalId: string): Promise<CoreProposalView> {
        if (!/^[0-9a-f-]{36}$/i.test(proposalId)) throw new NotFound('No such proposal');
        const res = await this.deps.core.request('GET', `proposals/${encodeURIComponent(proposalId)}`);
        if (res.status === 404) throw new NotFound('No such proposal');
        if (res.status !== 200) throw new Upstream(`The core answered ${res.status} for the proposal`);
        const view = coreProposalView.safeParse(res.body);
        if (!view.success) throw new Upstream(`The core's answer for proposal ${proposalId} is not a proposal: ${view.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
        return view.data;
    }
}
