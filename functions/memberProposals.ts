import { Interface } from 'ethers';
import { z } from 'zod';
import { ethAddress } from '../shared/validation';
import { getServices } from '../shared/composition';
import { Conflict, Forbidden, NotFound, Upstream } from '../shared/errors';
import { actorOf, httpRoute } from './http/route';

const SIGN = new Interface(['function sign(bytes32 id)']);

interface CoreProposalView {
    proposalId: string;
    chainProposalId: string;
    status: string;
    parties: { orgId: string; account: string; signed: boolean }[];
    contract: { version: number; address: string } | null;
}

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
 * The proposal is read from the core; an account that is not this organisation's party → 403; a
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
        const orgId = services.settings.FLEXCHANGE_ORG_ID!;
        if (!/^[0-9a-f-]{36}$/i.test(params.proposalId)) throw new NotFound('No such proposal');
        const res = await services.deploymentClient(services.settings.FLEXCHANGE_CORE_URL!).request('GET', `proposals/${encodeURIComponent(params.proposalId)}`);
        if (res.status === 404) throw new NotFound('No such proposal');
        if (res.status !== 200) throw new Upstream(`The core answered ${res.status} for the proposal`);
        const p = res.body as CoreProposalView;
        const party = p.parties.find((x) => x.orgId === orgId);
        if (!party) throw new NotFound('No such proposal');
        if (party.account.toLowerCase() !== body.account.toLowerCase()) throw new Forbidden(`${body.account} is not your organisation's account on this proposal`);
        const key = await services.memberAccounts().keyOf(body.account);
        if (!key) throw new Forbidden(`${body.account} is not an account of this deployment`);
        if (!p.contract || p.status === 'Anchoring') throw new Conflict('The proposal is not on the ledger yet (Anchoring): sign once it is AwaitingSignatures', 'wrong_state');
        if (p.status !== 'AwaitingSignatures') throw new Conflict(`The proposal is ${p.status} and takes no more signatures (on the ledger: ProposalNotOpen)`, 'wrong_state');
        const chain = services.chain();
        // One operation per proposal and account: a retried request is the same transaction.
        const { tx, status, funding } = await services.memberAccounts().submitFunded(
            chain.pipeline,
            {
                operationId: `proposal:${p.proposalId}:sign:${key.address.toLowerCase()}`,
                from: { address: key.address, signer: chain.accounts.signer(key) },
                to: p.contract.address,
                data: SIGN.encodeFunctionData('sign', [p.chainProposalId]),
                abi: chain.artifact.abi,
                label: `sign ${p.proposalId}`,
            },
            (m) => context.warn(m),
        );
        await services.audit.record({ orgId, actor: actorOf(caller!), action: 'proposal.signed', target: p.proposalId, details: { account: key.address, txHash: tx.hash, status } });
        return { status: 202, jsonBody: { proposalId: p.proposalId, account: key.address, operationId: tx.operationId, txHash: tx.hash, state: tx.state, status, ...(funding ? { funding } : {}) } satisfies z.infer<typeof signatureAccepted> };
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
