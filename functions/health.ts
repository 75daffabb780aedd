import { getServices } from '../shared/composition';
import { httpRoute } from './http/route';

/** GET /api/health: anonymous; 200 when no component is down, 503 otherwise. */
httpRoute('health', {
    route: 'health',
    methods: ['GET'],
    access: 'anonymous',
    deployments: ['core', 'member'],
    summary: 'Health of the app and each component it depends on',
    handler: async () => {
        const report = await getServices().health();
        return {
            status: report.status === 'healthy' ? 200 : 503,
            headers: { 'cache-control': 'no-store' },
            jsonBody: report,
        };
    },
});
