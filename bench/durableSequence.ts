/**
 * Durable backend throughput: N concurrent orchestrations, each a sequence of 5
 * activities, on the devhost with Azurite. Prints orchestrations per second and the
 * activity dispatch latency (from the episode that scheduled an activity to its start);
 * the storage operations the backend spent per orchestration and per work item (the
 * devhost's counts); and, as the reference measured in the same run, how long Azurite
 * takes for the same number of queue and table operations issued directly (the same mix
 * of sends, receives, deletes, entity reads and writes, 16 at a time).
 *
 *   npm run bench:durable [-- --orchestrations 500 --activities 16 --orchestrators 16]
 */
import { TableClient } from '@azure/data-tables';
import { QueueClient } from '@azure/storage-queue';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fixture, removeDir, startDevhost, tempDir } from '../test/harness/devhost';

type Counts = { apps: Record<string, { durable: { episodes: number; activities: number }; calls: Record<string, { reads: number; writes: number }> }> };
type StorageOps = { queueReads: number; queueWrites: number; tableReads: number; tableWrites: number; blobs: number };

function storageOps(c: Counts): StorageOps & { episodes: number; activities: number } {
    const app = c.apps.bench!;
    const calls = (k: string) => app.calls[k] ?? { reads: 0, writes: 0 };
    return {
        queueReads: calls('queue').reads,
        queueWrites: calls('queue').writes,
        tableReads: calls('table').reads,
        tableWrites: calls('table').writes,
        blobs: calls('blob').reads + calls('blob').writes,
        episodes: app.durable.episodes,
        activities: app.durable.activities,
    };
}

/**
 * The raw reference: the same numbers of queue sends and deletes (writes), receives (reads), entity
 * upserts (writes) and reads, issued straight to Azurite from this process, 16 at a time. Seconds taken.
 */
async function rawAzurite(connectionString: string, ops: StorageOps): Promise<number> {
    const queue = new QueueClient(connectionString, 'benchraw');
    const table = TableClient.fromConnectionString(connectionString, 'benchraw', { allowInsecureConnection: true });
    await queue.createIfNotExists();
    await table.createTable();
    const payload = JSON.stringify({ id: 'x'.repeat(36), instanceId: 'y'.repeat(40), event: { EventType: 4, Name: 'sayHello', Input: '"Tokyo"' } });
    // Half the queue writes are sends, half deletes of what was received (as the backend does).
    const sends = Math.ceil(ops.queueWrites / 2);
    const jobs: (() => Promise<unknown>)[] = [];
    for (let i = 0; i < sends; i++) jobs.push(() => queue.sendMessage(Buffer.from(payload).toString('base64')));
    for (let i = 0; i < ops.tableWrites; i++) jobs.push(() => table.upsertEntity({ partitionKey: `p${i % 500}`, rowKey: String(i), Event0: payload }, 'Replace'));
    for (let i = 0; i < ops.tableReads; i++) jobs.push(() => table.getEntity(`p${i % 500}`, String(i % Math.max(1, ops.tableWrites))).catch(() => undefined));
    const started = Date.now();
    let next = 0;
    const received: { messageId: string; popReceipt: string }[] = [];
    let receives = ops.queueReads;
    let deletes = ops.queueWrites - sends;
    await Promise.all(
        Array.from({ length: 16 }, async () => {
            for (;;) {
                if (next < jobs.length) {
                    await jobs[next++]!();
                } else if (receives > 0) {
                    receives--;
                    received.push(...(await queue.receiveMessages({ numberOfMessages: 32, visibilityTimeout: 60 })).receivedMessageItems);
                } else if (deletes > 0 && received.length > 0) {
                    deletes--;
                    const m = received.pop()!;
                    await queue.deleteMessage(m.messageId, m.popReceipt);
                } else return;
            }
        }),
    );
    const seconds = (Date.now() - started) / 1000;
    await queue.delete();
    await table.deleteTable();
    return seconds;
}

function arg(name: string, fallback: number): number {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

async function main(): Promise<void> {
    const n = arg('orchestrations', 500);
    const out = tempDir();
    const host = await startDevhost(
        [
            '--app', fixture('durable-app'), '--name', 'bench', '--set', `FIXTURE_OUT=${out}`,
            '--set', `AzureFunctionsJobHost__extensions__durableTask__maxConcurrentActivityFunctions=${arg('activities', 16)}`,
            '--set', `AzureFunctionsJobHost__extensions__durableTask__maxConcurrentOrchestratorFunctions=${arg('orchestrators', 16)}`,
        ],
        { storage: true, env: { FLEXCHANGE_LOG_LEVEL: 'warn' } },
    );
    const webhook = `${host.origin('bench')}/runtime/webhooks/durabletask`;
    const counts = async () => storageOps((await (await fetch(`${host.consoleUrl}/dev/counts`)).json()) as Counts);
    try {
        const before = await counts();
        const started = Date.now();
        const ids: string[] = [];
        for (let i = 0; i < n; i += 50) {
            const batch = await Promise.all(
                Array.from({ length: Math.min(50, n - i) }, async (_, k) => {
                    const res = await fetch(`${webhook}/orchestrators/benchSequence/bench-${i + k}`, { method: 'POST' });
                    if (res.status !== 202) throw new Error(`start failed: ${res.status} ${await res.text()}`);
                    return (await res.json()).id as string;
                }),
            );
            ids.push(...batch);
        }
        const startedAll = Date.now();
        let completed: { output: number[] }[] = [];
        for (;;) {
            const res = await fetch(`${webhook}/instances/?runtimeStatus=Completed,Failed&top=10000`);
            const list = (await res.json()) as { runtimeStatus: string; output: number[] }[];
            const failed = list.filter((s) => s.runtimeStatus === 'Failed');
            if (failed.length > 0) throw new Error(`${failed.length} orchestrations failed`);
            if (list.length >= n) {
                completed = list;
                break;
            }
            await new Promise((r) => setTimeout(r, 250));
        }
        const seconds = (Date.now() - started) / 1000;
        const latencies = completed.flatMap((s) => s.output).sort((a, b) => a - b);
        console.log(`durable: ${n} orchestrations x 5 activities (started in ${((startedAll - started) / 1000).toFixed(1)} s)`);
        console.log(`  throughput         ${(n / seconds).toFixed(1)} orchestrations/s, ${((n * 5) / seconds).toFixed(0)} activities/s (${seconds.toFixed(1)} s in all)`);
        console.log(`  activity dispatch  p50 ${percentile(latencies, 50)} ms  p99 ${percentile(latencies, 99)} ms  max ${latencies[latencies.length - 1]} ms`);
        // Anything the backend warned about during the run (an episode that failed and was retried shows here).
        const warnings = host.logs().filter((l) => Number(l.level) >= 40);
        if (warnings.length > 0) console.log(`  warnings           ${warnings.length}: ${[...new Set(warnings.map((l) => String(l.msg)))].slice(0, 5).join(' | ')}`);
        const after = await counts();
        const d = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - before[k as keyof typeof before]])) as ReturnType<typeof storageOps>;
        const ops = d.queueReads + d.queueWrites + d.tableReads + d.tableWrites + d.blobs;
        const workItems = d.episodes + d.activities;
        console.log(`  storage operations ${ops} (queue ${d.queueReads} reads, ${d.queueWrites} writes; table ${d.tableReads} reads, ${d.tableWrites} writes; blob ${d.blobs}): ${(ops / n).toFixed(1)} per orchestration, ${(ops / workItems).toFixed(2)} per work item (${d.episodes} episodes, ${d.activities} activities), ${(ops / seconds).toFixed(0)} a second`);
        const { connectionString } = JSON.parse(readFileSync(path.join(host.stateDir, 'storage.json'), 'utf8')) as { connectionString: string };
        const raw = await rawAzurite(connectionString, d);
        console.log(`  raw Azurite         the same ${ops - d.blobs} queue and table operations issued directly, 16 at a time: ${raw.toFixed(1)} s, ${((ops - d.blobs) / raw).toFixed(0)} a second → ${(n / raw).toFixed(1)} orchestrations/s if they were all the backend spent (the backend reached ${((n / seconds) / (n / raw) * 100).toFixed(0)} % of that)`);
    } finally {
        await host.stop();
        removeDir(out);
        removeDir(host.stateDir);
    }
}

main().catch((err) => {
    console.error(err);
    process.exit(1);
});
