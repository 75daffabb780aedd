import type { AuditRecord, AuditTrail } from '../audit/auditTrail';
import { NotFound } from '../errors';
import type { Directory, DirectoryEntry } from './directory';

interface OrgUserPorts {
    directory: Pick<Directory, 'addUser' | 'removeUser'>;
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
    if (!(await ports.directory.removeUser(orgId, userId))) throw new NotFound('No such user in this organisation');
    await ports.audit.record({ orgId, actor, action: 'user.removed', target: userId });
}
