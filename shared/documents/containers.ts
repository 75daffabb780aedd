import { PartitionKeyDefinitionVersion, PartitionKeyKind, type ContainerDefinition, type CosmosClient, type Database } from '@azure/cosmos';

/**
 * The containers of the Flexchange database and their partition keys. Conventions:
 * - A container holds one kind of document; `id` is unique within a partition.
 * - Documents an organisation owns are partitioned by `/orgId`, so a member's data is
 *   read within one partition and never mixed into another's queries by accident.
 * - Documents that are global (registrations, proposals, contract versions) are
 *   partitioned by `/id`: point reads by id, cross-partition queries for lists.
 */
export const CONTAINERS: ContainerDefinition[] = [
    { id: 'organizations', partitionKey: { paths: ['/id'] } },
    { id: 'registrations', partitionKey: { paths: ['/id'] } },
    { id: 'directory', partitionKey: { paths: ['/orgId'] } },
    { id: 'accounts', partitionKey: { paths: ['/orgId'] } },
    /** Which organisation each account address belongs to (claimed once, create-only). */
    { id: 'addresses', partitionKey: { paths: ['/id'] } },
    { id: 'proposals', partitionKey: { paths: ['/id'] } },
    /** Documents behind deals (their content in Blob storage). */
    { id: 'assets', partitionKey: { paths: ['/id'] } },
    { id: 'contracts', partitionKey: { paths: ['/id'] } },
    { id: 'events', partitionKey: { paths: ['/orgId'] } },
    /** Organisations' webhooks, and each event's delivery to each of them (the dispatcher's outbox). */
    { id: 'webhooks', partitionKey: { paths: ['/orgId'] } },
    { id: 'deliveries', partitionKey: { paths: ['/id'] } },
    { id: 'usage', partitionKey: { paths: ['/orgId'] } },
    { id: 'audit', partitionKey: { paths: ['/orgId'] } },
    { id: 'nodes', partitionKey: { paths: ['/orgId'] } },
    /** Which organisation holds each node id and enode key, and each organisation's node slots (claimed create-only). */
    { id: 'nodeClaims', partitionKey: { paths: ['/id'] } },
    { id: 'treasury', partitionKey: { paths: ['/id'] } },
    /** Ledger transactions by operation id (the pipeline's idempotency record). */
    { id: 'transactions', partitionKey: { paths: ['/id'] } },
    /** Batches of calls (anchors) and each item's claim on the batch that carries it. */
    { id: 'batches', partitionKey: { paths: ['/id'] } },
    /** Nonce leases by sender address. */
    { id: 'nonces', partitionKey: { paths: ['/id'] } },
    /** Chain event pump checkpoints. */
    { id: 'checkpoints', partitionKey: { paths: ['/id'] } },
    { id: 'ratelimits', partitionKey: { paths: ['/key'] } },
    /** First responses to requests with an Idempotency-Key. */
    { id: 'idempotency', partitionKey: { paths: ['/id'] } },
];

/**
 * Creates the database and its containers when they are missing (idempotent, run at start-up).
 * New containers hash their partition keys with version 2, as the templates in `infra/` create
 * them (what Azure advises for new containers: keys up to 2 KB, and the SDK groups a bulk
 * request's items by partition about twice as fast as with version 1). A container that exists
 * keeps the definition it was made with; the SDK reads it from the service.
 */
export async function ensureDatabase(client: CosmosClient, databaseId: string, containers: ContainerDefinition[] = CONTAINERS): Promise<Database> {
    const { database } = await client.databases.createIfNotExists({ id: databaseId });
    for (const c of containers) await database.containers.createIfNotExists({ ...c, partitionKey: { kind: PartitionKeyKind.Hash, version: PartitionKeyDefinitionVersion.V2, ...c.partitionKey, paths: c.partitionKey!.paths } });
    return database;
}
