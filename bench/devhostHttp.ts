/**
 * Devhost HTTP dispatch: requests per second and latency percentiles for a
 * trivial function on the fixture app, with a fixed number of concurrent clients.
 *
 *   npm run bench:devhost-http [-- --requests 5000 --concurrency 32]
 */
import http from 'node:http';
import { fixture, removeDir, startDevhost } from '../test/harness/devhost';

function arg(name: string, fallback: number): number {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

function get(agent: http.Agent, url: string): Promise<number> {
    return new Promise((resolve, reject) => {
        const started = process.hrtime.bigint();
        http.get(url, { agent }, (res) => {
            res.resume();
            res.on('end', () => (res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - started) / 1e6) : reject(new Error(`status ${res.statusCode}`))));
        }).on('error', reject);
    });
}

function percentile(sorted: number[], p: number): number {
    return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main(): Promise<void> {
    const total = arg('requests', 3000);
    const concurrency = arg('concurrency', 16);
    const host = await startDevhost(['--app', fixture('basic-app'), '--name', 'bench'], { env: { FLEXCHANGE_LOG_LEVEL: 'warn' } });
    const url = `${host.origin('bench')}/api/items/42`;
    const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
    try {
        for (let i = 0; i < 200; i++) await get(agent, url); // warm-up
        const latencies: number[] = [];
        let next = 0;
        const started = Date.now();
        await Promise.all(
            Array.from({ length: concurrency }, async () => {
                while (next < total) {
                    next++;
                    latencies.push(await get(agent, url));
                }
            }),
        );
        const seconds = (Date.now() - started) / 1000;
        latencies.sort((a, b) => a - b);
        console.log(`devhost http: ${total} requests, ${concurrency} concurrent`);
        console.log(`  throughput  ${(total / seconds).toFixed(0)} req/s`);
        console.log(`  latency     p50 ${percentile(latencies, 50).toFixed(2)} ms  p99 ${percentile(latencies, 99).toFixed(2)} ms  max ${latencies[latencies.length - 1].toFixed(2)} ms`);
    } finally {
        agent.destroy();
        await host.stop();
        removeDir(host.stateDir);
    }
}

main().catch((err) => {
    console.error(err);
    process.exit(1);
});
