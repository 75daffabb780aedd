import { readFileSync } from 'node:fs';
import { compileRuleWithAction, normalizeRule, type MessageAction, type MessageFilter, type RuleConfig } from './filters';

/**
 * The entities the local Service Bus serves, declared up front in the same terms
 * as Azure's entity properties (Azure creates them through ARM). Subscriptions
 * and their rules can also be created and changed at run time through the
 * broker's administration endpoint (admin.ts), as the administration client does.
 */

export interface QueueConfig {
    name: string;
    /** Default 10, as in Azure. */
    maxDeliveryCount?: number;
    /** Default 60, as in Azure. */
    lockDurationSeconds?: number;
    /** Default: messages never expire unless they carry their own time to live. */
    defaultMessageTimeToLiveSeconds?: number;
    /** Set = duplicate detection on (by `messageId`) with this window. */
    duplicateDetectionWindowSeconds?: number;
    /** Sessions (Azure's `requiresSession`): messages must carry a session id and are received through session receivers. Default false. */
    requiresSession?: boolean;
}

export interface SubscriptionConfig {
    name: string;
    maxDeliveryCount?: number;
    lockDurationSeconds?: number;
    defaultMessageTimeToLiveSeconds?: number;
    requiresSession?: boolean;
    /** None = Azure's `$Default` rule, which matches every message; an empty list matches nothing (as in Azure). */
    rules?: RuleConfig[];
}

export interface TopicConfig {
    name: string;
    duplicateDetectionWindowSeconds?: number;
    defaultMessageTimeToLiveSeconds?: number;
    subscriptions: SubscriptionConfig[];
}

export interface EntitiesConfig {
    queues: QueueConfig[];
    topics: TopicConfig[];
}

/** A checked entity that messages are locked from: a queue or a subscription. */
export interface ResolvedLockEntity {
    maxDeliveryCount: number;
    lockDurationMs: number;
    defaultTtlMs?: number;
    requiresSession: boolean;
}

export interface ResolvedQueue extends ResolvedLockEntity {
    kind: 'queue';
    name: string;
    duplicateWindowMs?: number;
}

export interface ResolvedSubscription extends ResolvedLockEntity {
    name: string;
    filters: { name: string; matches: MessageFilter; action?: MessageAction }[];
    /** The subscription as declared, its rules spelled out (`$Default` when none were given). */
    declared: SubscriptionConfig;
}

export interface ResolvedTopic {
    kind: 'topic';
    name: string;
    duplicateWindowMs?: number;
    defaultTtlMs?: number;
    subscriptions: ResolvedSubscription[];
}

const DEFAULT_MAX_DELIVERY_COUNT = 10;
const DEFAULT_LOCK_SECONDS = 60;
// Azure's own upper bound for a lock duration.
const MAX_LOCK_SECONDS = 300;
// Azure allows '/' in queue and topic names (never at either end) but not in subscription names.
const ENTITY_NAME_RE = /^[A-Za-z0-9](?:[A-Za-z0-9._/-]{0,258}[A-Za-z0-9_])?$/;
const SUBSCRIPTION_NAME_RE = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,48}[A-Za-z0-9_])?$/;
// Names the broker gives a meaning to in addresses.
export const RULE_NAME_RE = /^[A-Za-z0-9$][A-Za-z0-9._$-]{0,49}$/;
const RESERVED = /(^|\/)(\$|subscriptions$|subscriptions\/)/i;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function fail(where: string, message: string): never {
    throw new Error(`Service Bus entities: ${where}: ${message}`);
}

function optionalNumber(o: Record<string, unknown>, key: string, where: string, check: { integer?: boolean; min: number; max?: number }): number | undefined {
    const v = o[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || (check.integer && !Number.isInteger(v)) || v < check.min || (check.max !== undefined && v > check.max)) {
        fail(where, `${key} must be ${check.integer ? 'an integer' : 'a number'} ≥ ${check.min}${check.max !== undefined ? ` and ≤ ${check.max}` : ''} (got ${JSON.stringify(v)})`);
    }
    return v;
}

function onlyKeys(o: Record<string, unknown>, allowed: string[], where: string): void {
    for (const k of Object.keys(o)) if (!allowed.includes(k)) fail(where, `unknown setting "${k}" (known: ${allowed.join(', ')})`);
}

function lockSettings(o: Record<string, unknown>, where: string): ResolvedLockEntity {
    const maxDeliveryCount = optionalNumber(o, 'maxDeliveryCount', where, { integer: true, min: 1, max: 2000 }) ?? DEFAULT_MAX_DELIVERY_COUNT;
    // Sub-second locks are allowed (Azure's minimum is 5 s) so that tests of lock expiry stay short.
    const lockSeconds = optionalNumber(o, 'lockDurationSeconds', where, { min: 0.1, max: MAX_LOCK_SECONDS }) ?? DEFAULT_LOCK_SECONDS;
    const ttl = optionalNumber(o, 'defaultMessageTimeToLiveSeconds', where, { min: 0.1 });
    const requiresSession = o.requiresSession ?? false;
    if (typeof requiresSession !== 'boolean') fail(where, `requiresSession must be true or false (got ${JSON.stringify(requiresSession)})`);
    return { maxDeliveryCount, lockDurationMs: Math.round(lockSeconds * 1000), defaultTtlMs: ttl === undefined ? undefined : Math.round(ttl * 1000), requiresSession };
}

/**
 * Checks an entities declaration (typically parsed JSON) and compiles its rules.
 * Throws one clear error naming the entity and setting at the first problem, so
 * a bad declaration stops the start instead of misrouting messages later.
 */
export function resolveEntities(raw: unknown): { queues: ResolvedQueue[]; topics: ResolvedTopic[] } {
    if (!isObject(raw)) fail('root', 'expected an object { queues: [...], topics: [...] }');
    onlyKeys(raw, ['queues', 'topics', '$schema', 'comment'], 'root');
    const queuesRaw = raw.queues ?? [];
    const topicsRaw = raw.topics ?? [];
    if (!Array.isArray(queuesRaw)) fail('root', '"queues" must be an array');
    if (!Array.isArray(topicsRaw)) fail('root', '"topics" must be an array');
    // Queues and topics share one namespace, case-insensitively, as in Azure.
    const taken = new Map<string, string>();
    const claim = (name: string, where: string) => {
        const key = name.toLowerCase();
        const other = taken.get(key);
        if (other) fail(where, `the name "${name}" is already used by ${other} (names are case-insensitive)`);
        taken.set(key, where);
    };
    const queues = queuesRaw.map((q: unknown, i: number): ResolvedQueue => {
        const queue = resolveQueue(q, `queues[${i}]`);
        claim(queue.name, `queue "${queue.name}"`);
        return queue;
    });

    const topics = topicsRaw.map((t: unknown, i: number): ResolvedTopic => {
        const where = `topics[${i}]`;
        const { name, duplicateWindowMs, defaultTtlMs } = resolveTopicSettings(t, where, true);
        claim(name, `topic "${name}"`);
        const w = `topic "${name}"`;
        const subsRaw = (t as Record<string, unknown>).subscriptions ?? [];
        if (!Array.isArray(subsRaw)) fail(w, '"subscriptions" must be an array');
        const subNames = new Set<string>();
        const subscriptions = subsRaw.map((s: unknown, j: number): ResolvedSubscription => {
            const sub = resolveSubscription(name, s, `${w} subscriptions[${j}]`);
            if (subNames.has(sub.name.toLowerCase())) fail(`${w} subscriptions[${j}]`, `duplicate subscription "${sub.name}" (names are case-insensitive)`);
            subNames.add(sub.name.toLowerCase());
            return sub;
        });
        return { kind: 'topic', name, duplicateWindowMs, defaultTtlMs, subscriptions };
    });
    return { queues, topics };
}

function entityName(o: Record<string, unknown>, where: string): string {
    const name = o.name;
    if (typeof name !== 'string' || !ENTITY_NAME_RE.test(name) || name.includes('//') || RESERVED.test(name)) {
        fail(where, `name must be 1-260 letters, digits, '.', '-', '_' or '/', start and end with a letter or digit, and not use a reserved segment ($..., Subscriptions) (got ${JSON.stringify(name)})`);
    }
    return name;
}

/** Checks one queue (from the entities file, or created through the administration API). */
export function resolveQueue(q: unknown, where: string): ResolvedQueue {
    if (!isObject(q)) fail(where, 'expected an object');
    onlyKeys(q, ['name', 'maxDeliveryCount', 'lockDurationSeconds', 'defaultMessageTimeToLiveSeconds', 'duplicateDetectionWindowSeconds', 'requiresSession'], where);
    const name = entityName(q, where);
    const w = `queue "${name}"`;
    const dup = optionalNumber(q, 'duplicateDetectionWindowSeconds', w, { min: 1 });
    return { kind: 'queue', name, ...lockSettings(q, w), duplicateWindowMs: dup === undefined ? undefined : Math.round(dup * 1000) };
}

/** Checks a topic's own settings (its subscriptions are checked one by one, see resolveSubscription). */
export function resolveTopicSettings(t: unknown, where: string, withSubscriptions = false): { name: string; duplicateWindowMs?: number; defaultTtlMs?: number } {
    if (!isObject(t)) fail(where, 'expected an object');
    onlyKeys(t, ['name', 'duplicateDetectionWindowSeconds', 'defaultMessageTimeToLiveSeconds', ...(withSubscriptions ? ['subscriptions'] : [])], where);
    const name = entityName(t, where);
    const w = `topic "${name}"`;
    const dup = optionalNumber(t, 'duplicateDetectionWindowSeconds', w, { min: 1 });
    const ttl = optionalNumber(t, 'defaultMessageTimeToLiveSeconds', w, { min: 0.1 });
    return { name, duplicateWindowMs: dup === undefined ? undefined : Math.round(dup * 1000), defaultTtlMs: ttl === undefined ? undefined : Math.round(ttl * 1000) };
}

/** Azure's rule for a subscription created without one: every message matches. */
export const DEFAULT_RULE: RuleConfig = { name: '$Default', sql: '1=1' };

/**
 * Checks one subscription (from the entities file, or created through the
 * administration API) and compiles its rules. No `rules` = Azure's `$Default`
 * rule; an empty list is a subscription that matches nothing, as in Azure.
 */
export function resolveSubscription(topic: string, s: unknown, where: string): ResolvedSubscription {
    if (!isObject(s)) fail(where, 'expected an object');
    onlyKeys(s, ['name', 'maxDeliveryCount', 'lockDurationSeconds', 'defaultMessageTimeToLiveSeconds', 'requiresSession', 'rules'], where);
    if (typeof s.name !== 'string' || !SUBSCRIPTION_NAME_RE.test(s.name)) {
        fail(where, `name must be 1-50 letters, digits, '.', '-' or '_', starting and ending with a letter or digit (got ${JSON.stringify(s.name)})`);
    }
    const subName = s.name;
    const subWhere = `subscription "${topic}/${subName}"`;
    const rulesRaw = s.rules ?? [DEFAULT_RULE];
    if (!Array.isArray(rulesRaw)) fail(subWhere, '"rules" must be an array');
    const ruleNames = new Set<string>();
    const rules = rulesRaw.map((r: unknown, k: number): RuleConfig => {
        const rw = `${subWhere} rules[${k}]`;
        if (!isObject(r)) fail(rw, 'expected an object');
        onlyKeys(r, ['name', 'correlation', 'sql', 'action'], rw);
        if (typeof r.name !== 'string' || !RULE_NAME_RE.test(r.name)) fail(rw, `name must be 1-50 characters (got ${JSON.stringify(r.name)})`);
        if (ruleNames.has(r.name.toLowerCase())) fail(rw, `duplicate rule "${r.name}"`);
        ruleNames.add(r.name.toLowerCase());
        return normalizeRule(r as unknown as RuleConfig);
    });
    const filters = rules.map((r) => {
        try {
            return { name: r.name, ...compileRuleWithAction(r) };
        } catch (err) {
            fail(`${subWhere} rule "${r.name}"`, (err as Error).message);
        }
    });
    const declared: SubscriptionConfig = { ...(s as unknown as SubscriptionConfig), rules };
    return { name: subName, ...lockSettings(s, subWhere), filters, declared };
}

/** Reads an entities declaration from a JSON file (e.g. entities.sample.json) and checks it. */
export function loadEntitiesFile(file: string): EntitiesConfig {
    let parsed: unknown;
    try {
        parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
        throw new Error(`Service Bus entities: cannot read ${file}: ${(err as Error).message}`);
    }
    resolveEntities(parsed);
    const o = parsed as Partial<EntitiesConfig>;
    return { queues: o.queues ?? [], topics: o.topics ?? [] };
}
