/** Roles an organisation's admin may give its own users (API.md, "Identity and roles"). */
export const ORG_USER_ROLES = ['Org.Admin', 'Org.Trader'] as const;

/** Who belongs to which organisation: users and deployments (app identities), by Entra object id. */
export interface DirectoryEntry {
    /** The Entra object id of the user or of the app's service principal. */
    id: string;
    orgId: string;
    kind: 'user' | 'app';
    email?: string;
    name?: string;
    roles: string[];
    createdAt: string;
    createdBy?: string;
    /** An organisation's API client (kind `app`): the application (client) id its client-credential tokens are issued to. */
    clientId?: string;
}

/** A user entry of an organisation, as both directory implementations record it. */
export function userEntry(id: string, orgId: string, user: { email: string; name?: string; roles: string[] }, by: string): DirectoryEntry {
    return {
        id,
        orgId,
        kind: 'user',
        email: user.email.toLowerCase(),
        name: user.name,
        roles: [...new Set(user.roles)].sort(),
        createdAt: new Date().toISOString(),
        createdBy: by,
    };
}

/** An API client entry of an organisation: an application acting for it with client credentials (a trading system, the demo). */
export function clientEntry(id: string, orgId: string, client: { clientId: string; name?: string; roles: string[] }, by: string): DirectoryEntry {
    return {
        id,
        orgId,
        kind: 'app',
        clientId: client.clientId,
        name: client.name ?? client.clientId,
        roles: [...new Set(client.roles)].sort(),
        createdAt: new Date().toISOString(),
        createdBy: by,
    };
}

/** The directory port: the caller's organisation comes from here, never from a request. */
export interface Directory {
    /** The principal's entry; `fresh` reads past any cache (before a decision that must see the latest). */
    resolve(objectId: string, opts?: { fresh?: boolean }): Promise<DirectoryEntry | undefined>;
    listUsers(orgId: string): Promise<DirectoryEntry[]>;
    /** Adds (or updates) a user of an organisation. */
    addUser(orgId: string, user: { email: string; name?: string; roles: string[] }, by: string): Promise<DirectoryEntry>;
    removeUser(orgId: string, userId: string): Promise<boolean>;
    /**
     * An application's service principal in the tenant, by its client id: the object id its tokens carry, and the
     * API's app roles Entra ID already grants it (as far as the directory can tell). Undefined when there is none.
     */
    clientPrincipal(clientId: string): Promise<{ id: string; roles: string[]; managedIdentity?: boolean } | undefined>;
    /** The organisation's API clients (entries with a `clientId`). */
    listClients(orgId: string): Promise<DirectoryEntry[]>;
    /** Records a principal with a known object id (a deployment's app, or a user signed in elsewhere). */
    register(entry: DirectoryEntry): Promise<DirectoryEntry>;
    /** The users holding an app role, across organisations (e.g. the approvers, `Flexchange.Approver`). */
    holders(role: string): Promise<{ id: string; email?: string }[]>;
}
