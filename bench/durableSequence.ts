/**
 * Durable backend throughput: N concurrent orchestrations, each a sequence of 5
 * activities, on the devhost with Azurite. Prints orchestrations per second and the
 * activity dispatch latency (from the episode that scheduled an activity to its start).
 *
 *   npm run bench:durable [-- --orchestrations 500 --activities 16 --orchestrators 16]
 */
import { fixture, removeDir, startDevhost, tempDir } from '../test/harness/devhost';

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
    try {
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
