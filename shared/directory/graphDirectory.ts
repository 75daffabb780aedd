import type { TokenCredential } from '@azure/core-auth';
import { isUnreachable, Unavailable, Upstream } from '../errors';
import { Directory, DirectoryEntry, userEntry } from './directory';

export interface GraphDirectoryOptions {
    /** `https://graph.microsoft.com` in Azure. */
    graphUrl: string;
    /** Object id of the API's service principal (the resource whose app roles are assigned). */
    servicePrincipalId: string;
    /** App role ids of the API's app registration, by role value (`Org.Admin` → guid). */
    appRoleIds: Record<string, string>;
    /** Where an invited user lands after accepting. */
    inviteRedirectUrl: string;
    credential: TokenCredential;
}

/** The `error` object of a Graph error answer. */
interface GraphError {
    code?: string;
    message?: string;
}

const ALREADY_ASSIGNED = Symbol('already assigned');

/** Application (client) ids in Entra ID are GUIDs. */
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** How Graph refuses an app role assignment the principal already holds. */
const isDuplicateAssignment = (status: number, error: GraphError) =>
    status === 400 && error.code === 'Request_BadRequest' && /already exists/i.test(error.message ?? '');

interface GraphEntry extends DirectoryEntry {
    /** App role assignment ids, so they can be removed with the user. */
    assignments?: string[];
    /** For app identities: the assignment id of each role, so a role is assigned once. */
    assignedRoles?: Record<string, string>;
}

/**
 * The directory in Azure: a user added to an organisation is invited into the
 * tenant (B2B invitation) and assigned the API's app roles through Microsoft Graph;
 * the organisation each principal belongs to is kept in the document store (`store`),
 * which also answers every look-up.
 */
export class GraphDirectory implements Directory {
    constructor(
        private readonly store: Directory,
        private readonly opts: GraphDirectoryOptions,
    ) {}

    resolve(objectId: string, opts?: { fresh?: boolean }): Promise<DirectoryEntry | undefined> {
        return this.store.resolve(objectId, opts);
    }

    listUsers(orgId: string): Promise<DirectoryEntry[]> {
        return this.store.listUsers(orgId);
    }

    /**
     * Records a principal. A deployment's app identity (kind `app`, e.g. a member deployment's
     * managed identity) is also assigned its app roles, so its client-credential tokens carry
     * them; a role assigned before (a retried onboarding step) is not assigned again.
     */
    async register(entry: DirectoryEntry): Promise<DirectoryEntry> {
        if (entry.kind !== 'app') return this.store.register(entry);
        // The assignments recorded now, not a cached entry's (another instance may have removed them a moment ago).
        const existing = (await this.store.resolve(entry.id, { fresh: true })) as GraphEntry | undefined;
        const assigned = new Map<string, string>(existing?.orgId === entry.orgId ? Object.entries(existing.assignedRoles ?? {}) : []);
        for (const role of [...new Set(entry.roles)].sort()) {
            if (assigned.has(role)) continue;
            assigned.set(role, await this.#assign({ id: entry.id, kind: 'app' }, role));
        }
        // An API client given fewer roles than before loses the others (a deployment's roles only ever grow).
        for (const [role, assignment] of entry.clientId ? assigned : []) {
            if (entry.roles.includes(role)) continue;
            await this.#graph('DELETE', `/v1.0/servicePrincipals/${this.opts.servicePrincipalId}/appRoleAssignedTo/${assignment}`, undefined, [404]);
            assigned.delete(role);
        }
        const stored: GraphEntry = { ...entry, assignments: [...assigned.values()], assignedRoles: Object.fromEntries(assigned) };
        return this.store.register(stored);
    }

    listClients(orgId: string): Promise<DirectoryEntry[]> {
        return this.store.listClients(orgId);
    }

    /** The application's service principal in this tenant (`servicePrincipals(appId='…')`), and the API's roles it holds. */
    async clientPrincipal(clientId: string): Promise<{ id: string; roles: string[]; managedIdentity?: boolean } | undefined> {
        if (!GUID.test(clientId)) return undefined;
        const sp = (await this.#graph('GET', `/v1.0/servicePrincipals(appId='${clientId}')?$select=id,servicePrincipalType`, undefined, [404])) as { id: string; servicePrincipalType?: string } | undefined;
        if (!sp) return undefined;
        // A managed identity is a deployment's (a member's app before onboarding has granted it anything, the core's): never a client.
        if (sp.servicePrincipalType === 'ManagedIdentity') return { id: sp.id, roles: [], managedIdentity: true };
        const held = (await this.#graph('GET', `/v1.0/servicePrincipals/${encodeURIComponent(sp.id)}/appRoleAssignments?$filter=resourceId eq ${this.opts.servicePrincipalId}`)) as { value: { appRoleId: string }[] };
        const names = new Map(Object.entries(this.opts.appRoleIds).map(([value, id]) => [id, value]));
        return { id: sp.id, roles: held.value.map((a) => names.get(a.appRoleId) ?? a.appRoleId) };
    }

    /** The users assigned an app role of the API in Entra ID, with their mail addresses. */
    async holders(role: string): Promise<{ id: string; email?: string }[]> {
        const appRoleId = this.opts.appRoleIds[role];
        if (!appRoleId) throw new Upstream(`The app registration has no role ${role}`);
        const users = new Set<string>();
        let path: string | undefined = `/v1.0/servicePrincipals/${this.opts.servicePrincipalId}/appRoleAssignedTo?$top=999`;
        for (let pages = 0; path && pages < 100; pages++) {
            const page = (await this.#graph('GET', path)) as { value: { principalId: string; principalType: string; appRoleId: string }[]; '@odata.nextLink'?: string };
            for (const a of page.value) if (a.appRoleId === appRoleId && a.principalType === 'User') users.add(a.principalId);
            const next = page['@odata.nextLink'];
            path = next ? next.replace(/^https?:\/\/[^/]+/, '') : undefined;
        }
        const out: { id: string; email?: string }[] = [];
        for (const id of users) {
            const user = (await this.#graph('GET', `/v1.0/users/${encodeURIComponent(id)}?$select=id,mail,userPrincipalName`, undefined, [404])) as { mail?: string | null; userPrincipalName?: string } | undefined;
            if (user) out.push({ id, email: (user.mail ?? user.userPrincipalName)?.toLowerCase() });
        }
        return out;
    }

    /**
     * Assigns `role` to the principal and answers the assignment's id. A role the principal already holds (a
     * retried step whose record did not survive, a user added again) is answered by Graph with 400
     * `Request_BadRequest` "Permission being assigned already exists on the object": that is success, and the
     * existing assignment's id is read from the principal's assignments.
     */
    async #assign(principal: { id: string; kind: 'user' | 'app' }, role: string): Promise<string> {
        const appRoleId = this.opts.appRoleIds[role];
        if (!appRoleId) throw new Upstream(`The app registration has no role ${role}`);
        const created = (await this.#graph('POST', `/v1.0/servicePrincipals/${this.opts.servicePrincipalId}/appRoleAssignedTo`, {
            principalId: principal.id,
            resourceId: this.opts.servicePrincipalId,
            appRoleId,
        }, [], isDuplicateAssignment)) as { id: string } | typeof ALREADY_ASSIGNED;
        if (created !== ALREADY_ASSIGNED) return created.id;
        // Graph filters a principal's assignments by resource, not by role.
        const collection = principal.kind === 'app' ? 'servicePrincipals' : 'users';
        const held = (await this.#graph('GET', `/v1.0/${collection}/${encodeURIComponent(principal.id)}/appRoleAssignments?$filter=resourceId eq ${this.opts.servicePrincipalId}`)) as { value: { id: string; appRoleId: string }[] };
        const existing = held.value.find((a) => a.appRoleId === appRoleId);
        // Graph said it exists but does not list it yet (replication): the step is retried.
        if (!existing) throw new Unavailable(`Microsoft Graph does not list the ${role} assignment it says exists yet`);
        return existing.id;
    }

    async addUser(orgId: string, user: { email: string; name?: string; roles: string[] }, by: string): Promise<DirectoryEntry> {
        const invitation = (await this.#graph('POST', '/v1.0/invitations', {
            invitedUserEmailAddress: user.email,
            invitedUserDisplayName: user.name ?? user.email,
            inviteRedirectUrl: this.opts.inviteRedirectUrl,
            sendInvitationMessage: true,
        })) as { invitedUser: { id: string } };
        const userId = invitation.invitedUser.id;
        const assignments: string[] = [];
        for (const role of [...new Set(user.roles)].sort()) assignments.push(await this.#assign({ id: userId, kind: 'user' }, role));
        const entry: GraphEntry = { ...userEntry(userId, orgId, user, by), assignments };
        return this.store.register(entry);
    }

    async removeUser(orgId: string, userId: string): Promise<boolean> {
        const entry = (await this.store.resolve(userId)) as GraphEntry | undefined;
        if (!entry || entry.orgId !== orgId) return false;
        for (const assignment of entry.assignments ?? []) {
            await this.#graph('DELETE', `/v1.0/servicePrincipals/${this.opts.servicePrincipalId}/appRoleAssignedTo/${assignment}`, undefined, [404]);
        }
        return this.store.removeUser(orgId, userId);
    }

    /** A Graph call; a `tolerated` status answers undefined, an error `accepted` recognises answers ALREADY_ASSIGNED. */
    async #graph(method: string, path: string, body?: unknown, tolerated: number[] = [], accepted?: (status: number, error: GraphError) => boolean): Promise<unknown> {
        const token = await this.opts.credential.getToken('https://graph.microsoft.com/.default');
        if (!token) throw new Unavailable('No token for Microsoft Graph');
        let res: Response;
        try {
            res = await fetch(`${this.opts.graphUrl.replace(/\/$/, '')}${path}`, {
                method,
                headers: { authorization: `Bearer ${token.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
                body: body === undefined ? undefined : JSON.stringify(body),
                signal: AbortSignal.timeout(15_000),
            });
        } catch (err) {
            if (isUnreachable(err)) throw new Unavailable('Microsoft Graph is unreachable', { cause: err });
            throw new Upstream('The call to Microsoft Graph failed', { cause: err });
        }
        if (tolerated.includes(res.status)) return undefined;
        if (res.status === 429 || res.status >= 500) throw new Unavailable(`Microsoft Graph answered ${res.status}`);
        if (!res.ok && accepted) {
            const error = ((await res.json().catch(() => undefined)) as { error?: GraphError } | undefined)?.error ?? {};
            if (accepted(res.status, error)) return ALREADY_ASSIGNED;
        }
        if (!res.ok) throw new Upstream(`Microsoft Graph refused ${method} ${path.split('/').slice(0, 3).join('/')} (${res.status})`);
        return res.status === 204 ? undefined : res.json();
    }
}
