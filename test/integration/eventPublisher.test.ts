import { ServiceBusClient } from '@azure/service-bus';
import { rmSync } from 'node:fs';
import pino from 'pino';
import { LocalServiceBus } from '../../devhost/servicebus/broker';
import { Invalid } from '../../shared/errors';
import type { EventEnvelope } from '../../shared/events/events';
import { ServiceBusEventPublisher } from '../../shared/events/serviceBusPublisher';
import { tempDir } from '../harness/devhost';

/** Events on the topic, through the real SDK and the local broker, reach each member's filtered subscription once. */
describe('event publisher on Service Bus', () => {
    const dir = tempDir();
    const broker = new LocalServiceBus({
        dir,
        logger: pino({ level: 'silent' }),
        entities: {
            queues: [],
            topics: [
                {
                    name: 'flexchange-events',
                    duplicateDetectionWindowSeconds: 600,
                    subscriptions: [
                        { name: 'member-acme', rules: [{ name: 'org', correlation: { properties: { orgId: 'acme' } } }] },
                        { name: 'member-globex', rules: [{ name: 'org', correlation: { properties: { orgId: 'globex' } } }] },
                        { name: 'member-initech', rules: [{ name: 'org', correlation: { properties: { orgId: 'initech' } } }] },
                    ],
                },
            ],
        },
    });
    let client: ServiceBusClient;

    beforeAll(async () => {
        await broker.start(0);
        client = new ServiceBusClient(broker.connectionString);
    });
    afterAll(async () => {
        await client?.close();
        await broker.stop();
        rmSync(dir, { recursive: true, force: true });
    });

    const event = (id: string): EventEnvelope => ({
        id,
        type: 'proposal.created',
        occurredAt: '2026-11-24T10:00:00.000Z',
        orgIds: ['acme', 'globex'],
        subject: 'proposals/p-1',
        data: { proposalId: 'p-1' },
    });
    const drain = async (sub: string) => {
        const receiver = client.createReceiver('flexchange-events', sub, { receiveMode: 'receiveAndDelete' });
        const got = await receiver.receiveMessages(10, { maxWaitTimeInMs: 1000 });
        await receiver.close();
        return got;
    };

    it('sends one message per organisation concerned, with type and orgId properties, once even if published twice', async () => {
        const publisher = new ServiceBusEventPublisher(client, 'flexchange-events');
        await publisher.publish(event('evt-1'));
        await publisher.publish(event('evt-1'));
        await publisher.close();
        const acme = await drain('member-acme');
        const globex = await drain('member-globex');
        const initech = await drain('member-initech');
        expect(acme).toHaveLength(1);
        expect(globex).toHaveLength(1);
        expect(initech).toHaveLength(0);
        expect(acme[0].body).toEqual(event('evt-1'));
        expect(acme[0].applicationProperties).toEqual({ type: 'proposal.created', orgId: 'acme' });
        expect(acme[0].messageId).toBe('evt-1:acme');
        expect(acme[0].subject).toBe('proposal.created');
    });

    it('refuses an envelope that does not follow the contract', async () => {
        const publisher = new ServiceBusEventPublisher(client, 'flexchange-events');
        await expect(publisher.publish({ ...event('evt-2'), type: 'proposal.teleported' as never })).rejects.toBeInstanceOf(Invalid);
        await expect(publisher.publish({ ...event('evt-3'), orgIds: [] })).rejects.toBeInstanceOf(Invalid);
        await publisher.close();
    });
});
