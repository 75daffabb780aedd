/**
 * Local Service Bus broker: messages per second and end-to-end latency (send → handler)
 * through the real @azure/service-bus client, with 1 and with 8 concurrent receivers.
 *
 *   npm run bench:servicebus [-- --messages 2000]
 */
import { ServiceBusClient } from '@azure/service-bus';
import { rmSync } from 'node:fs';
import pino from 'pino';
import { LocalServiceBus } from '../devhost/servicebus/broker';
import { tempDir } from '../test/harness/devhost';

const arg = (name: string, fallback: number) => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

async function run(broker: LocalServiceBus, queue: string, messages: number, receivers: number): Promise<void> {
    const client = new ServiceBusClient(broker.connectionString);
    const latencies: number[] = [];
    let done!: () => void;
    const finished = new Promise<void>((resolve) => (done = resolve));
    const subs = Array.from({ length: receivers }, () =>
        client.createReceiver(queue).subscribe(
            {
                processMessage: async (m) => {
                    latencies.push(Date.now() - Number(m.applicationProperties?.sentAt));
                    if (latencies.length === messages) done();
                },
                processError: async () => undefined,
            },
            { autoCompleteMessages: true, maxConcurrentCalls: 1 },
        ),
    );
    const sender = client.createSender(queue);
    const started = Date.now();
    for (let i = 0; i < messages; i += 100) {
        await sender.sendMessages(Array.from({ length: Math.min(100, messages - i) }, (_, k) => ({ body: { n: i + k }, applicationProperties: { sentAt: Date.now() } })));
    }
    await finished;
    const seconds = (Date.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    console.log(`  ${receivers} receiver(s): ${(messages / seconds).toFixed(0)} messages/s, end-to-end p50 ${percentile(latencies, 50)} ms, p99 ${percentile(latencies, 99)} ms`);
    await Promise.all(subs.map((s) => s.close()));
    await sender.close();
    await client.close();
}

async function main(): Promise<void> {
    const messages = arg('messages', 2000);
    const dir = tempDir('flexchange-bus-bench-');
    const broker = new LocalServiceBus({
        dir,
        logger: pino({ level: 'silent' }),
        entities: { queues: [{ name: 'one' }, { name: 'eight' }], topics: [] },
    });
    await broker.start(0);
    try {
        console.log(`service bus: ${messages} messages (persisted before each acknowledgement), peek-lock, complete after the handler`);
        await run(broker, 'one', messages, 1);
        await run(broker, 'eight', messages, 8);
    } finally {
        await broker.stop();
        rmSync(dir, { recursive: true, force: true });
    }
}

main().catch((err) => {
    console.error(err);
    process.exit(1);
});
