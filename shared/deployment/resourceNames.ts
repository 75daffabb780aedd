import { createHash } from 'node:crypto';

/**
 * Every name a member deployment's resources get, derived from the organisation id in one
 * place, for the devhost and for Azure. Each name keeps its service's length and character
 * rules and never ends with a hyphen. A name that holds the whole id (when it fits) is unique
 * because the id is; a name that cannot hold it is cut and ends with a hash of the whole id, so
 * ids that share a prefix still get names of their own. Names that must be unique across
 * Azure (Key Vault, storage, Cosmos DB account, function app) always carry a hash of the id and
 * of the scope they are deployed in (the member subscription).
 */
export interface MemberResourceNames {
    orgId: string;
    /** The devhost app instance (`PUT /dev/apps/{name}`): `member-<orgId>`. */
    app: string;
    /** The devhost's Key Vault stand-in of the member (Key Vault rules). */
    localVault: string;
    /** The member's Cosmos database: its own in the devhost's shared Cosmos server (`member-<orgId>`). */
    cosmosDatabase: string;
    /** The member's subscription on the events topic (`member-<orgId>`). */
    serviceBusSubscription: string;
    /** Azure: the member's resource group. */
    resourceGroup: string;
    /** Azure: the ARM deployment of infra/member.json (a second start finds the first by this name). */
    deployment: string;
    /** Azure: the member's Key Vault. */
    keyVault: string;
    /** Azure: the member's storage account. */
    storageAccount: string;
    /** The blob container the member's app runs from (Flex Consumption's deployment container; in the devhost, in Azurite): the core places the release package there. */
    deploymentContainer: string;
    /** Azure: the member's Cosmos DB account. */
    cosmosAccount: string;
    /** Azure: the member's function app. */
    functionApp: string;
    /** Azure: the scale set of the member's ledger (Besu) nodes. */
    scaleSet: string;
    /** Azure: infra/member.json `namePrefix` of the other, resource-group-scoped names (3-11 lowercase letters or digits). */
    namePrefix: string;
    /** The member app's Durable task hub (`FLEXCHANGE_TASK_HUB`, host.json `hubName`): `member<id letters and digits><hash of the id>`. */
    taskHub: string;
}

/** The core's Durable task hub (`FLEXCHANGE_TASK_HUB` of the core; members' hubs are `member…`). */
export const CORE_TASK_HUB = 'flexchangecore';

export interface ResourceNameOptions {
    /** The prefix of members' resource groups (`FLEXCHANGE_MEMBER_RESOURCE_GROUP_PREFIX`). */
    resourceGroupPrefix?: string;
    /** What globally unique names are unique within, e.g. the member subscription id (empty: the id alone). */
    scope?: string;
}

/** Blob container: 3-63, lowercase letters, digits and single hyphens, starting and ending with a letter or digit. */
export const BLOB_CONTAINER_NAME = /^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/;

/** The rules each name is made to hold (Azure's "Naming rules and restrictions for Azure resources"). */
const RULES = {
    /** The devhost's app instance names (its console routes). */
    app: { max: 63, valid: /^[a-z0-9][a-z0-9-]*[a-z0-9]$/ },
    /** Key Vault: 3-24, letters, digits and hyphens, starts with a letter, ends with a letter or digit, no `--`. */
    keyVault: { max: 24, valid: /^(?!.*--)[a-z][a-z0-9-]{1,22}[a-z0-9]$/ },
    /** Cosmos DB database id: 1-255, none of `/ \ # ?`, no trailing space. */
    cosmosDatabase: { max: 255, valid: /^[a-z0-9][a-z0-9-]*[a-z0-9]$/ },
    /** Service Bus subscription: 1-50, letters, digits, `.`, `-`, `_`; starts and ends with a letter or digit. */
    serviceBusSubscription: { max: 50, valid: /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/ },
    /** Resource group: 1-90, letters, digits, `_`, `-`, `.`, `(`, `)`; not ending with `.` (nor, here, with `-`). */
    resourceGroup: { max: 90, valid: /^[A-Za-z0-9_.()-]*[A-Za-z0-9_()]$/ },
    /** ARM deployment: 1-64, letters, digits, `_`, `-`, `.`, `(`, `)` (here not ending with `-`). */
    deployment: { max: 64, valid: /^[A-Za-z0-9_.()-]*[A-Za-z0-9_.()]$/ },
    blobContainer: { max: 63, valid: BLOB_CONTAINER_NAME },
    /** Cosmos DB account: 3-44, lowercase letters, digits and hyphens, starting and ending with a letter or digit. */
    cosmosAccount: { max: 44, valid: /^[a-z0-9][a-z0-9-]{1,42}[a-z0-9]$/ },
    /** Function app (Microsoft.Web/sites): 2-60, letters, digits and hyphens, not starting or ending with a hyphen. */
    functionApp: { max: 60, valid: /^[a-z0-9][a-z0-9-]{0,58}[a-z0-9]$/ },
    /** Durable Functions task hub (Azure Storage provider): 3-45 letters and digits, starting with a letter. */
    taskHub: { max: 45, valid: /^[A-Za-z][A-Za-z0-9]{2,44}$/ },
    /** VM scale set (Linux): 1-64, letters, digits, `_`, `.`, `-`; starts with a letter or digit, ends with a letter, digit or `_`. */
    scaleSet: { max: 64, valid: /^[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$/ },
} as const;

type Rule = { max: number; valid: RegExp };

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

/** Lower-case letters and digits in runs joined by single hyphens. */
function slug(s: string): string {
    return s
        .toLowerCase()
        .normalize('NFKD')
        .replace(/[^a-z0-9]+/g, '-')
        .replace(/^-+|-+$/g, '');
}

/** `prefix + id` when that holds the rule; otherwise the id's slug cut to leave room for `-<hash of the whole id>`. */
function withId(prefix: string, id: string, rule: Rule, hashLength = 8): string {
    const whole = prefix + id;
    if (whole.length <= rule.max && rule.valid.test(whole)) return whole;
    return hashed(prefix, slug(id), sha256(id).slice(0, hashLength), rule.max);
}

/** `prefix + head + '-' + hash`, the head cut (never leaving a trailing hyphen) to fit `max`. */
function hashed(prefix: string, head: string, hash: string, max: number): string {
    const room = max - prefix.length - hash.length - 1;
    const cut = head.slice(0, Math.max(0, room)).replace(/-+$/, '');
    return cut ? `${prefix}${cut}-${hash}` : `${prefix}${hash}`;
}

/** The names of one organisation's member deployment (see `MemberResourceNames`). */
export function memberResourceNames(orgId: string, opts: ResourceNameOptions = {}): MemberResourceNames {
    if (!orgId) throw new Error('An organisation id is needed to name its resources');
    const rgPrefix = (opts.resourceGroupPrefix ?? 'rg-flexchange').replace(/[^A-Za-z0-9_.()-]+/g, '-').replace(/-+$/, '');
    // Globally unique names: a hash of the scope and the id (deterministic, so a second start finds the same resources).
    const global = sha256(`${opts.scope ?? ''}/${orgId}`).slice(0, 10);
    const s = slug(orgId);
    return {
        orgId,
        app: withId('member-', orgId, RULES.app),
        localVault: withId('fx-', orgId, RULES.keyVault),
        cosmosDatabase: withId('member-', orgId, RULES.cosmosDatabase),
        serviceBusSubscription: withId('member-', orgId, RULES.serviceBusSubscription),
        resourceGroup: withId(rgPrefix ? `${rgPrefix}-` : '', orgId, RULES.resourceGroup),
        deployment: withId('flexchange-member-', orgId, RULES.deployment),
        keyVault: hashed('kv-', s, global, RULES.keyVault.max),
        storageAccount: `st${s.replace(/-/g, '')}`.slice(0, 24 - global.length) + global,
        deploymentContainer: withId('app-package-', orgId, RULES.blobContainer),
        cosmosAccount: hashed('cosmos-', s, global, RULES.cosmosAccount.max),
        functionApp: hashed('func-', s, global, RULES.functionApp.max),
        scaleSet: withId('nodes-', orgId, RULES.scaleSet),
        namePrefix: `fx${sha256(orgId).slice(0, 8)}`,
        // Letters and digits only, so ids that differ in their hyphens alone would meet: the hash keeps them apart.
        taskHub: `member${s.replace(/-/g, '').slice(0, RULES.taskHub.max - 'member'.length - 10)}${sha256(orgId).slice(0, 10)}`,
    };
}
