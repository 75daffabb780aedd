import { ServiceBusClient } from '@azure/service-bus';
import path from 'node:path';
import { fixture, readJsonLines, removeDir, RunningDevhost, startDevhost, tempDir, waitFor } from '../harness/devhost';

describe('devhost Service Bus triggers and outputs (through the local broker)', () => {
    let host: RunningDevhost;
    const out = tempDir();
    let connection: string;

    beforeAll(async () => {
        host = await startDevhost([
            '--servicebus-entities', path.join(fixture('sb-app'), 'entities.json'),
            '--app', fixture('sb-app'), '--name', 'sb', '--set', `FIXTURE_OUT=${out}`,
        ]);
        const port = new URL((await (await fetch(`${host.consoleUrl}/dev/services`)).json()).services.bus).port;
        connection = `Endpoint=sb://127.0.0.1:${port};SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=local;UseDevelopmentEmulator=true`;
    });
    afterAll(async () => {
        await host?.stop();
        removeDir(out);
        removeDir(host?.stateDir);
    });

    it("delivers a message one function publishes to another function's queue trigger, with its metadata", async () => {
        expect((await fetch(`${host.origin('sb')}/api/publish/work`, { method: 'POST', body: JSON.stringify({ hello: 'world' }), headers: { 'content-type': 'application/json' } })).status).toBe(202);
        const [got] = await waitFor(() => {
            const lines = readJsonLines(path.join(out, 'work.jsonl'));
            return lines.length > 0 ? lines : undefined;
        });
        expect(got).toMatchObject({ message: { hello: 'world' }, deliveryCount: 1 });
        expect(typeof got.messageId).toBe('string');
    });

    it('routes a topic message to the subscription whose filter matches, with application properties', async () => {
        const client = new ServiceBusClient(connection);
        const sender = client.createSender('events');
        await sender.sendMessages([
            { body: { n: 1 }, applicationProperties: { orgId: 'org-b', type: 'proposal.created' } },
            { body: { n: 2 }, applicationProperties: { orgId: 'org-a', type: 'proposal.created' } },
        ]);
        await client.close();
        const lines = await waitFor(() => {
            const l = readJsonLines(path.join(out, 'org-a.jsonl'));
            return l.length > 0 ? l : undefined;
        });
        await new Promise((r) => setTimeout(r, 300));
        expect(readJsonLines(path.join(out, 'org-a.jsonl'))).toHaveLength(1);
        expect(lines[0]).toMatchObject({ message: { n: 2 }, applicationProperties: { orgId: 'org-a', type: 'proposal.created' } });
    });

    it('abandons on failure, redelivers, and dead-letters after the max delivery count', async () => {
        await fetch(`${host.origin('sb')}/api/publish/poison`, { method: 'POST', body: JSON.stringify({ bad: true }), headers: { 'content-type': 'application/json' } });
        await waitFor(() => readJsonLines(path.join(out, 'poison.jsonl')).length >= 3, 20000);
        const client = new ServiceBusClient(connection);
        const dlq = client.createReceiver('poison', { subQueueType: 'deadLetter' });
        const [dead] = await dlq.receiveMessages(1, { maxWaitTimeInMs: 5000 });
        expect(dead.body).toEqual({ bad: true });
        expect(dead.deadLetterReason).toBe('MaxDeliveryCountExceeded');
        await dlq.completeMessage(dead);
        await client.close();
        expect(readJsonLines(path.join(out, 'poison.jsonl')).map((l) => l.deliveryCount)).toEqual([1, 2, 3]);
    });
});
