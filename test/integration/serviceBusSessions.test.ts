import { isServiceBusError, ServiceBusClient, type ServiceBusSessionReceiver } from '@azure/service-bus';
import pino from 'pino';
import { LocalServiceBus, type EntitiesConfig } from '../../devhost/servicebus/broker';
import { removeDir, tempDir } from '../harness/devhost';

// Sessions on the local broker, through the public @azure/service-bus API only, as
// https://learn.microsoft.com/azure/service-bus-messaging/message-sessions describes them.

const logger = pino({ level: process.env.SB_TEST_LOG ?? 'silent' });

const ENTITIES: EntitiesConfig = {
    queues: [
        { name: 'orders', requiresSession: true },
        { name: 'next', requiresSession: true },
        { name: 'waits', requiresSession: true },
        { name: 'state', requiresSession: true },
        { name: 'short', requiresSession: true, lockDurationSeconds: 1 },
        { name: 'renew', requiresSession: true, lockDurationSeconds: 2 },
        { name: 'deferred', requiresSession: true },
        { name: 'plain' },
    ],
    topics: [
        {
            name: 'proposals',
            subscriptions: [{ name: 'per-proposal', requiresSession: true }, { name: 'audit' }],
        },
    ],
};

let dir: string;
let bus: LocalServiceBus;
let client: ServiceBusClient;

beforeAll(async () => {
    dir = tempDir('flexchange-sb-sessions-');
    bus = new LocalServiceBus({ dir, entities: ENTITIES, logger });
    await bus.start(0);
    client = new ServiceBusClient(bus.connectionString);
});

afterAll(async () => {
    await client?.close();
    await bus?.stop();
    removeDir(dir);
});

async function send(entity: string, ...messages: { body: unknown; sessionId?: string }[]): Promise<void> {
    const sender = client.createSender(entity);
    try {
        for (const m of messages) await sender.sendMessages(m);
    } finally {
        await sender.close();
    }
}

async function receiveAll(receiver: ServiceBusSessionReceiver, count: number) {
    const out = [];
    const deadline = Date.now() + 10_000;
    while (out.length < count && Date.now() < deadline) out.push(...(await receiver.receiveMessages(count - out.length, { maxWaitTimeInMs: 500 })));
    return out;
}

async function errorOf(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
    try {
        await p;
    } catch (err) {
        return { code: isServiceBusError(err) ? err.code : undefined, message: (err as Error).message };
    }
    throw new Error('expected the call to fail');
}

test('a session receiver gets only its session, in the order sent', async () => {
    await send(
        'orders',
        ...[1, 2, 3, 4, 5].flatMap((i) => [
            { body: `a${i}`, sessionId: 'a' },
            { body: `b${i}`, sessionId: 'b' },
        ]),
    );
    const a = await client.acceptSession('orders', 'a');
    expect(a.sessionId).toBe('a');
    expect(a.sessionLockedUntilUtc!.getTime()).toBeGreaterThan(Date.now());
    const got = await receiveAll(a, 5);
    expect(got.map((m) => m.body)).toEqual(['a1', 'a2', 'a3', 'a4', 'a5']);
    expect(got.every((m) => m.sessionId === 'a')).toBe(true);
    // Settled out of order, redelivery keeps the order: abandon the 2nd, complete the rest; the 2nd comes back first.
    await a.abandonMessage(got[1]);
    for (const m of [got[0], ...got.slice(2)]) await a.completeMessage(m);
    const again = await receiveAll(a, 1);
    expect(again.map((m) => [m.body, m.deliveryCount])).toEqual([['a2', 1]]);
    await a.completeMessage(again[0]);
    expect(await a.receiveMessages(1, { maxWaitTimeInMs: 300 })).toEqual([]);
    await a.close();

    const b = await client.acceptSession('orders', 'b', { receiveMode: 'receiveAndDelete' });
    expect((await receiveAll(b, 5)).map((m) => m.body)).toEqual(['b1', 'b2', 'b3', 'b4', 'b5']);
    await b.close();
});

test('the wrong kind of receiver or a message without a session id is refused', async () => {
    const noSession = await errorOf(send('orders', { body: 'x' }));
    // The SDK's sender reports a refused transfer with the condition's error name in the message.
    expect(noSession.message).toMatch(/^InvalidOperationError: The SessionId was not set/);
    // A topic refuses it too when a subscription that would get it requires sessions.
    expect((await errorOf(send('proposals', { body: 'x' }))).message).toMatch(/SessionId was not set/);

    const plain = client.createReceiver('orders');
    const refused = await errorOf(plain.receiveMessages(1, { maxWaitTimeInMs: 1000 }));
    expect(refused.message).toMatch(/requires sessions to create a non-sessionful/);
    await plain.close();

    // The broker answers the attach and detaches with "does not require sessions"; the SDK, seeing no session
    // in the attach, reports the session as not lockable (as it does against Azure).
    const wrong = await errorOf(client.acceptSession('plain', 's1'));
    expect(wrong.code).toBe('SessionCannotBeLocked');
    const wrongNext = await errorOf(client.acceptNextSession('plain'));
    expect(wrongNext.message).toMatch(/does not require sessions/);
});

test('one receiver per session: a second is refused until the first lets go, and what it left comes back', async () => {
    await send('orders', { body: 'c1', sessionId: 'c' }, { body: 'c2', sessionId: 'c' });
    const first = await client.acceptSession('orders', 'c');
    const [c1] = await receiveAll(first, 1);
    expect(c1.body).toBe('c1');

    const impatient = new ServiceBusClient(bus.connectionString, { retryOptions: { maxRetries: 0 } });
    const second = await errorOf(impatient.acceptSession('orders', 'c'));
    expect(second.code).toBe('SessionCannotBeLocked');
    await impatient.close();

    // Closing releases the session; the message it held but did not settle is delivered again, first.
    await first.close();
    const third = await client.acceptSession('orders', 'c');
    const got = await receiveAll(third, 2);
    expect(got.map((m) => [m.body, m.deliveryCount])).toEqual([
        ['c1', 1],
        ['c2', 0],
    ]);
    for (const m of got) await third.completeMessage(m);
    await third.close();
});

test('acceptNextSession takes the free session with the oldest message, and waits when none has messages', async () => {
    await send('next', { body: 'x1', sessionId: 'x' }, { body: 'y1', sessionId: 'y' }, { body: 'x2', sessionId: 'x' });
    const one = await client.acceptNextSession('next');
    const two = await client.acceptNextSession('next');
    expect([one.sessionId, two.sessionId]).toEqual(['x', 'y']);
    expect((await receiveAll(one, 2)).map((m) => m.body)).toEqual(['x1', 'x2']);

    // Nothing free: the broker holds the request until the client's timeout, then answers "timeout".
    const quick = new ServiceBusClient(bus.connectionString, { retryOptions: { timeoutInMs: 2000, maxRetries: 0 } });
    const started = Date.now();
    const none = await errorOf(quick.acceptNextSession('next'));
    expect(none.code).toBe('ServiceTimeout');
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    await quick.close();
    await one.close();
    await two.close();

    // A waiting receiver is answered as soon as a message opens a session.
    const waiting = client.acceptNextSession('waits');
    await new Promise((r) => setTimeout(r, 300));
    await send('waits', { body: 'z1', sessionId: 'z' });
    const z = await waiting;
    expect(z.sessionId).toBe('z');
    expect((await receiveAll(z, 1)).map((m) => m.body)).toEqual(['z1']);
    await z.close();
});

test('session state is kept by the broker (across a restart) and only the holder reads or writes it', async () => {
    await send('state', { body: 'item', sessionId: 'alice' });
    const alice = await client.acceptSession('state', 'alice');
    expect(await alice.getSessionState()).toBeNull();
    await alice.setSessionState(JSON.stringify(['milk', 'bread']));
    // The SDK hands back what was set (here a string), as it does against Azure.
    expect(await alice.getSessionState()).toBe('["milk","bread"]');
    await alice.close();

    // Closed: the state stays with the session, and a closed receiver cannot touch it.
    await expect(alice.getSessionState()).rejects.toThrow();

    await client.close();
    await bus.stop();
    bus = new LocalServiceBus({ dir, entities: ENTITIES, logger });
    await bus.start(0);
    client = new ServiceBusClient(bus.connectionString);

    const back = await client.acceptSession('state', 'alice');
    expect(await back.getSessionState()).toBe('["milk","bread"]');
    const [m] = await receiveAll(back, 1);
    expect([m.body, m.sessionId]).toEqual(['item', 'alice']);
    await back.completeMessage(m);
    await back.setSessionState(null as unknown as string);
    expect(await back.getSessionState()).toBeNull();
    await back.close();
});

test('an expired session lock ends the receiver; the session and its messages go to the next receiver', async () => {
    await send('short', { body: 's1', sessionId: 's' });
    const holder = await client.acceptSession('short', 's', { maxAutoLockRenewalDurationInMs: 0 });
    const [m] = await receiveAll(holder, 1);
    await new Promise((r) => setTimeout(r, 1600));
    const lost = await errorOf(holder.completeMessage(m));
    expect(lost.code).toMatch(/SessionLockLost|MessageLockLost/);

    const next = await client.acceptSession('short', 's', { maxAutoLockRenewalDurationInMs: 0 });
    const [again] = await receiveAll(next, 1);
    expect([again.body, again.deliveryCount]).toEqual(['s1', 1]);
    await next.completeMessage(again);
    await next.close();
    await holder.close();
});

test('renewSessionLock extends the lock past its duration', async () => {
    await send('renew', { body: 'r1', sessionId: 'r' });
    const receiver = await client.acceptSession('renew', 'r', { maxAutoLockRenewalDurationInMs: 0 });
    const [m] = await receiveAll(receiver, 1);
    const firstUntil = receiver.sessionLockedUntilUtc!.getTime();
    for (let i = 0; i < 3; i++) {
        await new Promise((r) => setTimeout(r, 1000));
        await receiver.renewSessionLock();
    }
    expect(receiver.sessionLockedUntilUtc!.getTime()).toBeGreaterThan(firstUntil + 2000);
    // 3 s after receiving, past the 2 s lock: still held, so the message completes.
    await receiver.completeMessage(m);
    await receiver.close();
});

test('sessions on a topic subscription; peek and deferral stay within the session', async () => {
    await send('proposals', { body: 'p1-created', sessionId: 'p1' }, { body: 'p2-created', sessionId: 'p2' }, { body: 'p1-signed', sessionId: 'p1' });
    const p1 = await client.acceptSession('proposals', 'per-proposal', 'p1');
    expect((await p1.peekMessages(10)).map((m) => m.body)).toEqual(['p1-created', 'p1-signed']);
    const got = await receiveAll(p1, 2);
    await p1.deferMessage(got[0]);
    await p1.completeMessage(got[1]);
    const [deferred] = await p1.receiveDeferredMessages([got[0].sequenceNumber!]);
    expect(deferred.body).toBe('p1-created');
    await p1.completeMessage(deferred);
    await p1.close();

    // The session-less subscription on the same topic got all three, as usual.
    const audit = client.createReceiver('proposals', 'audit', { receiveMode: 'receiveAndDelete' });
    const all = [];
    while (all.length < 3) all.push(...(await audit.receiveMessages(3, { maxWaitTimeInMs: 1000 })));
    expect(all.map((m) => m.body)).toEqual(['p1-created', 'p2-created', 'p1-signed']);
    await audit.close();

    const p2 = await client.acceptNextSession('proposals', 'per-proposal');
    expect(p2.sessionId).toBe('p2');
    await p2.close();
});

test('a deferred message of a session is received through the session that holds it only', async () => {
    await send('deferred', { body: 'd1', sessionId: 'd' });
    const d = await client.acceptSession('deferred', 'd');
    const [m] = await receiveAll(d, 1);
    await d.deferMessage(m);
    await d.close();
    const other = await client.acceptSession('deferred', 'e');
    await expect(other.receiveDeferredMessages([m.sequenceNumber!])).rejects.toThrow(/not deferred|does not exist/);
    await other.close();
    const again = await client.acceptSession('deferred', 'd');
    const [back] = await again.receiveDeferredMessages([m.sequenceNumber!]);
    expect(back.body).toBe('d1');
    await again.completeMessage(back);
    await again.close();
});
