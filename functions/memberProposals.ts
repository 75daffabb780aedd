import { Interface } from 'ethers';
import { z } from 'zod';
import { ethAddress } from '../shared/validation';
import { getServices } from '../shared/composition';
import { Forbidden, NotFound, Upstream } from '../shared/errors';
import { actorOf, httpRoute } from './http/route';

const SIGN = new Interface(['function sign(bytes32 id)']);

interface CoreProposalView {
    proposalId: string;
    chainProposalId: string;
    status: string;
    parties: { orgId: string; account: string; signed: boolean }[];
    contract: { version: number; address: string } | null;
}

/**
 * POST /api/proposals/{id}/signature (member, Org.Trader): signs the proposal on-chain with this
 * organisation's party account (its key in this deployment's vault) → 202 with the transaction.
 * The proposal is read from the core; an account that is not this organisation's party → 403.
 */
httpRoute('memberProposalSign', {
    route: 'proposals/{proposalId}/signature',
    methods: ['POST'],
    deployments: ['member'],
    access: { roles: ['Org.Trader'] },
    body: z.object({ account: ethAddress }).strict(),
    summary: "Sign a proposal on-chain with your organisation's party account",
    handler: async ({ params, body, caller }) => {
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
        if (!p.contract) throw new NotFound('The proposal is not on the ledger yet');
        const chain = services.chain();
        // One operation per proposal and account: a retried request is the same transaction.
        const tx = await chain.pipeline.submit({
            operationId: `proposal:${p.proposalId}:sign:${key.address.toLowerCase()}`,
            from: { address: key.address, signer: chain.accounts.signer(key) },
            to: p.contract.address,
            data: SIGN.encodeFunctionData('sign', [p.chainProposalId]),
            abi: chain.artifact.abi,
            label: `sign ${p.proposalId}`,
        });
        await services.audit.record({ orgId, actor: actorOf(caller!), action: 'proposal.signed', target: p.proposalId, details: { account: key.address, txHash: tx.hash } });
        return { status: 202, jsonBody: { proposalId: p.proposalId, account: key.address, operationId: tx.operationId, txHash: tx.hash, state: tx.state } };
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
