import { z } from 'zod';
import { getServices } from '../shared/composition';
import { httpRoute, OPERATOR_ROLE } from './http/route';

/** GET /api/orgs/{orgId}/events?after=&limit= (core): the organisation's events in order, with a cursor. */
httpRoute('orgEvents', {
    route: 'orgs/{orgId}/events',
    methods: ['GET'],
    access: { roles: ['Org.Admin', 'Org.Trader', 'Deployment.Member', OPERATOR_ROLE], org: 'orgId' },
    query: z
        .object({
            after: z.coerce.number().int().min(0).default(0),
            limit: z.coerce.number().int().min(1).max(500).default(100),
        })
        .strict(),
    summary: "An organisation's events after a cursor (at-least-once; dedupe by id)",
    handler: async ({ params, query }) => {
        const { items, next } = await getServices().eventFeed.read(params.orgId, query.after, query.limit);
        return { headers: { 'cache-control': 'no-store' }, jsonBody: { items, next, nextUrl: `/api/orgs/${params.orgId}/events?after=${next}` } };
    },
});
