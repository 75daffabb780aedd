import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { TokenCredential } from '@azure/core-auth';
import { Interface, Wallet, ZeroHash, id as keccakId, type InterfaceAbi } from 'ethers';
import pino from 'pino';
import { LocalKeyVault } from '../../devhost/services/keyVault';
import { FailoverProvider } from '../../shared/chain/provider';
import { ContractRevert } from '../../shared/chain/reverts';
import { AccountKeys } from '../../shared/chain/signers';
import { InsufficientFunds, TransactionPipeline, type ChainSender, type NonceLeaseDoc, type PipelineOptions, type TxDoc } from '../../shared/chain/pipeline';
import { CosmosRepository } from '../../shared/documents/cosmosRepository';
import { Conflict, Unavailable } from '../../shared/errors';
import { KeyVaultKeyStore, KeyVaultSecretStore } from '../../shared/vault/keyVault';
import { startCosmos, type TestCosmos } from '../harness/cosmos';
import { tempDir } from '../harness/devhost';
import { startLedger, type TestLedger } from '../harness/ledger';

const GWEI = 10n ** 9n;
const artifact = JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'contracts', 'artifacts', 'EnergyExchange.json'), 'utf8')) as { abi: InterfaceAbi; bytecode: string };
const exchange = new Interface(artifact.abi);

/** The pipeline under test and the chain it talks to; several scenarios need a chain of their own (manual mining, a crash). */
describe('transaction pipeline', () => {
    let db: TestCosmos;
    let transactions: CosmosRepository<TxDoc>;
    let leases: CosmosRepository<NonceLeaseDoc>;
    const pipelines: TransactionPipeline[] = [];
    const ledgers: TestLedger[] = [];

    beforeAll(async () => {
        db = await startCosmos();
        transactions = new CosmosRepository<TxDoc>(db.database.container('transactions'), (d) => d.id);
        leases = new CosmosRepository<NonceLeaseDoc>(db.database.container('nonces'), (d) => d.id);
    });
    afterAll(async () => {
        for (const p of pipelines) await p.close();
        for (const l of ledgers) await l.stop();
        await db?.stop();
    });

    const ledger = async (opts: Parameters<typeof startLedger>[0]) => {
        const l = await startLedger(opts);
        ledgers.push(l);
        return l;
    };
    const pipeline = (chain: TestLedger, opts: Partial<PipelineOptions> = {}) => {
        const provider = new FailoverProvider({ urls: [chain.url], chainId: 31337, timeoutMs: 3000, retries: 1, backoffMs: 100 });
        const p = new TransactionPipeline(provider, { transactions, leases }, { chainId: 31337, maxFeePerGasCap: 200n * GWEI, pollIntervalMs: 100, abis: [artifact.abi], ...opts });
        pipelines.push(p);
        return p;
    };
    const funded = async (chain: TestLedger): Promise<ChainSender> => {
        const wallet = Wallet.createRandom();
        await chain.fund(wallet.address, 1000);
        return { address: wallet.address, signer: wallet };
    };
    const nonceOf = async (chain: TestLedger, address: string, tag = 'latest') => Number(BigInt(await chain.rpc<string>('eth_getTransactionCount', [address, tag])));
    const docsOf = async (sender: string) => (await transactions.query({ query: 'SELECT * FROM c WHERE c.sender = @s', parameters: [{ name: '@s', value: sender }] }, { maxItemCount: 1000 })).items;
    const allDocsOf = async (sender: string) => {
        const out: TxDoc[] = [];
        let continuationToken: string | undefined;
        do {
            const page = await transactions.query({ query: 'SELECT * FROM c WHERE c.sender = @s', parameters: [{ name: '@s', value: sender }] }, { maxItemCount: 500, continuationToken });
            out.push(...page.items);
            continuationToken = page.continuationToken;
        } while (continuationToken);
        return out;
    };
    const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

    describe('on a chain with a block per transaction', () => {
        let chain: TestLedger;
        let exchangeAddress: string;
        let operator: ChainSender;
        let p: TransactionPipeline;

        beforeAll(async () => {
            chain = await ledger({ mining: 'interval' });
            p = pipeline(chain);
            operator = await funded(chain);
            const deployed = await p.send({ operationId: 'deploy-exchange', from: operator, data: artifact.bytecode, label: 'deploy EnergyExchange' });
            expect(deployed.state).toBe('confirmed');
            exchangeAddress = deployed.contractAddress!;
            expect(exchangeAddress).toMatch(/^0x[0-9a-fA-F]{40}$/);
        });

        it('mines 500 concurrent submissions from one sender with contiguous nonces, each once', async () => {
            const sender = await funded(chain);
            const recipient = Wallet.createRandom().address;
            const ops = range(500).map((i) => `bulk-${sender.address}-${i}`);
            const submitted = await Promise.all(ops.map((operationId) => p.submit({ operationId, from: sender, to: recipient, data: '0x', value: 1n })));
            expect(submitted.map((s) => s.nonce).sort((a, b) => a - b)).toEqual(range(500));
            const outcomes = await Promise.all(ops.map((op) => p.wait(op, { timeoutMs: 120_000 })));
            expect(outcomes.every((o) => o.state === 'confirmed')).toBe(true);
            expect(new Set(outcomes.map((o) => o.hash)).size).toBe(500);
            expect(await nonceOf(chain, sender.address)).toBe(500);
            expect(BigInt(await chain.rpc<string>('eth_getBalance', [recipient, 'latest']))).toBe(500n);
            // Final records are written behind the outcomes.
            await p.flushed();
            const docs = await allDocsOf(sender.address);
            expect(docs).toHaveLength(500);
            expect(docs.every((d) => d.state === 'confirmed' && d.blockNumber! > 0)).toBe(true);
        }, 180_000);

        it('returns the same transaction for the same operation id, and refuses the id for a different call', async () => {
            const sender = await funded(chain);
            const call = { operationId: `once-${sender.address}`, from: sender, to: exchangeAddress, data: exchange.encodeFunctionData('statusOf', [ZeroHash]) };
            const [a, b] = await Promise.all([p.submit(call), p.submit(call)]);
            expect(b.hash).toBe(a.hash);
            const done = await p.wait(call.operationId, { timeoutMs: 30_000 });
            expect(done.hash).toBe(a.hash);
            // A retry after the fact (a fresh pipeline: another instance, or after a restart).
            const again = await pipeline(chain).submit(call);
            expect(again).toMatchObject({ hash: a.hash, nonce: a.nonce, state: 'confirmed' });
            expect(await nonceOf(chain, sender.address)).toBe(1);
            await expect(p.submit({ ...call, data: exchange.encodeFunctionData('statusOf', [keccakId('other')]) })).rejects.toBeInstanceOf(Conflict);
        });

        it('decodes a revert at estimation into the custom error, sending nothing and using no nonce', async () => {
            const outsider = await funded(chain);
            const err = await p.submit({ operationId: `sign-unknown-${outsider.address}`, from: outsider, to: exchangeAddress, data: exchange.encodeFunctionData('sign', [keccakId('nope')]) }).catch((e: unknown) => e);
            expect(err).toBeInstanceOf(ContractRevert);
            expect(err).toMatchObject({ errorName: 'ProposalNotFound', args: { id: keccakId('nope') }, status: 409 });
            expect(await transactions.read(`sign-unknown-${outsider.address}`, `sign-unknown-${outsider.address}`)).toBeUndefined();
            expect(await nonceOf(chain, outsider.address, 'pending')).toBe(0);
            // The next operation takes nonce 0: no gap.
            const next = await p.send({ operationId: `after-revert-${outsider.address}`, from: outsider, to: outsider.address, data: '0x' }, { timeoutMs: 30_000 });
            expect(next).toMatchObject({ nonce: 0, state: 'confirmed' });
        });

        it('refuses a call its sender cannot pay for when asked to check (requireFunds), signing nothing and using no nonce', async () => {
            const poor = Wallet.createRandom();
            const call = { operationId: `unfunded-${poor.address}`, from: { address: poor.address, signer: poor }, to: exchangeAddress, data: exchange.encodeFunctionData('statusOf', [ZeroHash]), requireFunds: true };
            const err = await p.submit(call).catch((e: unknown) => e);
            expect(err).toBeInstanceOf(InsufficientFunds);
            expect(err).toMatchObject({ sender: poor.address, balanceWei: 0n, status: 409, code: 'insufficient_funds' });
            expect((err as InsufficientFunds).neededWei).toBeGreaterThan(0n);
            expect(await transactions.read(call.operationId, call.operationId)).toBeUndefined();
            expect(await nonceOf(chain, poor.address, 'pending')).toBe(0);
            // With enough ether, the same call goes through, from nonce 0.
            await chain.fund(poor.address, 1);
            expect(await p.send(call, { timeoutMs: 30_000 })).toMatchObject({ nonce: 0, state: 'confirmed' });
        });

        it('asks for funds as soon as the node turns a transaction away for insufficient funds, once, and sends it when they arrive', async () => {
            const poor = Wallet.createRandom();
            const asked: string[] = [];
            // The periodic re-send is far off: only the request for funds can bring the transaction through in time.
            const q = pipeline(chain, {
                rebroadcastAfterMs: 600_000,
                onInsufficientFunds: async (sender) => {
                    asked.push(sender);
                    await chain.fund(sender, 1);
                },
            });
            const call = { operationId: `starved-${poor.address}`, from: { address: poor.address, signer: poor }, to: poor.address, data: '0x', gasLimit: 21_000n };
            const sent = await q.submit(call);
            expect(sent.state).toBe('pending');
            expect(await q.wait(call.operationId, { timeoutMs: 30_000 })).toMatchObject({ state: 'confirmed', nonce: 0, hash: sent.hash });
            expect(asked).toEqual([poor.address]);
        });

        it('records a mined revert with the decoded error (gas limit given, so nothing caught it before)', async () => {
            const now = Number(BigInt((await chain.rpc<{ timestamp: string }>('eth_getBlockByNumber', ['latest', false])).timestamp));
            const party = await funded(chain);
            const other = Wallet.createRandom().address;
            const proposalId = keccakId(`p-${party.address}`);
            await p.send(
                {
                    operationId: `create-${proposalId}`,
                    from: operator,
                    to: exchangeAddress,
                    data: exchange.encodeFunctionData('createProposal', [proposalId, [party.address, other], [[keccakId('doc'), 'sha256', 'blob://doc']], now + 3600]),
                },
                { timeoutMs: 30_000 },
            );
            await p.send({ operationId: `sign-${proposalId}`, from: party, to: exchangeAddress, data: exchange.encodeFunctionData('sign', [proposalId]) }, { timeoutMs: 30_000 });
            const twice = await p.send({ operationId: `sign-again-${proposalId}`, from: party, to: exchangeAddress, data: exchange.encodeFunctionData('sign', [proposalId]), gasLimit: 100_000n }, { timeoutMs: 30_000 });
            expect(twice.state).toBe('reverted');
            expect(twice.revert).toMatchObject({ errorName: 'AlreadySigned', args: { id: proposalId, account: party.address } });
            const stored = await transactions.read(`sign-again-${proposalId}`, `sign-again-${proposalId}`);
            expect(stored!.item).toMatchObject({ state: 'reverted', revert: { name: 'AlreadySigned' } });
            // Waiting again (e.g. a retried activity) gives the same outcome from the store.
            await expect(pipeline(chain).wait(`sign-again-${proposalId}`)).resolves.toMatchObject({ state: 'reverted', hash: twice.hash, revert: { errorName: 'AlreadySigned' } });
        });

        it('sees a transaction mined while a poll found nothing watched (between its submission and its tracking)', async () => {
            // The store is slow to record this one transaction: polls run meanwhile with nothing watched and the
            // lease held. Once mined, another block follows before the next poll. Before the fix, scanning had
            // stopped and restarted at that later head, and the receipt was only found by the re-broadcast 5 s on.
            class SlowCreate extends CosmosRepository<TxDoc> {
                override async create(doc: TxDoc) {
                    if (doc.id.startsWith('slow-')) await new Promise((r) => setTimeout(r, 800));
                    return super.create(doc);
                }
            }
            const provider = new FailoverProvider({ urls: [chain.url], chainId: 31337, timeoutMs: 3000, retries: 1, backoffMs: 100 });
            const slow = new TransactionPipeline(provider, { transactions: new SlowCreate(db.database.container('transactions'), (d) => d.id), leases }, { chainId: 31337, maxFeePerGasCap: 200n * GWEI, pollIntervalMs: 100, rebroadcastAfterMs: 30_000, abis: [artifact.abi] });
            pipelines.push(slow);
            const sender = await funded(chain);
            const first = await slow.send({ operationId: `fast-${sender.address}`, from: sender, to: sender.address, data: '0x' }, { timeoutMs: 10_000 });
            expect(first.state).toBe('confirmed');
            const submitted = await slow.submit({ operationId: `slow-${sender.address}`, from: sender, to: sender.address, data: '0x' });
            await chain.rpc('evm_mine');
            const done = await slow.wait(submitted.operationId, { timeoutMs: 3000 });
            expect(done).toMatchObject({ state: 'confirmed', hash: submitted.hash, nonce: 1 });
        });

        it('lets two instances share a sender without ever using one nonce twice', async () => {
            const sender = await funded(chain);
            const a = pipeline(chain, { instanceId: 'instance-a', idleReleaseMs: 200, leaseMs: 5000 });
            const b = pipeline(chain, { instanceId: 'instance-b', idleReleaseMs: 200, leaseMs: 5000 });
            const ops = range(40).map((i) => ({ operationId: `shared-${sender.address}-${i}`, from: sender, to: sender.address, data: '0x' }));
            const results = await Promise.all(ops.map((op, i) => (i % 2 === 0 ? a : b).send(op, { timeoutMs: 60_000 })));
            expect(results.every((r) => r.state === 'confirmed')).toBe(true);
            expect(results.map((r) => r.nonce).sort((x, y) => x - y)).toEqual(range(40));
            expect(await nonceOf(chain, sender.address)).toBe(40);
            await a.close();
            await b.close();
            // Whoever held the lease last left the next nonce in it.
            const lease = await leases.read(sender.address.toLowerCase(), sender.address.toLowerCase());
            expect(lease!.item).toMatchObject({ next: 40, leaseUntil: 0 });
        }, 90_000);
    });

    it('replaces a transaction stuck under-priced with higher fees, same nonce, and it is mined once', async () => {
        const chain = await ledger({ mining: 'manual' });
        const p = pipeline(chain, { replaceAfterMs: 1000, rebroadcastAfterMs: 300 });
        const sender = await funded(chain);
        const first = await p.submit({ operationId: `stuck-${sender.address}`, from: sender, to: sender.address, data: '0x' });
        const stored = (await transactions.read(first.operationId, first.operationId))!.item;
        const firstFee = BigInt(stored.attempts[0].maxFeePerGas);
        // The base fee jumps above what the transaction offers: mining leaves it out.
        await chain.rpc('anvil_setNextBlockBaseFeePerGas', ['0x' + (firstFee * 10n).toString(16)]);
        await chain.mine();
        expect(await nonceOf(chain, sender.address)).toBe(0);
        const outcome = p.wait(first.operationId, { timeoutMs: 30_000 });
        const miner = setInterval(() => void chain.mine().catch(() => undefined), 400);
        try {
            const done = await outcome;
            expect(done.state).toBe('confirmed');
            expect(done.nonce).toBe(first.nonce);
            expect(done.hash).not.toBe(first.hash);
        } finally {
            clearInterval(miner);
        }
        const after = (await transactions.read(first.operationId, first.operationId))!.item;
        expect(after.attempts.length).toBeGreaterThanOrEqual(2);
        expect(BigInt(after.attempts.at(-1)!.maxFeePerGas)).toBeGreaterThan(firstFee * 10n);
        expect(await nonceOf(chain, sender.address)).toBe(1);
        expect(await chain.rpc('eth_getTransactionReceipt', [first.hash])).toBeNull();
    }, 60_000);

    it('takes over a sender whose instance stopped with transactions pending: finds their records, re-sends them when the node lost them, and carries on after them', async () => {
        const chain = await ledger({ mining: 'manual' });
        const sender = await funded(chain);
        const a = pipeline(chain, { instanceId: 'stopping', leaseMs: 5000 });
        const left = await Promise.all(range(3).map((i) => a.submit({ operationId: `left-${i}-${sender.address}`, from: sender, to: sender.address, data: '0x' })));
        await a.close();
        // The node restarts with an empty mempool: only the records know these three.
        await chain.rpc('anvil_dropAllTransactions');
        expect(await nonceOf(chain, sender.address, 'pending')).toBe(0);
        const logged: { o: object; m: string }[] = [];
        const log = { info: (o: object, m: string) => logged.push({ o, m }), warn: () => undefined, error: () => undefined };
        const b = pipeline(chain, { instanceId: 'taking-over', rebroadcastAfterMs: 300, log });
        const next = await b.submit({ operationId: `after-${sender.address}`, from: sender, to: sender.address, data: '0x' });
        expect(next.nonce).toBe(3);
        expect(logged).toContainEqual({ o: { sender: sender.address, adopted: 3 }, m: 'chain: pending transactions adopted' });
        const miner = setInterval(() => void chain.mine().catch(() => undefined), 300);
        try {
            const outcomes = await Promise.all([...left.map((t) => b.wait(t.operationId, { timeoutMs: 30_000 })), b.wait(next.operationId, { timeoutMs: 30_000 })]);
            expect(outcomes.map((o) => [o.state, o.nonce])).toEqual(range(4).map((n) => ['confirmed', n]));
            expect(outcomes.slice(0, 3).map((o) => o.hash)).toEqual(left.map((t) => t.hash));
        } finally {
            clearInterval(miner);
        }
        expect(await nonceOf(chain, sender.address)).toBe(4);
    }, 60_000);

    it('ends every operation mined exactly once when the node is killed mid-flight and restarted', async () => {
        const chain = await ledger({ mining: 'blocktime', stateIntervalSeconds: 1 });
        const port = Number(new URL(chain.url).port);
        const p = pipeline(chain, { confirmations: 3, rebroadcastAfterMs: 1000 });
        const sender = await funded(chain);
        await new Promise((r) => setTimeout(r, 1500)); // the funding is in a dumped state
        const ops = range(60).map((i) => ({ operationId: `crash-${sender.address}-${i}`, from: sender, to: sender.address, data: '0x', gasLimit: 21_000n }));
        // An activity retried until it gets through, as Durable Functions does.
        const submitWithRetry = async (op: (typeof ops)[number]) => {
            for (let attempt = 0; ; attempt++) {
                try {
                    return await p.submit(op);
                } catch (err) {
                    if (!(err instanceof Unavailable) || attempt > 60) throw err;
                    await new Promise((r) => setTimeout(r, 250));
                }
            }
        };
        const firstHalf = await Promise.all(ops.slice(0, 30).map(submitWithRetry));
        await chain.ledger.kill();
        const secondHalf = Promise.all(ops.slice(30).map(submitWithRetry));
        await new Promise((r) => setTimeout(r, 1500));
        await chain.ledger.start(port);
        await secondHalf;
        const outcomes = await Promise.all(ops.map((op) => p.wait(op.operationId, { timeoutMs: 90_000 })));
        expect(outcomes.every((o) => o.state === 'confirmed')).toBe(true);
        expect(outcomes.map((o) => o.nonce).sort((a, b) => a - b)).toEqual(range(60));
        expect(firstHalf.map((s) => s.nonce).sort((a, b) => a - b)).toEqual(range(30));
        // Exactly once: 60 operations, 60 transactions from the sender, each outcome's receipt on the chain.
        expect(await nonceOf(chain, sender.address)).toBe(60);
        for (const o of outcomes) expect(await chain.rpc<{ status: string } | null>('eth_getTransactionReceipt', [o.hash])).toMatchObject({ status: '0x1' });
        expect((await docsOf(sender.address)).filter((d) => d.filler)).toEqual([]);
    }, 150_000);

    it('signs with both custody modes (encrypted keystore in the vault, Key Vault P-256K key) and the node accepts both', async () => {
        const chain = await ledger({ mining: 'instant' });
        const p = pipeline(chain);
        const dir = tempDir();
        const vault = new LocalKeyVault({ name: 'member-vault', dir, masterKey: randomBytes(32), tenantId: '11111111-2222-3333-4444-555555555555', logger: pino({ level: 'silent' }) });
        await vault.start(0);
        try {
            const credential: TokenCredential = { getToken: async () => ({ token: 't', expiresOnTimestamp: Date.now() + 3600_000 }) };
            const keys = new AccountKeys(new KeyVaultSecretStore(vault.url, credential), new KeyVaultKeyStore(vault.url, credential), { scryptN: 1024 });
            const inStore = await keys.create('acct-keystore-1', 'keystore');
            const inVault = await keys.create('acct-vault-1', 'keyvault');
            await expect(keys.create('acct-vault-1', 'keyvault')).rejects.toBeInstanceOf(Conflict);
            await expect(keys.create('acct-keystore-1', 'keystore')).rejects.toBeInstanceOf(Conflict);
            for (const ref of [inStore, inVault]) {
                await chain.fund(ref.address, 10);
                const signer = keys.signer(ref);
                // Several transactions, so a high-S signature (which the node refuses) would show.
                const outcomes = await Promise.all(range(6).map((i) => p.send({ operationId: `custody-${ref.name}-${i}`, from: { address: ref.address, signer }, to: ref.address, data: '0x' }, { timeoutMs: 30_000 })));
                expect(outcomes.every((o) => o.state === 'confirmed')).toBe(true);
                const tx = await chain.rpc<{ from: string }>('eth_getTransactionByHash', [outcomes[0].hash]);
                expect(tx.from.toLowerCase()).toBe(ref.address.toLowerCase());
            }
        } finally {
            await vault.stop();
            rmSync(dir, { recursive: true, force: true });
        }
    }, 60_000);

    it('fails over to the next JSON-RPC URL, and says the ledger is unavailable when none answers', async () => {
        const chain = await ledger({ mining: 'instant' });
        const provider = new FailoverProvider({ urls: ['http://127.0.0.1:1', chain.url], chainId: 31337, timeoutMs: 1000, retries: 0 });
        expect(await provider.rpc<string>('eth_chainId')).toBe('0x7a69');
        expect(provider.currentUrl).toBe(chain.url);
        const dead = new FailoverProvider({ urls: ['http://127.0.0.1:1', 'http://127.0.0.1:2'], chainId: 31337, timeoutMs: 500, retries: 1, backoffMs: 50 });
        await expect(dead.rpc('eth_blockNumber')).rejects.toMatchObject({ message: expect.stringMatching(/No JSON-RPC endpoint answered/) });
        provider.destroy();
        dead.destroy();
    });
});
