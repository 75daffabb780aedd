import { z } from 'zod';
import { ORG_USER_ROLES } from '../shared/directory/directory';
import { getServices } from '../shared/composition';
import { addOrgUser, removeOrgUser } from '../shared/directory/orgUsers';
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
