import { createHash } from 'node:crypto';
import { Interface } from 'ethers';
import { z } from 'zod';
import { getServices } from '../shared/composition';
import { AppError, Conflict, Invalid, NotFound, TooLarge, Upstream } from '../shared/errors';
import { proposalView } from '../shared/proposals/proposalEvents';
import { newProposal, PROPOSAL_STATUSES } from '../shared/proposals/proposals';
import { checkSagaEvent, PROPOSAL_EVENT, PROPOSAL_SAGA, proposalInstanceId, type ProposalSigningInput } from '../shared/proposals/sagaContract';
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
        const services = getServices();
        // Refused now rather than by a saga that would retry the anchoring and end Failed.
        if (!(await services.chain().versions.latestActiveIfAny())) {
            throw new Conflict('No contract version is active, so the proposal could not be anchored: the operator deploys one first (POST /api/contracts {"artifact":"EnergyExchange"})', 'no_contract');
        }
        const { proposal, created } = await services.proposals().create(body, { orgId: caller!.orgId, by: caller!.principal.oid }, idempotencyKeyOf(request));
        const instanceId = proposalInstanceId(proposal.id);
        if (created || !(await durable!.getStatus(instanceId).catch(() => undefined))) {
            const remindBefore = services.settings.FLEXCHANGE_PROPOSAL_REMIND_BEFORE_SECONDS * 1000;
            const input: ProposalSigningInput = { proposalId: proposal.id, expiresAt: proposal.expiresAt, remindAt: new Date(Date.parse(proposal.expiresAt) - remindBefore).toISOString() };
            await durable!.startNew(PROPOSAL_SAGA, { instanceId, input }).catch((err: unknown) => {
                // Started by a concurrent retry of the same request: one saga either way.
                if (!/already exists|409/.test(String((err as Error).message))) throw err;
            });
            if (created) {
                await services.audit.record({ orgId: caller!.orgId, actor: actorOf(caller!), action: 'proposal.created', target: proposal.id, details: { parties: proposal.orgIds } });
            }
        }
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

/** GET /api/proposals/{id} (core): terms, parties with their signatures, the ledger's records; parties and the operator only. */
httpRoute('proposalsGet', {
    route: 'proposals/{proposalId}',
    methods: ['GET'],
    access: { roles: PARTY_ROLES },
    durable: true,
    summary: 'One proposal, with who has signed',
    handler: async ({ params, caller, durable }) => {
        const p = await getServices().proposals().getFor(params.proposalId, caller!);
        const saga = await durable!.getStatus(proposalInstanceId(p.id)).catch(() => undefined);
        return { headers: { 'cache-control': 'no-store' }, jsonBody: { ...proposalView(p), saga: saga ? { runtimeStatus: saga.runtimeStatus, customStatus: saga.customStatus ?? null } : null } };
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
        const proposals = getServices().proposals();
        const p = await proposals.getFor(params.proposalId, caller!);
        proposals.assertMayReject(p, caller!.orgId);
        const event = checkSagaEvent({ kind: 'rejected', orgId: caller!.orgId!, by: caller!.principal.oid, reason: body.reason });
        try {
            await durable!.raiseEvent(proposalInstanceId(p.id), PROPOSAL_EVENT, event);
        } catch (err) {
            throw new Conflict('The proposal is no longer open', 'wrong_state', { cause: err });
        }
        return { status: 202, headers: { location: `/api/proposals/${p.id}` }, jsonBody: { proposalId: p.id, status: p.status, statusUrl: `/api/proposals/${p.id}` } };
    },
});

/**
 * POST /api/proposals/{id}/verify (core, parties): a document (raw body; `?assetId=` picks the
 * anchored asset, else any matches) or `{ "assetId" }` hashed again and compared with the hash
 * the ledger holds for the proposal.
 */
const verifyByAsset = z.object({ assetId: z.string().uuid() }).strict();

httpRoute('proposalsVerify', {
    route: 'proposals/{proposalId}/verify',
    methods: ['POST'],
    access: { roles: PARTY_ROLES },
    query: z.object({ assetId: z.string().uuid().optional() }).strict(),
    rawBody: { contentTypes: ['application/json', '*/*'], description: 'The document as the raw body, or `{ assetId }` of a document already uploaded', schema: verifyByAsset },
    summary: 'Check a document against the hash anchored on-chain',
    handler: async ({ request, params, query, caller }) => {
        const services = getServices();
        const p = await services.proposals().getFor(params.proposalId, caller!);
        if (!p.anchor || !p.contract) throw new Conflict('The proposal is not anchored yet', 'wrong_state');
        const max = services.settings.FLEXCHANGE_ASSET_MAX_BYTES;
        const raw = Buffer.from(await request.arrayBuffer());
        if (raw.length > max) throw new TooLarge(`Documents are limited to ${max} bytes`);
        let content: Buffer = raw;
        let wanted = query.assetId;
        if (/^application\/json\b/i.test(request.headers.get('content-type') ?? '') && !query.assetId) {
            const parsed = verifyByAsset.safeParse(safeJson(raw));
            if (parsed.success) {
                wanted = parsed.data.assetId;
                const asset = await services.assets.get(wanted, caller!.orgId, { operator: caller!.isOperator });
                content = await services.assets.content(asset);
            }
        }
        if (content.length === 0) throw new Invalid('Send the document as the body, or { "assetId" }');
        const indexes = p.assets.map((a, i) => ({ a, i })).filter(({ a }) => !wanted || a.assetId === wanted);
        if (indexes.length === 0) throw new NotFound('That asset is not part of this proposal');
        const computed = createHash('sha256').update(content).digest('hex');
        const version = await services.chain().versions.byVersion(p.contract.version);
        const iface = new Interface(version.abi);
        const onChain: { hash: string; algorithm: string; index: number }[] = [];
        for (const { i } of indexes) {
            try {
                const data = await services.chain().provider.call({ to: p.contract.address, data: iface.encodeFunctionData('getAsset', [p.chainId, i]) });
                const [hash, algorithm] = iface.decodeFunctionResult('getAsset', data) as unknown as [string, string];
                onChain.push({ hash: hash.replace(/^0x/, ''), algorithm, index: i });
            } catch (err) {
                if (err instanceof AppError) throw err;
                const e = err as { code?: string; shortMessage?: string; message?: string };
                throw new Upstream(`The ledger did not answer getAsset(${i}) of proposal ${p.id}: ${e.code ?? ''} ${e.shortMessage ?? e.message ?? ''}`.trim(), { cause: err });
            }
        }
        const hit = onChain.find((x) => x.hash === computed);
        const shown = hit ?? onChain[0]!;
        return {
            jsonBody: {
                match: Boolean(hit),
                algorithm: shown.algorithm,
                onChainHash: shown.hash,
                computedHash: computed,
                assetId: p.assets[shown.index]!.assetId,
                txHash: p.anchor.txHash,
                blockNumber: p.anchor.blockNumber,
            },
        };
    },
});

function safeJson(raw: Buffer): unknown {
    try {
        return JSON.parse(raw.toString('utf8'));
    } catch {
        return undefined;
    }
}
