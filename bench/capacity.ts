/**
 * Capacity and cost model, from counts measured by `bench:proposals` (issue 18, item 5): for
 * 1,000 / 100,000 / 1,000,000 proposals a day, what the ledger, the Functions, the storage
 * account (task hubs), Cosmos DB and Service Bus take, for the core and for one member, and what
 * that costs a month at the unit prices below (assumed list prices: check them for your region).
 *
 *   BENCH_COUNTS_JSON=/tmp/cap npm run bench:proposals -- --levels 1,32 --counts --idle 60
 *   npx tsx bench/capacity.ts --counts /tmp/cap [--level 1] [--members 10] [--block-seconds 2]
 *
 * Per proposal it takes the counts of one level (`<prefix>.<level>.json`: the core's and each
 * member's function executions, Durable work items and Cosmos requests, per completed proposal), and per day
 * of idleness the counts of the idle window (`<prefix>.idle.json`: timers and queue polls with
 * no proposal). The bench's own status polls are requests the core served: they stay in, as a
 * client that watches its proposal makes them too.
 */
import { readFileSync } from 'node:fs';

type AppCounts = { served: number; invocations?: Record<string, number>; durable: Record<string, number>; calls: Record<string, { reads: number; writes: number }> };
type Counts = { apps: Record<string, AppCounts> };

function arg(name: string, fallback?: string): string | undefined {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? process.argv[i + 1] : fallback;
}
const num = (name: string, fallback: number) => Number(arg(name, String(fallback)));

/**
 * Unit prices in USD (pay as you go, list prices as of 2026; an operator checks them in the Azure
 * pricing calculator for the region and passes its own with the flag of the same name).
 */
const PRICE = {
    /** Flex Consumption, on demand: per million executions, and per GB-second of instance memory while it executes. */
    flexPerMillionExecutions: num('flex-per-million-executions', 0.4),
    flexPerGbSecond: num('flex-per-gb-second', 0.000026),
    /** Storage (general purpose v2, LRS): queue writes (put, update, delete) and reads (get), per 10,000; table transactions per 10,000. */
    queueWritePer10k: num('queue-write-per-10k', 0.04),
    queueReadPer10k: num('queue-read-per-10k', 0.004),
    tablePer10k: num('table-per-10k', 0.00036),
    /** Cosmos DB serverless: per million request units. */
    cosmosPerMillionRu: num('cosmos-per-million-ru', 0.25),
    /** Service Bus Standard: the namespace a month (13 million operations included), then per million operations. */
    serviceBusBase: num('service-bus-base', 9.81),
    serviceBusPerMillionOps: num('service-bus-per-million-ops', 0.8),
};

/** Assumptions that no count gives. */
const ASSUME = {
    /** Request units: a read (point reads 1 RU, queries and their plans more) and a write (≈ 1–2 KB documents, default indexing), on average. */
    ruPerRead: num('ru-per-read', 1.5),
    ruPerWrite: num('ru-per-write', 8),
    /** Instance memory (Flex Consumption's default instance size) and how long an execution keeps an instance busy, on average. */
    instanceGb: num('instance-gb', 2),
    secondsPerExecution: num('seconds-per-execution', 0.1),
    /** The core's chain event pump runs every 5 s and follows new blocks for FLEXCHANGE_CHAIN_PUMP_FOLLOW_MS of it: its instance is busy that share of the day. */
    pumpBusyShare: num('pump-follow-ms', 4000) / 5000,
    /**
     * The consortium's ledger: block interval, block gas limit, organisations (each a party account), and
     * the gas a two-party proposal takes on EnergyExchangeV2, its anchor and its two signatures, each
     * alone in a transaction and in batches of 100. From `npx jest test/integration/energyExchangeV2.test.ts -t gas`
     * (2026-12-03): anchor 122,824 alone, 98,936 in a batch of 100; two signatures 56,553 in one
     * transaction, 34,848 in a batch of 100. Each party submits its own signature, so alone they are two
     * transactions: 56,553 + 21,000 (the second transaction's base cost) = 77,553.
     */
    blockSeconds: num('block-seconds', 2),
    blockGasLimit: num('block-gas-limit', 30_000_000),
    members: num('members', 10),
    anchorGasAlone: num('anchor-gas-alone', 122_824),
    anchorGasBatched: num('anchor-gas-batched', 98_936),
    signaturesGasAlone: num('signatures-gas-alone', 77_553),
    signaturesGasBatched: num('signatures-gas-batched', 34_848),
    /** Events a completed proposal publishes (created, two signed, completed), each to both parties. */
    eventsPerProposal: 4,
    parties: 2,
};

const prefix = arg('counts');
if (!prefix) throw new Error('--counts <prefix>: the BENCH_COUNTS_JSON prefix of a bench:proposals run with --counts --idle');
const idle = JSON.parse(readFileSync(`${prefix}.idle.json`, 'utf8')) as { seconds: number; before: Counts; after: Counts };
const level = arg('level', '1')!;
const run = JSON.parse(readFileSync(`${prefix}.${level}.json`, 'utf8')) as { proposals: number; seconds: number; clientRequests?: number; before: Counts; after: Counts };

interface Load {
    executions: number;
    episodes: number;
    activities: number;
    cosmosReads: number;
    cosmosWrites: number;
}

/**
 * Task hub storage as the Durable extension's Azure Storage provider spends it (the devhost's own
 * backend takes shortcuts a single local process may take, so its storage counts are not Azure's):
 * each orchestrator episode receives and deletes its control message, reads the history (no extended
 * sessions for the Node worker), appends to it in one batch and updates the instance row; each
 * activity is a work-item message sent, received and deleted, and its completion a control message
 * sent. Receives are counted one per message (sparse traffic does not fill a batch of 32). An idle
 * instance polls its control queues (`partitionCount`) and the work-item queue every
 * `maxQueuePollingInterval` (host.json: 4 and 1 s).
 */
const PROVIDER = {
    perEpisode: { queueReads: 1, queueWrites: 1, tables: 3 },
    perActivity: { queueReads: 1, queueWrites: 3, tables: 0 },
    idleQueueReadsPerDay: (4 + 1) * 86_400,
};

/** What `after` adds to `before` for the apps `pick` selects, averaged over them, divided by `per`. */
function load(before: Counts, after: Counts, pick: (name: string) => boolean, per: number): Load {
    const names = Object.keys(after.apps).filter(pick);
    const sum = (f: (a: AppCounts) => number) => names.reduce((s, n) => s + f(after.apps[n]!) - (before.apps[n] ? f(before.apps[n]!) : 0), 0) / names.length / per;
    const calls = (a: AppCounts, kind: string, rw: 'reads' | 'writes') => Object.entries(a.calls).reduce((s, [k, c]) => (k.split('/')[0] === kind ? s + c[rw] : s), 0);
    return {
        executions: sum((a) => Object.values(a.invocations ?? {}).reduce((s, n) => s + n, 0)),
        episodes: sum((a) => a.durable.episodes ?? 0),
        activities: sum((a) => a.durable.activities ?? 0),
        cosmosReads: sum((a) => calls(a, 'cosmos', 'reads')),
        cosmosWrites: sum((a) => calls(a, 'cosmos', 'writes')),
    };
}

const isCore = (n: string) => n === 'core';
const isMember = (n: string) => n.startsWith('member-');
const perDay = idle.seconds / 86_400;
const idleOf = { core: load(idle.before, idle.after, isCore, perDay), member: load(idle.before, idle.after, isMember, perDay) };
/**
 * Per proposal: what the level's run did, less what the deployments do anyway in that time (the idle
 * rate: timers and polls), over its proposals. Each of the bench's proposals has both members as
 * parties: a member's figure is per proposal it is party to.
 */
const proposalLoad = (role: 'core' | 'member', pick: (n: string) => boolean): Load => {
    const all = load(run.before, run.after, pick, run.proposals);
    const background = (k: keyof Load) => (idleOf[role][k] * run.seconds) / 86_400 / run.proposals;
    return Object.fromEntries(Object.entries(all).map(([k, v]) => [k, Math.max(0, v - background(k as keyof Load))])) as unknown as Load;
};
const perProposal = { core: proposalLoad('core', isCore), member: proposalLoad('member', isMember) };

const fmt = (n: number, digits = 0) => n.toLocaleString('en-GB', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const usd = (n: number) => `$${fmt(n, n < 10 ? 2 : 0)}`;

/** A deployment's day at `proposals` a day (the core: the consortium's; a member: those it is party to), and its month's cost. */
function day(role: 'core' | 'member', proposals: number) {
    const [i, p] = [idleOf[role], perProposal[role]];
    const at = (k: keyof Load) => i[k] + proposals * p[k];
    const executions = at('executions');
    const storage = (k: 'queueReads' | 'queueWrites' | 'tables') => at('episodes') * PROVIDER.perEpisode[k] + at('activities') * PROVIDER.perActivity[k] + (k === 'queueReads' ? PROVIDER.idleQueueReadsPerDay : 0);
    const busySeconds = Math.min(86_400, Math.max(role === 'core' ? ASSUME.pumpBusyShare * 86_400 : 0, executions * ASSUME.secondsPerExecution));
    const ru = at('cosmosReads') * ASSUME.ruPerRead + at('cosmosWrites') * ASSUME.ruPerWrite;
    // Service Bus: the core sends each event to each party; each member receives and completes its own.
    const busOps = role === 'core' ? proposals * ASSUME.eventsPerProposal * ASSUME.parties : proposals * ASSUME.eventsPerProposal * 2;
    const month = {
        functions: 30 * ((executions / 1e6) * PRICE.flexPerMillionExecutions + busySeconds * ASSUME.instanceGb * PRICE.flexPerGbSecond),
        storage: 30 * ((storage('queueWrites') / 1e4) * PRICE.queueWritePer10k + (storage('queueReads') / 1e4) * PRICE.queueReadPer10k + (storage('tables') / 1e4) * PRICE.tablePer10k),
        cosmos: 30 * (ru / 1e6) * PRICE.cosmosPerMillionRu,
        serviceBus: role === 'core' ? PRICE.serviceBusBase + Math.max(0, (30 * busOps - 13e6) / 1e6) * PRICE.serviceBusPerMillionOps : 0,
    };
    return { executions, busySeconds, queue: storage('queueReads') + storage('queueWrites'), tables: storage('tables'), cosmos: at('cosmosReads') + at('cosmosWrites'), ru, busOps, month, total: Object.values(month).reduce((s, n) => s + n, 0) };
}

/** The ledger at `proposals` a day: batch sizes, transactions, gas and how full its blocks are. */
function ledger(proposals: number) {
    const perSecond = proposals / 86_400;
    const clamp = (n: number) => Math.min(100, Math.max(1, n));
    // Items that arrive while a batch is being mined join the next one: about a block interval's worth.
    const anchorBatch = clamp(perSecond * ASSUME.blockSeconds);
    const signatureBatch = clamp(((perSecond * ASSUME.parties) / ASSUME.members) * ASSUME.blockSeconds);
    const gasAt = (alone: number, batched: number, size: number) => {
        // gas per item = per-item part + the transaction's own cost shared by the batch (fitted from sizes 1 and 100).
        const txPart = ((alone - batched) * 100) / 99;
        return alone - txPart + txPart / size;
    };
    const gasPerProposal = gasAt(ASSUME.anchorGasAlone, ASSUME.anchorGasBatched, anchorBatch) + gasAt(ASSUME.signaturesGasAlone, ASSUME.signaturesGasBatched, signatureBatch);
    const transactions = proposals / anchorBatch + (proposals * ASSUME.parties) / signatureBatch;
    const gasPerDay = proposals * gasPerProposal;
    const blockFull = gasPerDay / 86_400 / (ASSUME.blockGasLimit / ASSUME.blockSeconds);
    return { anchorBatch, signatureBatch, transactions, gasPerProposal, gasPerDay, blockFull };
}

const volumes = [0, 1_000, 100_000, 1_000_000];
console.log(`counts: ${prefix}.idle.json (${idle.seconds} s idle) and ${prefix}.${level}.json (${run.proposals} proposals at ${level} proposers${run.clientRequests ? `; the client's requests, its status reads included, ${fmt(run.clientRequests / run.proposals, 1)} a proposal` : ''})`);
const describe = (l: Load) => `${fmt(l.executions, 1)} executions (${fmt(l.episodes, 1)} orchestrator episodes, ${fmt(l.activities, 1)} activities), ${fmt(l.cosmosReads, 1)} Cosmos reads and ${fmt(l.cosmosWrites, 1)} writes`;
console.log(`per proposal: core ${describe(perProposal.core)}; each member party ${describe(perProposal.member)}`);
console.log(`idle, per day: core ${describe(idleOf.core)}; a member ${describe(idleOf.member)}`);
console.log('');
console.log(`| proposals a day | ledger: batch (anchors / an account's signatures), transactions a day, gas a proposal, gas a day, blocks full | core: executions, storage (queue / table), Cosmos requests (RU), Service Bus operations a day | core a month | a member (${ASSUME.parties} parties among ${ASSUME.members} organisations: its share): executions, storage (queue / table), Cosmos requests (RU) a day | a member a month |`);
console.log('|---|---|---|---|---|---|');
for (const v of volumes) {
    const l = ledger(v);
    // A member is party to its share: two parties a proposal among the consortium's organisations.
    const [c, m] = [day('core', v), day('member', (v * ASSUME.parties) / ASSUME.members)];
    const parts = (x: ReturnType<typeof day>) => Object.entries(x.month).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${usd(n)}`).join(', ');
    console.log(
        `| ${v === 0 ? 'idle' : fmt(v)} | ${v === 0 ? '—' : `${fmt(l.anchorBatch, 1)} / ${fmt(l.signatureBatch, 1)}, ${fmt(l.transactions)}, ${fmt(l.gasPerProposal)}, ${fmt(l.gasPerDay / 1e9, 2)} Ggas, ${fmt(l.blockFull * 100, 2)} %`} | ${fmt(c.executions)}, ${fmt(c.queue)} / ${fmt(c.tables)}, ${fmt(c.cosmos)} (${fmt(c.ru)} RU), ${fmt(c.busOps)} | **${usd(c.total)}** (${parts(c)}) | ${fmt(m.executions)}, ${fmt(m.queue)} / ${fmt(m.tables)}, ${fmt(m.cosmos)} (${fmt(m.ru)} RU) | **${usd(m.total)}** (${parts(m)}) |`,
    );
}
console.log('');
console.log(`assumptions: ${Object.entries(ASSUME).map(([k, v]) => `${k} ${v}`).join(', ')}`);
console.log(`unit prices (USD): ${Object.entries(PRICE).map(([k, v]) => `${k} ${v}`).join(', ')}`);
