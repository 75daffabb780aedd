import { getServices } from '../shared/composition';
import { summaryOf } from '../shared/health/health';
import { httpRoute, OPERATOR_ROLE } from './http/route';

/**
 * GET /api/health: 200 when no component is down, 503 otherwise. Anyone gets the status of the app and
 * of each component from a recent check; the operator (`Flexchange.Admin`) gets a fresh check with every
 * component's details and how many checks have run.
 */
httpRoute('health', {
    route: 'health',
    methods: ['GET'],
    access: 'anonymous',
    tokenIfSent: true,
    deployments: ['core', 'member'],
    summary: 'Health of the app and each component it depends on (details and a fresh check for the operator)',
    handler: async ({ principal }) => {
        const health = getServices().health;
        const operator = principal?.roles.includes(OPERATOR_ROLE) ?? false;
        const report = operator ? await health.fresh() : await health.recent();
        return {
            status: report.status === 'healthy' ? 200 : 503,
            headers: { 'cache-control': 'no-store' },
            jsonBody: operator ? { ...report, checksRun: health.checksRun, maxAgeSeconds: health.maxAgeMs / 1000 } : summaryOf(report),
        };
    },
});
