import { CosmosRepository } from '../documents/cosmosRepository';
import type { Database } from '@azure/cosmos';
import { AppError } from '../errors';
import type { Settings } from '../config';
import type { KeyStore, SecretStore } from '../vault/vault';
import { ENERGY_EXCHANGE, ENERGY_EXCHANGE_V2 } from './artifact';
import { EnergyExchanges } from './energyExchange';
import { ChainEventPump, type ChainEventHandler, type PumpCheckpoint } from './eventPump';
import { readKeystoreAddress } from './operator';
import { TransactionPipeline, type ChainSender, type NonceLeaseDoc, type PipelineLog, type TxDoc } from './pipeline';
import { FailoverProvider } from './provider';
import { AccountKeys, KeystoreSigner } from './signers';
import { ContractVersions, type ContractVersion } from './versions';

/** Everything that talks to the ledger, built once per process from settings. */
export interface ChainGateway {
    provider: FailoverProvider;
    pipeline: TransactionPipeline;
    versions: ContractVersions;
    /** The contract port: every version's calls, reads and events. */
    exchanges: EnergyExchanges;
    accounts: AccountKeys;
    /** The chain event pump over every recorded contract version, handing events to `handler`. */
    eventPump(handler: ChainEventHandler): ChainEventPump;
    /** The core's operator account (contract owner, treasury), in keystore custody in the core's vault. */
    operator(): Promise<ChainSender>;
    close(): Promise<void>;
}

export function buildChainGateway(settings: Settings, deps: { database: Database; secrets: SecretStore; keys: KeyStore; log?: PipelineLog; onInsufficientFunds?: (sender: string) => Promise<void> }): ChainGateway {
    const provider = new FailoverProvider({ urls: settings.FLEXCHANGE_LEDGER_RPC_URLS, chainId: settings.FLEXCHANGE_CHAIN_ID, timeoutMs: settings.FLEXCHANGE_CHAIN_RPC_TIMEOUT_MS });
    const pipeline = new TransactionPipeline(
        provider,
        {
            transactions: new CosmosRepository<TxDoc>(deps.database.container('transactions'), (d) => d.id),
            leases: new CosmosRepository<NonceLeaseDoc>(deps.database.container('nonces'), (d) => d.id),
        },
        {
            chainId: settings.FLEXCHANGE_CHAIN_ID,
            confirmations: settings.FLEXCHANGE_CHAIN_CONFIRMATIONS,
            pollIntervalMs: settings.FLEXCHANGE_CHAIN_POLL_MS,
            maxFeePerGasCap: BigInt(Math.round(settings.FLEXCHANGE_CHAIN_MAX_FEE_GWEI * 1e9)),
            replaceAfterMs: settings.FLEXCHANGE_CHAIN_REPLACE_AFTER_SECONDS * 1000,
            abis: [ENERGY_EXCHANGE.abi, ENERGY_EXCHANGE_V2.abi],
            log: deps.log,
            onInsufficientFunds: deps.onInsufficientFunds,
        },
    );
    const accounts = new AccountKeys(deps.secrets, deps.keys, { provider });
    const versions = new ContractVersions(new CosmosRepository<ContractVersion>(deps.database.container('contracts'), (v) => v.id), provider);
    const exchanges = new EnergyExchanges(versions, provider);
    let operator: Promise<ChainSender> | undefined;
    return {
        provider,
        pipeline,
        versions,
        exchanges,
        eventPump: (handler) =>
            new ChainEventPump(
                provider,
                new CosmosRepository<PumpCheckpoint>(deps.database.container('checkpoints'), (c) => c.id),
                () => exchanges.deployed(),
                handler,
                { confirmations: settings.FLEXCHANGE_CHAIN_CONFIRMATIONS },
            ),
        accounts,
        operator: () => {
            operator ??= (async () => {
                const name = settings.FLEXCHANGE_OPERATOR_KEY;
                const address = await readKeystoreAddress(deps.secrets, name);
                if (!address) throw new AppError(`No operator account is configured: the keystore "${name}" (FLEXCHANGE_OPERATOR_KEY) is not in the vault, so there is no treasury and no contract owner`, 503, 'operator_not_configured');
                return { address, signer: new KeystoreSigner({ custody: 'keystore', name, address }, deps.secrets, provider) };
            })().catch((err: unknown) => {
                operator = undefined;
                throw err;
            });
            return operator;
        },
        close: async () => {
            await pipeline.close();
            provider.destroy();
        },
    };
}
