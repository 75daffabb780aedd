/**
 * The transaction pipeline's sustained rate against the raw limit of the same node, in one run.
 *
 * Each round, each measurement on a fresh chain:
 * - raw: N `createProposal` transactions signed beforehand, broadcast in nonce order
 *   (JSON-RPC batches of 100), timed until the last one is mined;
 * - pipeline: N `createProposal` calls submitted at once through the pipeline (estimate,
 *   fees, leased nonce, sign, store, broadcast, watch, confirm), timed from the first
 *   submission to the last confirmation: with the devhost's Cosmos stand-in as the store
 *   (the real path); with a store in memory; and with a store in memory and the gas limit
 *   given, so no estimation (what is left is the pipeline's own work on this machine).
 * A fresh anvil for every measurement: anvil's rate falls as its history grows (over 1,000
 * tx/s for the first 2,000 transactions, a few hundred after), so each starts alike. The
 * medians of the rounds are compared.
 *
 *   npm run bench:chain [-- --calls 1000 --rounds 3]
 *
 * - v2 batched: N two-party proposals on EnergyExchangeV2, anchored through the batcher of
 *   anchors and signed (EIP-712, signatures made beforehand) through a batcher of signatures,
 *   each proposal's signatures as soon as its anchor is confirmed (as the saga does),
 *   with the Cosmos stand-in as the store, timed until every proposal is Completed; reported
 *   as completed proposals per second against the raw transactions per second.
 *
 * The chain and the document store are the devhost's own: the storage sidecar (anvil with a
 * block per transaction and one every second, the Cosmos stand-in) in a process of its own,
 * as under `npm start`.
 */
import { CosmosClient, type Database } from '@azure/cosmos';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { Session } from 'node:inspector/promises';
import { PerformanceObserver } from 'node:perf_hooks';
import { getAddress, hexlify, keccak256, ZeroAddress, Wallet, id as keccakId, type TransactionRequest } from 'ethers';
import pino from 'pino';
import { EVM_VERSION } from '../contracts/evm';
import { LocalLedger } from '../devhost/services/ledger';
import { LocalStorage } from '../devhost/services/storage';
import { ENERGY_EXCHANGE, ENERGY_EXCHANGE_V2 } from '../shared/chain/artifact';
import { CallBatcher, type BatchDoc } from '../shared/chain/batcher';
import { EnergyExchange, type AnchorInput, type TermsSignature } from '../shared/chain/energyExchange';
import { proposalTypedData, termsDigest, termsStructHash } from '../shared/proposals/terms';
import { TransactionPipeline, type NonceLeaseDoc, type TxDoc } from '../shared/chain/pipeline';
import { FailoverProvider } from '../shared/chain/provider';
import { CONTAINERS, ensureDatabase } from '../shared/documents/containers';
import { CosmosRepository } from '../shared/documents/cosmosRepository';
import { jsonRpc } from '../shared/ledger/jsonRpc';
import { tempDir } from '../test/harness/devhost';
import { MemoryRepository } from './memoryRepository';
import { storeTimeline, storeTimings, timed } from './timedRepository';

const arg = (name: string, fallback: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? process.argv[i + 1] : fallback;
};
const CALLS = Number(arg('calls', '1000'));
const ROUNDS = Number(arg('rounds', '3'));
/** Which measurements run beside the raw reference: `pipeline` (single transactions), `batched` (v2 proposals). */
/** Items per transaction in the v2 line: anchors (the core's default setting) and signatures (one submitter here, two per proposal). */
const ANCHOR_BATCH = Number(arg('anchor-batch', '100'));
const SIGNATURE_BATCH = Number(arg('signature-batch', '200'));
const ONLY = new Set(arg('only', 'pipeline,batched').split(','));
/** `--profile <file>`: a V8 CPU profile of the batched line's timed window (the last round's), for Chrome DevTools or `bench/profileSummary.ts`. */
const PROFILE = arg('profile', '');
const GWEI = 10n ** 9n;
/** The pipeline follows the head as the devhost's settings have it for the local chain (a block per transaction). */
const POLL_MS = Number((JSON.parse(readFileSync(path.join(__dirname, '..', 'local.settings.sample.json'), 'utf8')) as { Values: Record<string, string> }).Values.FLEXCHANGE_CHAIN_POLL_MS);
/** Call data only: the contract's address is each run's own. */
const exchange = new EnergyExchange({ version: 1, address: ZeroAddress }, ENERGY_EXCHANGE.abi, { rpc: () => Promise.reject(new Error('encoding only')) });
/** The pipeline's warnings with BENCH_DEBUG set, its errors always. */
const benchLog = {
    info: (o: object, m: string) => process.env.BENCH_DEBUG === 'info' && console.log(`  ${(performance.now() / 1000).toFixed(3)} info`, m, JSON.stringify(o).slice(0, 200)),
    warn: (o: object, m: string) => process.env.BENCH_DEBUG && console.log(`  ${(performance.now() / 1000).toFixed(3)} warn`, m, JSON.stringify(o).slice(0, 300)),
    error: (o: object, m: string) => console.log('  error', m, JSON.stringify(o).slice(0, 300)),
};
const randomAddress = () => getAddress(hexlify(randomBytes(20)));
/** Time this process spent collecting garbage since the counter was last zeroed. */
let gcMs = 0;
new PerformanceObserver((list) => list.getEntries().forEach((e) => (gcMs += e.duration))).observe({ entryTypes: ['gc'] });
/** The node stopped mining a measurement's transactions: that round's reference is measured again on a fresh chain. */
class Stalled extends Error {}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
/** CPU a process has used so far, in ms (Linux: /proc/<pid>/stat, user + system, 100 ticks a second); NaN elsewhere. */
const cpuMsOf = (pid: number | undefined): number => {
    try {
        const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
        return (Number(fields[11]) + Number(fields[12])) * 10;
    } catch {
        return NaN;
    }
};

/** A kept-alive connection the node has just closed fails once (ECONNRESET): send again (raw transactions are idempotent). */
async function postWithRetry(url: string, body: string): Promise<unknown> {
    for (let attempt = 0; ; attempt++) {
        try {
            return await (await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body })).json();
        } catch (err) {
            if (attempt >= 2) throw err;
        }
    }
}

async function main(): Promise<void> {
    const dir = tempDir('flexchange-bench-');
    // The sidecar stops by itself when no live devhost owns its folder: this bench owns it.
    writeFileSync(path.join(dir, 'devhost.lock'), String(process.pid));
    const storage = new LocalStorage(dir, pino({ level: 'silent' }));
    const stored = await storage.start({ blob: 0, queue: 0, table: 0, cosmos: 0, ledger: 0 });
    const cosmos = new CosmosClient({ endpoint: stored.cosmos.endpoint, key: stored.cosmos.key, connectionPolicy: { enableEndpointDiscovery: false } });
    let databases = 0;
    /**
     * A database of its own for one measurement, deleted after it, as each has a chain of its own: the
     * stand-in's work grows with what it holds (its snapshots), so an earlier measurement's documents
     * would slow a later one.
     */
    const inMemory = <T>(fn: (stores: { transactions: MemoryRepository<TxDoc>; leases: MemoryRepository<NonceLeaseDoc> }) => Promise<T>): Promise<T> => fn({ transactions: new MemoryRepository<TxDoc>(), leases: new MemoryRepository<NonceLeaseDoc>() });
    const onFreshStore = async <T>(fn: (stores: { database: Database; transactions: CosmosRepository<TxDoc>; leases: CosmosRepository<NonceLeaseDoc> }) => Promise<T>): Promise<T> => {
        const database = await ensureDatabase(cosmos, `bench-${++databases}`, CONTAINERS.filter((c) => ['transactions', 'nonces', 'batches'].includes(c.id!)));
        try {
            return await fn({ database, transactions: new CosmosRepository<TxDoc>(database.container('transactions'), (d) => d.id), leases: new CosmosRepository<NonceLeaseDoc>(database.container('nonces'), (d) => d.id) });
        } finally {
            await database.delete();
        }
    };
    let chains = 0;

    /** One measurement on a chain of its own (anvil slows down as its history grows: each starts alike). */
    const onFreshChain = async <T>(fn: (chain: { url: string; pid?: number; rpc: <R>(method: string, params?: unknown[]) => Promise<R>; fund: (address: string) => Promise<unknown> }) => Promise<T>): Promise<T> => {
        const ledger = new LocalLedger(path.join(dir, `chain-${++chains}`), { mining: 'interval', stateIntervalSeconds: 86_400, hardfork: EVM_VERSION });
        await ledger.start(0);
        const rpc = async <R>(method: string, params: unknown[] = []): Promise<R> => {
            for (let attempt = 0; ; attempt++) {
                try {
                    return await jsonRpc<R>(ledger.url, method, params, 60_000);
                } catch (err) {
                    if (attempt >= 2 || (err as { rpcCode?: number }).rpcCode !== undefined) throw err;
                }
            }
        };
        try {
            return await fn({ url: ledger.url, pid: ledger.pid, rpc, fund: (address) => rpc('anvil_setBalance', [address, '0x' + (10n ** 24n).toString(16)]) });
        } finally {
            await ledger.stop();
        }
    };
    const deadline = Math.floor(Date.now() / 1000) + 30 * 86_400;
    const call = (tag: string, i: number) =>
        exchange.createProposal({
            chainProposalId: keccakId(`${tag}-${i}`),
            parties: [randomAddress(), randomAddress()],
            assets: [{ sha256: keccakId(`doc-${tag}-${i}`).slice(2), algorithm: 'sha256', location: `https://docs.example/${tag}/${i}` }],
            expiresAt: new Date(deadline * 1000).toISOString(),
        }).data;

    const raw = (round: number) =>
        onFreshChain(async ({ url, rpc, fund }) => {
            const wallet = Wallet.createRandom();
            await fund(wallet.address);
            const deploy = await wallet.signTransaction({ type: 2, chainId: 31337, nonce: 0, data: ENERGY_EXCHANGE.bytecode, gasLimit: 3_000_000n, maxFeePerGas: 100n * GWEI, maxPriorityFeePerGas: GWEI });
            await rpc('eth_sendRawTransaction', [deploy]);
            let receipt: { contractAddress: string } | null = null;
            while (!(receipt = await rpc<{ contractAddress: string } | null>('eth_getTransactionReceipt', [keccak256(deploy)]))) await new Promise((r) => setTimeout(r, 20));
            const block = await rpc<{ baseFeePerGas: string }>('eth_getBlockByNumber', ['latest', false]);
            const maxFee = BigInt(block.baseFeePerGas) * 2n + GWEI;
            const signed: string[] = [];
            for (let i = 0; i < CALLS; i++) {
                const tx: TransactionRequest = { type: 2, chainId: 31337, nonce: 1 + i, to: receipt.contractAddress, data: call(`raw${round}`, i), gasLimit: 400_000n, maxFeePerGas: maxFee, maxPriorityFeePerGas: GWEI };
                signed.push(await wallet.signTransaction(tx));
            }
            const start = performance.now();
            for (let i = 0; i < signed.length; i += 100) {
                const batch = signed.slice(i, i + 100).map((r, k) => ({ jsonrpc: '2.0', id: i + k, method: 'eth_sendRawTransaction', params: [r] }));
                const res = (await postWithRetry(url, JSON.stringify(batch))) as { error?: { message: string } }[];
                const failed = res.find((r) => r.error);
                if (failed) throw new Error(`raw broadcast refused: ${failed.error!.message}`);
            }
            const last = keccak256(signed.at(-1)!);
            // Now and then anvil leaves a transaction whose nonce is next in its queue instead of mining it (seen
            // once in many runs, with nonce-ordered batches under --mixed-mining): no progress for 10 s ends the round.
            let [progress, progressAt] = [-1, performance.now()];
            while (!(await rpc<unknown>('eth_getTransactionReceipt', [last]))) {
                await new Promise((r) => setTimeout(r, 10));
                if (performance.now() - progressAt < 10_000) continue;
                const count = Number(BigInt(await rpc<string>('eth_getTransactionCount', [wallet.address, 'latest'])));
                if (count === progress) throw new Stalled(`raw: the node stopped mining at nonce ${count} of ${CALLS + 1} (${JSON.stringify(await rpc('txpool_status'))})`);
                [progress, progressAt] = [count, performance.now()];
            }
            const ms = performance.now() - start;
            const mined = Number(BigInt(await rpc<string>('eth_getTransactionCount', [wallet.address, 'latest']))) - 1;
            if (mined !== CALLS) throw new Error(`raw: ${mined} of ${CALLS} mined`);
            return { ms, submittedMs: ms };
        });

    const viaPipeline = (store: 'cosmos' | 'memory', round: number, gasLimit?: bigint) =>
        onFreshChain(({ url, fund }) =>
            (store === 'cosmos' ? onFreshStore : inMemory)(async (stores) => {
                const provider = new FailoverProvider({ urls: [url], chainId: 31337 });
                const pipeline = new TransactionPipeline(provider, stores, { chainId: 31337, maxFeePerGasCap: 500n * GWEI, pollIntervalMs: POLL_MS, abis: [ENERGY_EXCHANGE.abi], log: benchLog });
                try {
                    const wallet = Wallet.createRandom();
                    await fund(wallet.address);
                    const sender = { address: wallet.address, signer: wallet };
                    const tag = `${store}${gasLimit ? '-gas' : ''}-${round}-${wallet.address}`;
                    const contract = (await pipeline.send({ operationId: `deploy-${tag}`, from: sender, data: ENERGY_EXCHANGE.bytecode }, { timeoutMs: 60_000 })).contractAddress!;
                    const ops = Array.from({ length: CALLS }, (_, i) => ({ operationId: `${tag}-${i}`, from: sender, to: contract, data: call(tag, i), gasLimit }));
                    const start = performance.now();
                    const firstNonce = Number(BigInt(await provider.rpc<string>('eth_getTransactionCount', [wallet.address, 'latest'])));
                    const minedAt = process.env.BENCH_DEBUG
                        ? (async () => {
                              while (Number(BigInt(await provider.rpc<string>('eth_getTransactionCount', [wallet.address, 'latest']))) < firstNonce + CALLS) await new Promise((r) => setTimeout(r, 20));
                              return performance.now() - start;
                          })()
                        : Promise.resolve(NaN);
                    const submitted = await Promise.all(ops.map((op) => pipeline.submit(op)));
                    const submittedMs = performance.now() - start;
                    const outcomes = await Promise.all(ops.map((op) => pipeline.wait(op.operationId, { timeoutMs: 600_000 })));
                    const ms = performance.now() - start;
                    if (process.env.BENCH_DEBUG) console.log(`  ${tag.split('-0x')[0]}: submitted ${submittedMs.toFixed(0)} ms, all mined ${(await minedAt).toFixed(0)} ms, all confirmed ${ms.toFixed(0)} ms`);
                    if (outcomes.some((o) => o.state !== 'confirmed')) throw new Error(`${tag}: not every call was confirmed`);
                    const nonces = submitted.map((s) => s.nonce).sort((a, b) => a - b);
                    if (nonces.some((n, i) => i > 0 && n !== nonces[i - 1] + 1)) throw new Error(`${tag}: nonces are not contiguous`);
                    await pipeline.flushed();
                    return { ms, submittedMs };
                } finally {
                    await pipeline.close();
                    provider.destroy();
                }
        }));

    /**
     * CALLS two-party proposals on EnergyExchangeV2 through the batchers, with the devhost's store:
     * anchored through the core's batcher of anchors, then each party's EIP-712 signature (made
     * beforehand, as the raw transactions are) submitted through a batcher of signatures as soon
     * as the proposal's anchor is confirmed (the saga's order); timed
     * from the first anchor to the last signature confirmed, every proposal Completed on-chain.
     */
    const batched = (round: number | 'warm-up', proposalCount = CALLS) =>
        onFreshChain(({ url, pid, fund }) =>
            onFreshStore(async ({ database, transactions, leases }) => {
                const provider = new FailoverProvider({ urls: [url], chainId: 31337 });
                // The stores timed (BENCH_DEBUG prints their calls, latency and bytes per round).
                const stores = { transactions: timed('tx', transactions), leases: timed('lease', leases) };
                const pipeline = new TransactionPipeline(provider, stores, { chainId: 31337, maxFeePerGasCap: 500n * GWEI, pollIntervalMs: POLL_MS, abis: [ENERGY_EXCHANGE_V2.abi], log: benchLog });
                try {
                    const [operatorWallet, submitterWallet] = [Wallet.createRandom(), Wallet.createRandom()];
                    for (const w of [operatorWallet, submitterWallet]) await fund(w.address);
                    const operator = { address: operatorWallet.address, signer: operatorWallet };
                    const tag = `batched-${round}-${operator.address}`;
                    const address = (await pipeline.send({ operationId: `deploy-${tag}`, from: operator, data: ENERGY_EXCHANGE_V2.bytecode }, { timeoutMs: 60_000 })).contractAddress!;
                    const v2 = new EnergyExchange({ version: 2, address }, ENERGY_EXCHANGE_V2.abi, provider);
                    const [a, b] = [Wallet.createRandom(), Wallet.createRandom()];
                    const deadline = new Date(Date.now() + 30 * 86_400_000).toISOString();
                    const proposals = await Promise.all(
                        Array.from({ length: proposalCount }, async (_, i) => {
                            const td = proposalTypedData(
                                { chainId: keccakId(`${tag}-${i}`), parties: [{ account: a.address }, { account: b.address }], terms: { product: 'baseload', direction: 'sell', quantityMWh: 10, priceGbpPerMWh: 70, deliveryStart: '2027-01-01T00:00:00Z', deliveryEnd: '2027-01-01T00:30:00Z' }, assets: [{ sha256: keccakId(`doc-${i}`).slice(2), algorithm: 'sha256' }], expiresAt: deadline },
                                v2.signingDomain(31337),
                            );
                            const digest = termsDigest(td);
                            return { anchor: { chainProposalId: td.message.id, parties: [a.address, b.address], assets: [], expiresAt: deadline, termsHash: termsStructHash(td) }, signatures: [a, b].map((w) => ({ chainProposalId: td.message.id, party: w.address, signature: w.signingKey.sign(digest).serialized })) };
                        }),
                    );
                    const store = timed('batch', new CosmosRepository<BatchDoc>(database.container('batches'), (d) => d.id));
                    const anchors = new CallBatcher<AnchorInput>({ pipeline, store, from: async () => operator, build: (items) => v2.createProposals(items) }, { maxItems: ANCHOR_BATCH, maxWaitMs: 250, name: `anchor:${tag}` });
                    const submitter = { address: submitterWallet.address, signer: submitterWallet };
                    // The submitter has sent before, as a member's account has (the operator deployed): its nonce lease is held before the clock starts.
                    await pipeline.send({ operationId: `warm-${tag}`, from: submitter, to: submitter.address, data: '0x' }, { timeoutMs: 60_000 });
                    const signatures = new CallBatcher<TermsSignature>({ pipeline, store, from: async () => submitter, build: (items) => v2.submitSignatures(items) }, { maxItems: SIGNATURE_BATCH, maxWaitMs: 250, name: `sign:${tag}` });
                    const profiler = PROFILE ? new Session() : undefined;
                    if (profiler) {
                        profiler.connect();
                        await profiler.post('Profiler.enable');
                        await profiler.post('Profiler.start');
                    }
                    storeTimings.clear();
                    storeTimeline.length = 0;
                    const start = performance.now();
                    const cpu = process.cpuUsage();
                    const others = { node: cpuMsOf(pid), store: cpuMsOf(storage.info?.pid) };
                gcMs = 0;
                    // Each proposal as the saga runs it: its parties' signatures go as soon as its anchor is confirmed.
                    let anchoredMs = 0;
                    // Each signature's hand-over and outcome timed (printed for a slow round with BENCH_DEBUG).
                    const times = new Map<string, { handed: number; done: number; items: number }>();
                    const flows = await Promise.all(
                        proposals.map(async (p, i) => {
                            const anchor = await anchors.send(`${tag}:create:${i}`, p.anchor, { timeoutMs: 600_000 });
                            anchoredMs = Math.max(anchoredMs, performance.now() - start);
                            if (anchor.state !== 'confirmed') return [anchor];
                            const signed = await Promise.all(
                                p.signatures.map(async (sig, k) => {
                                    const tx = await signatures.submit(`${tag}:sign:${i}:${k}`, sig);
                                    const handed = performance.now() - start;
                                    const outcome = await pipeline.wait(tx.operationId, { timeoutMs: 600_000 });
                                    const t = times.get(tx.operationId) ?? { handed, done: 0, items: 0 };
                                    times.set(tx.operationId, { handed: Math.min(t.handed, handed), done: Math.max(t.done, performance.now() - start), items: t.items + 1 });
                                    return outcome;
                                }),
                            );
                            return [anchor, ...signed];
                        }),
                    );
                    const ms = performance.now() - start;
                    if (process.env.BENCH_DEBUG && ms > Number(process.env.BENCH_SLOW_MS ?? 1000))
                        for (const [op, t] of [...times].sort((x, y) => x[1].handed - y[1].handed)) console.log(`  ${op.slice(-8)}: ${t.items} items handed over at ${t.handed.toFixed(0)} ms, confirmed at ${t.done.toFixed(0)} ms`);
                    const used = process.cpuUsage(cpu);
                    for (const c of process.env.BENCH_TIMELINE ? storeTimeline : []) console.log(`  ${(c.start - start).toFixed(0).padStart(5)} → ${(c.end - start).toFixed(0).padStart(5)} ms  ${c.call}`);
                    const othersUsed = { node: cpuMsOf(pid) - others.node, store: cpuMsOf(storage.info?.pid) - others.store };
                    if (process.env.BENCH_DEBUG) for (const [k, e] of storeTimings) console.log(`  ${k}: ${e.calls} calls, ${e.ms.toFixed(0)} ms summed, ${(e.ms / e.calls).toFixed(1)} ms each, ${(e.bytes / 1024).toFixed(0)} KB sent`);
                    if (profiler) {
                        const { profile } = await profiler.post('Profiler.stop');
                        writeFileSync(PROFILE, JSON.stringify(profile));
                        profiler.disconnect();
                    }
                    const split = `last anchor confirmed at ${anchoredMs.toFixed(0)} ms, last signature at ${ms.toFixed(0)} ms, CPU: this process ${((used.user + used.system) / 1000).toFixed(0)} ms (${gcMs.toFixed(0)} ms of it collecting garbage), the node ${othersUsed.node.toFixed(0)} ms, the store ${othersUsed.store.toFixed(0)} ms`;
                    if (flows.flat().some((o) => o.state !== 'confirmed')) throw new Error(`${tag}: not every batch was confirmed`);
                    const completed = (await Promise.all(proposals.map((p) => v2.statusOf(p.anchor.chainProposalId)))).filter((st) => st === 'Completed').length;
                    if (completed !== proposalCount) throw new Error(`${tag}: ${completed} of ${proposalCount} proposals completed`);
                    const transactions = new Set(flows.flat().map((o) => o.hash)).size;
                    await pipeline.flushed();
                    return { ms, transactions, split };
                } finally {
                    await pipeline.close();
                    provider.destroy();
                }
        }));

    try {
        console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GB, node ${process.version}; ${CALLS} createProposal per measurement, each on a fresh anvil, ${ROUNDS} rounds`);
        const rates = { raw: [] as number[], cosmos: [] as number[], memory: [] as number[], given: [] as number[], proposals: [] as number[] };
        const rate = (ms: number) => CALLS / (ms / 1000);
        // Measured as a running instance is, warm: the batched path once through at full size (not counted) before the
        // rounds, so that this process and the store's (both JavaScript) have compiled what the rounds run.
        if (ONLY.has('batched')) await batched('warm-up');
        for (let round = 1; round <= ROUNDS; round++) {
            // The raw reference runs every round; the others as `--only` names them (default: all).
            const r = await raw(round).catch((err: unknown) => {
                if (!(err instanceof Stalled)) throw err;
                console.log(`  ${err.message}: measured again on a fresh chain`);
                return raw(round);
            });
            rates.raw.push(rate(r.ms));
            const line = [`round ${round}: raw ${rate(r.ms).toFixed(0)} tx/s`];
            if (ONLY.has('pipeline')) {
                const c = await viaPipeline('cosmos', round);
                const m = await viaPipeline('memory', round);
                const g = await viaPipeline('memory', round, 400_000n);
                rates.cosmos.push(rate(c.ms));
                rates.memory.push(rate(m.ms));
                rates.given.push(rate(g.ms));
                line.push(`pipeline: Cosmos stand-in ${rate(c.ms).toFixed(0)} tx/s, store in memory ${rate(m.ms).toFixed(0)} tx/s, store in memory and gas given ${rate(g.ms).toFixed(0)} tx/s`);
            }
            if (ONLY.has('batched')) {
                const p = await batched(round);
                rates.proposals.push(rate(p.ms));
                line.push(`v2 batched: ${rate(p.ms).toFixed(0)} proposals/s completed in ${p.transactions} transactions (${p.split})`);
            }
            console.log(line.join(' · '));
        }
        const rawMedian = median(rates.raw);
        console.log(`raw limit of the node (pre-signed, in nonce order): ${rawMedian.toFixed(0)} tx/s (median)`);
        if (ONLY.has('pipeline')) {
            console.log(`pipeline, devhost store (Cosmos stand-in):       ${median(rates.cosmos).toFixed(0)} tx/s (median), ratio ${(median(rates.cosmos) / rawMedian).toFixed(2)}`);
            console.log(`pipeline, store in memory:                        ${median(rates.memory).toFixed(0)} tx/s (median), ratio ${(median(rates.memory) / rawMedian).toFixed(2)}`);
            console.log(`pipeline, store in memory, gas limit given:       ${median(rates.given).toFixed(0)} tx/s (median), ratio ${(median(rates.given) / rawMedian).toFixed(2)}`);
        }
        if (ONLY.has('batched')) {
            console.log(`two-party proposals on v2 through the batchers:   ${median(rates.proposals).toFixed(0)} completed proposals/s (median), ratio to raw tx/s ${(median(rates.proposals) / rawMedian).toFixed(2)} (three transactions a proposal: at most 0.33)`);
        }
    } finally {
        await storage.stop();
        rmSync(dir, { recursive: true, force: true });
    }
}

main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
});
