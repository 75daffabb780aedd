import { Wallet } from 'ethers';
import { ENERGY_EXCHANGE } from '../../shared/chain/artifact';
import { TransactionPipeline, type ChainSender, type NonceLeaseDoc, type TxDoc } from '../../shared/chain/pipeline';
import { FailoverProvider } from '../../shared/chain/provider';
import { abiSha256, ContractVersions, LATEST_REUSE_MS, type ContractVersion } from '../../shared/chain/versions';
import { CosmosRepository } from '../../shared/documents/cosmosRepository';
import { Invalid, NotFound, Unavailable } from '../../shared/errors';
import { startCosmos, type TestCosmos } from '../harness/cosmos';
import { startLedger, type TestLedger } from '../harness/ledger';

/** Contract versions recorded in the document store, deployed through the pipeline, resolved for new and in-flight work. */
describe('contract versions', () => {
    let db: TestCosmos;
    let chain: TestLedger;
    let provider: FailoverProvider;
    let pipeline: TransactionPipeline;
    let versions: ContractVersions;
    let operator: ChainSender;

    beforeAll(async () => {
        [db, chain] = await Promise.all([startCosmos(), startLedger({ mining: 'instant' })]);
        provider = new FailoverProvider({ urls: [chain.url], chainId: 31337 });
        pipeline = new TransactionPipeline(
            provider,
            {
                transactions: new CosmosRepository<TxDoc>(db.database.container('transactions'), (d) => d.id),
                leases: new CosmosRepository<NonceLeaseDoc>(db.database.container('nonces'), (d) => d.id),
            },
            { chainId: 31337, maxFeePerGasCap: 100n * 10n ** 9n, pollIntervalMs: 100 },
        );
        versions = new ContractVersions(new CosmosRepository<ContractVersion>(db.database.container('contracts'), (v) => v.id), provider);
        const wallet = Wallet.createRandom();
        await chain.fund(wallet.address);
        operator = { address: wallet.address, signer: wallet };
    });
    afterAll(async () => {
        await pipeline?.close();
        provider?.destroy();
        await chain?.stop();
        await db?.stop();
    });

    /** The latest active version, read whole and as the small query new work uses, which must agree. */
    async function latest(): Promise<ContractVersion> {
        const whole = await versions.latestActive();
        expect(await versions.latestActiveRef()).toEqual({ version: whole.version, address: whole.address });
        return whole;
    }

    it('has no version to give before the first deployment', async () => {
        await expect(versions.latestActive()).rejects.toBeInstanceOf(Unavailable);
        expect(await versions.latestActiveRef()).toBeUndefined();
        await expect(versions.byVersion(1)).rejects.toBeInstanceOf(NotFound);
    });

    it('deploys the artifact as version 1, then 2; new work gets the latest, work on 1 keeps 1', async () => {
        const v1 = await versions.deploy(ENERGY_EXCHANGE, pipeline, operator, 'tester');
        expect(v1).toMatchObject({ version: 1, state: 'ready', origin: 'deployed', active: true, abiSha256: ENERGY_EXCHANGE.abiSha256, bytecodeSha256: ENERGY_EXCHANGE.bytecodeSha256 });
        expect(v1.txHash).toMatch(/^0x[0-9a-f]{64}$/);
        expect(await chain.rpc<string>('eth_getCode', [v1.address, 'latest'])).toBe(ENERGY_EXCHANGE.deployedBytecode);
        expect((await latest()).version).toBe(1);

        const v2 = await versions.deploy(ENERGY_EXCHANGE, pipeline, operator, 'tester');
        expect(v2.version).toBe(2);
        expect(v2.address).not.toBe(v1.address);
        expect((await latest()).address).toBe(v2.address);
        expect((await versions.byVersion(1)).address).toBe(v1.address);
        expect((await versions.list()).map((v) => v.version)).toEqual([1, 2]);
    });

    it('resumes an unfinished deployment with the same transaction instead of deploying twice', async () => {
        // A deployment that stopped after taking its number (the process died before the transaction was final).
        const repo = new CosmosRepository<ContractVersion>(db.database.container('contracts'), (v) => v.id);
        await repo.create({ id: 'v3', version: 3, state: 'deploying', origin: 'deployed', abi: ENERGY_EXCHANGE.abi, abiSha256: ENERGY_EXCHANGE.abiSha256, bytecodeSha256: ENERGY_EXCHANGE.bytecodeSha256, active: true, createdBy: 'tester', createdAt: new Date().toISOString() });
        const first = await pipeline.submit({ operationId: 'contract:v3:deploy', from: operator, data: ENERGY_EXCHANGE.bytecode });
        const nonceBefore = Number(BigInt(await chain.rpc<string>('eth_getTransactionCount', [operator.address, 'pending'])));
        const v3 = await versions.deploy(ENERGY_EXCHANGE, pipeline, operator, 'tester');
        expect(v3).toMatchObject({ version: 3, state: 'ready', txHash: first.hash });
        expect(Number(BigInt(await chain.rpc<string>('eth_getTransactionCount', [operator.address, 'pending'])))).toBe(nonceBefore);
    });

    it('registers a contract deployed elsewhere only after checking the code at its address', async () => {
        const v1 = await versions.byVersion(1);
        // The same contract again: nothing new.
        await expect(versions.register({ address: v1.address!, abi: ENERGY_EXCHANGE.abi }, ENERGY_EXCHANGE, 'tester')).resolves.toMatchObject({ created: false, version: { version: 1 } });
        // No code there.
        await expect(versions.register({ address: Wallet.createRandom().address, abi: ENERGY_EXCHANGE.abi }, ENERGY_EXCHANGE, 'tester')).rejects.toBeInstanceOf(Invalid);
        // Code that is not what the ABI says.
        const foreignAbi = [{ type: 'function', name: 'transfer', stateMutability: 'nonpayable', inputs: [{ name: 'to', type: 'address' }, { name: 'amount', type: 'uint256' }], outputs: [{ name: '', type: 'bool' }] }];
        await expect(versions.register({ address: v1.address!, abi: foreignAbi }, ENERGY_EXCHANGE, 'tester')).rejects.toMatchObject({ errors: [{ message: expect.stringMatching(/missing transfer/) }] });
        // Deployed outside the versions (another tool): registered as the next version, then found again.
        const external = await pipeline.send({ operationId: 'external-deploy', from: operator, data: ENERGY_EXCHANGE.bytecode }, { timeoutMs: 30_000 });
        const added = await versions.register({ address: external.contractAddress!.toLowerCase(), abi: ENERGY_EXCHANGE.abi }, ENERGY_EXCHANGE, 'tester');
        expect(added).toMatchObject({ created: true, version: { version: 4, origin: 'registered', state: 'ready', address: external.contractAddress, abiSha256: ENERGY_EXCHANGE.abiSha256 } });
        await expect(versions.register({ address: external.contractAddress!, abi: ENERGY_EXCHANGE.abi }, ENERGY_EXCHANGE, 'tester')).resolves.toMatchObject({ created: false, version: { version: 4 } });
        // With a part of the ABI, the functions it names must be in the code.
        const other = await pipeline.send({ operationId: 'external-deploy-2', from: operator, data: ENERGY_EXCHANGE.bytecode }, { timeoutMs: 30_000 });
        const subset = (ENERGY_EXCHANGE.abi as { type: string; name?: string }[]).filter((f) => f.type === 'function' && ['sign', 'statusOf'].includes(f.name!));
        const partial = await versions.register({ address: other.contractAddress!, abi: subset }, ENERGY_EXCHANGE, 'tester');
        expect(partial).toMatchObject({ created: true, version: { version: 5, abiSha256: abiSha256(subset) } });
        expect((await latest()).version).toBe(5);
        // Out of new work: the latest active is the one before; work on 5 still finds it.
        await versions.setActive(5, false);
        expect((await latest()).version).toBe(4);
        expect((await versions.byVersion(5)).active).toBe(false);
        await versions.setActive(5, true);
        expect((await latest()).version).toBe(5);
        await expect(versions.setActive(99, false)).rejects.toBeInstanceOf(NotFound);
    });

    it("reuses the answer for new work for 2 s: this instance's own changes count at once, another instance's within 2 s", async () => {
        const repo = new CosmosRepository<ContractVersion>(db.database.container('contracts'), (v) => v.id);
        const queries = jest.spyOn(repo, 'query');
        const here = new ContractVersions(repo, provider);
        const elsewhere = new ContractVersions(new CosmosRepository<ContractVersion>(db.database.container('contracts'), (v) => v.id), provider);
        expect(await here.latestActiveRef()).toMatchObject({ version: 5 });
        // Asked at once by a burst of new proposals: one query between them.
        const answers = await Promise.all(Array.from({ length: 10 }, () => here.latestActiveRef()));
        expect(answers.every((a) => a?.version === 5)).toBe(true);
        expect(queries).toHaveBeenCalledTimes(1);
        // Taken out of new work by another instance: this one still answers 5 for at most LATEST_REUSE_MS, then 4.
        await elsewhere.setActive(5, false);
        expect(await elsewhere.latestActiveRef()).toMatchObject({ version: 4 });
        const changedAt = Date.now();
        let seen = (await here.latestActiveRef())?.version;
        while (seen === 5) {
            expect(Date.now() - changedAt).toBeLessThan(LATEST_REUSE_MS + 500);
            await new Promise((r) => setTimeout(r, 100));
            seen = (await here.latestActiveRef())?.version;
        }
        expect(seen).toBe(4);
        // Its own change counts at once.
        await here.setActive(5, true);
        expect(await here.latestActiveRef()).toMatchObject({ version: 5 });
        queries.mockRestore();
    });
});
