import { app } from '@azure/functions';
import { getServices } from '../shared/composition';
import { checksumAddress } from '../shared/accounts/accountRegistry';
import { topUpView } from '../shared/treasury/treasury';
import { deploymentRole, httpRoute, OPERATOR_ROLE } from './http/route';

const topUp = (orgId: string, address: string) => getServices().topUp(orgId, address);

/** POST /api/orgs/{orgId}/accounts/{address}/topup (that organisation): ether now, within the treasury's policy. */
httpRoute('orgAccountTopUp', {
    route: 'orgs/{orgId}/accounts/{address}/topup',
    methods: ['POST'],
    access: { roles: ['Org.Admin', 'Org.Trader', 'Deployment.Member', OPERATOR_ROLE], org: 'orgId' },
    noBody: true,
    summary: 'Request ether for an account (granted within the treasury policy)',
    handler: async ({ params }) => {
        const account = await getServices().accountRegistry.get(params.orgId, checksumAddress(params.address, 'params.address'));
        return { jsonBody: topUpView(await topUp(params.orgId, account.address), getServices().topUpPolicy) };
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
