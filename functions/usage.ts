import { z } from 'zod';
import { getServices } from '../shared/composition';
import { Invalid, NotFound } from '../shared/errors';
import { usageReport } from '../shared/usage/usageMeter';
import { httpRoute, OPERATOR_ROLE } from './http/route';

const day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date YYYY-MM-DD');

/** GET /api/usage?orgId=&from=&to=: API calls per route and day, for billing. An organisation sees its own. */
httpRoute('usage', {
    route: 'usage',
    methods: ['GET'],
    access: { roles: [OPERATOR_ROLE, 'Org.Admin', 'Org.Trader'] },
    query: z.object({ orgId: z.string().min(1).max(100).optional(), from: day.optional(), to: day.optional() }).strict(),
    summary: 'API usage per organisation, route and day',
    handler: async ({ query, caller }) => {
        const orgId = query.orgId ?? caller!.orgId;
        if (!orgId) throw new Invalid('Name the organisation with ?orgId=', [{ path: 'query.orgId', message: 'required' }]);
        if (!caller!.isOperator && orgId !== caller!.orgId) throw new NotFound('No such organisation');
        const { from, to, rows } = await usageReport(getServices().usage, orgId, query);
        return { headers: { 'cache-control': 'no-store' }, jsonBody: { orgId, from, to, items: rows.map(({ route, day: d, calls }) => ({ route, day: d, calls })) } };
    },
});
