import { formatEther } from 'ethers';
import { z } from 'zod';
import { ethAddress } from '../shared/validation';
import { getServices } from '../shared/composition';
import { NotFound } from '../shared/errors';
import { accountRegistered, fundOnRegistration } from '../shared/accounts/registrationFunding';
import { actorOf, CORE_APP_ROLE, httpRoute, idempotencyKeyOf, OPERATOR_ROLE } from './http/route';

const label = z.string().trim().min(1).max(100);
const address = ethAddress;

/** Balances as the ledger has them now, in wei and ether. */
async function withBalances<T extends { address: string }>(items: T[]): Promise<(T & { balanceWei: string; balanceEth: string })[]> {
    const services = getServices();
    return Promise.all(
        items.map(async (a) => {
            const wei = await services.balanceOf(a.address);
            return { ...a, balanceWei: wei.toString(), balanceEth: formatEther(wei) };
        }),
    );
}

/**
 * POST /api/orgs/{orgId}/accounts (core; the member deployment of that org): registers an address made
 * there and funds it at once within the top-up policy (the timer's grant for this window), so a new
 * account can sign when asked. `funding` says what the policy gave; a failed grant does not undo the
 * registration (the member's signing route and the timer ask again).
 */
httpRoute('orgAccountsRegister', {
    route: 'orgs/{orgId}/accounts',
    methods: ['POST'],
    access: { roles: ['Deployment.Member'], org: 'orgId' },
    body: z.object({ address, label }).strict(),
    summary: "Register an account created in the organisation's member deployment",
    handler: async ({ params, body, caller, context }) => {
        const services = getServices();
        const { account, created } = await services.accountRegistry.register(params.orgId, body, caller!.principal.oid);
        await services.events().publish(accountRegistered(account));
        if (created) {
            await services.audit.record({ orgId: params.orgId, actor: actorOf(caller!), action: 'account.registered', target: account.address, details: { label: account.label } });
        }
        const onboarding = async (orgId: string) => (await services.organizations.read(orgId, orgId))?.item.status === 'Onboarding';
        const funding = await fundOnRegistration({ onboarding, topUp: services.topUp, policy: services.topUpPolicy, warn: (m) => context.warn(m) }, account);
        return { status: created ? 201 : 200, headers: { location: `/api/orgs/${params.orgId}/accounts/${account.address}` }, jsonBody: { address: account.address, label: account.label, registeredAt: account.registeredAt, funding } };
    },
});

/** GET /api/orgs/{orgId}/accounts (core): the organisation's registered addresses, with balances. */
httpRoute('orgAccountsList', {
    route: 'orgs/{orgId}/accounts',
    methods: ['GET'],
    access: { roles: ['Org.Admin', 'Org.Trader', 'Deployment.Member', OPERATOR_ROLE], org: 'orgId' },
    summary: "An organisation's accounts with their balances",
    handler: async ({ params }) => {
        const accounts = await getServices().accountRegistry.list(params.orgId);
        return { jsonBody: { items: await withBalances(accounts.map((a) => ({ address: a.address, label: a.label, registeredAt: a.registeredAt }))) } };
    },
});

/** GET /api/orgs/{orgId}/principals/{principalId} (core): a member deployment asks who a caller of its own organisation is. */
httpRoute('orgPrincipalGet', {
    route: 'orgs/{orgId}/principals/{principalId}',
    methods: ['GET'],
    access: { roles: ['Deployment.Member'], org: 'orgId' },
    summary: 'A principal of the organisation, as the directory has it (for member deployments)',
    handler: async ({ params }) => {
        const entry = await getServices().directory.resolve(params.principalId);
        if (!entry || entry.orgId !== params.orgId) throw new NotFound('No such principal in this organisation');
        return { headers: { 'cache-control': 'no-store' }, jsonBody: { id: entry.id, orgId: entry.orgId, kind: entry.kind, email: entry.email, name: entry.name, roles: entry.roles, createdAt: entry.createdAt } };
    },
});

/**
 * POST /api/accounts (member): a new account, its key made and kept in this member's vault, its
 * address registered with the core. `Idempotency-Key` makes a retry return the same account.
 */
httpRoute('accountsCreate', {
    route: 'accounts',
    methods: ['POST'],
    deployments: ['member'],
    access: { roles: ['Org.Admin', CORE_APP_ROLE] },
    body: z.object({ label }).strict(),
    summary: 'Create an account (key in this deployment’s vault) and register it with the core',
    handler: async ({ request, body, caller }) => {
        const key = idempotencyKeyOf(request);
        const services = getServices();
        const { account, created } = await services.memberAccounts().create(body.label, key);
        if (created) {
            await services.audit.record({ orgId: account.orgId, actor: actorOf(caller!), action: 'account.created', target: account.address, details: { label: account.label, custody: account.custody } });
        }
        return { status: created ? 201 : 200, headers: { location: `/api/accounts/${account.address}` }, jsonBody: { address: account.address, label: account.label, custody: account.custody, createdAt: account.createdAt } };
    },
});

/** GET /api/accounts (member): this organisation's accounts with balances. */
httpRoute('accountsList', {
    route: 'accounts',
    methods: ['GET'],
    deployments: ['member'],
    access: { roles: ['Org.Admin', 'Org.Trader', CORE_APP_ROLE] },
    summary: 'This organisation’s accounts with their balances',
    handler: async () => {
        const accounts = await getServices().memberAccounts().list();
        return { jsonBody: { items: await withBalances(accounts.map((a) => ({ address: a.address, label: a.label, custody: a.custody, createdAt: a.createdAt, registered: Boolean(a.registeredAt) }))) } };
    },
});
