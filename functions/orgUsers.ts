import { z } from 'zod';
import { ORG_USER_ROLES } from '../shared/directory/directory';
import { getServices } from '../shared/composition';
import { addOrgClient, addOrgUser, removeOrgClient, removeOrgUser } from '../shared/directory/orgUsers';
import { actorOf, httpRoute, OPERATOR_ROLE, ORG_ADMINS } from './http/route';

const newUser = z
    .object({
        email: z.string().email().max(254),
        name: z.string().min(1).max(200).optional(),
        roles: z.array(z.enum(ORG_USER_ROLES)).min(1).max(ORG_USER_ROLES.length),
    })
    .strict();

const userView = (e: { id: string; orgId: string; email?: string; name?: string; roles: string[]; createdAt: string }) => ({
    userId: e.id,
    orgId: e.orgId,
    email: e.email,
    name: e.name,
    roles: e.roles,
    createdAt: e.createdAt,
});

/** POST /api/orgs/{orgId}/users: an organisation's admin (or the operator) adds a user with roles. */
httpRoute('orgUsersAdd', {
    route: 'orgs/{orgId}/users',
    methods: ['POST'],
    access: ORG_ADMINS,
    body: newUser,
    summary: 'Add a user to an organisation',
    handler: async ({ params, body, caller }) => {
        const entry = await addOrgUser(getServices(), params.orgId, body, actorOf(caller!));
        return { status: 201, headers: { location: `/api/orgs/${params.orgId}/users/${entry.id}` }, jsonBody: userView(entry) };
    },
});

/** GET /api/orgs/{orgId}/users: the organisation's users. */
httpRoute('orgUsersList', {
    route: 'orgs/{orgId}/users',
    methods: ['GET'],
    // Its member deployment reads the list too (to mail its traders).
    access: { roles: ['Org.Admin', 'Deployment.Member', OPERATOR_ROLE], org: 'orgId' },
    summary: "List an organisation's users",
    handler: async ({ params }) => ({ jsonBody: { items: (await getServices().directory.listUsers(params.orgId)).map(userView) } }),
});

/** DELETE /api/orgs/{orgId}/users/{userId}: removes a user from the organisation. */
httpRoute('orgUsersRemove', {
    route: 'orgs/{orgId}/users/{userId}',
    methods: ['DELETE'],
    access: ORG_ADMINS,
    summary: 'Remove a user from an organisation',
    handler: async ({ params, caller }) => {
        await removeOrgUser(getServices(), params.orgId, params.userId, actorOf(caller!));
        return { status: 204 };
    },
});

const newClient = z
    .object({
        // Entra ID's application (client) ids are GUIDs; the devhost's issuer takes names too.
        clientId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, 'an application (client) id'),
        name: z.string().min(1).max(200).optional(),
        roles: z.array(z.enum(ORG_USER_ROLES)).min(1).max(ORG_USER_ROLES.length),
    })
    .strict();

const clientView = (e: { id: string; orgId: string; clientId?: string; name?: string; roles: string[]; createdAt: string }) => ({
    clientId: e.clientId,
    principalId: e.id,
    orgId: e.orgId,
    name: e.name,
    roles: e.roles,
    createdAt: e.createdAt,
});

/** POST /api/orgs/{orgId}/clients: an application of the tenant acts for the organisation with client credentials. */
httpRoute('orgClientsAdd', {
    route: 'orgs/{orgId}/clients',
    methods: ['POST'],
    access: ORG_ADMINS,
    body: newClient,
    summary: "Register an application as the organisation's API client (or change its roles)",
    handler: async ({ params, body, caller }) => {
        const entry = await addOrgClient(getServices(), params.orgId, body, actorOf(caller!));
        return { status: 201, headers: { location: `/api/orgs/${params.orgId}/clients/${encodeURIComponent(body.clientId)}` }, jsonBody: clientView(entry) };
    },
});

/** GET /api/orgs/{orgId}/clients: the organisation's API clients. */
httpRoute('orgClientsList', {
    route: 'orgs/{orgId}/clients',
    methods: ['GET'],
    access: ORG_ADMINS,
    summary: "List an organisation's API clients",
    handler: async ({ params }) => ({ jsonBody: { items: (await getServices().directory.listClients(params.orgId)).map(clientView) } }),
});

/** DELETE /api/orgs/{orgId}/clients/{clientId}: the application no longer acts for the organisation. */
httpRoute('orgClientsRemove', {
    route: 'orgs/{orgId}/clients/{clientId}',
    methods: ['DELETE'],
    access: ORG_ADMINS,
    summary: "Remove an organisation's API client",
    handler: async ({ params, caller }) => {
        await removeOrgClient(getServices(), params.orgId, params.clientId, actorOf(caller!));
        return { status: 204 };
    },
});
