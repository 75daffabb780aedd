import { z } from 'zod';
import { getServices } from '../shared/composition';
import { Invalid } from '../shared/errors';
import { proposalView } from '../shared/proposals/proposalEvents';
import { newProposal, PROPOSAL_STATUSES } from '../shared/proposals/proposals';
import { verifyJson } from '../shared/proposals/verification';
import { actorOf, httpRoute, idempotencyKeyOf, OPERATOR_ROLE } from './http/route';

const PARTY_ROLES = ['Org.Admin', 'Org.Trader', 'Deployment.Member', OPERATOR_ROLE];

/**
 * POST /api/proposals (core, Org.Trader): validates the proposal against the registered accounts
 * and the proposer's documents, records it and starts the `proposalSigning` saga → 202. With no
 * active contract version → 409 `no_contract` (nothing recorded, no saga).
 */
httpRoute('proposalsCreate', {
    route: 'proposals',
    methods: ['POST'],
    access: { roles: ['Org.Trader'] },
    body: newProposal,
    durable: true,
    summary: 'Propose a deal to its parties (starts the signing saga)',
    handler: async ({ request, body, caller, durable }) => {
        if (!caller!.orgId) throw new Invalid('Your account belongs to no organisation');
        const proposal = await getServices().signingSagas().propose(body, { orgId: caller!.orgId, actor: actorOf(caller!) }, durable!, idempotencyKeyOf(request));
        return { status: 202, headers: { location: `/api/proposals/${proposal.id}` }, jsonBody: { proposalId: proposal.id, status: proposal.status, statusUrl: `/api/proposals/${proposal.id}` } };
    },
});

/** GET /api/proposals (core): the caller's organisation's proposals (the operator: all), newest first, paged. */
httpRoute('proposalsList', {
    route: 'proposals',
    methods: ['GET'],
    access: { roles: PARTY_ROLES },
    query: z.object({ status: z.enum(PROPOSAL_STATUSES).optional(), orgId: z.string().min(1).max(100).optional(), continuationToken: z.string().min(1).max(8000).optional() }).strict(),
    summary: 'Proposals your organisation is party to',
    handler: async ({ query, caller }) => {
        const orgId = caller!.isOperator ? query.orgId : caller!.orgId;
        if (!caller!.isOperator && !orgId) return { jsonBody: { items: [], continuationToken: null } };
        if (!caller!.isOperator && query.orgId && query.orgId !== orgId) return { jsonBody: { items: [], continuationToken: null } };
        const page = await getServices().proposals().list({ orgId, status: query.status }, query.continuationToken);
        return { jsonBody: { items: page.items.map(proposalView), continuationToken: page.continuationToken ?? null } };
    },
});

/**
 * GET /api/proposals/{id} (core): terms, parties with their signatures, the ledger's records, and
 * the terms as EIP-712 typed data with their digest (null until a contract is pinned); parties and
 * the operator only.
 */
httpRoute('proposalsGet', {
    route: 'proposals/{proposalId}',
    methods: ['GET'],
    access: { roles: PARTY_ROLES },
    durable: true,
    summary: 'One proposal, with who has signed',
    handler: async ({ params, caller, durable }) => {
        const services = getServices();
        const p = await services.proposals().getFor(params.proposalId, caller!);
        const terms = await services.proposals().termsOf(p);
        const saga = await services.signingSagas().sagaOf(p.id, durable!);
        return { headers: { 'cache-control': 'no-store' }, jsonBody: { ...proposalView(p), typedData: terms?.typedData ?? null, termsDigest: terms?.digest ?? null, saga } };
    },
});

/** POST /api/proposals/{id}/rejection (core, a party's trader): the saga cancels the proposal on-chain. */
httpRoute('proposalsReject', {
    route: 'proposals/{proposalId}/rejection',
    methods: ['POST'],
    access: { roles: ['Org.Trader'] },
    body: z.object({ reason: z.string().trim().min(1).max(2000) }).strict(),
    durable: true,
    summary: 'Reject a proposal your organisation is party to',
    handler: async ({ params, body, caller, durable }) => {
        const p = await getServices().signingSagas().reject(params.proposalId, { ...caller!, actor: actorOf(caller!) }, body.reason, durable!);
        return { status: 202, headers: { location: `/api/proposals/${p.id}` }, jsonBody: { proposalId: p.id, status: p.status, statusUrl: `/api/proposals/${p.id}` } };
    },
});

/**
 * POST /api/proposals/{id}/verify (core, parties): a document (raw body; `?assetId=` picks the
 * anchored asset, else any matches) or `{ "assetId" }` hashed again and compared with the hash
 * the ledger holds for the proposal.
 */
httpRoute('proposalsVerify', {
    route: 'proposals/{proposalId}/verify',
    methods: ['POST'],
    access: { roles: PARTY_ROLES },
    query: z.object({ assetId: z.string().uuid().optional() }).strict(),
    rawBody: { contentTypes: ['application/json', '*/*'], description: 'The document as the raw body, `{ assetId }` of a document already uploaded, or `{ terms }` to check the terms themselves (contract version 2)', schema: verifyJson },
    summary: 'Check a document, or the terms, against what is anchored on-chain',
    handler: async ({ request, params, query, caller }) => {
        const body = Buffer.from(await request.arrayBuffer());
        const verification = await getServices().verification().verify(params.proposalId, caller!, { body, contentType: request.headers.get('content-type'), assetId: query.assetId });
        return { jsonBody: verification };
    },
});
