import type { TokenCredential } from '@azure/core-auth';
import type { CosmosClient } from '@azure/cosmos';
import type { SecretClient } from '@azure/keyvault-secrets';
import type { BlobServiceClient } from '@azure/storage-blob';
import { statusOf } from '../errors';
import { blockNumber } from '../ledger/jsonRpc';
import type { ComponentHealth, HealthCheck } from './health';

const reason = (err: unknown) => (err as { code?: string }).code ?? (statusOf(err) ? `HTTP ${statusOf(err)}` : 'unreachable');

/** The ledger: at least one JSON-RPC node answers `eth_blockNumber`. */
export function ledgerCheck(urls: string[]): HealthCheck {
    return {
        name: 'ledger',
        async check(): Promise<ComponentHealth> {
            const results = await Promise.allSettled(urls.map((u) => blockNumber(u, 1500)));
            const heights = results.filter((r): r is PromiseFulfilledResult<number> => r.status === 'fulfilled').map((r) => r.value);
            if (heights.length === 0) return { status: 'down', detail: 'no node answered', nodes: urls.length };
            return { status: 'up', blockNumber: Math.max(...heights), nodes: urls.length, answering: heights.length };
        },
    };
}

/** A component that is up when one request to it answers (with what that request saw), down with the reason when it fails. */
function answersCheck(name: string, request: () => Promise<Omit<ComponentHealth, 'status'> | void>): HealthCheck {
    return {
        name,
        async check(): Promise<ComponentHealth> {
            try {
                return { status: 'up', ...(await request()) };
            } catch (err) {
                return { status: 'down', detail: reason(err) };
            }
        },
    };
}

/** The database: it can be read. */
export const cosmosCheck = (client: CosmosClient, database: string): HealthCheck =>
    answersCheck('cosmos', async () => {
        await client.database(database).read();
        return { database };
    });

/** Blob storage: the account's properties can be read. */
export const storageCheck = (service: BlobServiceClient): HealthCheck => answersCheck('storage', async () => void (await service.getProperties()));

/** The vault: one page of secret names can be listed. */
export const vaultCheck = (client: SecretClient): HealthCheck => answersCheck('vault', async () => void (await client.listPropertiesOfSecrets().byPage({ maxPageSize: 1 }).next()));

/**
 * The bus, as this deployment uses it: the core sends to the events topic (a batch is made, nothing is sent);
 * a member receives from its own subscription (one message is peeked, none is taken), which is all its
 * identity may do there.
 */
export function busCheck(connection: string | { namespace: string; credential: TokenCredential }, entity: { topic: string; subscription?: string }): HealthCheck {
    return {
        name: 'bus',
        async check() {
            const { ServiceBusClient } = await import('@azure/service-bus');
            const options = { retryOptions: { maxRetries: 0, timeoutInMs: 1500 } };
            const client = typeof connection === 'string' ? new ServiceBusClient(connection, options) : new ServiceBusClient(connection.namespace, connection.credential, options);
            try {
                if (entity.subscription) {
                    const receiver = client.createReceiver(entity.topic, entity.subscription);
                    await receiver.peekMessages(1);
                    await receiver.close();
                    return { status: 'up', topic: entity.topic, subscription: entity.subscription };
                }
                const sender = client.createSender(entity.topic);
                await sender.createMessageBatch();
                await sender.close();
                return { status: 'up', topic: entity.topic };
            } catch (err) {
                return { status: 'down', detail: (err as { code?: string }).code ?? 'unreachable' };
            } finally {
                await client.close().catch(() => undefined);
            }
        },
    };
}

export function notConfigured(name: string, detail: string): HealthCheck {
    return { name, check: async () => ({ status: 'not_configured', detail }) };
}
