import { parseXML, stringifyXML } from '@azure/core-xml';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { entityPath, rightsOf, SERVICE_BUS_AUDIENCES, type BusAccessPolicy } from './access';
import { EntityError, type LocalServiceBus } from './broker';
import { listenOnLoopback, type LoopbackListener } from '../services/loopbackServer';
import type { QueueConfig, ResolvedQueue, ResolvedSubscription, ResolvedTopic, SubscriptionConfig, TopicConfig } from './entities';
import type { CorrelationFilterConfig, PropertyValue, RuleConfig } from './filters';

/**
 * The administration API of the local Service Bus: Azure's HTTPS/ATOM
 * management API as `ServiceBusAdministrationClient` uses it. Queues and topics
 * (list with paging, get with runtime properties, create, update, delete),
 * subscriptions (the same), rules (list, get, create, update, delete) and the
 * namespace's properties. Entities declared in the entities file are the ones
 * ARM creates in Azure; changes made here are kept by the broker and outlive a
 * restart (`$admin-changes.json`).
 *
 * Two ways in:
 * - https on the broker's own port, which is where the SDK goes from a
 *   connection string or a namespace (`https://<endpoint host:port>`): the
 *   broker ends TLS and hands the HTTP inside over (LocalServiceBus.serveTls,
 *   accept); the certificate is the devhost's local CA's
 *   (devhost/services/devCertificate.ts), so a client trusts
 *   `.flexchange/servicebus/tls/ca.pem` (NODE_EXTRA_CA_CERTS; the devhost's
 *   app workers trust it for their thread);
 * - plain HTTP on its own loopback port, for tools and the app's adapter when
 *   it is given FLEXCHANGE_SERVICEBUS_ADMIN_URL
 *   (shared/events/memberSubscriptions.ts).
 * Requests carry a SharedAccessSignature (from a connection string: every
 * right, the key is not checked, as on AMQP) or, with an access policy, an
 * Entra ID bearer token whose principal needs the Manage right (Data Owner) on
 * the entity or the namespace, as in Azure (401 / 403 otherwise).
 */

const ATOM_NS = 'http://www.w3.org/2005/Atom';
const SB_NS = 'http://schemas.microsoft.com/netservices/2010/10/servicebus/connect';
const XSI_NS = 'http://www.w3.org/2001/XMLSchema-instance';
const XSD_NS = 'http://www.w3.org/2001/XMLSchema';
const MAX_BODY_BYTES = 256 * 1024;
// .NET's TimeSpan.MaxValue: what Azure reports for "never".
const NEVER = 'P10675199DT2H48M5.4775807S';
const NAMESPACE_NAME = 'flexchange-local';
// Azure's default duplicate detection window (reported even when detection is off, as Azure does).
const DEFAULT_DUPLICATE_WINDOW_MS = 10 * 60_000;

type Xml = Record<string, unknown>;

export class ServiceBusAdminServer {
    readonly #bus: LocalServiceBus;
    readonly #log: Logger;
    readonly #created = new Map<string, string>();
    readonly #updated = new Map<string, string>();
    readonly #startedAt = new Date().toISOString();
    #listener?: LoopbackListener;
    #server?: Server;

    readonly #access?: BusAccessPolicy;

    constructor(bus: LocalServiceBus, logger: Logger, access?: BusAccessPolicy) {
        this.#bus = bus;
        this.#log = logger;
        this.#access = access;
    }

    get port(): number {
        if (!this.#server || !this.#listener) throw new Error('The local Service Bus administration endpoint is not running');
        return this.#listener.port;
    }

    /** What the app's FLEXCHANGE_SERVICEBUS_ADMIN_URL is set to. */
    get url(): string {
        return `http://127.0.0.1:${this.port}`;
    }

    /** Starts the plain-HTTP endpoint on `port`; the broker hands over the HTTP it gets over TLS with accept. */
    async start(port: number): Promise<void> {
        const handle = (req: IncomingMessage, res: ServerResponse) => {
            this.#handle(req, res).catch((err: unknown) => {
                this.#log.error({ err }, 'service bus admin: request failed');
                if (!res.headersSent) this.#error(res, 500, 'InternalServerError', 'The local Service Bus could not complete the request');
                else res.destroy();
            });
        };
        const server = createServer(handle);
        this.#listener = await listenOnLoopback(server, port, 'the local Service Bus administration endpoint');
        this.#server = server;
        this.#log.info({ port: this.#listener.port }, 'service bus admin: listening');
    }

    /** HTTP the broker took over TLS on its port, decrypted (see LocalServiceBus.serveTls). */
    accept(stream: Duplex): void {
        if (!this.#server) {
            stream.destroy();
            return;
        }
        this.#server.emit('connection', stream);
    }

    /** A SharedAccessSignature (a connection string), or with an access policy a bearer token with Manage on what `path` names. */
    async #authorize(auth: string, path: string): Promise<{ status: 401 | 403; message: string } | undefined> {
        if (/^SharedAccessSignature\s/i.test(auth)) return undefined;
        const bearer = /^Bearer\s+(\S+)$/i.exec(auth)?.[1];
        const access = this.#access;
        if (!bearer || !access) {
            return { status: 401, message: access ? 'A SharedAccessSignature or a bearer token for https://servicebus.azure.net is required.' : 'A SharedAccessSignature authorization header is required (use a connection string).' };
        }
        const principal = await access.principal(bearer).catch(() => undefined);
        if (!principal) return { status: 401, message: `The bearer token is not the local issuer's, is expired, or is not for ${SERVICE_BUS_AUDIENCES[0]}.` };
        // The entity a path names: `$namespaceinfo` and `$Resources/...` the namespace, `<topic>/Subscriptions/<s>/Rules/<r>` its subscription.
        const entity = path.startsWith('$') ? '' : entityPath(path.replace(/\/Rules(\/.*)?$/i, ''));
        if (rightsOf(access.grants(principal.oid), entity).has('Manage')) return undefined;
        this.#log.warn({ oid: principal.oid, entity }, 'service bus admin: Manage right missing (403)');
        return { status: 403, message: `Unauthorized access. 'Manage' claim(s) are required to perform this operation. Resource: '${entity || 'namespace'}'.` };
    }

    async stop(): Promise<void> {
        if (!this.#server) return;
        this.#server = undefined;
        await this.#listener?.close();
    }

    async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
        const url = new URL(req.url ?? '/', 'http://localhost');
        const path = decodeURIComponent(url.pathname.replace(/^\/+/, '').replace(/\/+$/, ''));
        const refused = await this.#authorize(req.headers.authorization ?? '', path);
        if (refused) return this.#error(res, refused.status, 'UnauthorizedRequestError', refused.message);
        const method = req.method ?? 'GET';
        const skip = Math.max(0, Number(url.searchParams.get('$skip') ?? 0) || 0);
        const top = Math.max(1, Number(url.searchParams.get('$top') ?? 100) || 100);
        try {
            if (path.toLowerCase() === '$namespaceinfo') {
                if (method !== 'GET') return this.#error(res, 405, 'BadRequest', `${method} is not allowed on the namespace`);
                return this.#xml(res, 200, stringifyXML(this.#namespaceEntry(req), { rootName: 'entry' }));
            }
            const resources = /^\$Resources\/(Queues|Topics)$/i.exec(path);
            if (resources) {
                if (method !== 'GET') return this.#error(res, 405, 'BadRequest', `${method} is not allowed on an entity collection`);
                const queues = resources[1].toLowerCase() === 'queues';
                const entries = queues ? this.#bus.queues().map((q) => this.#queueEntry(req, q)) : this.#bus.topics().map((t) => this.#topicEntry(req, t));
                return this.#feed(req, res, `$Resources/${queues ? 'Queues' : 'Topics'}`, queues ? 'Queues' : 'Topics', entries, skip, top);
            }
            const list = /^(.+)\/Subscriptions$/i.exec(path);
            if (list) {
                if (method !== 'GET') return this.#error(res, 405, 'BadRequest', `${method} is not allowed on a subscription collection`);
                const topic = list[1];
                const entries = this.#bus.subscriptions(topic).map((sub) => this.#subscriptionEntry(req, topic, sub));
                return this.#feed(req, res, `${topic}/Subscriptions`, 'Subscriptions', entries, skip, top);
            }
            const m = /^(.+)\/Subscriptions\/([^/]+)(?:\/(Rules)(?:\/([^/]+))?)?$/i.exec(path);
            if (!m) return await this.#entity(req, res, method, path);
            const [, topic, subName, rulesSegment, ruleName] = m;
            if (ruleName !== undefined) return await this.#rule(req, res, method, topic, subName, ruleName);
            if (rulesSegment) {
                if (method !== 'GET') return this.#error(res, 405, 'BadRequest', `${method} is not allowed on a rule collection`);
                const rules = this.#bus.subscription(topic, subName).declared.rules ?? [];
                return this.#feed(req, res, `${topic}/Subscriptions/${subName}/Rules`, 'Rules', rules.map((r) => this.#ruleEntry(req, topic, subName, r)), skip, top);
            }
            return await this.#subscription(req, res, method, topic, subName);
        } catch (err) {
            if (err instanceof EntityError) return this.#error(res, err.status, err.code, err.message);
            throw err;
        }
    }

    /** A queue or a topic: `/<name>` (names may contain '/'). */
    async #entity(req: IncomingMessage, res: ServerResponse, method: string, name: string): Promise<void> {
        const isQueue = this.#bus.queues().some((q) => q.name.toLowerCase() === name.toLowerCase());
        const isTopic = !isQueue && this.#bus.topics().some((t) => t.name.toLowerCase() === name.toLowerCase());
        if (method === 'GET') {
            if (isQueue) return this.#xml(res, 200, stringifyXML(this.#queueEntry(req, this.#bus.queue(name)), { rootName: 'entry' }));
            if (isTopic) return this.#xml(res, 200, stringifyXML(this.#topicEntry(req, this.#bus.topic(name)), { rootName: 'entry' }));
            throw new EntityError(404, 'MessageEntityNotFoundError', `The messaging entity '${name}' does not exist.`);
        }
        if (method === 'DELETE') {
            if (isQueue) this.#bus.deleteQueue(name);
            else if (isTopic) this.#bus.deleteTopic(name);
            else throw new EntityError(404, 'MessageEntityNotFoundError', `The messaging entity '${name}' does not exist.`);
            this.#created.delete(`entity:${name.toLowerCase()}`);
            return this.#xml(res, 200, '');
        }
        if (method !== 'PUT') return this.#error(res, 405, 'BadRequest', `${method} is not allowed on a queue or topic`);
        const update = req.headers['if-match'] !== undefined;
        const { root, description } = await this.#bodyOf(req, ['QueueDescription', 'TopicDescription']);
        const key = `entity:${name.toLowerCase()}`;
        if (root === 'QueueDescription') {
            if (update && !isQueue) throw new EntityError(404, 'MessageEntityNotFoundError', `The queue '${name}' does not exist.`);
            const config = queueConfig(name, description);
            const q = update ? this.#bus.updateQueue(config) : this.#bus.createQueue(config);
            this.#touch(key, update);
            return this.#xml(res, update ? 200 : 201, stringifyXML(this.#queueEntry(req, q), { rootName: 'entry' }));
        }
        if (update && !isTopic) throw new EntityError(404, 'MessageEntityNotFoundError', `The topic '${name}' does not exist.`);
        const config = topicConfig(name, description);
        const t = update ? this.#bus.updateTopic(config) : this.#bus.createTopic(config);
        this.#touch(key, update);
        return this.#xml(res, update ? 200 : 201, stringifyXML(this.#topicEntry(req, t), { rootName: 'entry' }));
    }

    /** Remembers when an entity was created (and last updated), for the times the SDK reports. */
    #touch(key: string, update: boolean): void {
        const now = new Date().toISOString();
        if (!update) this.#created.set(key, now);
        this.#updated.set(key, now);
    }

    #times(key: string): { created: string; updated: string } {
        const created = this.#created.get(key) ?? this.#startedAt;
        return { created, updated: this.#updated.get(key) ?? created };
    }

    #namespaceEntry(req: IncomingMessage): Xml {
        return {
            $: { xmlns: ATOM_NS },
            id: `${this.#origin(req)}/$namespaceinfo?api-version=2021-05`,
            title: { $: { type: 'text' }, _: NAMESPACE_NAME },
            updated: this.#startedAt,
            content: {
                $: { type: 'application/xml' },
                NamespaceInfo: {
                    $: { xmlns: SB_NS, 'xmlns:i': XSI_NS },
                    CreatedTime: this.#startedAt,
                    MessagingSKU: 'Standard',
                    ModifiedTime: this.#startedAt,
                    Name: NAMESPACE_NAME,
                    NamespaceType: 'Messaging',
                },
            },
        };
    }

    #queueEntry(req: IncomingMessage, q: ResolvedQueue): Xml {
        const counts = this.#bus.queueCounts(q.name);
        const { created, updated } = this.#times(`entity:${q.name.toLowerCase()}`);
        const description: Xml = {
            $: { xmlns: SB_NS, 'xmlns:i': XSI_NS },
            LockDuration: duration(q.lockDurationMs),
            MaxSizeInMegabytes: '1024',
            RequiresDuplicateDetection: String(q.duplicateWindowMs !== undefined),
            RequiresSession: String(q.requiresSession),
            DefaultMessageTimeToLive: q.defaultTtlMs === undefined ? NEVER : duration(q.defaultTtlMs),
            DeadLetteringOnMessageExpiration: 'false',
            DuplicateDetectionHistoryTimeWindow: duration(q.duplicateWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS),
            MaxDeliveryCount: String(q.maxDeliveryCount),
            EnableBatchedOperations: 'true',
            SizeInBytes: '0',
            MessageCount: String(counts.active + counts.deadLetter + counts.scheduled),
            IsAnonymousAccessible: 'false',
            AuthorizationRules: '',
            Status: 'Active',
            CreatedAt: created,
            UpdatedAt: updated,
            AccessedAt: new Date().toISOString(),
            SupportOrdering: 'true',
            CountDetails: countDetails(counts.active, counts.deadLetter, counts.scheduled),
            AutoDeleteOnIdle: NEVER,
            EnablePartitioning: 'false',
            EntityAvailabilityStatus: 'Available',
            EnableExpress: 'false',
            MaxMessageSizeInKilobytes: '256',
        };
        return this.#entry(req, q.name, created, updated, 'QueueDescription', description);
    }

    #topicEntry(req: IncomingMessage, t: ResolvedTopic): Xml {
        const counts = this.#bus.topicCounts(t.name);
        const { created, updated } = this.#times(`entity:${t.name.toLowerCase()}`);
        const description: Xml = {
            $: { xmlns: SB_NS, 'xmlns:i': XSI_NS },
            DefaultMessageTimeToLive: t.defaultTtlMs === undefined ? NEVER : duration(t.defaultTtlMs),
            MaxSizeInMegabytes: '1024',
            RequiresDuplicateDetection: String(t.duplicateWindowMs !== undefined),
            DuplicateDetectionHistoryTimeWindow: duration(t.duplicateWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS),
            EnableBatchedOperations: 'true',
            SizeInBytes: '0',
            FilteringMessagesBeforePublishing: 'false',
            IsAnonymousAccessible: 'false',
            AuthorizationRules: '',
            Status: 'Active',
            CreatedAt: created,
            UpdatedAt: updated,
            AccessedAt: new Date().toISOString(),
            SupportOrdering: 'true',
            CountDetails: countDetails(0, 0, counts.scheduled),
            SubscriptionCount: String(counts.subscriptions),
            AutoDeleteOnIdle: NEVER,
            EnablePartitioning: 'false',
            IsExpress: 'false',
            EntityAvailabilityStatus: 'Available',
            EnableSubscriptionPartitioning: 'false',
            EnableExpress: 'false',
            MaxMessageSizeInKilobytes: '256',
        };
        return this.#entry(req, t.name, created, updated, 'TopicDescription', description);
    }

    #entry(req: IncomingMessage, path: string, created: string, updated: string, kind: string, description: Xml): Xml {
        return {
            $: { xmlns: ATOM_NS },
            id: `${this.#origin(req)}/${path}?api-version=2021-05`,
            title: { $: { type: 'text' }, _: path },
            published: created,
            updated,
            author: { name: NAMESPACE_NAME },
            link: { $: { rel: 'self', href: `${this.#origin(req)}/${path}?api-version=2021-05` } },
            content: { $: { type: 'application/xml' }, [kind]: description },
        };
    }

    async #subscription(req: IncomingMessage, res: ServerResponse, method: string, topic: string, name: string): Promise<void> {
        const key = `${topic.toLowerCase()}/${name.toLowerCase()}`;
        if (method === 'GET') return this.#xml(res, 200, stringifyXML(this.#subscriptionEntry(req, topic, this.#bus.subscription(topic, name)), { rootName: 'entry' }));
        if (method === 'DELETE') {
            this.#bus.deleteSubscription(topic, name);
            this.#created.delete(key);
            return this.#xml(res, 200, '');
        }
        if (method !== 'PUT') return this.#error(res, 405, 'BadRequest', `${method} is not allowed on a subscription`);
        const body = await this.#body(req, 'SubscriptionDescription');
        const config = subscriptionConfig(name, body);
        if (req.headers['if-match']) {
            // An update keeps the rules: the SDK sends the subscription's settings only.
            const updated = this.#bus.updateSubscription(topic, config);
            return this.#xml(res, 200, stringifyXML(this.#subscriptionEntry(req, topic, updated), { rootName: 'entry' }));
        }
        const created = this.#bus.createSubscription(topic, config);
        this.#created.set(key, new Date().toISOString());
        return this.#xml(res, 201, stringifyXML(this.#subscriptionEntry(req, topic, created), { rootName: 'entry' }));
    }

    async #rule(req: IncomingMessage, res: ServerResponse, method: string, topic: string, sub: string, name: string): Promise<void> {
        const find = () => (this.#bus.subscription(topic, sub).declared.rules ?? []).find((r) => r.name.toLowerCase() === name.toLowerCase());
        if (method === 'GET') {
            const rule = find();
            if (!rule) throw new EntityError(404, 'MessageEntityNotFoundError', `The rule '${name}' does not exist on subscription '${topic}/${sub}'.`);
            return this.#xml(res, 200, stringifyXML(this.#ruleEntry(req, topic, sub, rule), { rootName: 'entry' }));
        }
        if (method === 'DELETE') {
            this.#bus.deleteRule(topic, sub, name);
            return this.#xml(res, 200, '');
        }
        if (method !== 'PUT') return this.#error(res, 405, 'BadRequest', `${method} is not allowed on a rule`);
        const body = await this.#body(req, 'RuleDescription');
        const rule = ruleConfig(name, body);
        if (req.headers['if-match']) {
            const updated = this.#bus.updateRule(topic, sub, rule);
            return this.#xml(res, 200, stringifyXML(this.#ruleEntry(req, topic, sub, updated), { rootName: 'entry' }));
        }
        this.#bus.createRule(topic, sub, rule);
        return this.#xml(res, 201, stringifyXML(this.#ruleEntry(req, topic, sub, rule), { rootName: 'entry' }));
    }

    async #body(req: IncomingMessage, root: string): Promise<Xml> {
        return (await this.#bodyOf(req, [root])).description;
    }

    /** The description in an Atom entry's content, of one of the kinds given. */
    async #bodyOf(req: IncomingMessage, roots: string[]): Promise<{ root: string; description: Xml }> {
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const chunk of req) {
            size += (chunk as Buffer).length;
            if (size > MAX_BODY_BYTES) throw new EntityError(400, 'BadRequest', 'The request body is too large');
            chunks.push(chunk as Buffer);
        }
        let parsed: Xml;
        try {
            parsed = (await parseXML(Buffer.concat(chunks).toString('utf8'), { includeRoot: true })) as Xml;
        } catch (err) {
            throw new EntityError(400, 'BadRequest', `The request body is not valid XML: ${(err as Error).message}`);
        }
        const content = (parsed.entry as Xml | undefined)?.content as Xml | undefined;
        const root = roots.find((r) => content && typeof content[r] === 'object' && content[r] !== null);
        if (!root) throw new EntityError(400, 'BadRequest', `Expected an Atom entry with a ${roots.join(' or ')} in its content`);
        return { root, description: content![root] as Xml };
    }

    /** A page of entries as an Atom feed; a `next` link when more remain (the SDK pages with $skip / $top). */
    #feed(req: IncomingMessage, res: ServerResponse, path: string, title: string, entries: Xml[], skip: number, top: number): void {
        const page = entries.slice(skip, skip + top);
        const base = `${this.#origin(req)}/${path}`;
        // Two links at least: the SDK reads `link` as a list only.
        const links: Xml[] = [{ $: { rel: 'self', href: `${base}?$skip=${skip}&$top=${top}` } }, { $: { rel: 'first', href: `${base}?$skip=0&$top=${top}` } }];
        if (skip + page.length < entries.length) links.push({ $: { rel: 'next', href: `${base}?$skip=${skip + page.length}&$top=${top}` } });
        const feed: Xml = { $: { xmlns: ATOM_NS }, title: { $: { type: 'text' }, _: title }, id: base, updated: new Date().toISOString(), link: links };
        if (page.length) feed.entry = page;
        this.#xml(res, 200, stringifyXML(feed, { rootName: 'feed' }));
    }

    #origin(req: IncomingMessage): string {
        return `https://${req.headers.host ?? `127.0.0.1:${this.port}`}`;
    }

    #subscriptionEntry(req: IncomingMessage, topic: string, sub: ResolvedSubscription): Xml {
        const counts = this.#bus.counts(topic, sub.name);
        const created = this.#created.get(`${topic.toLowerCase()}/${sub.name.toLowerCase()}`) ?? this.#startedAt;
        const now = new Date().toISOString();
        const description: Xml = {
            $: { xmlns: SB_NS, 'xmlns:i': XSI_NS },
            LockDuration: duration(sub.lockDurationMs),
            RequiresSession: String(sub.requiresSession),
            DefaultMessageTimeToLive: sub.defaultTtlMs === undefined ? NEVER : duration(sub.defaultTtlMs),
            DeadLetteringOnMessageExpiration: 'false',
            DeadLetteringOnFilterEvaluationExceptions: 'false',
            MessageCount: String(counts.active + counts.deadLetter),
            MaxDeliveryCount: String(sub.maxDeliveryCount),
            EnableBatchedOperations: 'true',
            Status: 'Active',
            CreatedAt: created,
            UpdatedAt: created,
            AccessedAt: now,
            CountDetails: countDetails(counts.active, counts.deadLetter, 0),
            AutoDeleteOnIdle: NEVER,
            EntityAvailabilityStatus: 'Available',
        };
        return {
            $: { xmlns: ATOM_NS },
            id: `${this.#origin(req)}/${topic}/Subscriptions/${sub.name}?api-version=2021-05`,
            title: { $: { type: 'text' }, _: sub.name },
            published: created,
            updated: created,
            content: { $: { type: 'application/xml' }, SubscriptionDescription: description },
        };
    }

    #ruleEntry(req: IncomingMessage, topic: string, sub: string, rule: RuleConfig): Xml {
        let filter: Xml;
        if (rule.sql !== undefined) {
            filter = { $: { 'i:type': 'SqlFilter' }, SqlExpression: rule.sql, CompatibilityLevel: '20' };
        } else {
            const c = rule.correlation ?? {};
            filter = { $: { 'i:type': 'CorrelationFilter' } };
            const put = (k: string, v: string | undefined) => {
                if (v !== undefined) filter[k] = v;
            };
            put('CorrelationId', c.correlationId);
            put('MessageId', c.messageId);
            put('To', c.to);
            put('ReplyTo', c.replyTo);
            put('Label', c.subject ?? c.label);
            put('SessionId', c.sessionId);
            put('ReplyToSessionId', c.replyToSessionId);
            put('ContentType', c.contentType);
            const props = Object.entries(c.properties ?? {});
            if (props.length) {
                filter.Properties = {
                    KeyValueOfstringanyType: props.map(([k, v]) => ({ Key: k, Value: { $: { 'i:type': `d6p1:${xsdType(v)}`, 'xmlns:d6p1': XSD_NS }, _: v instanceof Date ? v.toISOString() : String(v) } })),
                };
            }
        }
        const now = this.#startedAt;
        return {
            $: { xmlns: ATOM_NS },
            id: `${this.#origin(req)}/${topic}/Subscriptions/${sub}/Rules/${rule.name}?api-version=2021-05`,
            title: { $: { type: 'text' }, _: rule.name },
            published: now,
            updated: now,
            content: {
                $: { type: 'application/xml' },
                RuleDescription: {
                    $: { xmlns: SB_NS, 'xmlns:i': XSI_NS },
                    Filter: filter,
                    Action: rule.action === undefined ? { $: { 'i:type': 'EmptyRuleAction' } } : { $: { 'i:type': 'SqlRuleAction' }, SqlExpression: rule.action, CompatibilityLevel: '20' },
                    CreatedAt: now,
                    Name: rule.name,
                },
            },
        };
    }

    #xml(res: ServerResponse, status: number, body: string): void {
        res.writeHead(status, { 'content-type': 'application/atom+xml;type=entry;charset=utf-8', 'content-length': Buffer.byteLength(body) });
        res.end(body);
    }

    #error(res: ServerResponse, status: number, code: string, detail: string): void {
        // Azure's error body; the SDK reads Error.Detail and maps the status to its error codes.
        const body = stringifyXML({ Code: String(status), Detail: detail }, { rootName: 'Error' });
        this.#log.debug({ status, code, detail }, 'service bus admin: refused');
        res.writeHead(status, { 'content-type': 'application/xml; charset=utf-8', 'content-length': Buffer.byteLength(body) });
        res.end(body);
    }
}

function countDetails(active: number, deadLetter: number, scheduled: number): Xml {
    return {
        $: { 'xmlns:d2p1': 'http://schemas.microsoft.com/netservices/2011/06/servicebus' },
        'd2p1:ActiveMessageCount': String(active),
        'd2p1:DeadLetterMessageCount': String(deadLetter),
        'd2p1:ScheduledMessageCount': String(scheduled),
        'd2p1:TransferMessageCount': '0',
        'd2p1:TransferDeadLetterMessageCount': '0',
    };
}

/** Refuses settings the local broker cannot honour (their defaults pass: the SDK's update sends every setting back). */
function refuseUnsupported(kind: string, d: Xml): void {
    const unsupported = (field: string, why: string) => {
        throw new EntityError(400, 'BadRequest', `${field} is not supported by the local Service Bus for a ${kind} (${why})`);
    };
    if (text(d.DeadLetteringOnMessageExpiration) === 'true') unsupported('DeadLetteringOnMessageExpiration', 'expired messages are dropped');
    if (text(d.ForwardTo) || text(d.ForwardDeadLetteredMessagesTo)) unsupported('Auto-forwarding', 'no forwarding');
    const idle = text(d.AutoDeleteOnIdle);
    if (idle && idle !== NEVER && seconds(idle, 'AutoDeleteOnIdle') < 10 * 365 * 86400) unsupported('AutoDeleteOnIdle', 'entities are never deleted for idleness');
    const status = text(d.Status);
    if (status && status !== 'Active') unsupported(`Status ${status}`, 'entities are always active');
}

/** The default time to live; anything beyond ten years is "never" for a local broker. */
function ttlOf(d: Xml, config: { defaultMessageTimeToLiveSeconds?: number }): void {
    const ttl = text(d.DefaultMessageTimeToLive);
    if (ttl && ttl !== NEVER) {
        const s = seconds(ttl, 'DefaultMessageTimeToLive');
        if (s < 10 * 365 * 86400) config.defaultMessageTimeToLiveSeconds = s;
    }
}

/** Sessions, lock duration, max delivery count and time to live, as queues and subscriptions share them. */
function lockSettingsOf(d: Xml, config: QueueConfig | SubscriptionConfig): void {
    if (text(d.RequiresSession) === 'true') config.requiresSession = true;
    const lock = text(d.LockDuration);
    if (lock) config.lockDurationSeconds = seconds(lock, 'LockDuration');
    const max = text(d.MaxDeliveryCount);
    if (max) {
        const n = Number(max);
        if (!Number.isInteger(n)) throw new EntityError(400, 'BadRequest', `MaxDeliveryCount must be an integer (got ${max})`);
        config.maxDeliveryCount = n;
    }
    ttlOf(d, config);
}

/** Time to live and duplicate detection, as queues and topics share them. */
function ttlAndDuplicates(d: Xml, config: { defaultMessageTimeToLiveSeconds?: number; duplicateDetectionWindowSeconds?: number }): void {
    ttlOf(d, config);
    if (text(d.RequiresDuplicateDetection) === 'true') {
        const window = text(d.DuplicateDetectionHistoryTimeWindow);
        config.duplicateDetectionWindowSeconds = window ? seconds(window, 'DuplicateDetectionHistoryTimeWindow') : DEFAULT_DUPLICATE_WINDOW_MS / 1000;
    }
}

/** The queue a QueueDescription asks for. */
function queueConfig(name: string, d: Xml): QueueConfig {
    refuseUnsupported('queue', d);
    const config: QueueConfig = { name };
    lockSettingsOf(d, config);
    ttlAndDuplicates(d, config);
    return config;
}

/** The topic a TopicDescription asks for. */
function topicConfig(name: string, d: Xml): Omit<TopicConfig, 'subscriptions'> {
    refuseUnsupported('topic', d);
    const config: Omit<TopicConfig, 'subscriptions'> = { name };
    ttlAndDuplicates(d, config);
    return config;
}

/** The subscription the SDK's SubscriptionDescription asks for, refusing what the local broker cannot honour. */
function subscriptionConfig(name: string, d: Xml): SubscriptionConfig {
    refuseUnsupported('subscription', d);
    const config: SubscriptionConfig = { name };
    lockSettingsOf(d, config);
    const rule = d.DefaultRuleDescription as Xml | undefined;
    if (rule && typeof rule === 'object') config.rules = [ruleConfig(text(rule.Name) || '$Default', rule)];
    return config;
}

/** A rule from a RuleDescription: SQL, correlation, true and false filters, and a SQL action (parameters refused). */
function ruleConfig(name: string, d: Xml): RuleConfig {
    const a = d.Action as Xml | undefined;
    let action: string | undefined;
    if (a && typeof a === 'object' && (typeOf(a) === 'SqlRuleAction' || text(a.SqlExpression))) {
        if (keyValues(a.Parameters).length) throw new EntityError(400, 'BadRequest', 'SQL action parameters are not supported by the local Service Bus');
        action = text(a.SqlExpression);
        if (!action) throw new EntityError(400, 'BadRequest', 'A SqlRuleAction needs a SqlExpression');
    }
    const withAction = (rule: RuleConfig): RuleConfig => (action === undefined ? rule : { ...rule, action });
    const f = d.Filter as Xml | undefined;
    if (!f || typeof f !== 'object') return withAction({ name, sql: '1=1' });
    const kind = typeOf(f);
    if (kind === 'TrueFilter') return withAction({ name, sql: '1=1' });
    if (kind === 'FalseFilter') return withAction({ name, sql: '1=0' });
    if (kind === 'SqlFilter' || text(f.SqlExpression)) {
        if (keyValues(f.Parameters).length) throw new EntityError(400, 'BadRequest', 'SQL filter parameters are not supported by the local Service Bus');
        const sql = text(f.SqlExpression);
        if (!sql) throw new EntityError(400, 'BadRequest', 'A SqlFilter needs a SqlExpression');
        return withAction({ name, sql });
    }
    const correlation: CorrelationFilterConfig = {};
    const put = (key: keyof Omit<CorrelationFilterConfig, 'properties'>, field: string) => {
        const v = text(f[field]);
        if (v !== undefined && v !== '') correlation[key] = v;
    };
    put('correlationId', 'CorrelationId');
    put('messageId', 'MessageId');
    put('to', 'To');
    put('replyTo', 'ReplyTo');
    put('subject', 'Label');
    put('sessionId', 'SessionId');
    put('replyToSessionId', 'ReplyToSessionId');
    put('contentType', 'ContentType');
    const props = keyValues(f.Properties);
    if (props.length) correlation.properties = Object.fromEntries(props);
    return withAction({ name, correlation });
}

/** KeyValueOfstringanyType entries with their xsd types (l28:string, l28:long, l28:double, l28:boolean). */
function keyValues(v: unknown): [string, PropertyValue][] {
    if (!v || typeof v !== 'object') return [];
    const raw = (v as Xml).KeyValueOfstringanyType;
    const list = Array.isArray(raw) ? raw : raw ? [raw] : [];
    return list.map((kv: Xml) => {
        const key = text(kv.Key);
        const value = kv.Value as Xml | string | undefined;
        const literal = typeof value === 'object' && value !== null ? text(value._) ?? '' : (value ?? '');
        const type = typeof value === 'object' && value !== null ? (typeOf(value) ?? 'string') : 'string';
        if (!key) throw new EntityError(400, 'BadRequest', 'A filter property has no key');
        switch (type) {
            case 'string':
                return [key, literal];
            case 'int':
            case 'long':
            case 'double': {
                const n = Number(literal);
                if (!Number.isFinite(n)) throw new EntityError(400, 'BadRequest', `The filter property '${key}' is not a number`);
                return [key, n];
            }
            case 'boolean':
                return [key, literal === 'true'];
            case 'dateTime': {
                const d = new Date(literal);
                if (!Number.isFinite(d.getTime())) throw new EntityError(400, 'BadRequest', `The filter property '${key}' is not a date`);
                return [key, d];
            }
            default:
                throw new EntityError(400, 'BadRequest', `The filter property '${key}' has a type the local Service Bus does not support (${type})`);
        }
    });
}

/** The local name of an element's `*:type` attribute (`p4:type="l28:string"` → `string`). */
function typeOf(x: Xml): string | undefined {
    const attrs = x.$ as Record<string, string> | undefined;
    if (!attrs) return undefined;
    const key = Object.keys(attrs).find((k) => k === 'type' || k.endsWith(':type'));
    if (!key) return undefined;
    const v = String(attrs[key]);
    return v.includes(':') ? v.slice(v.indexOf(':') + 1) : v;
}

function text(v: unknown): string | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    if (typeof v === 'object' && '_' in (v as Xml)) return text((v as Xml)._);
    return undefined;
}

function xsdType(v: PropertyValue): string {
    if (v instanceof Date) return 'dateTime';
    if (typeof v === 'boolean') return 'boolean';
    if (typeof v === 'number') return Number.isInteger(v) && Math.abs(v) < 2 ** 31 ? 'int' : 'double';
    return 'string';
}

/** ISO 8601 durations as the SDK sends them (PT1M, P14D, PT0.5S). */
function seconds(iso: string, field: string): number {
    const m = /^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(iso);
    if (!m || iso === 'P' || iso.endsWith('T')) throw new EntityError(400, 'BadRequest', `${field} must be an ISO 8601 duration such as PT1M (got ${iso})`);
    const [, d, h, min, s] = m.map((x) => (x === undefined ? 0 : Number(x)));
    return (d as number) * 86400 + (h as number) * 3600 + (min as number) * 60 + (s as number);
}

function duration(ms: number): string {
    const total = ms / 1000;
    const d = Math.floor(total / 86400);
    const h = Math.floor((total % 86400) / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = Math.round((total % 60) * 1000) / 1000;
    let out = 'P';
    if (d) out += `${d}D`;
    if (h || m || s || !d) {
        out += 'T';
        if (h) out += `${h}H`;
        if (m) out += `${m}M`;
        if (s || (!h && !m)) out += `${s}S`;
    }
    return out;
}
