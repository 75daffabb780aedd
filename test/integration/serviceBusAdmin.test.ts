import { ServiceBusAdministrationClient, ServiceBusClient } from '@azure/service-bus';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import pino from 'pino';
import { LocalServiceBus, type EntitiesConfig } from '../../devhost/servicebus/broker';
import { ServiceBusAdminServer } from '../../devhost/servicebus/admin';
import { devCertificate, type DevCertificate } from '../../devhost/services/devCertificate';
import { removeDir, tempDir } from '../harness/devhost';

// The administration client built from the broker's connection string, unmodified: it goes to
// https://127.0.0.1:<broker port>, where the broker hands TLS connections to the administration API.
// The only addition is trusting the devhost's local CA (what NODE_EXTRA_CA_CERTS does for a script).

const logger = pino({ level: process.env.SB_TEST_LOG ?? 'silent' });
const ENTITIES: EntitiesConfig = { queues: [{ name: 'declared' }], topics: [{ name: 'declared-topic', subscriptions: [{ name: 'all' }] }] };

let dir: string;
let cert: DevCertificate;
let bus: LocalServiceBus;
let admin: ServiceBusAdminServer;

async function start(): Promise<void> {
    bus = new LocalServiceBus({ dir: path.join(dir, 'bus'), entities: ENTITIES, logger });
    await bus.start(0);
    admin = new ServiceBusAdminServer(bus, logger);
    await admin.start(0);
    bus.serveTls(cert, (stream) => admin.accept(stream));
}

async function stop(): Promise<void> {
    await admin.stop();
    await bus.stop();
}

function adminClient(): ServiceBusAdministrationClient {
    return new ServiceBusAdministrationClient(bus.connectionString, { tlsOptions: { ca: cert.ca }, retryOptions: { maxRetries: 0 } });
}

beforeAll(async () => {
    dir = tempDir('flexchange-sb-admin-');
    cert = devCertificate(path.join(dir, 'tls'));
    await start();
});

afterAll(async () => {
    await stop();
    removeDir(dir);
});

test('the local CA certificate is made once and kept; its key is never written', () => {
    expect(devCertificate(path.join(dir, 'tls')).cert).toBe(cert.cert);
    const files = ['ca.pem', 'server.pem', 'server-key.pem'].map((f) => readFileSync(path.join(dir, 'tls', f), 'utf8'));
    expect(files[0]).toBe(cert.ca);
    // One private key on disk: the server's. The CA signed it and was dropped.
    expect(files.filter((f) => f.includes('PRIVATE KEY'))).toHaveLength(1);
});

test('queues: create, get, update, runtime properties, list with paging, delete, over https on the broker port', async () => {
    const client = adminClient();
    const created = await client.createQueue('work-items', { maxDeliveryCount: 5, lockDuration: 'PT30S', requiresDuplicateDetection: true, duplicateDetectionHistoryTimeWindow: 'PT2M' });
    expect(created).toMatchObject({ name: 'work-items', maxDeliveryCount: 5, lockDuration: 'PT30S', requiresDuplicateDetection: true, duplicateDetectionHistoryTimeWindow: 'PT2M', requiresSession: false });
    await expect(client.createQueue('work-items')).rejects.toMatchObject({ statusCode: 409, code: 'MessageEntityAlreadyExistsError' });

    const got = await client.getQueue('work-items');
    got.maxDeliveryCount = 12;
    const updated = await client.updateQueue(got);
    expect(updated.maxDeliveryCount).toBe(12);
    expect(updated.lockDuration).toBe('PT30S');

    // The queue is live on AMQP at once, and the settings apply (duplicate detection drops the second send).
    const sb = new ServiceBusClient(bus.connectionString);
    const sender = sb.createSender('work-items');
    await sender.sendMessages([{ body: 1, messageId: 'a' }, { body: 2, messageId: 'b' }]);
    await sender.sendMessages({ body: 1, messageId: 'a' });
    await sender.close();
    const runtime = await client.getQueueRuntimeProperties('work-items');
    expect(runtime).toMatchObject({ name: 'work-items', totalMessageCount: 2, activeMessageCount: 2, deadLetterMessageCount: 0 });

    for (const n of [1, 2, 3, 4]) await client.createQueue(`page-${n}`);
    const names: string[] = [];
    let pages = 0;
    for await (const page of client.listQueues().byPage({ maxPageSize: 2 })) {
        pages++;
        names.push(...page.map((q) => q.name));
    }
    expect(names).toEqual(['declared', 'work-items', 'page-1', 'page-2', 'page-3', 'page-4']);
    expect(pages).toBe(3);
    const first = await client.listQueues().byPage({ maxPageSize: 2 }).next();
    const rest = await client.listQueues().byPage({ maxPageSize: 10, continuationToken: first.value.continuationToken }).next();
    expect(rest.value.map((q: { name: string }) => q.name)).toEqual(['page-1', 'page-2', 'page-3', 'page-4']);

    expect((await client.getNamespaceProperties()).name).toBe('flexchange-local');

    await client.deleteQueue('work-items');
    await expect(client.queueExists('work-items')).resolves.toBe(false);
    await expect(client.getQueue('work-items')).rejects.toMatchObject({ statusCode: 404, code: 'MessageEntityNotFoundError' });
    const gone = sb.createSender('work-items');
    await expect(gone.sendMessages({ body: 3 })).rejects.toThrow(/could not be found/);
    await sb.close();
    for (const n of [1, 2, 3, 4]) await client.deleteQueue(`page-${n}`);
});

test('topics, subscriptions and rules: create, update (keeping rules), runtime properties, delete', async () => {
    const client = adminClient();
    await client.createTopic('deals', { defaultMessageTimeToLive: 'PT1H' });
    await expect(client.createQueue('deals')).rejects.toMatchObject({ statusCode: 409 });
    await client.createSubscription('deals', 'per-deal', { requiresSession: true, maxDeliveryCount: 3 });
    await client.createSubscription('deals', 'large', { defaultRuleOptions: { name: 'big', filter: { sqlExpression: 'amount > 100' } } });

    const sub = await client.getSubscription('deals', 'large');
    sub.maxDeliveryCount = 7;
    expect((await client.updateSubscription(sub)).maxDeliveryCount).toBe(7);
    const rule = await client.getRule('deals', 'large', 'big');
    expect(rule.filter).toMatchObject({ sqlExpression: 'amount > 100' });
    rule.filter = { sqlExpression: 'amount > 1000' };
    await client.updateRule('deals', 'large', rule);
    expect((await client.getRule('deals', 'large', 'big')).filter).toMatchObject({ sqlExpression: 'amount > 1000' });

    const sb = new ServiceBusClient(bus.connectionString);
    const sender = sb.createSender('deals');
    await sender.sendMessages([
        { body: 'small', sessionId: 'd1', applicationProperties: { amount: 500 } },
        { body: 'big', sessionId: 'd2', applicationProperties: { amount: 5000 } },
    ]);
    await sender.close();
    expect((await client.getSubscriptionRuntimeProperties('deals', 'large')).activeMessageCount).toBe(1);
    expect((await client.getSubscriptionRuntimeProperties('deals', 'per-deal')).activeMessageCount).toBe(2);
    expect((await client.getTopicRuntimeProperties('deals')).subscriptionCount).toBe(2);

    const topic = await client.getTopic('deals');
    expect(topic.defaultMessageTimeToLive).toBe('PT1H');
    topic.defaultMessageTimeToLive = 'PT2H';
    expect((await client.updateTopic(topic)).defaultMessageTimeToLive).toBe('PT2H');
    const names: string[] = [];
    for await (const t of client.listTopics()) names.push(t.name);
    expect(names).toEqual(['declared-topic', 'deals']);

    // Sessions are fixed at creation, as in Azure.
    const perDeal = await client.getSubscription('deals', 'per-deal');
    await expect(client.updateSubscription({ ...perDeal, requiresSession: false })).rejects.toMatchObject({ statusCode: 400 });

    await client.deleteTopic('deals');
    await expect(client.topicExists('deals')).resolves.toBe(false);
    await expect(client.subscriptionExists('deals', 'large')).resolves.toBe(false);
    await sb.close();
});

test('changes made through the API outlive a restart, deletions of declared entities too', async () => {
    const client = adminClient();
    await client.createQueue('kept', { requiresSession: true });
    await client.deleteQueue('declared');
    await client.deleteSubscription('declared-topic', 'all');
    await stop();
    await start();
    const after = adminClient();
    await expect(after.getQueue('kept')).resolves.toMatchObject({ requiresSession: true });
    await expect(after.queueExists('declared')).resolves.toBe(false);
    await expect(after.subscriptionExists('declared-topic', 'all')).resolves.toBe(false);
    // A queue can be made again under a deleted name.
    await after.createQueue('declared');
    await expect(after.queueExists('declared')).resolves.toBe(true);
});

test('TLS is checked: without the local CA the client refuses the certificate; AMQP shares the port', async () => {
    const untrusting = new ServiceBusAdministrationClient(bus.connectionString, { retryOptions: { maxRetries: 0 } });
    await expect(untrusting.getQueue('kept')).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
    // The same port speaks https with the CA trusted...
    const status = await new Promise<number>((resolve, reject) => {
        https.get({ host: '127.0.0.1', port: bus.port, path: '/$namespaceinfo', ca: cert.ca, headers: { authorization: 'SharedAccessSignature sr=x&sig=y&se=1&skn=k' } }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
        }).on('error', reject);
    });
    expect(status).toBe(200);
    // ...and AMQP.
    const sb = new ServiceBusClient(bus.connectionString);
    const sender = sb.createSender('kept');
    await sender.sendMessages({ body: 'still amqp', sessionId: 's' });
    await sender.close();
    const receiver = await sb.acceptSession('kept', 's');
    expect((await receiver.receiveMessages(1, { maxWaitTimeInMs: 2000 })).map((m) => m.body)).toEqual(['still amqp']);
    await receiver.close();
    await sb.close();
});

test('the rule manager changes a subscription\'s rules over AMQP, and routing follows at once', async () => {
    const client = adminClient();
    await client.createTopic('ruled');
    await client.createSubscription('ruled', 'picky');
    const sb = new ServiceBusClient(bus.connectionString);
    const rules = sb.createRuleManager('ruled', 'picky');
    expect((await rules.listRules().next()).value).toMatchObject({ name: '$Default', filter: { sqlExpression: '1=1' } });
    await rules.deleteRule('$Default');
    await rules.createRule('red', { sqlExpression: "color = 'red'" });
    await rules.createRule('order', { correlationId: 'c-1', applicationProperties: { kind: 'order' } });
    await expect(rules.createRule('red', { sqlExpression: '1=1' })).rejects.toThrow(/already exists/);
    await expect(rules.createRule('act', { sqlExpression: '1=1' }, { sqlExpression: 'SET x = 1 + 2' })).rejects.toThrow(/expressions are not supported/);
    const listed = [];
    for await (const r of rules.listRules()) listed.push(r);
    expect(listed).toEqual([
        { name: 'red', filter: { sqlExpression: "color = 'red'" }, action: {} },
        expect.objectContaining({ name: 'order', filter: expect.objectContaining({ correlationId: 'c-1', applicationProperties: { kind: 'order' } }) }),
    ]);
    // The administration API sees the same rules.
    expect((await client.getRule('ruled', 'picky', 'order')).filter).toMatchObject({ correlationId: 'c-1' });

    const sender = sb.createSender('ruled');
    await sender.sendMessages([
        { body: 'red', applicationProperties: { color: 'red' } },
        { body: 'blue', applicationProperties: { color: 'blue' } },
        { body: 'order', correlationId: 'c-1', applicationProperties: { kind: 'order' } },
    ]);
    await sender.close();
    const receiver = sb.createReceiver('ruled', 'picky', { receiveMode: 'receiveAndDelete' });
    const got = [];
    while (got.length < 2) got.push(...(await receiver.receiveMessages(5, { maxWaitTimeInMs: 1000 })));
    expect(got.map((m) => m.body)).toEqual(['red', 'order']);
    await receiver.close();
    await sb.close();
    await client.deleteTopic('ruled');
});

test('a rule with an action gives its own copy, changed by the action and named in RuleName; correlation dates match', async () => {
    const client = adminClient();
    await client.createTopic('painted');
    await client.createSubscription('painted', 'blue', { defaultRuleOptions: { name: 'BlueRule', filter: { sqlExpression: "Color = 'Blue'" }, action: { sqlExpression: "SET Color = 'BlueProcessed'; SET Seen = Color; REMOVE Secret" } } });
    // A plain rule too: a message that matches both lands twice (once as sent, once as the action made it).
    await client.createRule('painted', 'blue', 'Everything', { sqlExpression: '1=1' });
    const sb = new ServiceBusClient(bus.connectionString);
    const rules = sb.createRuleManager('painted', 'blue');
    await rules.createRule('Millennium', { applicationProperties: { since: new Date('2000-01-01T00:00:00Z') } }, { sqlExpression: "SET Era = 'new'" });
    const listed: { name: string; action: unknown }[] = [];
    for await (const r of rules.listRules()) listed.push({ name: r.name, action: r.action });
    expect(listed).toEqual([
        { name: 'BlueRule', action: { sqlExpression: "SET Color = 'BlueProcessed'; SET Seen = Color; REMOVE Secret" } },
        { name: 'Everything', action: {} },
        { name: 'Millennium', action: { sqlExpression: "SET Era = 'new'" } },
    ]);
    expect((await client.getRule('painted', 'blue', 'BlueRule')).action).toEqual({ sqlExpression: "SET Color = 'BlueProcessed'; SET Seen = Color; REMOVE Secret" });
    await expect(client.createRule('painted', 'blue', 'Bad', { sqlExpression: '1=1' }, { sqlExpression: 'SET sys.Label = 1' })).rejects.toMatchObject({ statusCode: 400 });

    const sender = sb.createSender('painted');
    await sender.sendMessages([
        { body: 'blue', applicationProperties: { Color: 'Blue', Secret: 's' } },
        { body: 'dated', applicationProperties: { Color: 'Red', since: new Date('2000-01-01T00:00:00Z') } },
    ]);
    await sender.close();
    const receiver = sb.createReceiver('painted', 'blue', { receiveMode: 'receiveAndDelete' });
    const got: { body: unknown; props: Record<string, unknown> }[] = [];
    while (got.length < 4) for (const m of await receiver.receiveMessages(10, { maxWaitTimeInMs: 1000 })) got.push({ body: m.body, props: m.applicationProperties ?? {} });
    expect(got.map((g) => [g.body, g.props.RuleName ?? null, g.props.Color])).toEqual([
        ['blue', null, 'Blue'],
        ['blue', 'BlueRule', 'BlueProcessed'],
        ['dated', null, 'Red'],
        ['dated', 'Millennium', 'Red'],
    ]);
    expect(got[1].props).toMatchObject({ Seen: 'BlueProcessed' });
    expect(got[1].props).not.toHaveProperty('Secret');
    expect(got[3].props.Era).toBe('new');
    await receiver.close();
    await sb.close();

    // Kept across a restart, dates included.
    await stop();
    await start();
    const after = adminClient();
    expect((await after.getRule('painted', 'blue', 'Millennium')).filter).toMatchObject({ applicationProperties: { since: new Date('2000-01-01T00:00:00Z') } });
    await after.deleteTopic('painted');
});
