import { ConnectionClaims, covers, entityPath, managementRight, rightsOf, type BusAccessPolicy, type BusGrant } from '../../devhost/servicebus/access';
import { dataGrants, memberSubscriptionPath } from '../../shared/deployment/dataRoles';

const policy = (grants: Record<string, BusGrant[]>): BusAccessPolicy => ({ principal: async () => undefined, grants: (oid) => grants[oid] ?? [] });

describe('Service Bus access (devhost/servicebus/access.ts)', () => {
    it('reads addresses and audiences as entity paths', () => {
        expect(entityPath('sb://localhost:5672/Flexchange-Events/Subscriptions/Member-A')).toBe('flexchange-events/subscriptions/member-a');
        expect(entityPath('amqps://host/queue/$management')).toBe('queue');
        expect(entityPath('sb://localhost:5672/')).toBe('');
        expect(entityPath('topic/Subscriptions/s/$DeadLetterQueue')).toBe('topic/subscriptions/s/$deadletterqueue');
    });

    it('lets a scope reach itself and what is under it, the namespace everything, and nothing beside it', () => {
        expect(covers('', 'anything/at/all')).toBe(true);
        expect(covers('t/subscriptions/a', 't/subscriptions/a/$deadletterqueue')).toBe(true);
        expect(covers('t/subscriptions/a', 't/subscriptions/ab')).toBe(false);
        expect(covers('t', 't/subscriptions/a')).toBe(true);
        expect(covers('t/subscriptions/a', 't')).toBe(false);
    });

    it('gives each role its rights, on its scope only', () => {
        const member = dataGrants({ role: 'member', orgId: 'org-a' }).flatMap((g) => (g.scope === 'service-bus' ? [{ role: g.role, entity: g.entity }] : []));
        expect([...rightsOf(member, entityPath(memberSubscriptionPath('org-a')))]).toEqual(['Listen']);
        expect([...rightsOf(member, entityPath(memberSubscriptionPath('org-b')))]).toEqual([]);
        expect([...rightsOf(member, 'flexchange-events')]).toEqual([]);
        const core = dataGrants({ role: 'core' }).flatMap((g) => (g.scope === 'service-bus' ? [{ role: g.role, entity: g.entity }] : []));
        expect([...rightsOf(core, entityPath(memberSubscriptionPath('org-b')))].sort()).toEqual(['Listen', 'Manage', 'Send']);
        expect([...rightsOf([{ role: 'Azure Service Bus Data Sender', entity: 'work' }], 'work')]).toEqual(['Send']);
    });

    it('maps $management operations to the right Azure asks for', () => {
        expect(managementRight('com.microsoft:schedule-message')).toBe('Send');
        expect(managementRight('com.microsoft:peek-message')).toBe('Listen');
        expect(managementRight('com.microsoft:renew-lock')).toBe('Listen');
        expect(managementRight('com.microsoft:add-rule')).toBe('Manage');
    });

    it('counts only unexpired tokens whose audience reaches the entity; a SAS token has every right', () => {
        const grants = policy({ a: [{ role: 'Azure Service Bus Data Receiver', entity: 't/Subscriptions/a' }] });
        const now = 1_000_000;
        const claims = new ConnectionClaims();
        claims.put('sb://localhost:5672/t/Subscriptions/b', { oid: 'a', expiresAt: now + 60_000 });
        // A token for another audience gives nothing here, even where its principal has a role.
        expect([...claims.rights('t/subscriptions/a', grants, now)]).toEqual([]);
        claims.put('sb://localhost:5672/t/Subscriptions/a', { oid: 'a', expiresAt: now + 60_000 });
        expect([...claims.rights('t/subscriptions/a', grants, now)]).toEqual(['Listen']);
        expect([...claims.rights('t/subscriptions/a', grants, now + 60_000)]).toEqual([]);
        const sas = new ConnectionClaims();
        sas.put('sb://localhost:5672/', { expiresAt: now + 1 });
        expect([...sas.rights('any/entity', grants, now)].sort()).toEqual(['Listen', 'Manage', 'Send']);
        expect(sas.principals()).toEqual(['SAS']);
    });
});
