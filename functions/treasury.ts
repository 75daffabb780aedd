import { formatEther } from 'ethers';
import { getServices } from '../shared/composition';
import { httpRoute, OPERATOR_ROLE } from './http/route';

/** GET /api/treasury (operator): the treasury's address and balance, and the latest grants. */
httpRoute('treasuryGet', {
    route: 'treasury',
    methods: ['GET'],
    access: { roles: [OPERATOR_ROLE] },
    summary: 'Treasury address, balance and grants',
    handler: async () => {
        const services = getServices();
        const treasury = services.treasury();
        const address = await treasury.address();
        const balance = await services.balanceOf(address);
        return { headers: { 'cache-control': 'no-store' }, jsonBody: { address, balanceWei: balance.toString(), balanceEth: formatEther(balance), grants: await treasury.list() } };
    },
});
