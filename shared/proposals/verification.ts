import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { Assets } from '../assets/assets';
import { Conflict, Invalid, NotFound, TooLarge } from '../errors';
import type { EnergyExchange } from '../chain/energyExchange';
import { newProposal, type Proposal, type Proposals } from './proposals';
import { termsStructHash } from './terms';

/** `{ "assetId" }`: verify a document already uploaded instead of sending it. */
export const verifyByAsset = z.object({ assetId: z.string().uuid() }).strict();

/** `{ "terms" }`: verify terms (as `POST /proposals` takes them) against the hash the ledger holds for the proposal (contract version 2). */
export const verifyTerms = z.object({ terms: newProposal.shape.terms }).strict();

/** The JSON bodies `verify` takes. */
export const verifyJson = z.union([verifyByAsset, verifyTerms]);

/** What `POST /proposals/{id}/verify` received: the raw body, its content type, and `?assetId=`. */
export interface VerifyRequest {
    body: Buffer;
    contentType: string | null;
    assetId?: string;
}

/** The answer: whether the document's hash is the one the ledger holds for the proposal. */
export interface Verification {
    match: boolean;
    algorithm: string;
    onChainHash: string;
    computedHash: string;
    assetId: string;
    txHash: string;
    blockNumber: number;
}

/** The answer for terms: whether their EIP-712 hash, with the proposal's parties, documents and deadline, is the one the ledger holds. */
export interface TermsVerification {
    match: boolean;
    termsHash: string;
    onChainTermsHash: string;
    txHash: string;
    blockNumber: number;
}

/**
 * Checks a document, or the terms, against the ledger: the document (the raw body, or `{ assetId }` of one
 * already uploaded) is hashed again and compared with the hashes the contract holds for the
 * proposal's documents (`?assetId=` picks one; otherwise any may match).
 */
export class ProposalVerification {
    constructor(private readonly deps: { proposals: Proposals; assets: Assets; maxBytes: number }) {}

    async verify(proposalId: string, caller: { orgId?: string; isOperator: boolean }, req: VerifyRequest): Promise<Verification | TermsVerification> {
        const p = await this.deps.proposals.getFor(proposalId, caller);
        if (!p.anchor || !p.contract) throw new Conflict('The proposal is not anchored yet', 'wrong_state');
        if (req.body.length > this.deps.maxBytes) throw new TooLarge(`Documents are limited to ${this.deps.maxBytes} bytes`);
        // A JSON body is read once: `{ terms }`, `{ assetId }`, or a JSON document to hash as sent.
        const json = isJson(req) && !req.assetId ? safeJson(req.body) : undefined;
        const terms = json === undefined ? undefined : verifyTerms.safeParse(json);
        if (terms?.success) return this.#terms(p, terms.data.terms);
        const { content, wanted } = await this.#document(req, json, caller);
        if (content.length === 0) throw new Invalid('Send the document as the body, or { "assetId" }');
        const indexes = p.assets.map((a, i) => ({ a, i })).filter(({ a }) => !wanted || a.assetId === wanted);
        if (indexes.length === 0) throw new NotFound('That asset is not part of this proposal');
        const computed = createHash('sha256').update(content).digest('hex');
        const exchange = await this.deps.proposals.exchangeOf(p);
        const onChain = await this.#anchored(p, exchange, indexes.map(({ i }) => i));
        const hit = onChain.find((x) => x.hash === computed);
        const shown = hit ?? onChain[0]!;
        return { match: Boolean(hit), algorithm: shown.algorithm, onChainHash: shown.hash, computedHash: computed, assetId: p.assets[shown.index]!.assetId, txHash: p.anchor.txHash, blockNumber: p.anchor.blockNumber };
    }

    /**
     * The document hashes the ledger vouches for: on v1 each one as anchored (`getAsset`); on v2 the
     * record's, as far as the terms' hash on the ledger is the hash of the record's terms (which
     * carry the documents' hashes). Terms that differ vouch for none.
     */
    async #anchored(p: Proposal, exchange: EnergyExchange, indexes: number[]): Promise<{ hash: string; algorithm: string; index: number }[]> {
        if (!exchange.bindsTerms) return Promise.all(indexes.map(async (i) => ({ ...(await exchange.asset(p.chainId, i)), index: i })));
        const ours = termsStructHash(this.deps.proposals.typedDataOn(p, exchange));
        const held = (await exchange.termsHash(p.chainId)) === ours;
        return indexes.map((i) => ({ hash: held ? p.assets[i]!.sha256 : '', algorithm: p.assets[i]!.algorithm, index: i }));
    }

    /** Terms checked against the ledger: only a contract that binds terms (v2) holds their hash. */
    async #terms(p: Proposal, terms: Proposal['terms']): Promise<TermsVerification> {
        const exchange = await this.deps.proposals.exchangeOf(p);
        if (!exchange.bindsTerms) throw new Conflict(`Proposal ${p.id} is on contract version ${p.contract!.version}, which holds no terms on the ledger (version 2 does): verify its documents instead`, 'wrong_state');
        const termsHash = termsStructHash(this.deps.proposals.typedDataOn({ ...p, terms }, exchange));
        const onChainTermsHash = await exchange.termsHash(p.chainId);
        return { match: termsHash === onChainTermsHash, termsHash, onChainTermsHash, txHash: p.anchor!.txHash, blockNumber: p.anchor!.blockNumber };
    }

    /** The document to hash: the body as sent, or the uploaded asset a JSON `{ assetId }` names. */
    async #document(req: VerifyRequest, json: unknown, caller: { orgId?: string; isOperator: boolean }): Promise<{ content: Buffer; wanted?: string }> {
        if (json === undefined) return { content: req.body, wanted: req.assetId };
        const parsed = verifyByAsset.safeParse(json);
        if (!parsed.success) return { content: req.body };
        const asset = await this.deps.assets.get(parsed.data.assetId, caller.orgId, { operator: caller.isOperator });
        return { content: await this.deps.assets.content(asset), wanted: parsed.data.assetId };
    }
}

const isJson = (req: VerifyRequest) => /^application\/json\b/i.test(req.contentType ?? '');

function safeJson(raw: Buffer): unknown {
    try {
        return JSON.parse(raw.toString('utf8'));
    } catch {
        return undefined;
    }
}
