import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { keptFor, type Timed } from '../boundedMap';
import type { Repository } from '../documents/repository';
import { Conflict, Invalid, NotFound } from '../errors';
import type { EventEnvelope } from '../events/events';
import { checkPublicTarget, postToTarget, TargetRefused, type CheckedTarget, type Lookup } from '../net/pinnedTargets';
import type { SecretStore } from '../vault/vault';

/** A webhook of an organisation (container `webhooks`, partition `/orgId`); its secret is in the vault, never here. */
export interface Webhook {
    id: string;
    orgId: string;
    url: string;
    description?: string;
    createdAt: string;
    createdBy: string;
}

/** One event to one webhook (container `deliveries`, partition `/id` = `<webhookId>:<eventId>`): the outbox the dispatcher works through. */
export interface Delivery {
    id: string;
    kind: 'delivery';
    webhookId: string;
    orgId: string;
    event: EventEnvelope;
    state: 'pending' | 'delivered' | 'parked';
    attempts: number;
    nextAttemptAt: string;
    /** While a dispatcher sends it: others leave it alone until then. */
    leaseUntil?: string;
    lastError?: string;
    deliveredAt?: string;
    updatedAt: string;
}

export interface WebhookPolicy {
    maxAttempts: number;
    retryBaseSeconds: number;
    /** Loopback targets, over plain http too (the devhost); in Azure only https to public addresses. */
    allowInsecureLoopback: boolean;
    timeoutMs: number;
}

/**
 * How a webhook's host is reached: `lookup` resolves it (checked at registration and before every
 * delivery), `post` sends to the address that was checked. Tests replace the resolver.
 */
export interface WebhookNetwork {
    lookup: Lookup;
    post?: typeof postToTarget;
    /** Extra trusted CA certificates for https targets (tests); the system's are trusted regardless. */
    ca?: string;
}

export const SIGNATURE_HEADER = 'Flexchange-Signature';

/** `t=<unix>,v1=<hex>`: HMAC-SHA256 with the webhook's secret over `<t>.<body>` (the timestamp is signed too, so a captured request cannot be replayed later with a new one). */
export function signWebhook(secret: string, body: string, unixSeconds: number): string {
    return `t=${unixSeconds},v1=${createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex')}`;
}

const secretName = (webhookId: string) => `webhook-${webhookId}`;

/**
 * How long an instance reuses an organisation's webhook list for its events (ms). A webhook registered
 * or removed on this instance counts for the next event at once; on another instance of the same
 * deployment, for the events published from at most this long after (each event asked the store before:
 * a query and its query plan per event and organisation, 16 requests a proposal).
 */
export const WEBHOOK_LIST_REUSE_MS = 2_000;

/** At most this many webhooks per organisation: each event is one delivery per webhook (and `enqueue` reads one page of them). */
export const MAX_WEBHOOKS_PER_ORG = 20;

/**
 * Push delivery of an organisation's events: every event appended to its feed becomes one
 * delivery per webhook (create-only: republishing adds none), sent signed, retried with
 * exponential back-off, parked after the last attempt.
 */
export class Webhooks {
    /** Each organisation's webhook list as read for its events, and when (`WEBHOOK_LIST_REUSE_MS`). */
    readonly #forEvents = new Map<string, Timed<Webhook[]>>();

    constructor(
        private readonly hooks: Repository<Webhook>,
        private readonly deliveries: Repository<Delivery>,
        private readonly secrets: SecretStore,
        private readonly policy: WebhookPolicy,
        private readonly network: WebhookNetwork,
    ) {}

    async register(orgId: string, input: { url: string; description?: string }, by: string): Promise<{ webhook: Webhook; secret: string }> {
        const url = (await this.#checkUrl(input.url)).url.toString();
        if ((await this.list(orgId)).length >= MAX_WEBHOOKS_PER_ORG) throw new Conflict(`An organisation has at most ${MAX_WEBHOOKS_PER_ORG} webhooks; remove one first`, 'too_many_webhooks');
        const webhook: Webhook = { id: randomUUID(), orgId, url, description: input.description, createdAt: new Date().toISOString(), createdBy: by };
        const secret = randomBytes(32).toString('base64url');
        // The secret first: a webhook without one could not be signed.
        await this.secrets.set(secretName(webhook.id), secret, { contentType: 'text/plain', tags: { orgId, purpose: 'webhook-signing' } });
        await this.hooks.create(webhook);
        this.#forEvents.delete(orgId);
        return { webhook, secret };
    }

    async list(orgId: string): Promise<Webhook[]> {
        const page = await this.hooks.query({ query: 'SELECT * FROM c WHERE c.orgId = @org ORDER BY c.createdAt', parameters: [{ name: '@org', value: orgId }] }, { partitionKey: orgId, maxItemCount: 100 });
        return page.items;
    }

    async remove(orgId: string, id: string): Promise<void> {
        const deleted = await this.hooks.delete(id, orgId);
        this.#forEvents.delete(orgId);
        if (!deleted) throw new NotFound('No such webhook');
        await this.secrets.delete(secretName(id)).catch(() => false);
    }

    /** One delivery per webhook of the organisation for this event (a repeat of the event adds none). */
    async enqueue(orgId: string, event: EventEnvelope): Promise<void> {
        for (const hook of await this.#listForEvents(orgId)) {
            const now = new Date().toISOString();
            try {
                await this.deliveries.create({ id: `${hook.id}:${event.id}`, kind: 'delivery', webhookId: hook.id, orgId, event, state: 'pending', attempts: 0, nextAttemptAt: now, updatedAt: now });
            } catch (err) {
                if (!(err instanceof Conflict)) throw err;
            }
        }
    }

    /** The organisation's webhooks as this instance read them less than `WEBHOOK_LIST_REUSE_MS` ago, else read now. */
    #listForEvents(orgId: string): Promise<Webhook[]> {
        return keptFor(this.#forEvents, orgId, WEBHOOK_LIST_REUSE_MS, () => this.list(orgId), 10_000);
    }

    /**
     * Sends what is due (at most `limit`), each under a lease so two dispatchers never send one at once.
     * The events of one subject that carry a `sequence` (a proposal's) go to each webhook in that order:
     * one waits while an earlier one is still pending (being retried), and goes as soon as it is delivered
     * or parked.
     */
    async dispatch(limit = 50, now = Date.now()): Promise<{ delivered: number; retried: number; parked: number }> {
        const due = await this.deliveries.query(
            { query: 'SELECT * FROM c WHERE c.kind = "delivery" AND c.state = "pending" AND c.nextAttemptAt <= @now ORDER BY c.nextAttemptAt', parameters: [{ name: '@now', value: new Date(now).toISOString() }] },
            { maxItemCount: limit },
        );
        const tally = { delivered: 0, retried: 0, parked: 0 };
        const lines = new Map<string, Delivery[]>();
        for (const d of due.items) {
            const line = d.event.sequence === undefined ? d.id : `${d.webhookId}\n${d.event.subject}`;
            lines.set(line, [...(lines.get(line) ?? []), d]);
        }
        await Promise.all(
            [...lines.values()].map(async (line) => {
                for (const d of line.sort((x, y) => (x.event.sequence ?? 0) - (y.event.sequence ?? 0))) {
                    if (await this.#waitsForEarlier(d)) return;
                    const state = await this.#attempt(d, now);
                    if (state) tally[state === 'delivered' ? 'delivered' : state === 'parked' ? 'parked' : 'retried']++;
                    if (state !== 'delivered' && state !== 'parked') return;
                }
            }),
        );
        return tally;
    }

    /** One attempt at a delivery under a lease: its new state, or nothing when another dispatcher has it. */
    async #attempt(d: Delivery, now: number): Promise<Delivery['state'] | 'retried' | undefined> {
        if (d.leaseUntil && Date.parse(d.leaseUntil) > now) return undefined;
        const stored = await this.deliveries.read(d.id, d.id);
        if (!stored || stored.item.state !== 'pending') return undefined;
        let leased: Delivery;
        try {
            leased = (await this.deliveries.replace({ ...stored.item, leaseUntil: new Date(now + this.policy.timeoutMs * 2).toISOString(), updatedAt: new Date().toISOString() }, stored.etag)).item;
        } catch (err) {
            if (err instanceof Conflict) return undefined; // another dispatcher has it
            throw err;
        }
        const outcome = await this.#send(leased);
        const attempts = leased.attempts + 1;
        const next: Delivery = outcome.ok
            ? { ...leased, state: 'delivered', attempts, deliveredAt: new Date().toISOString(), leaseUntil: undefined, lastError: undefined, updatedAt: new Date().toISOString() }
            : attempts >= this.policy.maxAttempts
              ? { ...leased, state: 'parked', attempts, leaseUntil: undefined, lastError: outcome.error, updatedAt: new Date().toISOString() }
              : { ...leased, attempts, nextAttemptAt: new Date(Date.now() + this.policy.retryBaseSeconds * 1000 * 2 ** (attempts - 1)).toISOString(), leaseUntil: undefined, lastError: outcome.error, updatedAt: new Date().toISOString() };
        await this.deliveries.upsert(next);
        return next.state === 'pending' ? 'retried' : next.state;
    }

    /** Whether an earlier event of the same subject is still pending for this webhook. */
    async #waitsForEarlier(d: Delivery): Promise<boolean> {
        if (!d.event.sequence || d.event.sequence <= 1) return false;
        const earlier = await this.deliveries.query(
            {
                query: 'SELECT * FROM c WHERE c.kind = "delivery" AND c.webhookId = @hook AND c.state = "pending" AND c.event.subject = @subject AND c.event.sequence < @seq',
                parameters: [
                    { name: '@hook', value: d.webhookId },
                    { name: '@subject', value: d.event.subject },
                    { name: '@seq', value: d.event.sequence },
                ],
            },
            { maxItemCount: 1 },
        );
        return earlier.items.length > 0;
    }

    async deliveriesOf(orgId: string, webhookId: string): Promise<Delivery[]> {
        const page = await this.deliveries.query(
            { query: 'SELECT * FROM c WHERE c.kind = "delivery" AND c.orgId = @org AND c.webhookId = @hook ORDER BY c.updatedAt DESC', parameters: [{ name: '@org', value: orgId }, { name: '@hook', value: webhookId }] },
            { maxItemCount: 100 },
        );
        return page.items;
    }

    async #send(d: Delivery): Promise<{ ok: boolean; error?: string }> {
        const hook = await this.hooks.read(d.webhookId, d.orgId);
        if (!hook) return { ok: false, error: 'the webhook was removed' };
        const secret = await this.secrets.get(secretName(d.webhookId));
        if (!secret) return { ok: false, error: 'the webhook has no signing secret' };
        const body = JSON.stringify(d.event);
        // Resolved and checked again before every delivery (the name may point elsewhere now), and sent
        // to the address just checked: nothing resolves the name a second time on the way.
        let target: CheckedTarget;
        try {
            target = await this.#checkUrl(hook.item.url);
        } catch (err) {
            if (err instanceof Invalid) return { ok: false, error: `refused: ${err.message}` };
            throw err;
        }
        try {
            const status = await (this.network.post ?? postToTarget)(target, {
                headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signWebhook(secret.value, body, Math.floor(Date.now() / 1000)), 'Flexchange-Event-Id': d.event.id, 'Flexchange-Delivery-Attempt': String(d.attempts + 1) },
                body,
                timeoutMs: this.policy.timeoutMs,
                ca: this.network.ca,
            });
            return status >= 200 && status < 300 ? { ok: true } : { ok: false, error: `HTTP ${status}` };
        } catch (err) {
            return { ok: false, error: (err as Error).name === 'TimeoutError' || (err as Error).name === 'AbortError' ? 'timed out' : 'unreachable' };
        }
    }

    /**
     * https to a host whose every address is public (plain http, and loopback, only with
     * `allowInsecureLoopback`, for the devhost); the host is resolved through the network's lookup.
     */
    async #checkUrl(raw: string): Promise<CheckedTarget> {
        let u: URL;
        try {
            u = new URL(raw);
        } catch {
            throw new Invalid('The webhook URL is not a URL', [{ path: 'url', message: 'an absolute https URL' }]);
        }
        if (u.username || u.password) throw new Invalid('The webhook URL must not carry credentials', [{ path: 'url', message: 'no user:password@' }]);
        if (u.protocol !== 'https:' && !(u.protocol === 'http:' && this.policy.allowInsecureLoopback)) {
            throw new Invalid('The webhook URL must be https to a public host', [{ path: 'url', message: 'https' }]);
        }
        let target: CheckedTarget;
        try {
            target = await checkPublicTarget(u, { lookup: this.network.lookup, allowLoopback: this.policy.allowInsecureLoopback });
        } catch (err) {
            if (!(err instanceof TargetRefused)) throw err;
            throw new Invalid(`The webhook URL must be a public host: ${err.message}`, [{ path: 'url', message: err.message }]);
        }
        // Plain http only where it never leaves the machine.
        if (u.protocol === 'http:' && !target.loopback) throw new Invalid('The webhook URL must be https to a public host', [{ path: 'url', message: 'https, or http to loopback with FLEXCHANGE_WEBHOOK_ALLOW_INSECURE_LOOPBACK' }]);
        return target;
    }
}
