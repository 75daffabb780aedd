import { z } from 'zod';
import { ethAddress } from '../shared/validation';
import { getServices } from '../shared/composition';
import { NotFound } from '../shared/errors';
import { actorOf, httpRoute } from './http/route';

const wei = z.string().regex(/^\d+$/);

/** The answer to a signature: `status` says whether it is on its way or waits for the account's ether. */
const signatureAccepted = z.object({
    proposalId: z.string(),
    account: z.string(),
    operationId: z.string(),
    txHash: z.string(),
    state: z.enum(['pending', 'confirmed', 'reverted']),
    status: z.enum(['submitted', 'waiting_for_funds']),
    funding: z
        .object({
            balanceWei: wei,
            neededWei: wei,
            topUp: z.object({ granted: z.literal(true), amountWei: wei, txHash: z.string().nullable(), state: z.enum(['submitted', 'confirmed', 'reverted']) }).nullable(),
        })
        .optional()
        .describe('Present when the account was short of ether for the transaction: its balance, the most the transaction may cost, and the top-up the core granted (null: the core did not answer; the top-up is asked for again when the node refuses the transaction)'),
});

/**
 * POST /api/proposals/{id}/signature (member, Org.Trader): signs the proposal on-chain with this
 * organisation's party account (its key in this deployment's vault) → 202 with the transaction.
 * The proposal is this organisation's own copy (the core's events; read from the core while none has arrived), its status checked on the ledger; an account that is not this organisation's party → 403; a
 * proposal not AwaitingSignatures → 409 `wrong_state`. An account short of ether for the transaction
 * is topped up by the core first (its policy); one the policy will not fund → 409 `account_unfunded`.
 */
httpRoute('memberProposalSign', {
    route: 'proposals/{proposalId}/signature',
    methods: ['POST'],
    deployments: ['member'],
    access: { roles: ['Org.Trader'] },
    body: z.object({ account: ethAddress }).strict(),
    summary: "Sign a proposal on-chain with your organisation's party account",
    responses: {
        '202': { description: '`submitted`: the signature is on its way to the ledger; `waiting_for_funds`: signed and stored, sent once the account’s top-up lands', schema: signatureAccepted },
        '409': { description: '`wrong_state`: the proposal is not AwaitingSignatures; `account_unfunded`: the treasury’s policy will not fund the account now (the detail names the limit); `contract_revert`: the ledger refuses the signature' },
    },
    handler: async ({ params, body, caller, context }) => {
        const services = getServices();
        const signed = await services.memberSigning().sign(params.proposalId, body.account, (m) => context.warn(m));
        const { proposalId, account, tx, status, funding } = signed;
        await services.audit.record({ orgId: services.settings.FLEXCHANGE_ORG_ID!, actor: actorOf(caller!), action: 'proposal.signed', target: proposalId, details: { account, txHash: tx.hash, status } });
        return { status: 202, jsonBody: { proposalId, account, operationId: tx.operationId, txHash: tx.hash, state: tx.state, status, ...(funding ? { funding } : {}) } satisfies z.infer<typeof signatureAccepted> };
    },
});

/** GET /api/proposals (member): this organisation's copies of the proposals it is party to, as the core's events left them. */
httpRoute('memberProposalsList', {
    route: 'proposals',
    methods: ['GET'],
    deployments: ['member'],
    access: { roles: ['Org.Admin', 'Org.Trader'] },
    summary: 'The proposals this organisation is party to (its own copy)',
    handler: async () => ({ jsonBody: { items: await getServices().memberProposals().list() } }),
});

/** GET /api/proposals/{id} (member): one proposal from this organisation's copy. */
httpRoute('memberProposalsGet', {
    route: 'proposals/{proposalId}',
    methods: ['GET'],
    deployments: ['member'],
    access: { roles: ['Org.Admin', 'Org.Trader'] },
    summary: 'One proposal from this organisation’s copy',
    handler: async ({ params }) => {
        if (!/^[0-9a-f-]{36}$/i.test(params.proposalId)) throw new NotFound('No such proposal');
        return { jsonBody: await getServices().memberProposals().get(params.proposalId) };
    },
});
