import type { AuditRecord, AuditTrail } from '../audit/auditTrail';
import { Conflict, Invalid, NotFound } from '../errors';
import { clientEntry, ORG_USER_ROLES, type Directory, type DirectoryEntry } from './directory';

interface OrgUserPorts {
    directory: Pick<Directory, 'addUser' | 'removeUser' | 'listUsers'>;
    audit: Pick<AuditTrail, 'record'>;
}

interface OrgClientPorts {
    directory: Pick<Directory, 'clientPrincipal' | 'resolve' | 'register' | 'listClients' | 'removeUser'>;
    audit: Pick<AuditTrail, 'record'>;
}

/** An organisation's admin (or the operator) adds a user with roles: in the directory, then in the audit trail. */
export async function addOrgUser(ports: OrgUserPorts, orgId: string, user: { email: string; name?: string; roles: string[] }, actor: AuditRecord['actor']): Promise<DirectoryEntry> {
    const entry = await ports.directory.addUser(orgId, user, actor.oid);
    await ports.audit.record({ orgId, actor, action: 'user.added', target: entry.id, details: { email: entry.email, roles: entry.roles } });
    return entry;
}

/** Removes a user from the organisation (404 when it has no such user), recorded in the audit trail. */
export async function removeOrgUser(ports: OrgUserPorts, orgId: string, userId: string, actor: AuditRecord['actor']): Promise<void> {
    // Users of this organisation only: a deployment's identity or an API client is not removed through the user list.
    const isUser = (await ports.directory.listUsers(orgId)).some((u) => u.id === userId);
    if (!isUser || !(await ports.directory.removeUser(orgId, userId))) throw new NotFound('No such user in this organisation');
    await ports.audit.record({ orgId, actor, action: 'user.removed', target: userId });
}

/**
 * Registers an application of the tenant as the organisation's API client with org roles: its client-credential
 * tokens then act for the organisation (Entra ID: the roles are assigned to its service principal). Refused when
 * the application belongs to another organisation, is a deployment's identity, or holds roles beyond an
 * organisation's (an operator's or a deployment's app must not become a member's client).
 */
export async function addOrgClient(ports: OrgClientPorts, orgId: string, client: { clientId: string; name?: string; roles: string[] }, actor: AuditRecord['actor']): Promise<DirectoryEntry> {
    const principal = await ports.directory.clientPrincipal(client.clientId);
    if (!principal) throw new Invalid(`There is no application with client id ${client.clientId} in the tenant`, [{ path: 'clientId', message: 'no such application' }]);
    if (principal.managedIdentity) throw new Conflict("The client id is a managed identity's (a deployment's), not an application's");
    const beyond = principal.roles.filter((r) => !(ORG_USER_ROLES as readonly string[]).includes(r));
    if (beyond.length) throw new Conflict(`The application holds roles an organisation's client may not have (${[...new Set(beyond)].sort().join(', ')})`);
    // Read past the look-up cache: a registration made a moment ago on another instance counts.
    const existing = await ports.directory.resolve(principal.id, { fresh: true });
    if (existing && existing.orgId !== orgId) throw new Conflict('The application is registered with another organisation');
    if (existing && !existing.clientId) throw new Conflict("The application is one of the organisation's deployments, not an API client");
    const entry = await ports.directory.register(clientEntry(principal.id, orgId, client, actor.oid));
    await ports.audit.record({ orgId, actor, action: 'client.added', target: entry.id, details: { clientId: client.clientId, roles: entry.roles } });
    return entry;
}

/** Removes an API client from the organisation (its role assignments go with it); 404 when the organisation has no such client. */
export async function removeOrgClient(ports: OrgClientPorts, orgId: string, clientId: string, actor: AuditRecord['actor']): Promise<void> {
    const entry = (await ports.directory.listClients(orgId)).find((e) => e.clientId === clientId);
    if (!entry || !(await ports.directory.removeUser(orgId, entry.id))) throw new NotFound('No such API client in this organisation');
    await ports.audit.record({ orgId, actor, action: 'client.removed', target: entry.id, details: { clientId } });
}
