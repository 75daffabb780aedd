import { z } from 'zod';
import { BLOB_CONTAINER_NAME } from './deployment/resourceNames';
import { parseRange } from './net/addresses';
import { ENODE_RE } from './nodes/nodeRegistry';
import { nodeConfig } from './nodes/watchdog';

const url = z.string().url();
const list = (item: z.ZodString, min = 1) =>
    z
        .string()
        .transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean))
        .pipe(z.array(item).min(min));

/** Comma-separated CIDR ranges (a bare address: a range of one), parsed once; one that does not parse is a settings error. */
const cidrRanges = z
    .string()
    .default('')
    .transform((s, ctx) => {
        try {
            return s.split(',').map((x) => x.trim()).filter(Boolean).map(parseRange);
        } catch (err) {
            ctx.addIssue({ code: 'custom', message: (err as Error).message });
            return z.NEVER;
        }
    });

/** The first wait before a workflow's failed activity runs again, in seconds (then doubling, at most a minute). */
const activityRetrySetting = z.coerce.number().min(0.1).max(60).default(2);

/** Which deployment an app instance is (ARCHITECTURE.md, "Two deployment roles"). */
const deploymentRoleSetting = z.enum(['core', 'member']).default('core');
export type DeploymentRole = z.infer<typeof deploymentRoleSetting>;

/**
 * Every setting the app reads, validated once at start-up. In Azure they are the
 * Function App's application settings; locally local.settings.json plus the
 * addresses the devhost gives each app (see README, "Configuration").
 */
const settingsSchema = z.object({
    FLEXCHANGE_ROLE: deploymentRoleSetting,
    FLEXCHANGE_ACTIVITY_RETRY_SECONDS: activityRetrySetting,
    FLEXCHANGE_ORG_ID: z.string().min(1).optional(),
    /** Member deployments: the core's API (`https://<core>/api`), for the directory, account registration and events. */
    FLEXCHANGE_CORE_URL: url.optional(),
    /** Member deployments: how new accounts' keys are kept (README, "Accounts"). */
    FLEXCHANGE_ACCOUNT_CUSTODY: z.enum(['keystore', 'keyvault']).default('keystore'),
    /** Core: the largest document `POST /assets` accepts, in bytes (larger: 413). */
    FLEXCHANGE_ASSET_MAX_BYTES: z.coerce.number().int().min(1).max(100 * 1024 * 1024).default(10 * 1024 * 1024),
    /** Core: the media types `POST /assets` accepts (others: 415). */
    FLEXCHANGE_ASSET_CONTENT_TYPES: z
        .string()
        .default('application/pdf,application/json,application/xml,text/plain,text/csv,image/png,image/jpeg')
        .transform((s) => s.split(',').map((x) => x.trim().toLowerCase()).filter(Boolean))
        .pipe(z.array(z.string().regex(/^[a-z0-9.+-]+\/[a-z0-9.+-]+$/, 'a media type such as application/pdf')).min(1)),
    /** Core: a proposal's `expiresAt` must be at least this far ahead (the ledger needs time to anchor it)... */
    FLEXCHANGE_PROPOSAL_MIN_SECONDS: z.coerce.number().int().min(1).max(86_400).default(60),
    /** ...and at most this far. */
    FLEXCHANGE_PROPOSAL_MAX_SECONDS: z.coerce.number().int().min(60).max(366 * 86_400).default(30 * 86_400),
    /** Core: the traders of parties that have not signed are reminded this long before a proposal expires. */
    FLEXCHANGE_PROPOSAL_REMIND_BEFORE_SECONDS: z.coerce.number().int().min(1).default(86_400),
    /** Core: webhook deliveries are tried this often before they are parked... */
    FLEXCHANGE_WEBHOOK_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(30).default(8),
    /** ...this long after the first failure, doubling each time. */
    FLEXCHANGE_WEBHOOK_RETRY_BASE_SECONDS: z.coerce.number().min(0.1).max(3600).default(10),
    /** Devhost only: webhooks may be plain http to loopback (in Azure: https only). */
    FLEXCHANGE_WEBHOOK_ALLOW_INSECURE_LOOPBACK: z.enum(['true', 'false']).default('false').transform((v) => v === 'true'),
    /** Member: keystore backups kept: the newest N, and every one younger than D days. */
    FLEXCHANGE_BACKUP_KEEP_LAST: z.coerce.number().int().min(1).max(1000).default(7),
    FLEXCHANGE_BACKUP_KEEP_DAYS: z.coerce.number().int().min(0).max(3650).default(30),
    /** Member: the keystore backup timer (NCRONTAB, 6 fields). */
    FLEXCHANGE_BACKUP_SCHEDULE: z.string().min(1).default('0 0 2 * * *'),
    /** Core: the client addresses (exact, or IPv4 prefixes ending in '.') member deployments read the static nodes list from. */
    FLEXCHANGE_STATIC_NODES_ALLOWED_ADDRESSES: z
        .string()
        .default('')
        .transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean)),
    /**
     * Core: the consortium's node network, comma-separated CIDR ranges (`10.20.0.0/16,fd00:20::/48`; a bare
     * address is a range of one). A node's rpcUrl must be an address inside them, and the consortium watchdog
     * probes only such nodes. Empty: no rpcUrl is accepted and no member node is probed. The devhost sets loopback.
     */
    FLEXCHANGE_NODE_NETWORK_RANGES: cidrRanges,
    /** Core: the nodes one organisation may register (more: 409). */
    FLEXCHANGE_NODE_MAX_PER_ORG: z.coerce.number().int().min(1).max(1000).default(8),
    /**
     * Member: this deployment's own ledger nodes, as JSON `[{ nodeId, rpcUrl, enode, vmss? }]` (`vmss`:
     * `{ subscriptionId, resourceGroup, scaleSet, instanceId }` of the node's VM in Azure). The devhost sets it.
     */
    FLEXCHANGE_NODES: z
        .string()
        .default('[]')
        .transform((s, ctx) => {
            try {
                return JSON.parse(s) as unknown;
            } catch {
                ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'not JSON' });
                return z.NEVER;
            }
        })
        .pipe(z.array(nodeConfig).max(32)),
    /** The watchdog timers (member: its own nodes; core: the consortium's), NCRONTAB with seconds. */
    FLEXCHANGE_WATCHDOG_SCHEDULE: z.string().min(1).default('*/30 * * * * *'),
    /** Checks without progress before a node is stalled... */
    FLEXCHANGE_WATCHDOG_STALL_CHECKS: z.coerce.number().int().min(1).max(100).default(3),
    /** ...the wait after a restart before the next (doubling each time)... */
    FLEXCHANGE_WATCHDOG_BACKOFF_SECONDS: z.coerce.number().min(0).max(86_400).default(60),
    /** ...and the restarts allowed per hour before the node is down. */
    FLEXCHANGE_WATCHDOG_MAX_RESTARTS_PER_HOUR: z.coerce.number().int().min(0).max(60).default(3),
    /** Core, ether top-up (ETH): accounts below the threshold are topped up to the target... */
    FLEXCHANGE_TOPUP_THRESHOLD_ETH: z.coerce.number().min(0).default(0.5),
    FLEXCHANGE_TOPUP_TARGET_ETH: z.coerce.number().min(0).default(1),
    /** ...at most this much per account per UTC day... */
    FLEXCHANGE_TOPUP_DAILY_CAP_ETH: z.coerce.number().min(0).default(2),
    /** ...while the treasury keeps at least this much (below it: no grants, `treasury.low`)... */
    FLEXCHANGE_TREASURY_FLOOR_ETH: z.coerce.number().min(0).default(10),
    /** ...once per account per window of this many seconds. */
    FLEXCHANGE_TOPUP_WINDOW_SECONDS: z.coerce.number().int().min(10).max(86_400).default(3600),
    /** The top-up timer's NCRONTAB schedule. */
    FLEXCHANGE_TOPUP_SCHEDULE: z.string().min(1).default('0 */5 * * * *'),
    /** Core: ether (in ETH) a member's first account gets from the treasury when the member is onboarded. */
    FLEXCHANGE_TREASURY_INITIAL_GRANT_ETH: z.coerce.number().min(0).max(1_000_000).default(1),
    FLEXCHANGE_HEALTH_TIMEOUT_MS: z.coerce.number().int().positive().default(2000),
    /** Anonymous `GET /api/health` is answered from a check at most this old (seconds; 0: a check per answer, concurrent callers still share one). */
    FLEXCHANGE_HEALTH_CACHE_SECONDS: z.coerce.number().min(0).max(3600).default(5),

    COSMOS_ENDPOINT: url,
    /** Without a key the app signs in to Cosmos DB with its managed identity. */
    COSMOS_KEY: z.string().min(1).optional(),
    COSMOS_DATABASE: z.string().regex(/^[A-Za-z0-9_-]{1,255}$/).default('flexchange'),

    /** The host's storage as a connection string (the devhost's Azurite); in Azure, identity-based: the two below. */
    AzureWebJobsStorage: z.string().min(1).optional(),
    /** Azure (Flex Consumption, managed identity): the host storage account's name; its blob endpoint is derived. */
    AzureWebJobsStorage__accountName: z.string().regex(/^[a-z0-9]{3,24}$/, 'a storage account name').optional(),
    /** Azure: the host storage's blob endpoint, when given rather than derived from the account name. */
    AzureWebJobsStorage__blobServiceUri: url.optional(),
    FLEXCHANGE_KEYVAULT_URL: url,
    /** How the app gets tokens for Key Vault and other Azure resources. */
    FLEXCHANGE_CREDENTIAL: z.enum(['managed-identity', 'local-issuer']).default('managed-identity'),
    FLEXCHANGE_CLIENT_ID: z.string().min(1).optional(),

    FLEXCHANGE_AUTH_ISSUER: url,
    FLEXCHANGE_AUTH_JWKS_URI: url,
    /** The API's audience: what tokens for it are asked for (`<audience>/.default`), and accepted. */
    FLEXCHANGE_AUTH_AUDIENCE: z.string().min(1).default('api://flexchange'),
    /**
     * Other audiences accepted, comma-separated. Entra ID v2 access tokens (the app registration's
     * `requestedAccessTokenVersion` 2) carry the API application's client id as `aud`, not its
     * identifier URI: list the client id here.
     */
    FLEXCHANGE_AUTH_AUDIENCES: list(z.string().min(1)).optional(),

    FLEXCHANGE_LEDGER_RPC_URLS: list(z.string().url()),
    FLEXCHANGE_CHAIN_ID: z.coerce.number().int().positive(),
    /** Blocks deep before a transaction or a contract event counts (1 = in a block). */
    FLEXCHANGE_CHAIN_CONFIRMATIONS: z.coerce.number().int().min(1).max(64).default(1),
    /**
     * While transactions are in flight, the pipeline asks the node for its head this often and
     * reads new blocks' receipts as soon as it moves (a poll with no new block is one small call):
     * a fraction of the block interval.
     */
    FLEXCHANGE_CHAIN_POLL_MS: z.coerce.number().int().min(20).max(5000).default(250),
    /** Each 5-second run of the chain event pump follows the chain this long (below 5000: runs never overlap). */
    FLEXCHANGE_CHAIN_PUMP_FOLLOW_MS: z.coerce.number().int().min(0).max(4500).default(4000),
    /** While following, the pump asks for the head this often and reads events as soon as it moves. */
    FLEXCHANGE_CHAIN_PUMP_POLL_MS: z.coerce.number().int().min(50).max(5000).default(250),
    /** Upper bound of maxFeePerGas, in gwei. */
    FLEXCHANGE_CHAIN_MAX_FEE_GWEI: z.coerce.number().positive().max(100_000).default(500),
    /** A transaction not mined after this long is re-signed with higher fees. */
    FLEXCHANGE_CHAIN_REPLACE_AFTER_SECONDS: z.coerce.number().int().min(5).max(3600).default(60),
    FLEXCHANGE_CHAIN_RPC_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(5000),
    /** At most this many proposals anchored in one transaction (contract version 2). */
    FLEXCHANGE_CHAIN_BATCH_MAX_ITEMS: z.coerce.number().int().min(1).max(500).default(100),
    /** An anchor that arrives while a batch is being sent waits at most this long for the next one. */
    FLEXCHANGE_CHAIN_BATCH_MAX_WAIT_MS: z.coerce.number().int().min(0).max(60_000).default(250),
    /** The vault secret holding the operator's keystore (its password in `<name>-password`). */
    FLEXCHANGE_OPERATOR_KEY: z.string().regex(/^[0-9a-zA-Z-]{1,100}$/).default('ledger-operator'),

    FLEXCHANGE_SMTP_URL: z.string().regex(/^smtps?:\/\//, 'must be an smtp:// or smtps:// URL').optional(),
    FLEXCHANGE_ACS_CONNECTION_STRING: z.string().min(1).optional(),
    /** Azure: the Communication Services endpoint, reached with the app's identity (no access key). */
    FLEXCHANGE_ACS_ENDPOINT: url.optional(),
    FLEXCHANGE_MAIL_FROM: z.string().email().default('noreply@flexchange.local'),

    /** Who decides registrations: comma-separated e-mail addresses (each gets a link of their own). */
    FLEXCHANGE_APPROVERS: z
        .string()
        .default('')
        .transform((s) => s.split(',').map((x) => x.trim().toLowerCase()).filter(Boolean))
        .pipe(z.array(z.string().email())),
    /** Approvers are reminded once after this long; the application expires after the second. */
    FLEXCHANGE_REGISTRATION_REMINDER_SECONDS: z.coerce.number().int().min(1).default(2 * 86_400),
    FLEXCHANGE_REGISTRATION_EXPIRY_SECONDS: z.coerce.number().int().min(1).default(7 * 86_400),
    /** Applications accepted per client address per hour (`POST /api/registrations`). */
    FLEXCHANGE_REGISTRATION_LIMIT_PER_ADDRESS: z.coerce.number().int().min(1).max(100_000).default(10),
    /** The base URL links in mails point to (default: https://<WEBSITE_HOSTNAME>). */
    FLEXCHANGE_PUBLIC_URL: url.optional(),

    /**
     * Azure: where member deployments go (ARM deployment of infra/member.json into `<prefix>-<orgId>`). When set, members
     * are deployed there even by a core on the devhost (otherwise the devhost starts them as app instances).
     */
    FLEXCHANGE_MEMBER_SUBSCRIPTION_ID: z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'a subscription id (GUID)').optional(),
    FLEXCHANGE_MEMBER_RESOURCE_GROUP_PREFIX: z.string().regex(/^[A-Za-z0-9_.-]{1,60}$/).default('rg-flexchange'),
    FLEXCHANGE_MEMBER_LOCATION: z.string().regex(/^[a-z0-9]{2,40}$/).default('uksouth'),
    /** The consortium's genesis block (base64 of genesis.json) and the nodes' SSH public key, for infra/member.json. */
    FLEXCHANGE_MEMBER_GENESIS_B64: z.string().min(1).optional(),
    FLEXCHANGE_MEMBER_NODE_SSH_KEY: z.string().regex(/^ssh-(ed25519|rsa) /, 'an OpenSSH public key').optional(),
    /**
     * Azure: the IPv4 range members' VNets are allocated from, a /20 each (`10.64.0.0/10`: 1,024 members), so no two
     * overlap and each can be peered with the core's. It must lie inside FLEXCHANGE_NODE_NETWORK_RANGES (members' nodes are there).
     */
    FLEXCHANGE_MEMBER_ADDRESS_SPACE: cidrRanges.refine((r) => r.length <= 1, 'one CIDR range').transform((r) => r[0]),
    /** Azure: the Hyperledger Besu release members' nodes run (core.json: the core's validators' release), its archive's SHA-256 and where it is fetched. */
    FLEXCHANGE_BESU_VERSION: z.string().regex(/^[0-9][0-9A-Za-z.-]{0,40}$/, 'a Besu release such as 25.11.0').optional(),
    FLEXCHANGE_BESU_SHA256: z.string().regex(/^[0-9a-f]{64}$/, 'the SHA-256 of the release archive, 64 lowercase hex digits').optional(),
    FLEXCHANGE_BESU_DOWNLOAD_URL: z.string().url().refine((u) => u.startsWith('https://'), 'an https URL').optional(),
    /** Core: the consortium's own nodes' enode URLs (core.json: its validators'), comma-separated: first in static-nodes and every new member's bootnodes. */
    FLEXCHANGE_LEDGER_BOOTNODES: list(z.string().regex(ENODE_RE, 'enode://<128 hex>@<host>:<port>'), 0).default([]),
    /** Azure: the core's VNet (resource id); each member's VNet is peered with it both ways. */
    FLEXCHANGE_CORE_VNET_ID: z
        .string()
        .regex(/^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.Network\/virtualNetworks\/[^/]+$/i, 'must be a virtual network resource id')
        .optional(),
    /** Azure: how long onboarding waits between looks at a member's running ARM deployment and package publish. */
    FLEXCHANGE_MEMBER_DEPLOYMENT_POLL_SECONDS: z.coerce.number().int().min(1).max(600).default(15),
    /** Azure Resource Manager (another cloud's, e.g. https://management.usgovcloudapi.net); tokens are asked for `<endpoint>/.default`. */
    FLEXCHANGE_ARM_ENDPOINT: url.default('https://management.azure.com').transform((u) => u.replace(/\/+$/, '')),
    /** Devhost only (set by it): its console, where member deployments are started as app instances. */
    FLEXCHANGE_DEVHOST_CONSOLE_URL: url.optional(),
    /** The release package (`<container>/<blob>` in AzureWebJobsStorage) onboarding places in each member's deployment container; without it, members run from the devhost's source folder. */
    FLEXCHANGE_RELEASE_PACKAGE: z
        .string()
        .regex(new RegExp(`^${BLOB_CONTAINER_NAME.source.slice(1, -1)}/[^/].{0,1023}$`), 'a <container>/<blob> path')
        .transform((s) => ({ container: s.slice(0, s.indexOf('/')), name: s.slice(s.indexOf('/') + 1) }))
        .optional(),

    FLEXCHANGE_SERVICEBUS_CONNECTION: z.string().min(1).optional(),
    /** Azure: the namespace (`<name>.servicebus.windows.net`) the administration client reaches with the app's identity. */
    FLEXCHANGE_SERVICEBUS_NAMESPACE: z.string().min(1).optional(),
    /** Azure: the namespace's resource id; the core grants each member's identity its roles there (shared/deployment/dataRoles.ts). */
    FLEXCHANGE_SERVICEBUS_RESOURCE_ID: z
        .string()
        .regex(/^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.ServiceBus\/namespaces\/[^/]+$/i, 'must be a Service Bus namespace resource id (/subscriptions/…/resourceGroups/…/providers/Microsoft.ServiceBus/namespaces/…)')
        .optional(),
    /** Devhost only: the local broker's administration endpoint (plain HTTP on loopback). */
    FLEXCHANGE_SERVICEBUS_ADMIN_URL: url.optional(),

    /** With these, users are invited and given app roles through Microsoft Graph (Azure); without, the directory is the document store only. */
    FLEXCHANGE_GRAPH_URL: url.default('https://graph.microsoft.com'),
    FLEXCHANGE_GRAPH_SERVICE_PRINCIPAL_ID: z.string().uuid().optional(),
    FLEXCHANGE_GRAPH_APP_ROLE_IDS: z
        .string()
        .transform((s, ctx) => {
            try {
                return JSON.parse(s) as unknown;
            } catch {
                ctx.addIssue({ code: 'custom', message: 'must be a JSON object of role → app role id' });
                return z.NEVER;
            }
        })
        .pipe(z.record(z.string(), z.string().uuid()))
        .optional(),
    FLEXCHANGE_INVITE_REDIRECT_URL: url.optional(),
});

export type Settings = z.infer<typeof settingsSchema>;

export class ConfigError extends Error {}

/**
 * The role this app instance runs in, by the same rule as `loadSettings`: the triggers choose what
 * to register with it when their modules load, before the settings as a whole are read.
 */
export function deploymentRole(env: Record<string, string | undefined> = process.env): DeploymentRole {
    const parsed = deploymentRoleSetting.safeParse(env.FLEXCHANGE_ROLE || undefined);
    if (!parsed.success) throw new ConfigError(`Invalid settings: FLEXCHANGE_ROLE: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
    return parsed.data;
}

/**
 * `FLEXCHANGE_ACTIVITY_RETRY_SECONDS` in milliseconds, by the same rule as `loadSettings`: the workflows
 * build their retry policy when their modules load. The same in every replay of a process.
 */
export function activityRetryFirstMs(env: Record<string, string | undefined> = process.env): number {
    const parsed = activityRetrySetting.safeParse(env.FLEXCHANGE_ACTIVITY_RETRY_SECONDS || undefined);
    if (!parsed.success) throw new ConfigError(`Invalid settings: FLEXCHANGE_ACTIVITY_RETRY_SECONDS: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
    return Math.round(parsed.data * 1000);
}

export function loadSettings(env: Record<string, string | undefined> = process.env): Settings {
    const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
    const parsed = settingsSchema.safeParse(present);
    if (!parsed.success) {
        const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
        throw new ConfigError(`Invalid settings: ${problems}`);
    }
    const s = parsed.data;
    if (s.FLEXCHANGE_ROLE === 'member' && !s.FLEXCHANGE_ORG_ID) {
        throw new ConfigError('Invalid settings: FLEXCHANGE_ORG_ID is required when FLEXCHANGE_ROLE is member');
    }
    if (s.FLEXCHANGE_ROLE === 'member' && !s.FLEXCHANGE_CORE_URL) {
        throw new ConfigError('Invalid settings: FLEXCHANGE_CORE_URL is required when FLEXCHANGE_ROLE is member');
    }
    if (!s.FLEXCHANGE_SMTP_URL && !s.FLEXCHANGE_ACS_CONNECTION_STRING && !s.FLEXCHANGE_ACS_ENDPOINT) {
        throw new ConfigError('Invalid settings: set FLEXCHANGE_SMTP_URL, FLEXCHANGE_ACS_ENDPOINT or FLEXCHANGE_ACS_CONNECTION_STRING to send mail');
    }
    if (!s.AzureWebJobsStorage && !s.AzureWebJobsStorage__accountName && !s.AzureWebJobsStorage__blobServiceUri) {
        throw new ConfigError('Invalid settings: set AzureWebJobsStorage (a connection string) or AzureWebJobsStorage__accountName / AzureWebJobsStorage__blobServiceUri (managed identity)');
    }
    if (s.FLEXCHANGE_CREDENTIAL === 'local-issuer' && !s.FLEXCHANGE_CLIENT_ID) {
        throw new ConfigError('Invalid settings: FLEXCHANGE_CLIENT_ID is required when FLEXCHANGE_CREDENTIAL is local-issuer');
    }
    return s;
}
