import { app, HttpResponseInit } from '@azure/functions';
import { getServices } from '../shared/composition';

/** GET /api/health: anonymous; 200 when every component is up, 503 otherwise. */
export async function health(): Promise<HttpResponseInit> {
    const report = await getServices().health();
    return {
        status: report.status === 'healthy' ? 200 : 503,
        headers: { 'cache-control': 'no-store' },
        jsonBody: report,
    };
}

app.http('health', { route: 'health', methods: ['GET'], authLevel: 'anonymous', handler: health });
