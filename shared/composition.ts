import { CosmosClient } from '@azure/cosmos';
import { parseEther } from 'ethers';
import type { TokenCredential } from '@azure/core-auth';
import { DefaultAzureCredential } from '@azure/identity';
import { BlobServiceClient } from '@azure/storage-blob';
import { AuditRecord, AuditTrail } from './audit/auditTrail';
import { CachedCredential } from './auth/cachedCredential';
import { DeploymentClient } from './auth/deploymentClient';
import { TokenValidator } from './auth/tokenValidator';
import { CosmosDirectory } from './directory/cosmosDirectory';
import type { Directory } from './directory/directory';
import { GraphDirectory } from './directory/graphDirectory';
import { CosmosRepository } from './documents/cosmosRepository';
import { RateLimiter, RateWindow } from './limits/rateLimiter';
import { UsageCounter, UsageMeter } from './usage/usageMeter';
import { AzureBlobStore } from './blobs/azureBlobStore';
import { loadSettings, Settings } from './config';
import { ensureDatabase } from './documents/containers';
import { busCheck, cosmosCheck, ledgerCheck, notConfigured, storageCheck, vaultCheck } from './health/checks';
import { checkHealth, HealthCheck, HealthMonitor } from './health/health';
import { processCheck } from './health/processCheck';
import { memberSubscriptionName, serviceBusAdministrationClient, ServiceBusMemberSubscriptions, type MemberSubscriptions } from './events/memberSubscriptions';
import { buildChainGateway, type ChainGateway } from './chain/gateway';
import { ContractAdmin } from './chain/contractAdmin';
import { CallBatcher, type BatchDoc } from './chain/batcher';
import type { AnchorInput, ContractCall, EnergyExchange, TermsSignature } from './chain/energyExchange';
import type { ChainSender } from './chain/pipeline';
import { SigningSagas } from './proposals/signingSagas';
import { ProposalVerification } from './proposals/verification';
import { MemberSigning } from './proposals/memberSigning';
import { ServiceBusClient } from '@azure/service-bus';
import type { EventPublisher } from './events/events';
import { ServiceBusEventPublisher } from './events/serviceBusPublisher';
import { DevhostDeploymentController } from './deployment/deploymentController';
import { armDeploymentController } from './deployment/armMember';
import type { NetworkClaim } from './deployment/memberNetworks';
import type { Organization } from './registration/organizations';
import { Registrations } from './registration/registrations';
import { Onboarding } from './registration/onboarding';
import { Unavailable } from './errors';
import { AcsMailSender } from './mail/acsMailSender';
import { AccountRegistry, type AddressClaim, type RegisteredAccount } from './accounts/accountRegistry';
import { CoreAccountRegistration, MemberAccounts, type MemberAccount } from './accounts/memberAccounts';
import { CoreDirectory } from './directory/coreDirectory';
import { EventFeed, FeedingPublisher } from './events/eventFeed';
import { Treasury, type Grant, type TopUpPolicy } from './treasury/treasury';
import { NodeRegistry, type ChainNode, type NodeClaim } from './nodes/nodeRegistry';
import { JsonRpcProbe, NodeWatchdog, type NodeController, type WatchedNode } from './nodes/watchdog';
import { CoreTransitionReporter, DevhostNodeController, NoNodeController, VmssNodeController } from './nodes/controllers';
import { KeystoreBackups } from './keystore/keystoreBackups';
import { Assets, type Asset } from './assets/assets';
import { Proposals, type Proposal } from './proposals/proposals';
import { MemberProposalCopies, type MemberProposalCopy } from './proposals/memberCopies';
import { Webhooks, type Delivery, type Webhook } from './webhooks/webhooks';
import { IdempotentResponses, type KeptResponse } from './http/idempotency';
import { publicBaseUrl } from './http/publicUrl';
import type { MailSender } from './mail/mailSender';
import { SmtpMailSender } from './mail/smtpMailSender';
import { systemLookup } from './net/pinnedTargets';
import { LocalIssuerCredential } from './vault/credential';
import { KeyVaultKeyStore, KeyVaultSecretStore } from './vault/keyVault';
import { AccountKeys } from './chain/signers';

import type { Services } from './services';
import { EVENTS_TOPIC } from './services';

export { EVENTS_TOPIC, type Services };

/**
 * The composition root: the one place that decides which adapter backs each port, from
 * settings (the ports it fills are `Services`, in services.ts). Handlers ask it for
 * services; nothing else builds SDK clients.
 */
let services: Services | undefined;

/** Pipeline events worth an operator's eye, as JSON lines (the host collects stdout). */
const chainLog = {
    info: (obj: object, msg: string) => console.info(JSON.stringify({ level: 'info', msg, ...obj })),
    warn: (obj: object, msg: string) => console.warn(JSON.stringify({ level: 'warn', msg, ...obj })),
    error: (obj: object, msg: string) => console.error(JSON.stringify({ level: 'error', msg, ...obj })),
};

export function credentialFor(settings: Settings): TokenCredential {
    return new CachedCredential(
        settings.FLEXCHANGE_CREDENTIAL === 'local-issuer'
            ? new LocalIssuerCredential(settings.FLEXCHANGE_AUTH_ISSUER, settings.FLEXCHANGE_CLIENT_ID!)
            : new DefaultAzureCredential(),
    );
}

/** The host storage's blob service: with its connection string (the devhost), or with the app's identity (Azure, as the Functions host reads AzureWebJobsStorage__*). */
export function blobServiceFor(settings: Settings, credential: TokenCredential): BlobServiceClient {
    if (settings.AzureWebJobsStorage) return BlobServiceClient.fromConnectionString(settings.AzureWebJobsStorage);
    const endpoint = settings.AzureWebJobsStorage__blobServiceUri ?? `https://${settings.AzureWebJobsStorage__accountName}.blob.core.windows.net`;
    return new BlobServiceClient(endpoint, credential);
}

/** Microsoft Graph when the app registration is configured (Azure), the document store alone otherwise. */
function directoryFor(settings: Settings, store: Directory, credential: TokenCredential): Directory {
    const sp = settings.FLEXCHANGE_GRAPH_SERVICE_PRINCIPAL_ID;
    if (!sp || !settings.FLEXCHANGE_GRAPH_APP_ROLE_IDS || !settings.FLEXCHANGE_INVITE_REDIRECT_URL) return store;
    return new GraphDirectory(store, {
        graphUrl: settings.FLEXCHANGE_GRAPH_URL,
        servicePrincipalId: sp,
        appRoleIds: settings.FLEXCHANGE_GRAPH_APP_ROLE_IDS,
        inviteRedirectUrl: settings.FLEXCHANGE_INVITE_REDIRECT_URL,
        credential,
    });
}

/** A client for another deployment's API (core ↔ member), with cached client-credential tokens. */
export function deploymentClient(settings: Settings, baseUrl: string, credential: TokenCredential = credentialFor(settings)): DeploymentClient {
    return new DeploymentClient(baseUrl, credential, settings.FLEXCHANGE_AUTH_AUDIENCE);
}

export function buildServices(settings: Settings = loadSettings()): Services {
    const credential = credentialFor(settings);
    const local = ['localhost', '127.0.0.1', '[::1]'].includes(new URL(settings.COSMOS_ENDPOINT).hostname);
    const cosmos = new CosmosClient({
        endpoint: settings.COSMOS_ENDPOINT,
        ...(settings.COSMOS_KEY ? { key: settings.COSMOS_KEY } : { aadCredentials: credential }),
        // The local server advertises https locations it does not serve: talk to the given endpoint only.
        ...(local ? { connectionPolicy: { enableEndpointDiscovery: false } } : {}),
    });
    const blobService = blobServiceFor(settings, credential);
    const blobs = new AzureBlobStore(blobService);
    const secrets = new KeyVaultSecretStore(settings.FLEXCHANGE_KEYVAULT_URL, credential);
    const keys = new KeyVaultKeyStore(settings.FLEXCHANGE_KEYVAULT_URL, credential);
    const mail: MailSender = settings.FLEXCHANGE_ACS_ENDPOINT
        ? new AcsMailSender({ endpoint: settings.FLEXCHANGE_ACS_ENDPOINT, credential }, settings.FLEXCHANGE_MAIL_FROM)
        : settings.FLEXCHANGE_ACS_CONNECTION_STRING
        ? new AcsMailSender(settings.FLEXCHANGE_ACS_CONNECTION_STRING, settings.FLEXCHANGE_MAIL_FROM)
        : new SmtpMailSender(settings.FLEXCHANGE_SMTP_URL!, settings.FLEXCHANGE_MAIL_FROM);

    // A member's identity may only receive from its own subscription (shared/deployment/dataRoles.ts): that is what its check uses.
    const busEntity = settings.FLEXCHANGE_ROLE === 'member' && settings.FLEXCHANGE_ORG_ID ? { topic: EVENTS_TOPIC, subscription: memberSubscriptionName(settings.FLEXCHANGE_ORG_ID) } : { topic: EVENTS_TOPIC };
    const checks: HealthCheck[] = [
        processCheck,
        ledgerCheck(settings.FLEXCHANGE_LEDGER_RPC_URLS),
        cosmosCheck(cosmos, settings.COSMOS_DATABASE),
        storageCheck(blobService),
        vaultCheck(secrets.client),
        settings.FLEXCHANGE_SERVICEBUS_CONNECTION
            ? busCheck(settings.FLEXCHANGE_SERVICEBUS_CONNECTION, busEntity)
            : settings.FLEXCHANGE_SERVICEBUS_NAMESPACE
              ? busCheck({ namespace: settings.FLEXCHANGE_SERVICEBUS_NAMESPACE, credential }, busEntity)
              : notConfigured('bus', 'neither FLEXCHANGE_SERVICEBUS_CONNECTION nor FLEXCHANGE_SERVICEBUS_NAMESPACE is set'),
    ];
    const database = cosmos.database(settings.COSMOS_DATABASE);
    let ensured: Promise<void> | undefined;
    let memberSubscriptions: MemberSubscriptions | undefined;
    let chain: ChainGateway | undefined;
    let registrations: Registrations | undefined;
    let events: EventPublisher | undefined;
    let memberAccounts: MemberAccounts | undefined;
    let treasury: Treasury | undefined;
    let proposals: Proposals | undefined;
    let memberProposals: MemberProposalCopies | undefined;
    let memberSigning: MemberSigning | undefined;
    let nodeWatchdog: { watchdog: NodeWatchdog; core: CoreTransitionReporter } | undefined;
    const nodeProbe = new JsonRpcProbe(settings.FLEXCHANGE_CHAIN_RPC_TIMEOUT_MS);
    const accountRegistry = new AccountRegistry(
        new CosmosRepository<RegisteredAccount>(database.container('accounts'), (a) => a.orgId),
        new CosmosRepository<AddressClaim>(database.container('addresses'), (c) => c.id),
    );
    const assets = new Assets(new CosmosRepository<Asset>(database.container('assets'), (a) => a.id), blobs, {
        maxBytes: settings.FLEXCHANGE_ASSET_MAX_BYTES,
        contentTypes: settings.FLEXCHANGE_ASSET_CONTENT_TYPES,
        apiBaseUrl: () => `${publicBaseUrl(settings)}/api`,
    });
    // A member's transaction the node turns away for insufficient funds asks the core for a top-up at once.
    const onInsufficientFunds = settings.FLEXCHANGE_ROLE === 'member' ? async (sender: string) => void (await built.memberAccounts().requestFunds(sender)) : undefined;
    const gateway = () => (chain ??= buildChainGateway(settings, { database, secrets, keys, log: chainLog, onInsufficientFunds }));
    // A member deployment's view of its core, and its own accounts.
    const core = settings.FLEXCHANGE_ROLE === 'member' ? deploymentClient(settings, settings.FLEXCHANGE_CORE_URL!, credential) : undefined;
    const ownAccounts = new CosmosRepository<MemberAccount>(database.container('accounts'), (a) => a.orgId);
    const directory: Directory = core
        ? new CoreDirectory(core, settings.FLEXCHANGE_ORG_ID!)
        : directoryFor(settings, new CosmosDirectory(database.container('directory')), credential);
    const webhooks = new Webhooks(
        new CosmosRepository<Webhook>(database.container('webhooks'), (w) => w.orgId),
        new CosmosRepository<Delivery>(database.container('deliveries'), (d) => d.id),
        secrets,
        {
            maxAttempts: settings.FLEXCHANGE_WEBHOOK_MAX_ATTEMPTS,
            retryBaseSeconds: settings.FLEXCHANGE_WEBHOOK_RETRY_BASE_SECONDS,
            allowInsecureLoopback: settings.FLEXCHANGE_WEBHOOK_ALLOW_INSECURE_LOOPBACK,
            timeoutMs: 10_000,
        },
        // Webhook hosts are resolved by the system resolver, checked, and connected to by the checked address.
        { lookup: systemLookup },
    );
    const eventFeed = new EventFeed(new CosmosRepository(database.container('events'), (d) => d.orgId));
    const topUpPolicy: TopUpPolicy = {
        thresholdWei: parseEther(String(settings.FLEXCHANGE_TOPUP_THRESHOLD_ETH)),
        targetWei: parseEther(String(settings.FLEXCHANGE_TOPUP_TARGET_ETH)),
        dailyCapWei: parseEther(String(settings.FLEXCHANGE_TOPUP_DAILY_CAP_ETH)),
        floorWei: parseEther(String(settings.FLEXCHANGE_TREASURY_FLOOR_ETH)),
        windowSeconds: settings.FLEXCHANGE_TOPUP_WINDOW_SECONDS,
    };
    // One batcher per v2 contract, call and sender, in this process: concurrent anchors (core) or one account's signatures (member) share transactions.
    const batchers = new Map<string, unknown>();
    const batcherOf = <T>(g: ChainGateway, name: string, from: () => Promise<ChainSender>, build: (items: T[]) => ContractCall): CallBatcher<T> => {
        let batcher = batchers.get(name) as CallBatcher<T> | undefined;
        if (!batcher) {
            batcher = new CallBatcher<T>(
                { pipeline: g.pipeline, store: new CosmosRepository<BatchDoc>(database.container('batches'), (d) => d.id), from, build },
                { maxItems: settings.FLEXCHANGE_CHAIN_BATCH_MAX_ITEMS, maxWaitMs: settings.FLEXCHANGE_CHAIN_BATCH_MAX_WAIT_MS, name },
            );
            batchers.set(name, batcher);
        }
        return batcher;
    };
    const anchorBatcher = (g: ChainGateway, exchange: EnergyExchange) =>
        batcherOf<AnchorInput>(g, `anchor:${exchange.ref.address.toLowerCase()}`, () => g.operator(), (items) => exchange.createProposals(items));
    const built: Services = {
        settings,
        cosmos,
        blobs,
        assets,
        secrets,
        keys,
        mail,
        directory,
        audit: new AuditTrail(new CosmosRepository<AuditRecord>(database.container('audit'), (r) => r.orgId)),
        limiter: new RateLimiter(new CosmosRepository<RateWindow>(database.container('ratelimits'), (w) => w.key)),
        usage: new UsageMeter(new CosmosRepository<UsageCounter>(database.container('usage'), (c) => c.orgId)),
        tokens: new TokenValidator({ issuer: settings.FLEXCHANGE_AUTH_ISSUER, audience: [settings.FLEXCHANGE_AUTH_AUDIENCE, ...(settings.FLEXCHANGE_AUTH_AUDIENCES ?? [])], jwksUri: settings.FLEXCHANGE_AUTH_JWKS_URI }),
        registrations: () => {
            registrations ??= new Registrations(new CosmosRepository(database.container('registrations'), (d) => d.id), secrets);
            return registrations;
        },
        onboarding: () =>
            new Onboarding({
                registrations: built.registrations(),
                organizations: built.organizations,
                directory,
                accountRegistry,
                treasury: () => built.treasury(),
                events: () => built.events(),
                memberApi: (url) => built.deploymentClient(url),
                initialGrantWei: parseEther(String(settings.FLEXCHANGE_TREASURY_INITIAL_GRANT_ETH)),
            }),
        deployments: () => {
            // The package members run, in the core's storage: the devhost's Azurite, or the core's own deployment container.
            const source = settings.FLEXCHANGE_RELEASE_PACKAGE;
            const release = source && { blobs, source };
            // Into the member subscription when one is named (Azure, or ARM and its fakes from the devhost); else the devhost's app instances.
            if (settings.FLEXCHANGE_DEVHOST_CONSOLE_URL && !settings.FLEXCHANGE_MEMBER_SUBSCRIPTION_ID) return new DevhostDeploymentController(settings.FLEXCHANGE_DEVHOST_CONSOLE_URL, release);
            const claims = new CosmosRepository<NetworkClaim>(database.container('nodeClaims'), (c) => c.id);
            return armDeploymentController(settings, credential, { claims, bootnodes: () => built.nodes.staticNodes() }, release);
        },
        organizations: new CosmosRepository<Organization>(database.container('organizations'), (o) => o.id),
        contracts: () => {
            const g = gateway();
            return new ContractAdmin(g.versions, { pipeline: g.pipeline, operator: () => g.operator() });
        },
        balanceOf: (address) => gateway().provider.getBalance(address),
        chainEventPump: (handler) => gateway().eventPump(handler),
        events: () => {
            if (!events) {
                const client = settings.FLEXCHANGE_SERVICEBUS_CONNECTION
                    ? new ServiceBusClient(settings.FLEXCHANGE_SERVICEBUS_CONNECTION)
                    : settings.FLEXCHANGE_SERVICEBUS_NAMESPACE
                      ? new ServiceBusClient(settings.FLEXCHANGE_SERVICEBUS_NAMESPACE, credential)
                      : undefined;
                if (!client) throw new Unavailable('No Service Bus is configured for events (FLEXCHANGE_SERVICEBUS_CONNECTION or FLEXCHANGE_SERVICEBUS_NAMESPACE)');
                events = new FeedingPublisher(eventFeed, new ServiceBusEventPublisher(client, EVENTS_TOPIC), [(orgId, event) => webhooks.enqueue(orgId, event)]);
            }
            return events;
        },
        eventFeed,
        webhooks,
        idempotency: new IdempotentResponses(new CosmosRepository<KeptResponse>(database.container('idempotency'), (k) => k.id)),
        accountRegistry,
        memberAccounts: () => {
            if (settings.FLEXCHANGE_ROLE !== 'member') throw new Unavailable('Accounts are made on member deployments');
            memberAccounts ??= new MemberAccounts(
                ownAccounts,
                new AccountKeys(secrets, keys),
                { secrets, keys },
                new CoreAccountRegistration(core!, settings.FLEXCHANGE_ORG_ID!),
                { orgId: settings.FLEXCHANGE_ORG_ID!, custody: settings.FLEXCHANGE_ACCOUNT_CUSTODY },
            );
            return memberAccounts;
        },
        treasury: () => {
            const g = gateway();
            treasury ??= new Treasury(new CosmosRepository<Grant>(database.container('treasury'), (x) => x.id), g.pipeline, () => g.operator());
            return treasury;
        },
        proposals: () => {
            const g = gateway();
            proposals ??= new Proposals(
                new CosmosRepository<Proposal>(database.container('proposals'), (p) => p.id),
                { accounts: accountRegistry, assets, exchanges: g.exchanges, chainId: settings.FLEXCHANGE_CHAIN_ID, anchors: (exchange) => anchorBatcher(g, exchange), pipeline: g.pipeline, operator: () => g.operator(), events: () => built.events() },
                { minLifetimeSeconds: settings.FLEXCHANGE_PROPOSAL_MIN_SECONDS, maxLifetimeSeconds: settings.FLEXCHANGE_PROPOSAL_MAX_SECONDS },
            );
            return proposals;
        },
        signingSagas: () => new SigningSagas({ proposals: built.proposals(), exchanges: gateway().exchanges, audit: built.audit, remindBeforeSeconds: settings.FLEXCHANGE_PROPOSAL_REMIND_BEFORE_SECONDS }),
        verification: () => new ProposalVerification({ proposals: built.proposals(), assets, maxBytes: settings.FLEXCHANGE_ASSET_MAX_BYTES }),
        memberSigning: () => {
            const g = gateway();
            // A member signs on the contract the core's record names, with the ABI the core recorded for that version (kept once fetched).
            memberSigning ??= new MemberSigning({
                orgId: settings.FLEXCHANGE_ORG_ID!,
                core: core!,
                accounts: built.memberAccounts(),
                signerOf: (key) => g.accounts.signer(key),
                pipeline: g.pipeline,
                signatures: (exchange, from) => batcherOf<TermsSignature>(g, `sign:${exchange.ref.address.toLowerCase()}:${from.address.toLowerCase()}`, async () => from, (items) => exchange.submitSignatures(items)),
                ledger: g.provider,
                copies: built.memberProposals(),
                chainId: settings.FLEXCHANGE_CHAIN_ID,
            });
            return memberSigning;
        },
        memberProposals: () => {
            if (settings.FLEXCHANGE_ROLE !== 'member') throw new Unavailable('Proposal copies are kept on member deployments');
            memberProposals ??= new MemberProposalCopies(new CosmosRepository<MemberProposalCopy>(database.container('proposals'), (c) => c.id), { orgId: settings.FLEXCHANGE_ORG_ID!, directory, mail });
            return memberProposals;
        },
        keystoreBackups: () => {
            if (settings.FLEXCHANGE_ROLE !== 'member') throw new Unavailable('Keystore backups are made on member deployments');
            return new KeystoreBackups(
                { orgId: settings.FLEXCHANGE_ORG_ID!, accounts: ownAccounts, secrets, keys, blobs },
                { keepLast: settings.FLEXCHANGE_BACKUP_KEEP_LAST, keepDays: settings.FLEXCHANGE_BACKUP_KEEP_DAYS },
            );
        },
        nodes: new NodeRegistry(new CosmosRepository<ChainNode>(database.container('nodes'), (n) => n.orgId), new CosmosRepository<NodeClaim>(database.container('nodeClaims'), (c) => c.id), {
            ranges: settings.FLEXCHANGE_NODE_NETWORK_RANGES,
            maxPerOrg: settings.FLEXCHANGE_NODE_MAX_PER_ORG,
            consortiumNodes: settings.FLEXCHANGE_LEDGER_BOOTNODES,
        }),
        nodeProbe,
        nodeWatchdog: () => {
            if (settings.FLEXCHANGE_ROLE !== 'member') throw new Unavailable('Node watchdogs over own nodes run on member deployments');
            if (!nodeWatchdog) {
                const reporter = new CoreTransitionReporter(core!);
                // Locally the devhost restarts its relay processes; in Azure a node with a scale set instance is restarted through ARM.
                const controller: NodeController = settings.FLEXCHANGE_DEVHOST_CONSOLE_URL
                    ? new DevhostNodeController(settings.FLEXCHANGE_DEVHOST_CONSOLE_URL)
                    : settings.FLEXCHANGE_NODES.some((n) => n.vmss)
                      ? new VmssNodeController(credential)
                      : new NoNodeController();
                const watchdog = new NodeWatchdog(new CosmosRepository<WatchedNode>(database.container('nodes'), (n) => n.orgId), {
                    orgId: settings.FLEXCHANGE_ORG_ID!,
                    probe: nodeProbe,
                    controller,
                    reporter,
                    policy: { stallChecks: settings.FLEXCHANGE_WATCHDOG_STALL_CHECKS, backoffSeconds: settings.FLEXCHANGE_WATCHDOG_BACKOFF_SECONDS, maxRestartsPerHour: settings.FLEXCHANGE_WATCHDOG_MAX_RESTARTS_PER_HOUR },
                    log: (m) => chainLog.info({ component: 'watchdog' }, m),
                });
                nodeWatchdog = { watchdog, core: reporter };
            }
            return nodeWatchdog;
        },
        topUpPolicy,
        topUp: (orgId, address) => {
            const provider = gateway().provider;
            return built.treasury().topUp({ orgId, address, balanceOf: (a) => provider.getBalance(a), policy: topUpPolicy, events: built.events() });
        },
        deploymentClient: (baseUrl) => deploymentClient(settings, baseUrl, credential),
        memberSubscriptions: () => {
            memberSubscriptions ??= new ServiceBusMemberSubscriptions(
                serviceBusAdministrationClient({
                    connectionString: settings.FLEXCHANGE_SERVICEBUS_CONNECTION,
                    namespace: settings.FLEXCHANGE_SERVICEBUS_NAMESPACE,
                    adminUrl: settings.FLEXCHANGE_SERVICEBUS_ADMIN_URL,
                    credential,
                }),
                EVENTS_TOPIC,
            );
            return memberSubscriptions;
        },
        ensureStores: () => {
            ensured ??= ensureDatabase(cosmos, settings.COSMOS_DATABASE).then(
                () => undefined,
                (err: unknown) => {
                    ensured = undefined;
                    throw err;
                },
            );
            return ensured;
        },
        health: new HealthMonitor(() => checkHealth(checks, { role: settings.FLEXCHANGE_ROLE, timeoutMs: settings.FLEXCHANGE_HEALTH_TIMEOUT_MS }), {
            maxAgeMs: settings.FLEXCHANGE_HEALTH_CACHE_SECONDS * 1000,
        }),
    };
    return built;
}

/** The app's services, built on first use (after the host has put the settings in the environment). */
export function getServices(): Services {
    services ??= buildServices();
    return services;
}
