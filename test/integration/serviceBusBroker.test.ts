import { ServiceBusClient, type ServiceBusReceivedMessage, type ServiceBusReceiver } from '@azure/service-bus';
import { appendFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { LocalServiceBus, type EntitiesConfig } from '../../devhost/servicebus/broker';
import { loadEntitiesFile } from '../../devhost/servicebus/entities';
import { removeDir, repoRoot, tempDir, waitFor } from '../harness/devhost';

// Only the public @azure/service-bus API is used against the broker: what passes here is what application code gets.

/**
 * An entity's state as its files hold it: the state file with its epoch's change log replayed over it
 * (a line still being written is skipped, as the broker does at start-up).
 */
function stateOnDisk(dir: string, stem: string): Record<string, unknown> & { messages?: { seq: number; raw: string }[] } {
    const file = path.join(dir, `${stem}.json`);
    const data = (existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {}) as Record<string, unknown>;
    const log = path.join(dir, `${stem}.${Number(data.epoch) || 0}.log`);
    const text = existsSync(log) ? readFileSync(log, 'utf8') : '';
    for (const line of text.split('\n')) {
        let change: { h?: Record<string, unknown>; p?: [string, { seq: number }]; r?: [string, number] };
        try {
            change = JSON.parse(line) as typeof change;
        } catch {
            continue;
        }
        const list = (name: string) => ((data[name] ??= []) as { seq: number }[]);
        if (change.h) Object.assign(data, change.h);
        else if (change.p) data[change.p[0]] = [...list(change.p[0]).filter((m) => m.seq !== change.p![1].seq), change.p[1]];
        else if (change.r) data[change.r[0]] = list(change.r[0]).filter((m) => m.seq !== change.r![1]);
    }
    return data;
}

const logger = pino({ level: process.env.SB_TEST_LOG ?? 'silent' });

const ENTITIES: EntitiesConfig = {
    queues: [
        { name: 'basic' },
        { name: 'abandon', maxDeliveryCount: 3 },
        { name: 'short-lock', lockDurationSeconds: 1 },
        { name: 'renew', lockDurationSeconds: 3 },
        { name: 'scheduled' },
        { name: 'peek' },
        { name: 'defer' },
        { name: 'dedupe', duplicateDetectionWindowSeconds: 60 },
        { name: 'delete-mode' },
        { name: 'subscribe', maxDeliveryCount: 5 },
        { name: 'ttl' },
        { name: 'Busy' },
    ],
    topics: [
        {
            name: 'events',
            subscriptions: [
                { name: 'all' },
                { name: 'orders', rules: [{ name: 'created-orders', correlation: { properties: { kind: 'order' }, subject: 'created' } }] },
                { name: 'by-id', rules: [{ name: 'cid', correlation: { correlationId: 'c-42' } }] },
                { name: 'red', rules: [{ name: 'red-urgent', sql: "color = 'red' AND priority >= 2" }] },
                {
                    name: 'mixed',
                    rules: [
                        { name: 'list', sql: "kind IN ('a', 'b') AND NOT EXISTS(skip)" },
                        { name: 'other', sql: "(region <> 'eu' AND retry = TRUE) OR user.[odd-name] = 'it''s'" },
                    ],
                },
            ],
        },
    ],
};

let dir: string;
let bus: LocalServiceBus;
let client: ServiceBusClient;

beforeAll(async () => {
    dir = tempDir('flexchange-sb-');
    bus = new LocalServiceBus({ dir, entities: ENTITIES, logger });
    await bus.start(0);
    client = new ServiceBusClient(bus.connectionString);
});

afterAll(async () => {
    await client?.close();
    await bus?.stop();
    removeDir(dir);
});

/** Receives until `count` messages have arrived (or fails after `timeoutMs`). */
async function receiveExactly(receiver: ServiceBusReceiver, count: number, timeoutMs = 10000): Promise<ServiceBusReceivedMessage[]> {
    const out: ServiceBusReceivedMessage[] = [];
    const deadline = Date.now() + timeoutMs;
    while (out.length < count) {
        if (Date.now() > deadline) throw new Error(`received ${out.length} of ${count} messages`);
        out.push(...(await receiver.receiveMessages(count - out.length, { maxWaitTimeInMs: 1000 })));
    }
    return out;
}

/** Every message currently in an entity (active, deferred, scheduled), via a fresh receiver's peek. */
async function peekAll(entity: string, options: { subQueueType?: 'deadLetter' } = {}): Promise<ServiceBusReceivedMessage[]> {
    const receiver = options.subQueueType ? client.createReceiver(entity, { subQueueType: options.subQueueType }) : client.createReceiver(entity);
    try {
        return await receiver.peekMessages(100);
    } finally {
        await receiver.close();
    }
}

const bodies = (ms: ServiceBusReceivedMessage[]) => ms.map((m) => m.body).sort();

test('send and receive on a queue keeps the message and completes it', async () => {
    const sender = client.createSender('basic');
    const receiver = client.createReceiver('basic');
    await sender.sendMessages({ body: { hello: 'world' }, messageId: 'msg-1', subject: 'greeting', correlationId: 'corr-1', contentType: 'application/json', applicationProperties: { n: 7, flag: true, s: 'x' } });
    await sender.sendMessages([{ body: 'second' }, { body: 'third' }]);
    const got = await receiveExactly(receiver, 3);
    expect(got.map((m) => m.body)).toEqual([{ hello: 'world' }, 'second', 'third']);
    const [first] = got;
    expect(first.messageId).toBe('msg-1');
    expect(first.subject).toBe('greeting');
    expect(first.correlationId).toBe('corr-1');
    expect(first.contentType).toBe('application/json');
    expect(first.applicationProperties).toEqual({ n: 7, flag: true, s: 'x' });
    expect(first.deliveryCount).toBe(0);
    expect(first.lockToken).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(first.enqueuedTimeUtc).toBeInstanceOf(Date);
    expect(first.lockedUntilUtc!.getTime()).toBeGreaterThan(Date.now() + 50_000);
    const seqs = got.map((m) => m.sequenceNumber!.toNumber());
    expect(seqs[1]).toBe(seqs[0] + 1);
    expect(seqs[2]).toBe(seqs[0] + 2);
    // Messages without an id get one from the broker, as from Azure.
    expect(got[1].messageId).toEqual(expect.any(String));
    expect(got[1].messageId).not.toBe(got[2].messageId);
    for (const m of got) await receiver.completeMessage(m);
    expect(await peekAll('basic')).toHaveLength(0);
    await sender.close();
    await receiver.close();
});

test('addresses are case-insensitive and unknown entities are refused', async () => {
    const sender = client.createSender('busy');
    await sender.sendMessages({ body: 'to Busy' });
    const receiver = client.createReceiver('BUSY', { receiveMode: 'receiveAndDelete' });
    expect(bodies(await receiveExactly(receiver, 1))).toEqual(['to Busy']);
    await receiver.close();
    await sender.close();
    const missing = client.createSender('no-such-queue');
    await expect(missing.sendMessages({ body: 'x' })).rejects.toMatchObject({ code: 'MessagingEntityNotFound' });
    await missing.close();
});

test('a topic routes each message to every subscription whose rules match', async () => {
    const sender = client.createSender('events');
    await sender.sendMessages([
        { body: 'order-created', subject: 'created', applicationProperties: { kind: 'order' } },
        { body: 'order-deleted', subject: 'deleted', applicationProperties: { kind: 'order' } },
        { body: 'by-correlation', correlationId: 'c-42' },
        { body: 'red-urgent', applicationProperties: { color: 'red', priority: 3 } },
        { body: 'red-calm', applicationProperties: { color: 'red', priority: 1 } },
        { body: 'kind-a', applicationProperties: { kind: 'a' } },
        { body: 'kind-b-skipped', applicationProperties: { kind: 'b', skip: 1 } },
        { body: 'retry-us', applicationProperties: { region: 'us', retry: true } },
        { body: 'retry-eu', applicationProperties: { region: 'eu', retry: true } },
        { body: 'odd', applicationProperties: { 'odd-name': "it's" } },
    ]);
    const expected: Record<string, string[]> = {
        all: ['by-correlation', 'kind-a', 'kind-b-skipped', 'odd', 'order-created', 'order-deleted', 'red-calm', 'red-urgent', 'retry-eu', 'retry-us'],
        orders: ['order-created'],
        'by-id': ['by-correlation'],
        red: ['red-urgent'],
        mixed: ['kind-a', 'odd', 'retry-us'],
    };
    for (const [sub, want] of Object.entries(expected)) {
        const receiver = client.createReceiver('events', sub, { receiveMode: 'receiveAndDelete' });
        expect({ sub, got: bodies(await receiveExactly(receiver, want.length)) }).toEqual({ sub, got: want });
        // Nothing else arrives.
        expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).toHaveLength(0);
        await receiver.close();
    }
    await sender.close();
});

test('abandon redelivers with deliveryCount 1; maxDeliveryCount dead-letters with its reason', async () => {
    const sender = client.createSender('abandon');
    const receiver = client.createReceiver('abandon');
    await sender.sendMessages({ body: 'poison', messageId: 'poison-1' });
    const [first] = await receiveExactly(receiver, 1);
    expect(first.deliveryCount).toBe(0);
    await receiver.abandonMessage(first, { note: 'retry me' });
    const [second] = await receiveExactly(receiver, 1);
    expect(second.body).toBe('poison');
    expect(second.deliveryCount).toBe(1);
    expect(second.applicationProperties).toEqual({ note: 'retry me' });
    expect(second.sequenceNumber!.equals(first.sequenceNumber!)).toBe(true);
    await receiver.abandonMessage(second);
    const [third] = await receiveExactly(receiver, 1);
    expect(third.deliveryCount).toBe(2);
    await receiver.abandonMessage(third);
    // The third failed delivery of a queue with maxDeliveryCount 3 moves the message to the dead-letter queue.
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 500 })).toHaveLength(0);
    const dlq = client.createReceiver('abandon', { subQueueType: 'deadLetter' });
    const [dead] = await receiveExactly(dlq, 1);
    expect(dead.body).toBe('poison');
    expect(dead.messageId).toBe('poison-1');
    expect(dead.deadLetterReason).toBe('MaxDeliveryCountExceeded');
    expect(dead.deadLetterErrorDescription).toMatch(/3 delivery attempts/);
    await dlq.completeMessage(dead);

    // An explicit dead-letter keeps the given reason and description.
    await sender.sendMessages({ body: 'rejected' });
    const [m] = await receiveExactly(receiver, 1);
    await receiver.deadLetterMessage(m, { deadLetterReason: 'Validation', deadLetterErrorDescription: 'amount is negative' });
    const [dead2] = await receiveExactly(dlq, 1);
    expect(dead2.body).toBe('rejected');
    expect(dead2.deadLetterReason).toBe('Validation');
    expect(dead2.deadLetterErrorDescription).toBe('amount is negative');
    await dlq.completeMessage(dead2);
    expect(await peekAll('abandon')).toHaveLength(0);
    expect(await peekAll('abandon', { subQueueType: 'deadLetter' })).toHaveLength(0);
    await Promise.all([sender.close(), receiver.close(), dlq.close()]);
});

test('an expired lock makes the message available again with deliveryCount + 1', async () => {
    const sender = client.createSender('short-lock');
    // No automatic renewal: the lock is left to expire.
    const receiver = client.createReceiver('short-lock', { maxAutoLockRenewalDurationInMs: 0 });
    await sender.sendMessages({ body: 'slow' });
    const [first] = await receiveExactly(receiver, 1);
    const lockedUntil = first.lockedUntilUtc!.getTime();
    expect(lockedUntil - first.enqueuedTimeUtc!.getTime()).toBeLessThan(3000);
    const [again] = await receiveExactly(receiver, 1, 5000);
    expect(Date.now()).toBeGreaterThanOrEqual(lockedUntil);
    expect(again.body).toBe('slow');
    expect(again.deliveryCount).toBe(1);
    expect(again.lockToken).not.toBe(first.lockToken);
    // The old lock is gone: settling with it fails as in Azure.
    await expect(receiver.completeMessage(first)).rejects.toMatchObject({ code: 'MessageLockLost' });
    await receiver.completeMessage(again);
    expect(await peekAll('short-lock')).toHaveLength(0);
    await Promise.all([sender.close(), receiver.close()]);
});

test('renewMessageLock extends the lock', async () => {
    const sender = client.createSender('renew');
    const receiver = client.createReceiver('renew', { maxAutoLockRenewalDurationInMs: 0 });
    await sender.sendMessages({ body: 'long job' });
    const [m] = await receiveExactly(receiver, 1);
    const firstUntil = m.lockedUntilUtc!.getTime();
    await new Promise((r) => setTimeout(r, 1500));
    const renewed = await receiver.renewMessageLock(m);
    expect(renewed.getTime()).toBeGreaterThan(firstUntil);
    expect(m.lockedUntilUtc!.getTime()).toBe(renewed.getTime());
    // Past the original lock, the message is still held by us.
    await new Promise((r) => setTimeout(r, firstUntil - Date.now() + 300));
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 200 })).toHaveLength(0);
    await receiver.completeMessage(m);
    expect(await peekAll('renew')).toHaveLength(0);
    await Promise.all([sender.close(), receiver.close()]);
});

test('scheduled messages arrive at their time; cancelled ones never', async () => {
    const sender = client.createSender('scheduled');
    const receiver = client.createReceiver('scheduled', { receiveMode: 'receiveAndDelete' });
    const at = new Date(Date.now() + 2000);
    const [kept, cancelled] = await sender.scheduleMessages([{ body: 'later' }, { body: 'never' }], at);
    expect(cancelled.greaterThan(kept)).toBe(true);
    const peeked = await peekAll('scheduled');
    expect(peeked.map((p) => [p.body, p.state])).toEqual([
        ['later', 'scheduled'],
        ['never', 'scheduled'],
    ]);
    expect(peeked[0].scheduledEnqueueTimeUtc!.getTime()).toBe(at.getTime());
    await sender.cancelScheduledMessages([cancelled]);
    // A message scheduled through its own property is scheduled too.
    await sender.sendMessages({ body: 'by-property', scheduledEnqueueTimeUtc: at });
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 500 })).toHaveLength(0);
    const got = await receiveExactly(receiver, 2, 5000);
    expect(Date.now()).toBeGreaterThanOrEqual(at.getTime());
    expect(bodies(got)).toEqual(['by-property', 'later']);
    expect(got.find((m) => m.body === 'later')!.sequenceNumber!.equals(kept)).toBe(true);
    for (const m of got) expect(m.enqueuedTimeUtc!.getTime()).toBeGreaterThanOrEqual(at.getTime());
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).toHaveLength(0);
    await Promise.all([sender.close(), receiver.close()]);
});

test('peekMessages shows messages in order without locking them', async () => {
    const sender = client.createSender('peek');
    await sender.sendMessages([{ body: 'p1' }, { body: 'p2' }, { body: 'p3' }]);
    const receiver = client.createReceiver('peek');
    const firstTwo = await receiver.peekMessages(2);
    expect(firstTwo.map((m) => m.body)).toEqual(['p1', 'p2']);
    expect(firstTwo[0].lockToken).toBeUndefined();
    // The next peek continues where the last one stopped.
    expect((await receiver.peekMessages(5)).map((m) => m.body)).toEqual(['p3']);
    expect((await receiver.peekMessages(5, { fromSequenceNumber: firstTwo[1].sequenceNumber })).map((m) => m.body)).toEqual(['p2', 'p3']);
    // Peeked messages are still there for a receiver.
    const got = await receiveExactly(receiver, 3);
    expect(got.map((m) => m.body)).toEqual(['p1', 'p2', 'p3']);
    for (const m of got) await receiver.completeMessage(m);
    expect(await receiver.peekMessages(5, { fromSequenceNumber: firstTwo[0].sequenceNumber })).toHaveLength(0);
    await Promise.all([sender.close(), receiver.close()]);
});

test('defer and receiveDeferredMessages', async () => {
    const sender = client.createSender('defer');
    const receiver = client.createReceiver('defer');
    await sender.sendMessages([{ body: 'd1' }, { body: 'd2' }]);
    const got = await receiveExactly(receiver, 2);
    for (const m of got) await receiver.deferMessage(m, { deferredBy: 'test' });
    // Deferred messages are not delivered again...
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).toHaveLength(0);
    const peeked = await peekAll('defer');
    expect(peeked.map((m) => m.state)).toEqual(['deferred', 'deferred']);
    // ...only by sequence number.
    const deferred = await receiver.receiveDeferredMessages(got.map((m) => m.sequenceNumber!));
    expect(deferred.map((m) => m.body)).toEqual(['d1', 'd2']);
    expect(deferred[0].applicationProperties).toEqual({ deferredBy: 'test' });
    expect(deferred[0].lockToken).toEqual(expect.any(String));
    await receiver.completeMessage(deferred[0]);
    await receiver.abandonMessage(deferred[1]);
    // Abandoned, a deferred message stays deferred.
    const [still] = await receiver.receiveDeferredMessages([got[1].sequenceNumber!]);
    expect(still.body).toBe('d2');
    expect(still.deliveryCount).toBe(1);
    await receiver.deadLetterMessage(still, { deadLetterReason: 'gave up', deadLetterErrorDescription: 'tried twice' });
    await expect(receiver.receiveDeferredMessages([got[1].sequenceNumber!])).rejects.toMatchObject({ code: 'MessageNotFound' });
    const dead = await peekAll('defer', { subQueueType: 'deadLetter' });
    expect(dead.map((m) => [m.body, m.deadLetterReason])).toEqual([['d2', 'gave up']]);
    expect(await peekAll('defer')).toHaveLength(0);
    await Promise.all([sender.close(), receiver.close()]);
});

test('duplicate detection drops a second message with the same messageId', async () => {
    const sender = client.createSender('dedupe');
    await sender.sendMessages({ body: 'one', messageId: 'same' });
    await sender.sendMessages({ body: 'two', messageId: 'same' });
    await sender.sendMessages([
        { body: 'three', messageId: 'same' },
        { body: 'other', messageId: 'different' },
    ]);
    const receiver = client.createReceiver('dedupe', { receiveMode: 'receiveAndDelete' });
    const got = await receiveExactly(receiver, 2);
    expect(bodies(got)).toEqual(['one', 'other']);
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).toHaveLength(0);
    await Promise.all([sender.close(), receiver.close()]);
});

test('receiveAndDelete removes messages as they are delivered', async () => {
    const sender = client.createSender('delete-mode');
    await sender.sendMessages([{ body: 'r1' }, { body: 'r2' }, { body: 'r3' }]);
    const receiver = client.createReceiver('delete-mode', { receiveMode: 'receiveAndDelete' });
    const got = await receiveExactly(receiver, 3);
    expect(got.map((m) => m.body)).toEqual(['r1', 'r2', 'r3']);
    expect(got[0].lockToken).toBeUndefined();
    expect(await peekAll('delete-mode')).toHaveLength(0);
    await Promise.all([sender.close(), receiver.close()]);
});

test('messages past their time to live are dropped', async () => {
    const sender = client.createSender('ttl');
    await sender.sendMessages([
        { body: 'short', timeToLive: 300 },
        { body: 'long', timeToLive: 60_000 },
    ]);
    await new Promise((r) => setTimeout(r, 600));
    const receiver = client.createReceiver('ttl', { receiveMode: 'receiveAndDelete' });
    const got = await receiveExactly(receiver, 1);
    expect(got[0].body).toBe('long');
    expect(got[0].expiresAtUtc!.getTime()).toBe(got[0].enqueuedTimeUtc!.getTime() + 60_000);
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).toHaveLength(0);
    expect(await peekAll('ttl', { subQueueType: 'deadLetter' })).toHaveLength(0);
    await Promise.all([sender.close(), receiver.close()]);
});

test('subscribe() with processMessage / processError and autoComplete', async () => {
    const sender = client.createSender('subscribe');
    const receiver = client.createReceiver('subscribe');
    const seen: { body: unknown; deliveryCount: number }[] = [];
    const errors: { message: string; source: string }[] = [];
    const subscription = receiver.subscribe(
        {
            processMessage: async (m) => {
                seen.push({ body: m.body, deliveryCount: m.deliveryCount! });
                if (m.body === 'flaky' && m.deliveryCount === 0) throw new Error('first attempt fails');
            },
            processError: async (args) => {
                errors.push({ message: args.error.message, source: args.errorSource });
            },
        },
        // One at a time: rhea 3.0.5 (the SDK's AMQP layer) merges two dispositions with consecutive delivery ids
        // written in the same tick into one range carrying the first outcome, so a concurrent complete + abandon
        // reaches any broker (Azure too) as two completes.
        { maxConcurrentCalls: 1 },
    );
    await sender.sendMessages([{ body: 's1' }, { body: 'flaky' }, { body: 's2' }]);
    await waitFor(() => seen.length >= 4, 10000);
    await subscription.close();
    expect(seen.map((s) => `${String(s.body)}#${s.deliveryCount}`).sort()).toEqual(['flaky#0', 'flaky#1', 's1#0', 's2#0']);
    expect(errors).toEqual([{ message: 'first attempt fails', source: 'processMessageCallback' }]);
    // autoComplete settled every message that was processed without an error.
    await waitFor(async () => (await peekAll('subscribe')).length === 0, 5000);
    await Promise.all([sender.close(), receiver.close()]);
});

test('8 concurrent receivers each get distinct messages, every message exactly once', async () => {
    const total = 80;
    const sender = client.createSender('busy');
    await sender.sendMessages(Array.from({ length: total }, (_, i) => ({ body: i, messageId: `busy-${i}` })));
    const seen: number[] = [];
    const perReceiver: number[] = [];
    await Promise.all(
        Array.from({ length: 8 }, async (_, r) => {
            const receiver = client.createReceiver('busy');
            perReceiver[r] = 0;
            const deadline = Date.now() + 20000;
            while (seen.length < total && Date.now() < deadline) {
                const batch = await receiver.receiveMessages(4, { maxWaitTimeInMs: 300 });
                for (const m of batch) {
                    seen.push(m.body as number);
                    perReceiver[r]++;
                    await receiver.completeMessage(m);
                }
            }
            await receiver.close();
        }),
    );
    expect(seen).toHaveLength(total);
    expect(new Set(seen).size).toBe(total);
    expect(perReceiver.filter((n) => n > 0).length).toBeGreaterThan(1);
    expect(await peekAll('busy')).toHaveLength(0);
    await sender.close();
});

test('a send is on disk when the sender hears back, and a completion when the receiver does, while writes keep coming', async () => {
    const diskDir = tempDir('flexchange-sb-disk-');
    const broker = new LocalServiceBus({ dir: diskDir, entities: { queues: [{ name: 'jobs' }, { name: 'noise' }], topics: [] }, logger });
    await broker.start(0);
    const c = new ServiceBusClient(broker.connectionString);
    // What the queue's file holds at this moment, read from disk (message ids appear in each message's bytes).
    const onDisk = () => (stateOnDisk(diskDir, 'queue~jobs').messages ?? []).map((m) => Buffer.from(m.raw, 'base64').toString('latin1'));
    try {
        const jobs = c.createSender('jobs');
        const noise = c.createSender('noise');
        // Other writes going on all along, so sends often arrive while the file is being written.
        let busy = true;
        const noisy = (async () => {
            for (let i = 0; busy; i++) await noise.sendMessages({ body: i });
        })();
        const missing: string[] = [];
        await Promise.all(
            Array.from({ length: 40 }, async (_, i) => {
                await jobs.sendMessages({ body: i, messageId: `durable-${i}` });
                if (!onDisk().some((raw) => raw.includes(`durable-${i}`))) missing.push(`durable-${i}`);
            }),
        );
        expect(missing).toEqual([]);
        const receiver = c.createReceiver('jobs');
        const got = await receiveExactly(receiver, 40);
        const stillThere: string[] = [];
        await Promise.all(
            got.map(async (m) => {
                await receiver.completeMessage(m);
                if (onDisk().some((raw) => raw.includes(String(m.messageId)))) stillThere.push(String(m.messageId));
            }),
        );
        busy = false;
        await noisy;
        expect(stillThere).toEqual([]);
        expect(onDisk()).toEqual([]);
    } finally {
        await c.close();
        await broker.stop();
        removeDir(diskDir);
    }
});

test('duplicate detection outlives a restart: its history is appended as messages are sent, a line cut short by a crash is left out, an older snapshot still counts', async () => {
    const dupDir = tempDir('flexchange-sb-dup-');
    const entities: EntitiesConfig = { queues: [{ name: 'jobs', duplicateDetectionWindowSeconds: 600 }], topics: [{ name: 'feed', duplicateDetectionWindowSeconds: 600, subscriptions: [{ name: 'copy' }] }] };
    const log = path.join(dupDir, 'topic~feed.duplicates.log');
    let broker = new LocalServiceBus({ dir: dupDir, entities, logger });
    await broker.start(0);
    let c = new ServiceBusClient(broker.connectionString);
    try {
        await c.createSender('feed').sendMessages([{ body: 'a', messageId: 'id-a' }, { body: 'b', messageId: 'id-b' }]);
        await c.createSender('jobs').sendMessages({ body: 'j', messageId: 'id-j' });
        // On disk when the sender heard back: one line per message, and none in the entity's snapshot.
        expect(readFileSync(log, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as [string, number])[0])).toEqual(['s:id-a', 's:id-b']);
        expect(stateOnDisk(dupDir, 'topic~feed')).not.toHaveProperty('duplicates');
        await c.close();
        await broker.stop();
        // A crash while a line was being appended; and the queue's history as a snapshot of before the log kept it.
        appendFileSync(log, '["s:id-torn",17');
        writeFileSync(path.join(dupDir, 'queue~jobs.json'), JSON.stringify({ ...stateOnDisk(dupDir, 'queue~jobs'), duplicates: [['s:id-old', Date.now()]] }));

        broker = new LocalServiceBus({ dir: dupDir, entities, logger });
        await broker.start(0);
        c = new ServiceBusClient(broker.connectionString);
        await c.createSender('feed').sendMessages([{ body: 'a again', messageId: 'id-a' }, { body: 'c', messageId: 'id-c' }, { body: 'torn', messageId: 'id-torn' }]);
        await c.createSender('jobs').sendMessages([{ body: 'j again', messageId: 'id-j' }, { body: 'old again', messageId: 'id-old' }, { body: 'k', messageId: 'id-k' }]);
        const copy = c.createReceiver('feed', 'copy', { receiveMode: 'receiveAndDelete' });
        expect(bodies(await receiveExactly(copy, 4))).toEqual(['a', 'b', 'c', 'torn']);
        expect(await copy.receiveMessages(1, { maxWaitTimeInMs: 300 })).toHaveLength(0);
        const jobs = c.createReceiver('jobs', { receiveMode: 'receiveAndDelete' });
        expect(bodies(await receiveExactly(jobs, 2))).toEqual(['j', 'k']);
        expect(await jobs.receiveMessages(1, { maxWaitTimeInMs: 300 })).toHaveLength(0);
        // The torn line made the log be written again whole: every line reads.
        const lines = readFileSync(log, 'utf8').trim().split('\n');
        expect(lines.map((l) => (JSON.parse(l) as [string, number])[0]).sort()).toEqual(['s:id-a', 's:id-b', 's:id-c', 's:id-torn']);
    } finally {
        await c.close();
        await broker.stop();
        removeDir(dupDir);
    }
});

test("an entity's changes go to its log, its state file is written again (the next epoch) once the log outgrows it, and a change cut short by a crash is left out", async () => {
    const walDir = tempDir('flexchange-sb-wal-');
    const entities: EntitiesConfig = { queues: [{ name: 'bulk' }], topics: [] };
    const logs = () => readdirSync(walDir).filter((n) => /^queue~bulk\.\d+\.log$/.test(n));
    const epochOnDisk = () => Number((JSON.parse(readFileSync(path.join(walDir, 'queue~bulk.json'), 'utf8')) as { epoch?: number }).epoch);
    let broker = new LocalServiceBus({ dir: walDir, entities, logger });
    await broker.start(0);
    let c = new ServiceBusClient(broker.connectionString);
    try {
        const sender = c.createSender('bulk');
        // 2 KB messages, one at a time: each send appends its line; together they outgrow the first log.
        for (let i = 0; i < 200; i++) await sender.sendMessages({ body: `${i}:${'x'.repeat(2048)}`, messageId: `m-${i}` });
        const epoch = epochOnDisk();
        expect(epoch).toBeGreaterThanOrEqual(1);
        // Only the current epoch's log is left.
        expect(logs().every((n) => n === `queue~bulk.${epoch}.log`)).toBe(true);
        const receiver = c.createReceiver('bulk');
        const got = await receiveExactly(receiver, 50);
        for (const m of got) await receiver.completeMessage(m);
        expect((stateOnDisk(walDir, 'queue~bulk').messages ?? []).length).toBe(150);
        await c.close();
        await broker.stop();
        // A crash while a change was being appended.
        appendFileSync(path.join(walDir, `queue~bulk.${epochOnDisk()}.log`), '{"r":["messages",');
        const before = epochOnDisk();

        broker = new LocalServiceBus({ dir: walDir, entities, logger });
        await broker.start(0);
        c = new ServiceBusClient(broker.connectionString);
        // The cut line is left out; the state was written whole at once (no line is ever appended to a cut one).
        expect(epochOnDisk()).toBe(before + 1);
        expect(logs()).toEqual([]);
        const rest = await receiveExactly(c.createReceiver('bulk', { receiveMode: 'receiveAndDelete' }), 150);
        expect(new Set(rest.map((m) => m.messageId)).size).toBe(150);
        expect(rest.map((m) => String(m.messageId))).not.toContain(String(got[0]!.messageId));
    } finally {
        await c.close();
        await broker.stop();
        removeDir(walDir);
    }
});

test('a restart on the same folder keeps unsettled, deferred, scheduled and dead-lettered messages', async () => {
    const restartDir = tempDir('flexchange-sb-restart-');
    const entities: EntitiesConfig = { queues: [{ name: 'jobs' }], topics: [{ name: 'feed', subscriptions: [{ name: 'copy' }] }] };
    let broker = new LocalServiceBus({ dir: restartDir, entities, logger });
    await broker.start(0);
    const port = broker.port;
    let c = new ServiceBusClient(broker.connectionString);
    try {
        const sender = c.createSender('jobs');
        await sender.sendMessages([{ body: 'locked' }, { body: 'waiting' }, { body: 'deferred' }, { body: 'dead' }]);
        const [locked, waiting, deferred, dead] = await receiveExactly(c.createReceiver('jobs', { maxAutoLockRenewalDurationInMs: 0 }), 4);
        const receiver = c.createReceiver('jobs');
        expect(waiting.body).toBe('waiting');
        await receiver.abandonMessage(waiting);
        await receiver.deferMessage(deferred);
        await receiver.deadLetterMessage(dead, { deadLetterReason: 'kept', deadLetterErrorDescription: 'across restarts' });
        const [scheduledSeq] = await sender.scheduleMessages({ body: 'scheduled' }, new Date(Date.now() + 60_000));
        await c.createSender('feed').sendMessages({ body: 'to-topic' });
        expect(locked.body).toBe('locked');
        // "locked" stays locked (unsettled) across the stop.
        await c.close();
        await broker.stop();

        broker = new LocalServiceBus({ dir: restartDir, entities, logger });
        await broker.start(port);
        expect(broker.port).toBe(port);
        c = new ServiceBusClient(broker.connectionString);
        const after = c.createReceiver('jobs');
        const got = await receiveExactly(after, 2);
        expect(got.map((m) => [m.body, m.deliveryCount])).toEqual([
            ['locked', 1],
            ['waiting', 1],
        ]);
        expect(got[0].sequenceNumber!.equals(locked.sequenceNumber!)).toBe(true);
        for (const m of got) await after.completeMessage(m);
        const [again] = await after.receiveDeferredMessages([deferred.sequenceNumber!]);
        expect(again.body).toBe('deferred');
        await after.completeMessage(again);
        const peeked = await after.peekMessages(10, { fromSequenceNumber: scheduledSeq });
        expect(peeked.map((m) => [m.body, m.state])).toEqual([['scheduled', 'scheduled']]);
        const dlq = c.createReceiver('jobs', { subQueueType: 'deadLetter', receiveMode: 'receiveAndDelete' });
        expect((await receiveExactly(dlq, 1)).map((m) => [m.body, m.deadLetterReason])).toEqual([['dead', 'kept']]);
        const copy = c.createReceiver('feed', 'copy', { receiveMode: 'receiveAndDelete' });
        expect(bodies(await receiveExactly(copy, 1))).toEqual(['to-topic']);
        // New sequence numbers continue after the old ones.
        const s2 = c.createSender('jobs');
        await s2.sendMessages({ body: 'new' });
        const [fresh] = await receiveExactly(after, 1);
        expect(fresh.sequenceNumber!.greaterThan(scheduledSeq)).toBe(true);
        await after.completeMessage(fresh);
    } finally {
        await c.close();
        await broker.stop();
        removeDir(restartDir);
    }
});

test('a port in use is reported as such', async () => {
    const second = new LocalServiceBus({ dir: path.join(dir, 'port-test'), entities: { queues: [], topics: [] }, logger });
    await expect(second.start(bus.port)).rejects.toThrow(`Port ${bus.port} for the local Service Bus is already in use`);
});

test('the sample entities file is a valid declaration', () => {
    const sample = loadEntitiesFile(path.join(repoRoot, 'devhost', 'servicebus', 'entities.sample.json'));
    expect(sample.queues.map((q) => q.name)).toEqual(['flexchange-work']);
    expect(sample.topics.map((t) => t.name)).toEqual(['flexchange-events']);
    expect(() => new LocalServiceBus({ dir: path.join(dir, 'never-created'), logger, entities: sample })).not.toThrow();
});

test('a rule outside the supported SQL subset is refused at construction', () => {
    const make = (sql: string) => () =>
        new LocalServiceBus({ dir: path.join(dir, 'never-created'), logger, entities: { queues: [], topics: [{ name: 't', subscriptions: [{ name: 's', rules: [{ name: 'r', sql }] }] }] } });
    expect(make("color LIKE 'r%'")).toThrow(/subscription "t\/s" rule "r".*"LIKE" is not supported/);
    expect(make('sys.EnqueuedTimeUtc = 1')).toThrow(/sys\.EnqueuedTimeUtc.*not supported/);
    expect(make("color = 'red' AND")).toThrow(/rule "r"/);
    expect(make("color = 'red")).toThrow(/unterminated string/);
    expect(() => new LocalServiceBus({ dir: path.join(dir, 'never-created'), logger, entities: { queues: [{ name: 'q' }], topics: [{ name: 'Q', subscriptions: [] }] } })).toThrow(/already used/);
});
