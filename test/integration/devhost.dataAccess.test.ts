import { ServiceBusClient } from '@azure/service-bus';
import { fixture, flexchangeProfile, removeDir, RunningDevhost, startDevhost } from '../harness/devhost';

/**
 * Each instance reaches its vault and the Service Bus with its own managed identity, and the devhost's
 * vault and broker grant it exactly what the deployment's table (shared/deployment/dataRoles.ts) grants:
 * a member reads and writes its own vault and receives from its own subscription; another member's vault
 * is 403 and its subscription is unauthorized on the link; the core owns the namespace. The app is
 * test/fixtures/access-app, with the SDKs and DefaultAzureCredential unmodified.
 */
describe('devhost data access by managed identity', () => {
    let host: RunningDevhost;
    let services: Record<string, string>;

    beforeAll(async () => {
        const member = (org: string) => ['--app', fixture('access-app'), '--name', `member-${org}`, '--set', 'FLEXCHANGE_ROLE=member', '--set', `FLEXCHANGE_ORG_ID=${org}`, '--set', `COSMOS_DATABASE=member-${org}`];
        host = await startDevhost([
            '--profile', flexchangeProfile,
            '--servicebus-entities', `${fixture('access-app')}/entities.json`,
            '--app', fixture('access-app'), '--name', 'core', '--set', 'FLEXCHANGE_ROLE=core',
            ...member('org-a'),
            ...member('org-b'),
        ], { storage: true });
        services = (await (await fetch(`${host.consoleUrl}/dev/services`)).json()).services;
    });
    afterAll(async () => {
        await host?.stop();
        removeDir(host?.stateDir);
    });

    const call = async (app: string, method: string, route: string) => {
        const res = await fetch(`${host.origin(app)}/api/${route}`, { method });
        expect(res.status).toBe(200);
        return (await res.json()) as { ok: boolean; statusCode?: number; code?: string; message?: string; value?: string; body?: unknown; activeMessageCount?: number } & Record<string, unknown>;
    };

    it('gives instances the namespace and their identity, no connection string', async () => {
        const settings = await call('member-org-a', 'GET', 'settings');
        expect(settings.FLEXCHANGE_SERVICEBUS_NAMESPACE).toMatch(/^localhost:\d+$/);
        expect(settings.AzureWebJobsServiceBus__fullyQualifiedNamespace).toBe(settings.FLEXCHANGE_SERVICEBUS_NAMESPACE);
        expect(settings.AzureWebJobsServiceBus).toBeNull();
        expect(settings.FLEXCHANGE_SERVICEBUS_CONNECTION).toBeNull();
        // The devhost says at start-up what checks identities and what cannot.
        const statement = host.logs().find((l) => l.event === 'devhost.identity');
        expect(statement).toMatchObject({
            checked: [expect.stringMatching(/^Key Vault/), expect.stringMatching(/^Service Bus .*roles from the profile/), expect.stringMatching(/^Cosmos DB \(https:\/\/localhost:\d+: tokens, and each instance's own database only\)/)],
        });
        expect(statement!.keyed).toEqual([expect.stringMatching(/^storage \(Azurite/), expect.stringMatching(/^mail \(SMTP/)]);
    });

    it('lets a member use its own vault and refuses it another member\'s (403 ForbiddenByRbac)', async () => {
        const own = await call('member-org-a', 'POST', 'vault');
        expect(own).toMatchObject({ ok: true, value: 'written by member-org-a' });
        expect(await call('member-org-b', 'POST', 'vault')).toMatchObject({ ok: true, value: 'written by member-org-b' });
        const other = await call('member-org-a', 'POST', `vault?url=${encodeURIComponent(services['vault:member-org-b'])}`);
        expect(other).toMatchObject({ ok: false, statusCode: 403, code: 'Forbidden' });
        expect(other.message).toMatch(/ForbiddenByRbac|not authorized/);
        // The refused write changed nothing: org-b's secret is still its own.
        expect(await call('member-org-b', 'POST', 'vault')).toMatchObject({ ok: true, value: 'written by member-org-b' });
    });

    it('lets a member use its own database with its identity (no key) and refuses it another member\'s (403)', async () => {
        expect(await call('member-org-a', 'POST', 'cosmos')).toMatchObject({ ok: true, by: 'member-org-a', key: null });
        expect(await call('member-org-b', 'POST', 'cosmos')).toMatchObject({ ok: true, by: 'member-org-b' });
        const other = await call('member-org-a', 'POST', 'cosmos?database=member-org-b');
        expect(other).toMatchObject({ ok: false, statusCode: 403 });
        expect(other.message).toMatch(/does not have the required RBAC permissions on database 'member-org-b'/);
        // Nothing was written there: org-b's item is still its own.
        expect(await call('member-org-b', 'POST', 'cosmos?read=1')).toMatchObject({ ok: true, by: 'member-org-b' });
    });

    it('lets a member receive from its own subscription and refuses it another\'s, and sending, on the link', async () => {
        // The devhost's plumbing publishes with the namespace key (every right), as the core would with its identity.
        const publisher = new ServiceBusClient(services.busConnection);
        try {
            await publisher.createSender('flexchange-events').sendMessages({ body: 'for every member' });
        } finally {
            await publisher.close();
        }
        const refused = await call('member-org-a', 'POST', 'receive?subscription=member-org-b');
        expect(refused).toMatchObject({ ok: false, code: 'UnauthorizedAccess' });
        expect(refused.message).toMatch(/'Listen' claim\(s\) are required.*flexchange-events\/subscriptions\/member-org-b/);
        expect(await call('member-org-a', 'POST', 'receive?subscription=member-org-a')).toMatchObject({ ok: true, body: 'for every member' });
        // org-b's copy was not taken by org-a's attempt.
        expect(await call('member-org-b', 'POST', 'receive?subscription=member-org-b')).toMatchObject({ ok: true, body: 'for every member' });
        const send = await call('member-org-a', 'POST', 'send');
        expect(send).toMatchObject({ ok: false, code: 'UnauthorizedAccess' });
        expect(send.message).toMatch(/'Send' claim\(s\) are required/);
    });

    it('lets the core (Data Owner) send and manage, and refuses a member the administration API (403)', async () => {
        expect(await call('core', 'POST', 'send')).toMatchObject({ ok: true });
        expect(await call('core', 'GET', 'admin?subscription=member-org-a')).toMatchObject({ ok: true, activeMessageCount: 1 });
        const member = await call('member-org-a', 'GET', 'admin?subscription=member-org-a');
        expect(member).toMatchObject({ ok: false, statusCode: 403 });
        expect(member.message).toMatch(/'Manage' claim/);
    });

    it('refuses a token the local issuer did not sign on $cbs', async () => {
        const forged = await call('member-org-a', 'POST', 'receive?subscription=member-org-a&credential=forged');
        expect(forged).toMatchObject({ ok: false, code: 'UnauthorizedAccess' });
        expect(host.logs().some((l) => l.msg === 'service bus: token refused on $cbs')).toBe(true);
    });
});
