import type { TokenCredential } from '@azure/core-auth';
import { ServiceBusAdministrationClient, type CorrelationRuleFilter, type RuleProperties } from '@azure/service-bus';
import { z } from 'zod';
import { parseInput } from '../validation';
import { Invalid, isUnreachable, Unavailable, Upstream } from '../errors';
import { memberResourceNames } from '../deployment/resourceNames';

/**
 * Each member receives the events that concern it through its own subscription
 * on the events topic, filtered on the `orgId` application property the
 * publisher sets (serviceBusPublisher.ts).
 */
export interface MemberSubscription {
    topic: string;
    subscription: string;
    /** The one rule: a correlation filter on `orgId`. */
    rule: string;
    orgId: string;
    /** What this call changed: nothing when the subscription was already as it should be. */
    changes: ('created' | 'rule-added' | 'rule-removed')[];
}

/** The port the onboarding workflow provisions members' subscriptions through. Every call is idempotent. */
export interface MemberSubscriptions {
    /** Creates the member's subscription, or repairs its rules, so that it receives exactly that organisation's events. */
    ensure(orgId: string): Promise<MemberSubscription>;
    /** Deletes it; false when there was none. */
    remove(orgId: string): Promise<boolean>;
}

export const memberSubscriptionInput = z.object({ orgId: z.string().min(1).max(41) }).strict();

/** The onboarding step (activity `provisionMemberSubscription`): input checked, then `ensure`. */
export async function provisionMemberSubscription(input: unknown, subscriptions: MemberSubscriptions): Promise<MemberSubscription> {
    return subscriptions.ensure(parseInput(memberSubscriptionInput, input, 'The member subscription input').orgId);
}

export const ORG_RULE = 'org';
const ORG_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,40}$/;

/** The subscription name of an organisation (Service Bus allows 50 characters: letters, digits, '.', '-', '_'). */
export function memberSubscriptionName(orgId: string): string {
    if (!ORG_ID_RE.test(orgId)) throw new Invalid(`The organisation id "${orgId}" cannot name a subscription (1-41 letters, digits, '.', '-', '_')`);
    return memberResourceNames(orgId).serviceBusSubscription;
}

export interface MemberSubscriptionOptions {
    /** Azure's defaults when omitted. */
    maxDeliveryCount?: number;
    /** ISO 8601, e.g. PT1M. */
    lockDuration?: string;
}

/**
 * The Service Bus adapter, over the administration client (ATOM management API):
 * Azure in a deployment, the devhost broker's administration endpoint locally.
 */
export class ServiceBusMemberSubscriptions implements MemberSubscriptions {
    constructor(
        private readonly admin: ServiceBusAdministrationClient,
        private readonly topic: string,
        private readonly options: MemberSubscriptionOptions = {},
    ) {}

    async ensure(orgId: string): Promise<MemberSubscription> {
        const subscription = memberSubscriptionName(orgId);
        const filter: CorrelationRuleFilter = { applicationProperties: { orgId } };
        const changes: MemberSubscription['changes'] = [];
        const result = () => ({ topic: this.topic, subscription, rule: ORG_RULE, orgId, changes });
        return this.#call(async () => {
            if (!(await this.admin.subscriptionExists(this.topic, subscription))) {
                try {
                    await this.admin.createSubscription(this.topic, subscription, {
                        ...this.options,
                        defaultRuleOptions: { name: ORG_RULE, filter },
                    });
                    changes.push('created');
                    return result();
                } catch (err) {
                    // Created by a concurrent run (at-least-once activities): check its rules below.
                    if (!(httpStatus(err) === 409)) throw err;
                }
            }
            // The subscription exists (an earlier run, ARM, or a run that stopped half-way): make its rules exactly ours.
            const rules: RuleProperties[] = [];
            for await (const rule of this.admin.listRules(this.topic, subscription)) rules.push(rule);
            for (const rule of rules) {
                if (rule.name === ORG_RULE && isOrgFilter(rule, orgId)) continue;
                await this.#ignore404(() => this.admin.deleteRule(this.topic, subscription, rule.name));
                changes.push('rule-removed');
            }
            if (!rules.some((r) => r.name === ORG_RULE && isOrgFilter(r, orgId))) {
                try {
                    await this.admin.createRule(this.topic, subscription, ORG_RULE, filter);
                    changes.push('rule-added');
                } catch (err) {
                    if (!(httpStatus(err) === 409)) throw err;
                }
            }
            return result();
        });
    }

    async remove(orgId: string): Promise<boolean> {
        const subscription = memberSubscriptionName(orgId);
        return this.#call(() => this.#ignore404(() => this.admin.deleteSubscription(this.topic, subscription)));
    }

    async #ignore404(fn: () => Promise<unknown>): Promise<boolean> {
        try {
            await fn();
            return true;
        } catch (err) {
            if (httpStatus(err) === 404) return false;
            throw err;
        }
    }

    async #call<T>(fn: () => Promise<T>): Promise<T> {
        try {
            return await fn();
        } catch (err) {
            if (err instanceof Invalid) throw err;
            if (isUnreachable(err) || (httpStatus(err) ?? 500) >= 500) {
                throw new Unavailable('The bus administration endpoint is unreachable', { cause: err });
            }
            throw new Upstream(`The bus refused the subscription change: ${(err as Error).message}`, { cause: err });
        }
    }
}

/** The HTTP status of an administration client error (a RestError), if it got that far. */
function httpStatus(err: unknown): number | undefined {
    const status = (err as { statusCode?: unknown } | undefined)?.statusCode;
    return typeof status === 'number' ? status : undefined;
}

function isOrgFilter(rule: RuleProperties, orgId: string): boolean {
    const f = rule.filter as CorrelationRuleFilter & { sqlExpression?: string };
    if (f.sqlExpression !== undefined) return false;
    const props = f.applicationProperties ?? {};
    const keys = Object.keys(props);
    return keys.length === 1 && props.orgId === orgId && !f.correlationId && !f.subject && !f.to && !f.replyTo && !f.messageId && !f.sessionId && !f.replyToSessionId && !f.contentType;
}

interface RedirectPolicy {
    name: string;
    sendRequest(request: { url: string; allowInsecureConnection?: boolean }, next: (request: unknown) => Promise<unknown>): Promise<unknown>;
}

/**
 * The administration client for the app's bus:
 * - the namespace (`<name>.servicebus.windows.net`; the devhost's `localhost:<port>`) with the
 *   app's managed identity, as Azure and the devhost run the app;
 * - from a connection string with `UseDevelopmentEmulator=true` and an admin URL on loopback
 *   (a local broker's plain-HTTP endpoint, for a process that does not trust the devhost's CA),
 *   the same client with its requests sent there. The SDK always builds https:// URLs; only this
 *   one client is redirected, and only to loopback.
 */
export function serviceBusAdministrationClient(opts: { connectionString?: string; namespace?: string; adminUrl?: string; credential?: TokenCredential }): ServiceBusAdministrationClient {
    if (opts.adminUrl) {
        if (!opts.connectionString || !/UseDevelopmentEmulator=true/i.test(opts.connectionString)) {
            throw new Error('FLEXCHANGE_SERVICEBUS_ADMIN_URL is for the local broker only: it needs a connection string with UseDevelopmentEmulator=true');
        }
        const target = new URL(opts.adminUrl);
        if (target.protocol !== 'http:' || !['127.0.0.1', 'localhost', '[::1]'].includes(target.hostname)) {
            throw new Error('FLEXCHANGE_SERVICEBUS_ADMIN_URL must be an http:// URL on loopback (the devhost broker)');
        }
        const client = new ServiceBusAdministrationClient(opts.connectionString);
        // The client's constructor ignores `additionalPolicies`; its pipeline takes the policy directly.
        (client as unknown as { pipeline: { addPolicy(policy: RedirectPolicy): void } }).pipeline.addPolicy({
            name: 'flexchangeLocalBrokerAdmin',
            sendRequest: (request, next) => {
                const url = new URL(request.url);
                url.protocol = target.protocol;
                url.host = target.host;
                request.url = url.toString();
                request.allowInsecureConnection = true;
                return next(request);
            },
        });
        return client;
    }
    if (opts.namespace) {
        if (!opts.credential) throw new Error('A credential is needed for the Service Bus namespace');
        return new ServiceBusAdministrationClient(opts.namespace, opts.credential);
    }
    if (opts.connectionString) return new ServiceBusAdministrationClient(opts.connectionString);
    throw new Error('No Service Bus is configured (FLEXCHANGE_SERVICEBUS_CONNECTION or FLEXCHANGE_SERVICEBUS_NAMESPACE)');
}
