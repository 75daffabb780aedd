import { getAddress, type InterfaceAbi } from 'ethers';
import { z } from 'zod';
import type { FundedSubmission, MemberAccounts } from '../accounts/memberAccounts';
import { keptUntilFailed } from '../boundedMap';
import type { CallBatcher } from '../chain/batcher';
import { EnergyExchange, type ContractRef, type LedgerReader, type TermsSignature } from '../chain/energyExchange';
import type { ChainCall, ChainSender, TransactionPipeline } from '../chain/pipeline';
import type { AccountKeyRef, VaultAccountSigner } from '../chain/signers';
import { Conflict, Forbidden, NotFound, Upstream } from '../errors';
import { ethAddress } from '../validation';
import type { MemberProposalCopies } from './memberCopies';
import { proposalTypedData, termsDigest, type TermsSource } from './terms';
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

/** The terms as this member's own copy of the proposal holds them (the core's events), checked before they are signed. */
const copiedTerms = z.object({
    chainProposalId: z.string().regex(/^0x[0-9a-fA-F]{64}$/),
    parties: z.array(z.object({ account: ethAddress })).min(2),
    terms: z.object({
        product: z.string(),
        direction: z.enum(['buy', 'sell']),
        quantityMWh: z.number(),
        priceGbpPerMWh: z.number(),
        deliveryStart: z.string(),
        deliveryEnd: z.string(),
    }),
    assets: z.array(z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/), algorithm: z.string() })).min(1),
    expiresAt: z.string(),
});

/** A contract version as the core describes it (`GET /api/contracts/{version}`): where it is and its ABI. */
const coreContractView = z.object({ version: z.number().int().positive(), address: ethAddress, abi: z.array(z.record(z.string(), z.unknown())).min(1) });

/** How long a signature waits for this deployment's copy of the proposal by default (ms). */
export const COPY_WAIT_MS = 2_000;

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
 * deployment's vault. The proposal is this member's own copy (the core's events), its status
 * checked on the ledger; only while no copy has arrived is it read from the core. Checked: a
 * proposal the organisation is not party to → 404, an account that is not its party account or not
 * this deployment's → 403, a proposal not AwaitingSignatures (in the copy or on the ledger) → 409 `wrong_state`. On a contract
 * that binds terms (v2) it signs only what it verified: the digest the ledger holds must be the
 * digest of the terms in this member's own copy (409 `terms_mismatch` with both digests
 * otherwise, nothing sent); the party's key signs that digest and the account submits the
 * signature. One operation per proposal and account, so a retried request is the same transaction.
 */
export class MemberSigning {
    /** The contract at each version, built once (its ABI fetched from the core and parsed once per version). */
    readonly #exchanges = new Map<number, Promise<EnergyExchange>>();

    constructor(
        private readonly deps: {
            orgId: string;
            core: CoreReader;
            accounts: Pick<MemberAccounts, 'keyOf' | 'submitFunded'>;
            signerOf: (key: AccountKeyRef) => VaultAccountSigner;
            pipeline: Pick<TransactionPipeline, 'submit'>;
            /** This account's signatures on this v2 contract share transactions: the batcher in front of the pipeline. */
            signatures: (exchange: EnergyExchange, from: ChainSender) => Pick<CallBatcher<TermsSignature>, 'submit'>;
            ledger: LedgerReader;
            copies: Pick<MemberProposalCopies, 'arrival'>;
            /** How long a signature asked for before this deployment's copy of the proposal arrived waits for it (ms). */
            copyWaitMs?: number;
            /** The ledger's chain id (EIP-155), part of the terms' signing domain. */
            chainId: number;
        },
    ) {}

    async sign(proposalId: string, account: string, log?: (message: string) => void): Promise<SignatureSubmitted> {
        if (!/^[0-9a-f-]{36}$/i.test(proposalId)) throw new NotFound('No such proposal');
        // The member's own copy carries all the core would answer; the ledger, not the copy, says whether it is still open.
        // Asked for before the copy arrived (the client learnt of the proposal from the core), it waits a moment for it.
        const copy = await this.deps.copies.arrival(proposalId, this.deps.copyWaitMs ?? COPY_WAIT_MS);
        const copied = copy && coreProposalView.safeParse(copy);
        const p = copied?.success ? copied.data : await this.#proposal(proposalId);
        const party = p.parties.find((x) => x.orgId === this.deps.orgId);
        if (!party) throw new NotFound('No such proposal');
        if (party.account.toLowerCase() !== account.toLowerCase()) throw new Forbidden(`${account} is not your organisation's account on this proposal`);
        const key = await this.deps.accounts.keyOf(account);
        if (!key) throw new Forbidden(`${account} is not an account of this deployment`);
        if (!p.contract || p.status === 'Anchoring') throw new Conflict('The proposal is not on the ledger yet (Anchoring): sign once it is AwaitingSignatures', 'wrong_state');
        if (p.status !== 'AwaitingSignatures') throw new Conflict(`The proposal is ${p.status} and takes no more signatures (on the ledger: ProposalNotOpen)`, 'wrong_state');
        const signer = this.deps.signerOf(key);
        const from = { address: key.address, signer };
        const exchange = await this.#exchange(p.contract);
        if (copied?.success) {
            const onLedger = await exchange.statusOf(p.chainProposalId);
            if (onLedger !== 'Open') throw new Conflict(`The proposal is ${onLedger === 'None' ? 'not' : onLedger} on the ledger and takes no more signatures (ProposalNotOpen)`, 'wrong_state');
        }
        const operationId = `proposal:${p.proposalId}:sign:${key.address.toLowerCase()}`;
        let submitted;
        if (exchange.bindsTerms) {
            // v2: the signature joins this account's others in one submitSignatures (sent at once when none is being sent).
            const signature = await this.#termsSigned(p, copy, exchange, signer);
            const batcher = this.deps.signatures(exchange, from);
            const viaBatcher = { submit: (call: ChainCall) => batcher.submit(operationId, signature, { requireFunds: call.requireFunds }) };
            submitted = await this.deps.accounts.submitFunded(viaBatcher, { operationId, from, ...exchange.submitSignatures([signature]), label: `sign ${p.proposalId}` }, log);
        } else {
            submitted = await this.deps.accounts.submitFunded(this.deps.pipeline, { operationId, from, ...exchange.sign(p.chainProposalId), label: `sign ${p.proposalId}` }, log);
        }
        return { proposalId: p.proposalId, account: key.address, ...submitted };
    }

    /** The party's signature of the terms, once the digest on the ledger is the digest of this member's own copy of them. */
    async #termsSigned(p: CoreProposalView, held: unknown, exchange: EnergyExchange, signer: VaultAccountSigner): Promise<TermsSignature> {
        const onLedger = await exchange.signingDigest(p.chainProposalId);
        const copy = copiedTerms.safeParse(held);
        if (!copy.success) throw new Conflict('This deployment has no copy of the proposal’s terms yet (its proposal.created event has not arrived): sign once it has', 'wrong_state');
        const { chainProposalId, ...rest } = copy.data;
        const ours = termsDigest(proposalTypedData({ chainId: chainProposalId, ...rest } as TermsSource, exchange.signingDomain(this.deps.chainId)));
        if (ours !== onLedger) throw new Conflict(`The terms on the ledger are not the terms this organisation holds: ledger digest ${onLedger}, this deployment's copy ${ours}; nothing was signed`, 'terms_mismatch');
        const signature = (await signer.signDigest(onLedger)).serialized;
        return { chainProposalId: p.chainProposalId, party: signer.ref.address, signature };
    }

    /** The contract at the proposal's pinned version, with the ABI the core recorded for it (fetched once per version). */
    async #exchange(ref: ContractRef): Promise<EnergyExchange> {
        const known = await keptUntilFailed(this.#exchanges, ref.version, () => this.#contractAbi(ref).then((abi) => new EnergyExchange(ref, abi, this.deps.ledger)));
        if (getAddress(known.ref.address) !== getAddress(ref.address)) throw new Upstream(`The core places contract version ${ref.version} at ${known.ref.address}, the proposal at ${ref.address}`);
        return known;
    }

    async #contractAbi(ref: ContractRef): Promise<InterfaceAbi> {
        const res = await this.deps.core.request('GET', `contracts/${ref.version}`);
        const view = coreContractView.safeParse(res.body);
        if (res.status !== 200 || !view.success) throw new Upstream(`The core answered ${res.status} for contract version ${ref.version}${view.success ? '' : ', not a contract version'}`);
        if (getAddress(view.data.address) !== getAddress(ref.address)) throw new Upstream(`The core places contract version ${ref.version} at ${view.data.address}, the proposal at ${ref.address}`);
        return view.data.abi as InterfaceAbi;
    }

    /** The proposal as the core has it; an answer that is not a proposal view is the core's fault (502), not ours. */
    async #proposal(proposalId: string): Promise<CoreProposalView> {
        const res = await this.deps.core.request('GET', `proposals/${encodeURIComponent(proposalId)}`);
        if (res.status === 404) throw new NotFound('No such proposal');
        if (res.status !== 200) throw new Upstream(`The core answered ${res.status} for the proposal`);
        const view = coreProposalView.safeParse(res.body);
        if (!view.success) throw new Upstream(`The core's answer for proposal ${proposalId} is not a proposal: ${view.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
        return view.data;
    }
}
