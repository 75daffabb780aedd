import { ServiceBusAdministrationClient, ServiceBusClient } from '@azure/service-bus';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { ServiceBusAdminServer } from '../../devhost/servicebus/admin';
import { LocalServiceBus } from '../../devhost/servicebus/broker';
import { Invalid } from '../../shared/errors';
import type { EventEnvelope } from '../../shared/events/events';
import { memberSubscriptionName, provisionMemberSubscription, serviceBusAdministrationClient, ServiceBusMemberSubscriptions } from '../../shared/events/memberSubscriptions';
import { ServiceBusEventPublisher } from '../../shared/events/serviceBusPublisher';
import { tempDir } from '../harness/devhost';

/**
 * Member subscriptions provisioned at run time through the real administration
 * client (HTTP/ATOM) against the devhost broker's administration endpoint, then
 * used through the real AMQP client.
 */
describe('member subscriptions', () => {
    const dir = tempDir();
    const log = pino({ level: 'silent' });
    const entities = {
        queues: [],
        topics: [{ name: 'flexchange-events', duplicateDetectionWindowSeconds: 600, subscriptions: [{ name: 'audit' }] }],
    };
    let broker: LocalServiceBus;
    let admin: ServiceBusAdminServer;
    let client: ServiceBusClient;
    let adminClient: ServiceBusAdministrationClient;
    let subs: ServiceBusMemberSubscriptions;

    const start = async () => {
        broker = new LocalServiceBus({ dir, logger: log, entities });
        await broker.start(0);
        admin = new ServiceBusAdminServer(broker, log);
        await admin.start(0);
        client = new ServiceBusClient(broker.connectionString);
        adminClient = serviceBusAdministrationClient({ connectionString: broker.connectionString, adminUrl: admin.url });
        subs = new ServiceBusMemberSubscriptions(adminClient, 'flexchange-events', { maxDeliveryCount: 5, lockDuration: 'PT30S' });
    };
    const stop = async () => {
        await client.close();
        await admin.stop();
        await broker.stop();
    };

    beforeAll(start);
    afterAll(async () => {
        await stop();
        rmSync(dir, { recursive: true, force: true });
    });

    const event = (id: string, orgIds: string[]): EventEnvelope => ({
        id,
        type: 'proposal.created',
        occurredAt: '2026-11-24T10:00:00.000Z',
        orgIds,
        subject: `proposals/${id}`,
        data: {},
    });
    const drain = async (sub: string) => {
        const receiver = client.createReceiver('flexchange-events', sub, { receiveMode: 'receiveAndDelete' });
        const got = await receiver.receiveMessages(20, { maxWaitTimeInMs: 800 });
        await receiver.close();
        return got.map((m) => (m.body as EventEnvelope).id).sort();
    };

    it('creates a subscription that receives exactly its organisation’s events, and a second call changes nothing', async () => {
        const first = await subs.ensure('acme');
        expect(first).toEqual({ topic: 'flexchange-events', subscription: 'member-acme', rule: 'org', orgId: 'acme', changes: ['created'] });
        await expect(subs.ensure('acme')).resolves.toMatchObject({ changes: [] });
        await subs.ensure('globex');

        const props = await adminClient.getSubscription('flexchange-events', 'member-acme');
        expect(props).toMatchObject({ topicName: 'flexchange-events', subscriptionName: 'member-acme', maxDeliveryCount: 5, lockDuration: 'PT30S', status: 'Active' });
        const rules = [];
        for await (const r of adminClient.listRules('flexchange-events', 'member-acme')) rules.push(r);
        expect(rules).toEqual([{ name: 'org', filter: expect.objectContaining({ applicationProperties: { orgId: 'acme' } }), action: expect.anything() }]);

        const publisher = new ServiceBusEventPublisher(client, 'flexchange-events');
        await publisher.publish(event('e1', ['acme']));
        await publisher.publish(event('e2', ['globex']));
        await publisher.publish(event('e3', ['acme', 'globex', 'initech']));
        await publisher.close();
        expect(await drain('member-acme')).toEqual(['e1', 'e3']);
        expect(await drain('member-globex')).toEqual(['e2', 'e3']);
        // The declared subscription keeps Azure's $Default rule: every message, once per organisation.
        expect(await drain('audit')).toEqual(['e1', 'e2', 'e3', 'e3', 'e3']);
    });

    it('repairs a subscription created with the wrong rules (e.g. $Default by a template)', async () => {
        await adminClient.createSubscription('flexchange-events', 'member-initech');
        await adminClient.createRule('flexchange-events', 'member-initech', 'stale', { sqlExpression: "orgId = 'someone-else'" });
        const repaired = await subs.ensure('initech');
        expect(repaired.changes.sort()).toEqual(['rule-added', 'rule-removed', 'rule-removed']);
        const names = [];
        for await (const r of adminClient.listRules('flexchange-events', 'member-initech')) names.push(r.name);
        expect(names).toEqual(['org']);
        const publisher = new ServiceBusEventPublisher(client, 'flexchange-events');
        await publisher.publish(event('e4', ['initech']));
        await publisher.publish(event('e5', ['acme']));
        await publisher.close();
        expect(await drain('member-initech')).toEqual(['e4']);
        await drain('member-acme');
        await drain('audit');
    });

    it('is the activity onboarding calls: input checked, result as the adapter gives it', async () => {
        await expect(provisionMemberSubscription({ orgId: 'hooli' }, subs)).resolves.toMatchObject({ subscription: 'member-hooli', changes: ['created'] });
        await expect(provisionMemberSubscription({ orgId: 'hooli' }, subs)).resolves.toMatchObject({ changes: [] });
        await expect(provisionMemberSubscription({ org: 'hooli' }, subs)).rejects.toBeInstanceOf(Invalid);
        await expect(provisionMemberSubscription(undefined, subs)).rejects.toBeInstanceOf(Invalid);
    });

    it('runs concurrently without error or a second subscription (at-least-once activities)', async () => {
        const results = await Promise.all([subs.ensure('umbrella'), subs.ensure('umbrella'), subs.ensure('umbrella')]);
        expect(results.filter((r) => r.changes.includes('created'))).toHaveLength(1);
        const names = [];
        for await (const s of adminClient.listSubscriptions('flexchange-events').byPage()) names.push(...s.map((x) => x.subscriptionName));
        expect(names.filter((n) => n === 'member-umbrella')).toHaveLength(1);
    }, 20_000);

    it('keeps run-time subscriptions and their messages across a broker restart, and removes them on request', async () => {
        const publisher = new ServiceBusEventPublisher(client, 'flexchange-events');
        await publisher.publish(event('e6', ['acme']));
        await publisher.close();
        await stop();
        const changes = JSON.parse(readFileSync(path.join(dir, '$admin-changes.json'), 'utf8')) as { subscriptions: { topic: string }[] };
        expect(changes.subscriptions.length).toBeGreaterThanOrEqual(4);
        await start();
        await expect(subs.ensure('acme')).resolves.toMatchObject({ changes: [] });
        expect(await drain('member-acme')).toEqual(['e6']);

        await expect(subs.remove('acme')).resolves.toBe(true);
        await expect(subs.remove('acme')).resolves.toBe(false);
        await expect(adminClient.subscriptionExists('flexchange-events', 'member-acme')).resolves.toBe(false);
        await stop();
        await start();
        await expect(adminClient.subscriptionExists('flexchange-events', 'member-acme')).resolves.toBe(false);
        await expect(adminClient.subscriptionExists('flexchange-events', 'member-globex')).resolves.toBe(true);
    }, 30_000);

    it('refuses what it cannot honour with the status Azure uses, and bad organisation ids before any call', async () => {
        await expect(adminClient.createSubscription('flexchange-events', 'member-globex')).rejects.toMatchObject({ statusCode: 409, code: 'MessageEntityAlreadyExistsError' });
        await expect(adminClient.createSubscription('no-such-topic', 'x')).rejects.toMatchObject({ statusCode: 404 });
        await expect(adminClient.createSubscription('flexchange-events', 'expiring', { deadLetteringOnMessageExpiration: true })).rejects.toMatchObject({ statusCode: 400 });
        // Sessions are served: the subscription is created and reported as requiring them.
        await expect(adminClient.createSubscription('flexchange-events', 'sessions', { requiresSession: true })).resolves.toMatchObject({ requiresSession: true });
        await expect(adminClient.getSubscription('flexchange-events', 'sessions')).resolves.toMatchObject({ requiresSession: true });
        await adminClient.deleteSubscription('flexchange-events', 'sessions');
        await expect(adminClient.createRule('flexchange-events', 'member-globex', 'bad', { sqlExpression: 'LIKE LIKE' })).rejects.toMatchObject({ statusCode: 400 });
        await expect(adminClient.getSubscription('flexchange-events', 'nobody')).rejects.toMatchObject({ statusCode: 404 });
        expect(() => memberSubscriptionName('no spaces please')).toThrow(Invalid);
        await expect(subs.ensure('../etc')).rejects.toBeInstanceOf(Invalid);
        // Plain HTTP is only for the devhost broker on loopback.
        expect(() => serviceBusAdministrationClient({ connectionString: broker.connectionString, adminUrl: 'http://example.com:5300' })).toThrow(/loopback/);
        expect(() => serviceBusAdministrationClient({ connectionString: 'Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=a;SharedAccessKey=b', adminUrl: admin.url })).toThrow(/UseDevelopmentEmulator/);
    });
});
