/**
 * End to end: completed 2-party proposals per second through the whole system (core saga,
 * two member deployments signing with their own keys, the chain event pump), for 1, 8 and 32
 * concurrent proposers; and, as the reference measured in the same run, the ledger's raw
 * transaction rate (pre-signed transfers broadcast in nonce order) divided by the three
 * transactions a proposal takes (create, two signatures).
 *
 *   npm run bench:proposals [-- --proposals 32 --levels 1,8,32 --counts [--idle 60] [--observe feed|status]]
 *
 * How the bench learns that a proposal awaits signatures and that it completed (`--observe`):
 * `feed` (the default) reads the proposer organisation's event feed every 200 ms, one reader for
 * all its proposals, as README's "Events" tells a member to (`proposal.created`, `proposal.completed`);
 * `status` polls each proposal, `GET /api/proposals/{id}` every 200 ms, as the bench did until
 * 2026-12-04 (at 32 proposers 160 requests a second to the core, each with the saga's status).
 *
 * `--counts`: per completed proposal, what the system did for it in each level (from the devhost's
 * `GET /dev/counts`, summed over the core and the members): Durable work items, document store
 * and storage requests (reads, writes), ledger calls, HTTP calls between deployments and to the
 * vaults and the issuer, and requests served; so a change that doubles one of them is seen.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { Wallet, parseEther, type TransactionRequest } from 'ethers';
import { devToken, removeDir, repoRoot, startDevhost, tempDir, waitFor } from '../test/harness/devhost';
import { onboard } from '../test/harness/journeys';

function arg(name: string, fallback: number): number {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

async function rpc<T>(url: string, method: string, params: unknown[]): Promise<T> {
    const res = (await (await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) })).json()) as { result?: T; error?: { message: string } };
    if (res.error) throw new Error(`${method}: ${res.error.message}`);
    return res.result as T;
}

/** Pre-signed transfers from a fresh key, broadcast in nonce order; tx/s until the last is mined. */
async function rawRate(ledger: string, count: number): Promise<number> {
    const wallet = Wallet.createRandom();
    await rpc(ledger, 'anvil_setBalance', [wallet.address, '0x' + parseEther('1000').toString(16)]);
    const [chainHex, base] = await Promise.all([rpc<string>(ledger, 'eth_chainId', []), rpc<{ baseFeePerGas: string }>(ledger, 'eth_getBlockByNumber', ['latest', false])]);
    const maxFee = BigInt(base.baseFeePerGas) * 4n + 2_000_000_000n;
    const signed: string[] = [];
    for (let nonce = 0; nonce < count; nonce++) {
        const tx: TransactionRequest = { type: 2, chainId: Number(chainHex), nonce, to: Wallet.createRandom().address, value: 1n, gasLimit: 21_000n, maxFeePerGas: maxFee, maxPriorityFeePerGas: 1_000_000_000n };
        signed.push(await wallet.signTransaction(tx));
    }
    const started = Date.now();
    const hashes: string[] = [];
    for (let i = 0; i < signed.length; i += 100) {
        const batch = signed.slice(i, i + 100).map((raw, j) => ({ jsonrpc: '2.0', id: i + j, method: 'eth_sendRawTransaction', params: [raw] }));
        const answers = (await (await fetch(ledger, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(batch) })).json()) as { result?: string; error?: { message: string } }[];
        for (const a of answers) {
            if (a.error) throw new Error(`raw broadcast refused: ${a.error.message}`);
            hashes.push(a.result!);
        }
    }
    await waitFor(async () => ((await rpc<unknown>(ledger, 'eth_getTransactionReceipt', [hashes.at(-1)])) ? true : undefined), 120_000, 50);
    return (count / (Date.now() - started)) * 1000;
}

type Counts = { apps: Record<string, { served: number; invocations?: Record<string, number>; durable: Record<string, number>; calls: Record<string, { reads: number; writes: number }> }> };

/** The document store reached through the devhost's Entra ID front (the apps' identities, `cosmosEntra`) counted as the document store (`cosmos`). */
function asDocumentStore(c: Counts): Counts {
    for (const app of Object.values(c.apps)) {
        const calls: Counts['apps'][string]['calls'] = {};
        for (const [named, n] of Object.entries(app.calls)) {
            const sum = (calls[named.replace(/^cosmosEntra(?=\/|$)/, 'cosmos')] ??= { reads: 0, writes: 0 });
            sum.reads += n.reads;
            sum.writes += n.writes;
        }
        app.calls = calls;
    }
    return c;
}

/** The devhost's counts summed over its app instances, by what they name. */
function summed(c: Counts): Map<string, number> {
    const out = new Map<string, number>();
    const add = (k: string, n: number) => out.set(k, (out.get(k) ?? 0) + n);
    for (const app of Object.values(c.apps)) {
        add('served', app.served);
        for (const [trigger, n] of Object.entries(app.invocations ?? {})) {
            add('invocations', n);
            add(`invocations.${trigger.replace(/Trigger$/, '')}`, n);
        }
        for (const [k, n] of Object.entries(app.durable)) add(`durable.${k}`, n);
        for (const [dest, n] of Object.entries(app.calls)) {
            const kind = dest.startsWith('app:') ? 'deployments' : dest.startsWith('node:') || dest === 'ledger' ? 'ledger' : dest.startsWith('vault:') ? 'vault' : dest.split('/')[0]!;
            add(`${kind}.reads`, n.reads);
            add(`${kind}.writes`, n.writes);
            if (dest.startsWith('cosmos/')) add(dest, n.reads + n.writes);
        }
    }
    return out;
}

/** One line per layer: what `after` adds to `before`, per completed proposal. */
function countsPerProposal(before: Counts, after: Counts, proposals: number, clientRequests: number): string[] {
    const [b, a] = [summed(before), summed(after)];
    const d = (k: string) => ((a.get(k) ?? 0) - (b.get(k) ?? 0)) / proposals;
    const rw = (k: string) => `${(d(`${k}.reads`) + d(`${k}.writes`)).toFixed(1)} (${d(`${k}.reads`).toFixed(1)} reads, ${d(`${k}.writes`).toFixed(1)} writes)`;
    return [
        `   Durable work items ${(d('durable.episodes') + d('durable.activities') + d('durable.entityOperations')).toFixed(1)} (${d('durable.episodes').toFixed(1)} orchestrator episodes, ${d('durable.activities').toFixed(1)} activities, ${d('durable.entityOperations').toFixed(1)} entity operations)`,
        `   document store (Cosmos) ${rw('cosmos')}; storage: queues ${rw('queue')}, tables ${rw('table')}, blobs ${rw('blob')}`,
        `   ledger JSON-RPC requests ${(d('ledger.reads') + d('ledger.writes')).toFixed(1)}; HTTP between deployments ${rw('deployments')}; vault ${rw('vault')}; issuer ${rw('issuer')}`,
        `   function executions ${d('invocations').toFixed(1)} (${[...a.keys()]
            .filter((k) => k.startsWith('invocations.'))
            .map((k) => [k.slice('invocations.'.length), d(k)] as const)
            .filter(([, n]) => n >= 0.05)
            .sort((x, y) => y[1] - x[1])
            .map(([k, n]) => `${k} ${n.toFixed(1)}`)
            .join(', ')})`,
        `   requests served by the deployments ${d('served').toFixed(1)}, of them from this bench ${(clientRequests / proposals).toFixed(1)} (its status polls or feed reads every 200 ms included)`,
        `   document store by container: ${[...a.keys()]
            .filter((k) => k.startsWith('cosmos/'))
            .map((k) => [k.slice('cosmos/'.length), d(k)] as const)
            .filter(([, n]) => n >= 0.05)
            .sort((x, y) => y[1] - x[1])
            .map(([k, n]) => `${k} ${n.toFixed(1)}`)
            .join(', ')}`,
        `   by deployment: ${Object.keys(after.apps)
            .map((name) => {
                const [x, y] = [before.apps[name], after.apps[name]!];
                const cosmos = (c?: { calls: Record<string, { reads: number; writes: number }> }) => Object.entries(c?.calls ?? {}).reduce((s, [k, n]) => (k.split('/')[0] === 'cosmos' ? s + n.reads + n.writes : s), 0);
                const work = (c?: { durable: Record<string, number> }) => Object.values(c?.durable ?? {}).reduce((s, n) => s + n, 0);
                return `${name.replace(/^member-/, '')} Cosmos ${((cosmos(y) - cosmos(x)) / proposals).toFixed(1)}, Durable ${((work(y) - work(x)) / proposals).toFixed(1)}, served ${((y.served - (x?.served ?? 0)) / proposals).toFixed(1)}`;
            })
            .join('; ')}`,
    ];
}

/** What the deployments did in an idle window, scaled to a day, per deployment. */
function idlePerDay(before: Counts, after: Counts, seconds: number): string[] {
    const perDay = 86_400 / seconds;
    return [
        `idle ${seconds} s, per day:`,
        ...Object.keys(after.apps).map((name) => {
            const [x, y] = [before.apps[name], after.apps[name]!];
            const calls = (kind: string) => Object.entries(y.calls).reduce((s, [k, n]) => (k.split('/')[0] === kind ? s + n.reads + n.writes - (x?.calls[k]?.reads ?? 0) - (x?.calls[k]?.writes ?? 0) : s), 0);
            const work = Object.entries(y.durable).reduce((s, [k, n]) => s + n - (x?.durable[k] ?? 0), 0);
            const f = (n: number) => Math.round(n * perDay).toLocaleString('en-GB');
            const executions = Object.entries(y.invocations ?? {}).reduce((s, [k, n]) => s + n - (x?.invocations?.[k] ?? 0), 0);
            return `   ${name.replace(/^member-/, '')}: function executions ${f(executions)}, served ${f(y.served - (x?.served ?? 0))}, Durable work items ${f(work)}, queue requests ${f(calls('queue'))}, table ${f(calls('table'))}, Cosmos ${f(calls('cosmos'))}, ledger ${f(calls('ledger') + calls('node'))}`;
        }),
    ];
}

/**
 * An organisation's event feed read every 200 ms from where it stands now: `until` resolves when
 * the proposal's event of that type has been read (and fails on the proposal ending otherwise).
 */
function feedWatch(core: string, orgId: string, token: string, get: (input: string, init?: RequestInit) => Promise<Response>) {
    const seen = new Set<string>(); // `<proposalId> <type>`
    const ended = new Map<string, string>(); // proposalId → the event that ended it otherwise
    const waiters = new Map<string, { resolve: () => void; reject: (err: Error) => void }[]>();
    let after = 0;
    let stopped = false;
    const read = async (): Promise<number> => {
        const res = await get(`${core}/orgs/${orgId}/events?after=${after}&limit=500`, { headers: { authorization: `Bearer ${token}` } });
        if (res.status !== 200) throw new Error(`the event feed answered ${res.status}: ${await res.text()}`);
        const page = (await res.json()) as { items: { type: string; subject: string }[]; next: number };
        for (const e of page.items) {
            if (!e.type.startsWith('proposal.')) continue;
            const id = e.subject.replace(/^proposals\//, '');
            if (/^proposal\.(created|signed|completed)$/.test(e.type)) {
                seen.add(`${id} ${e.type}`);
                for (const w of waiters.get(`${id} ${e.type}`) ?? []) w.resolve();
                waiters.delete(`${id} ${e.type}`);
                continue;
            }
            // Rejected, expired or cancelled: whoever waits for this proposal is told.
            ended.set(id, e.type);
            for (const key of [`${id} proposal.created`, `${id} proposal.completed`]) {
                for (const w of waiters.get(key) ?? []) w.reject(new Error(`proposal ${id} ended ${e.type}`));
                waiters.delete(key);
            }
        }
        after = page.next;
        return page.items.length;
    };
    const loop = async () => {
        while (!stopped) {
            await read().catch((err: Error) => console.error(`bench: ${err.message}`));
            await new Promise((r) => setTimeout(r, 200));
        }
    };
    return {
        /** Skips what the feed holds already, then reads on. */
        async start() {
            while ((await read()) > 0);
            seen.clear();
            ended.clear();
            void loop();
        },
        stop: () => void (stopped = true),
        until(proposalId: string, type: 'proposal.created' | 'proposal.completed'): Promise<void> {
            if (ended.has(proposalId)) return Promise.reject(new Error(`proposal ${proposalId} ended ${ended.get(proposalId)}`));
            if (seen.has(`${proposalId} ${type}`)) return Promise.resolve();
            return new Promise((resolve, reject) => {
                const key = `${proposalId} ${type}`;
                waiters.set(key, [...(waiters.get(key) ?? []), { resolve, reject }]);
            });
        },
    };
}

async function main(): Promise<void> {
    const perLevel = arg('proposals', 32);
    const stateDir = tempDir('flexchange-bench-');
    let watch: ReturnType<typeof feedWatch> | undefined;
    const host = await startDevhost(['--app', repoRoot, '--name', 'core', '--set', 'FLEXCHANGE_APPROVERS=approver@bench.example', '--set', 'FLEXCHANGE_WEBHOOK_ALLOW_INSECURE_LOOPBACK=true'], { stateDir, storage: true, env: { FLEXCHANGE_LOG_LEVEL: 'warn' } });
    try {
        const core = `${host.origin('core')}/api`;
        const admin = await devToken(host, { roles: ['Flexchange.Admin'], email: 'ops@bench.example' });
        // `--artifact EnergyExchange` measures v1 (three transactions a proposal); v2 (the default) batches anchors and signatures.
        const artifactArg = process.argv.indexOf('--artifact');
        const artifact = artifactArg >= 0 ? process.argv[artifactArg + 1]! : 'EnergyExchangeV2';
        const deployed = await fetch(`${core}/contracts`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ artifact }) });
        if (deployed.status !== 201) throw new Error(`contract deployment answered ${deployed.status}`);
        const a = await onboard(host, 'Bench North', 'north@bench.example');
        const b = await onboard(host, 'Bench South', 'south@bench.example');
        const up = await fetch(`${core}/assets`, { method: 'POST', headers: { authorization: `Bearer ${a.trader}`, 'content-type': 'application/pdf' }, body: randomBytes(64 * 1024) });
        const { assetId } = (await up.json()) as { assetId: string };
        const services = (await (await fetch(`${host.consoleUrl}/dev/services`)).json()) as { services: { ledger: string } };
        const ledger = services.services.ledger;

        const COUNTS = process.argv.includes('--counts');
        const countsNow = async (): Promise<Counts> => asDocumentStore((await (await fetch(`${host.consoleUrl}/dev/counts`)).json()) as Counts);
        let clientRequests = 0;
        // This bench's own requests to the deployments, to tell them from the deployments' calls to each other.
        const counted = (input: string, init?: RequestInit) => {
            clientRequests++;
            return fetch(input, init);
        };
        const OBSERVE = process.argv.includes('--observe') ? process.argv[process.argv.indexOf('--observe') + 1]! : 'feed';
        if (OBSERVE !== 'feed' && OBSERVE !== 'status') throw new Error('--observe is feed or status');
        const feed = feedWatch(core, a.orgId, a.trader, counted);
        watch = feed;
        const status = async (id: string) => ((await (await counted(`${core}/proposals/${id}`, { headers: { authorization: `Bearer ${a.trader}` } })).json()) as { status: string }).status;
        let retried = 0;
        let awaitedCopy = 0;
        const sign = async (org: typeof a, id: string) => {
            // As a client should: a 503 is retried (the signature is one operation however often it is asked for);
            // on v2 a member signs only terms it holds, so a 409 wrong_state before its copy arrived is asked again shortly.
            for (let attempt = 0, copyWaits = 0; ; ) {
                const res = await counted(`${org.memberUrl}/proposals/${id}/signature`, { method: 'POST', headers: { authorization: `Bearer ${org.trader}`, 'content-type': 'application/json' }, body: JSON.stringify({ account: org.account }) });
                if (res.status === 202) return;
                const text = await res.text();
                if (res.status === 409 && /no copy/.test(text) && copyWaits++ < 100) {
                    awaitedCopy++;
                    await new Promise((r) => setTimeout(r, 100));
                    continue;
                }
                if (res.status !== 503 || attempt >= 5) throw new Error(`signature answered ${res.status}: ${text}`);
                retried++;
                await new Promise((r) => setTimeout(r, 500 * 2 ** attempt++));
            }
        };
        // Each proposal's time in its three stages, as this bench sees them: posted → AwaitingSignatures (anchored,
        // `proposal.created` published), → both signatures accepted by the members (their copies arrived, the
        // transactions sent), → Completed (mined, seen by the chain event pump, concluded by the saga).
        const stages: [number, number, number][] = [];
        const one = async (): Promise<number> => {
            const started = Date.now();
            const res = await counted(`${core}/proposals`, {
                method: 'POST',
                headers: { authorization: `Bearer ${a.trader}`, 'content-type': 'application/json' },
                body: JSON.stringify({
                    parties: [{ orgId: a.orgId, account: a.account }, { orgId: b.orgId, account: b.account }],
                    terms: { product: 'baseload', direction: 'sell', quantityMWh: 10, priceGbpPerMWh: 70, deliveryStart: '2027-01-01T00:00:00Z', deliveryEnd: '2027-01-02T00:00:00Z' },
                    assets: [assetId],
                    expiresAt: new Date(Date.now() + 3600_000).toISOString(),
                }),
            });
            if (res.status !== 202) throw new Error(`POST /proposals answered ${res.status}: ${await res.text()}`);
            const { proposalId } = (await res.json()) as { proposalId: string };
            if (OBSERVE === 'feed') await feed.until(proposalId, 'proposal.created');
            else await waitFor(async () => ((await status(proposalId)) === 'AwaitingSignatures' ? true : undefined), 300_000, 200);
            const awaiting = Date.now();
            await Promise.all([sign(a, proposalId), sign(b, proposalId)]);
            const signed = Date.now();
            if (OBSERVE === 'feed') await feed.until(proposalId, 'proposal.completed');
            else await waitFor(async () => ((await status(proposalId)) === 'Completed' ? true : undefined), 300_000, 200);
            stages.push([awaiting - started, signed - awaiting, Date.now() - signed]);
            return Date.now() - started;
        };

        // `--idle <s>` (with --counts): what the deployments do with no proposal at all for that long (timers, queue polls), per day.
        const idleArg = process.argv.indexOf('--idle');
        if (COUNTS && idleArg >= 0) {
            const seconds = Number(process.argv[idleArg + 1]);
            const before = await countsNow();
            await new Promise((r) => setTimeout(r, seconds * 1000));
            const after = await countsNow();
            for (const line of idlePerDay(before, after, seconds)) console.log(line);
            if (process.env.BENCH_COUNTS_JSON) writeFileSync(`${process.env.BENCH_COUNTS_JSON}.idle.json`, JSON.stringify({ seconds, before, after }, null, 1));
        }
        await feed.start();
        console.log(`machine: ${(await import('node:os')).cpus().length} × ${(await import('node:os')).cpus()[0]?.model.trim()}, node ${process.version}; ${perLevel} proposals per level (at least the level's concurrency); contract ${artifact}`);
        const raw = await rawRate(ledger, 1000);
        console.log(`ledger raw: ${raw.toFixed(0)} tx/s (1,000 pre-signed transfers) → ${(raw / 3).toFixed(0)} proposals/s at 3 transactions each`);
        const levelsArg = process.argv.indexOf('--levels');
        const levels = levelsArg >= 0 ? process.argv[levelsArg + 1]!.split(',').map(Number) : [1, 8, 32];
        for (const concurrency of levels) {
            const total = Math.max(perLevel, concurrency);
            const before = COUNTS ? await countsNow() : undefined;
            clientRequests = 0;
            let next = 0;
            const latencies: number[] = [];
            // On stderr, for whoever samples the machine during the level (a profiler, /proc).
            console.error(`${concurrency} proposers: posting ${total} proposals`);
            const started = Date.now();
            await Promise.all(
                Array.from({ length: concurrency }, async () => {
                    while (next < total) {
                        next++;
                        latencies.push(await one());
                    }
                }),
            );
            const seconds = (Date.now() - started) / 1000;
            latencies.sort((x, y) => x - y);
            const stageLine = ['to AwaitingSignatures', 'to both signatures accepted', 'to Completed']
                .map((name, i) => {
                    const xs = stages.map((s) => s[i]!).sort((x, y) => x - y);
                    return `${name} p50 ${(xs[Math.floor(xs.length / 2)]! / 1000).toFixed(2)} s`;
                })
                .join(', ');
            stages.length = 0;
            const rate = total / seconds;
            console.log(`${String(concurrency).padStart(2)} proposers: ${total} completed in ${seconds.toFixed(1)} s → ${rate.toFixed(2)} proposals/s (ratio to the raw limit ${(rate / (raw / 3)).toFixed(4)}); end-to-end p50 ${(latencies[Math.floor(latencies.length / 2)]! / 1000).toFixed(1)} s, p99 ${(latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))]! / 1000).toFixed(1)} s; signatures retried after a 503: ${retried}; asked again until the member's copy arrived: ${awaitedCopy}`);
            console.log(`   stages (${OBSERVE === 'feed' ? "the proposer's event feed read" : 'each proposal polled'} every 200 ms): ${stageLine}`);
            if (before) {
                const after = await countsNow();
                for (const line of countsPerProposal(before, after, total, clientRequests)) console.log(line);
                // BENCH_COUNTS_JSON=<file>: the raw counts before and after each level, for a closer look.
                if (process.env.BENCH_COUNTS_JSON) writeFileSync(`${process.env.BENCH_COUNTS_JSON}.${concurrency}.json`, JSON.stringify({ proposals: total, seconds, clientRequests, before, after }, null, 1));
            }
            retried = 0;
            awaitedCopy = 0;
        }
    } finally {
        watch?.stop();
        await host.stop();
        removeDir(stateDir);
    }
}

main().catch((err) => {
    console.error(err);
    process.exit(1);
});
