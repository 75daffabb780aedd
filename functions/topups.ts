import { app } from '@azure/functions';
import { getServices } from '../shared/composition';
import { checksumAddress } from '../shared/accounts/accountRegistry';
import type { TopUpResult } from '../shared/treasury/treasury';
import { deploymentRole, httpRoute, OPERATOR_ROLE } from './http/route';

const view = (r: TopUpResult) => (r.granted ? { granted: true, amountWei: r.grant.amountWei, txHash: r.grant.txHash ?? null, state: r.grant.state } : { granted: false, reason: r.reason, txHash: r.grant?.txHash ?? null });

async function topUp(orgId: string, address: string): Promise<TopUpResult> {
    const services = getServices();
    const provider = services.chain().provider;
    return services.treasury().topUp({ orgId, address, balanceOf: (a) => provider.getBalance(a), policy: services.topUpPolicy, events: services.events() });
}

/** POST /api/orgs/{orgId}/accounts/{address}/topup (that organisation): ether now, within the treasury's policy. */
httpRoute('orgAccountTopUp', {
    route: 'orgs/{orgId}/accounts/{address}/topup',
    methods: ['POST'],
    access: { roles: ['Org.Admin', 'Org.Trader', 'Deployment.Member', OPERATOR_ROLE], org: 'orgId' },
    noBody: true,
    summary: 'Request ether for an account (granted within the treasury policy)',
    handler: async ({ params }) => {
        const account = await getServices().accountRegistry.get(params.orgId, checksumAddress(params.address, 'params.address'));
        return { jsonBody: view(await topUp(params.orgId, account.address)) };
    },
});

/** The core's ether top-up: every registered account below the threshold, topped up once per window. */
if (deploymentRole() === 'core') {
    app.timer('etherTopUp', {
        schedule: '%FLEXCHANGE_TOPUP_SCHEDULE%',
        handler: async (_timer, context) => {
            const tally: Record<string, number> = {};
            for await (const account of getServices().accountRegistry.all()) {
                try {
                    const r = await topUp(account.orgId, account.address);
                    const key = r.granted ? 'granted' : r.reason;
                    tally[key] = (tally[key] ?? 0) + 1;
                } catch (err) {
                    tally.failed = (tally.failed ?? 0) + 1;
                    context.warn(`top-up of ${account.address} failed: ${(err as Error).message}`);
                }
            }
            if (tally.granted || tally.failed || tally.treasury_floor) context.log(`ether top-up ${JSON.stringify(tally)}`);
        },
    });
}
