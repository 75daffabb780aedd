import { httpRoute } from './http/route';

/** GET /api/me: who the token says the caller is (any role). Handy to check a token. */
httpRoute('me', {
    route: 'me',
    methods: ['GET'],
    access: { roles: ['Flexchange.Admin', 'Flexchange.Approver', 'Org.Admin', 'Org.Trader', 'Deployment.Member', 'Deployment.Core'] },
    deployments: ['core', 'member'],
    summary: 'The caller as the token describes it',
    handler: async ({ principal }) => ({
        headers: { 'cache-control': 'no-store' },
        jsonBody: { oid: principal!.oid, roles: principal!.roles, appOnly: principal!.appOnly, name: principal!.name, email: principal!.email },
    }),
});
