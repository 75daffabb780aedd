import { Wallet } from 'ethers';
import { ENERGY_EXCHANGE } from '../../shared/chain/artifact';
import { TransactionPipeline, type ChainSender, type NonceLeaseDoc, type PipelineOptions, type TxDoc } from '../../shared/chain/pipeline';
import { FailoverProvider } from '../../shared/chain/provider';
import { CosmosRepository } from '../../shared/documents/cosmosRepository';
import { startCosmos, type TestCosmos } from './cosmos';
import { startLedger, type TestLedger } from './ledger';

/** A document store, an anvil of its own, a provider and a transaction pipeline over them: what ledger-facing services need. */
export interface ChainWorld {
    db: TestCosmos;
    chain: TestLedger;
    provider: FailoverProvider;
    pipeline: TransactionPipeline;
    /** A new account with ether on the chain. */
    funded(ether?: number): Promise<ChainSender>;
    stop(): Promise<void>;
}

export async function startChainWorld(opts: { mining?: 'instant'; pipeline?: Partial<PipelineOptions> } = {}): Promise<ChainWorld> {
    const [db, chain] = await Promise.all([startCosmos(), startLedger(opts.mining ? { mining: opts.mining } : {})]);
    const provider = new FailoverProvider({ urls: [chain.url], chainId: 31337, timeoutMs: 3000 });
    const pipeline = new TransactionPipeline(
        provider,
        {
            transactions: new CosmosRepository<TxDoc>(db.database.container('transactions'), (d) => d.id),
            leases: new CosmosRepository<NonceLeaseDoc>(db.database.container('nonces'), (d) => d.id),
        },
        { chainId: 31337, maxFeePerGasCap: 100n * 10n ** 9n, pollIntervalMs: 100, abis: [ENERGY_EXCHANGE.abi], ...opts.pipeline },
    );
    return {
        db,
        chain,
        provider,
        pipeline,
        funded: async (ether = 100) => {
            const wallet = Wallet.createRandom();
            await chain.fund(wallet.address, ether);
            return { address: wallet.address, signer: wallet };
        },
        stop: async () => {
            await pipeline.close();
            provider.destroy();
            await chain.stop();
            await db.stop();
        },
    };
}
