import type { AuditRecord } from '../../shared/audit/auditTrail';
import type { DirectoryEntry } from '../../shared/directory/directory';
import { addOrgClient, addOrgUser, removeOrgClient, removeOrgUser } from '../../shared/directory/orgUsers';
import { Conflict, Invalid, NotFound } from '../../shared/errors';
import { backUpKeysNow, restoreKeys } from '../../shared/keystore/backupActions';
import type { BackupSummary, RestoreReport } from '../../shared/keystore/keystoreBackups';
import { deliveriesOfWebhook, registerWebhook, removeWebhook } from '../../shared/webhooks/orgWebhooks';
import type { Delivery, Webhook } from '../../shared/webhooks/webhooks';

const actor = { oid: 'oid-admin', orgId: 'acme', appOnly: false };

/** The audit trail in memory. */
function auditTrail() {
    const records: Omit<AuditRecord, 'id' | 'at'>[] = [];
    return { records, audit: { record: async (r: Omit<AuditRecord, 'id' | 'at'>) => (records.push(r), { ...r, id: `a${records.length}`, at: 'now' }) } };
}

describe('an organisation’s users, changed by its admins', () => {
    const entry: DirectoryEntry = { id: 'u1', orgId: 'acme', kind: 'user', email: 'bo@acme.example', roles: ['Org.Trader'], createdAt: 'now' };

    it('adds a user as the acting admin and records who added whom with which roles', async () => {
        const { records, audit } = auditTrail();
        const added: unknown[] = [];
        const directory = { addUser: async (...args: unknown[]) => (added.push(args), entry), removeUser: async () => true, listUsers: async () => [] };
        expect(await addOrgUser({ directory, audit }, 'acme', { email: 'bo@acme.example', roles: ['Org.Trader'] }, actor)).toBe(entry);
        expect(added).toEqual([['acme', { email: 'bo@acme.example', roles: ['Org.Trader'] }, 'oid-admin']]);
        expect(records).toEqual([{ orgId: 'acme', actor, action: 'user.added', target: 'u1', details: { email: 'bo@acme.example', roles: ['Org.Trader'] } }]);
    });

    it('removes a user and records it; a user the organisation does not have is 404 and records nothing', async () => {
        const { records, audit } = auditTrail();
        const removed: string[] = [];
        const directory = {
            addUser: async () => entry,
            // The directory lists users only: the deployment's identity is never among them.
            listUsers: async (orgId: string) => [entry].filter((e) => e.orgId === orgId),
            removeUser: async (_org: string, id: string) => (removed.push(id), true),
        };
        await removeOrgUser({ directory, audit }, 'acme', 'u1', actor);
        await expect(removeOrgUser({ directory, audit }, 'acme', 'u2', actor)).rejects.toBeInstanceOf(NotFound);
        // Not through the user list: another organisation's user, or the organisation's deployment identity.
        await expect(removeOrgUser({ directory, audit }, 'globex', 'u1', actor)).rejects.toBeInstanceOf(NotFound);
        await expect(removeOrgUser({ directory, audit }, 'acme', 'app-1', actor)).rejects.toBeInstanceOf(NotFound); // acme's deployment identity
        expect(removed).toEqual(['u1']);
        expect(records).toEqual([{ orgId: 'acme', actor, action: 'user.removed', target: 'u1' }]);
    });
});

describe('an organisation’s API clients, changed by its admins', () => {
    /** A directory in memory whose tenant knows `principals` (client id → service principal). */
    function directoryOf(principals: Record<string, { id: string; roles: string[]; managedIdentity?: boolean }>, entries: DirectoryEntry[] = []) {
        const held = new Map(entries.map((e) => [e.id, e]));
        return {
            held,
            directory: {
                clientPrincipal: async (clientId: string) => principals[clientId] as { id: string; roles: string[]; managedIdentity?: boolean } | undefined,
                resolve: async (id: string) => held.get(id),
                register: async (e: DirectoryEntry) => (held.set(e.id, e), e),
                listClients: async (orgId: string) => [...held.values()].filter((e) => e.orgId === orgId && e.clientId),
                removeUser: async (_org: string, id: string) => held.delete(id),
            },
        };
    }

    it('registers an application as the organisation’s client with org roles, records it, and removes it again', async () => {
        const { records, audit } = auditTrail();
        const { held, directory } = directoryOf({ 'bot-1': { id: 'sp-bot-1', roles: [] } });
        const added = await addOrgClient({ directory, audit }, 'acme', { clientId: 'bot-1', roles: ['Org.Trader', 'Org.Admin', 'Org.Trader'] }, actor);
        expect(added).toMatchObject({ id: 'sp-bot-1', orgId: 'acme', kind: 'app', clientId: 'bot-1', name: 'bot-1', roles: ['Org.Admin', 'Org.Trader'], createdBy: 'oid-admin' });
        // Again, with fewer roles: the same entry, updated.
        expect(await addOrgClient({ directory, audit }, 'acme', { clientId: 'bot-1', roles: ['Org.Trader'] }, actor)).toMatchObject({ id: 'sp-bot-1', roles: ['Org.Trader'] });
        await expect(removeOrgClient({ directory, audit }, 'globex', 'bot-1', actor)).rejects.toBeInstanceOf(NotFound);
        await removeOrgClient({ directory, audit }, 'acme', 'bot-1', actor);
        expect(held.size).toBe(0);
        await expect(removeOrgClient({ directory, audit }, 'acme', 'bot-1', actor)).rejects.toBeInstanceOf(NotFound);
        expect(records.map((r) => [r.action, r.target, r.details])).toEqual([
            ['client.added', 'sp-bot-1', { clientId: 'bot-1', roles: ['Org.Admin', 'Org.Trader'] }],
            ['client.added', 'sp-bot-1', { clientId: 'bot-1', roles: ['Org.Trader'] }],
            ['client.removed', 'sp-bot-1', { clientId: 'bot-1' }],
        ]);
    });

    it('refuses an unknown application, another organisation’s client, a deployment’s identity, a managed identity and an operator’s app, recording nothing', async () => {
        const { records, audit } = auditTrail();
        const { held, directory } = directoryOf(
            { theirs: { id: 'sp-theirs', roles: ['Org.Trader'] }, member: { id: 'sp-member', roles: [] }, core: { id: 'sp-core', roles: ['Deployment.Core'] }, ops: { id: 'sp-ops', roles: ['Flexchange.Admin', 'Org.Admin'] }, fresh: { id: 'sp-fresh', roles: [], managedIdentity: true } },
            [
                { id: 'sp-theirs', orgId: 'globex', kind: 'app', clientId: 'theirs', roles: ['Org.Trader'], createdAt: 'now' },
                { id: 'sp-member', orgId: 'acme', kind: 'app', name: 'flexchange-acme', roles: ['Deployment.Member'], createdAt: 'now' },
            ],
        );
        const add = (clientId: string) => addOrgClient({ directory, audit }, 'acme', { clientId, roles: ['Org.Trader'] }, actor);
        await expect(add('nobody')).rejects.toBeInstanceOf(Invalid);
        await expect(add('theirs')).rejects.toThrow(new Conflict('The application is registered with another organisation'));
        await expect(add('member')).rejects.toThrow(/one of the organisation's deployments/);
        await expect(add('core')).rejects.toThrow(/roles an organisation's client may not have \(Deployment.Core\)/);
        await expect(add('ops')).rejects.toThrow(/\(Flexchange.Admin\)/);
        // A managed identity with no role yet (a member's app before onboarding grants it one).
        await expect(add('fresh')).rejects.toThrow(/managed identity/);
        expect(held.has('sp-fresh')).toBe(false);
        expect(held.get('sp-theirs')).toMatchObject({ orgId: 'globex' });
        expect(held.get('sp-member')).toMatchObject({ roles: ['Deployment.Member'] });
        expect(records).toEqual([]);
    });
});

describe('an organisation’s webhooks, changed by its admins', () => {
    const hook: Webhook = { id: 'w1', orgId: 'acme', url: 'https://hooks.acme.example/in', createdAt: 'now', createdBy: 'oid-admin' };

    it('registers a webhook, gives its secret back once, and records the URL', async () => {
        const { records, audit } = auditTrail();
        const webhooks = { register: async (_o: string, _i: unknown, by: string) => ({ webhook: { ...hook, createdBy: by }, secret: 's3cret' }), remove: async () => undefined };
        const out = await registerWebhook({ webhooks, audit }, 'acme', { url: hook.url }, actor);
        expect(out).toEqual({ webhook: hook, secret: 's3cret' });
        expect(records).toEqual([{ orgId: 'acme', actor, action: 'webhook.created', target: 'w1', details: { url: hook.url } }]);
    });

    it('records a removal only once the webhook is gone', async () => {
        const { records, audit } = auditTrail();
        const webhooks = { register: async () => ({ webhook: hook, secret: '' }), remove: async () => undefined };
        const refusing = { ...webhooks, remove: async () => Promise.reject(new NotFound('No such webhook')) };
        await removeWebhook({ webhooks, audit }, 'acme', 'w1', actor);
        await expect(removeWebhook({ webhooks: refusing, audit }, 'acme', 'w9', actor)).rejects.toThrow('No such webhook');
        expect(records).toEqual([{ orgId: 'acme', actor, action: 'webhook.removed', target: 'w1' }]);
    });

    it('lists the deliveries of the organisation’s own webhook only (another’s is 404)', async () => {
        const delivery = { id: 'd1', state: 'delivered' } as unknown as Delivery;
        const asked: string[] = [];
        const webhooks = { list: async (orgId: string) => (orgId === 'acme' ? [hook] : []), deliveriesOf: async (orgId: string, id: string) => (asked.push(`${orgId}/${id}`), [delivery]) };
        expect(await deliveriesOfWebhook(webhooks, 'acme', 'w1')).toEqual([delivery]);
        await expect(deliveriesOfWebhook(webhooks, 'initech', 'w1')).rejects.toThrow('The organisation has no webhook w1');
        await expect(deliveriesOfWebhook(webhooks, 'acme', 'w2')).rejects.toBeInstanceOf(NotFound);
        expect(asked).toEqual(['acme/w1']);
    });
});

describe('keystore backups, asked for by an admin', () => {
    const summary: BackupSummary = { backupId: 'b1', createdAt: 'now', accounts: 3, checksum: 'abc', size: 10 };
    const report = (dryRun: boolean): RestoreReport => ({
        backupId: 'b1',
        dryRun,
        accounts: [
            { address: '0x1', keyName: 'k1', custody: 'keystore', action: dryRun ? 'would-restore' : 'restored', verified: true },
            { address: '0x2', keyName: 'k2', custody: 'keystore', action: 'present', verified: true },
        ],
    });
    const backups = { backup: async () => summary, restore: async (_id: string, dryRun: boolean) => report(dryRun) };

    it('records a backup in the deployment’s organisation, with its account count and checksum', async () => {
        const { records, audit } = auditTrail();
        expect(await backUpKeysNow({ backups, audit, orgId: 'acme' }, actor)).toBe(summary);
        expect(records).toEqual([{ orgId: 'acme', actor, action: 'keystore.backed_up', target: 'b1', details: { accounts: 3, checksum: 'abc' } }]);
    });

    it('records a restore with how many keys it restored, and a dry run not at all', async () => {
        const { records, audit } = auditTrail();
        expect((await restoreKeys({ backups, audit, orgId: 'acme' }, 'b1', true, actor)).dryRun).toBe(true);
        expect(records).toEqual([]);
        await restoreKeys({ backups, audit, orgId: 'acme' }, 'b1', false, actor);
        expect(records).toEqual([{ orgId: 'acme', actor, action: 'keystore.restored', target: 'b1', details: { restored: 1 } }]);
    });
});
