import { z } from 'zod';
import { getServices } from '../shared/composition';
import { listOrganizations, organization, type Organization } from '../shared/registration/organizations';
import { httpRoute, OPERATOR_ROLE } from './http/route';

const orgView = (o: Organization) => ({
    orgId: o.id,
    name: o.name,
    legalId: o.legalId,
    country: o.country,
    contactEmail: o.contactEmail,
    status: o.status,
    registrationId: o.registrationId,
    deployment: o.deployment ? { url: o.deployment.url, kind: o.deployment.kind } : null,
    createdAt: o.createdAt,
    updatedAt: o.updatedAt,
});

/** GET /api/orgs (core, operator): every organisation with its status and member deployment, paged. */
httpRoute('orgsList', {
    route: 'orgs',
    methods: ['GET'],
    access: { roles: [OPERATOR_ROLE] },
    query: z.object({ continuationToken: z.string().min(1).max(8000).optional() }).strict(),
    summary: 'The organisations, their status and member deployment',
    handler: async ({ query }) => {
        const page = await listOrganizations(getServices().organizations, query.continuationToken);
        return { jsonBody: { items: page.items.map(orgView), continuationToken: page.continuationToken ?? null } };
    },
});

/** GET /api/orgs/{orgId} (core): one organisation, to the operator and to itself. */
httpRoute('orgsGet', {
    route: 'orgs/{orgId}',
    methods: ['GET'],
    access: { roles: [OPERATOR_ROLE, 'Org.Admin', 'Org.Trader', 'Deployment.Member'], org: 'orgId' },
    summary: 'One organisation, its status and member deployment',
    handler: async ({ params }) => ({ jsonBody: orgView(await organization(getServices().organizations, params.orgId)) }),
});
