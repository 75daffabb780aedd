import { DefaultAzureCredential, ManagedIdentityCredential } from '@azure/identity';
import { ServiceBusClient, ServiceBusReceivedMessage, ServiceBusReceiver, ServiceBusSender } from '@azure/service-bus';
import type { RpcTypedData } from './coreTypes';
import type { AppContext, BindingExtension } from './extension';
import type { RegisteredFunction } from './functionRuntime';

const DEFAULT_CONNECTION = 'AzureWebJobsServiceBus';

function toTypedData(body: unknown): RpcTypedData {
    if (Buffer.isBuffer(body) || body instanceof Uint8Array) return { bytes: Buffer.from(body) };
    if (typeof body === 'string') return { string: body };
    return { json: JSON.stringify(body ?? null) };
}

/** What the host puts in a Service Bus trigger's metadata (the library camelCases the names). */
function metadata(m: ServiceBusReceivedMessage): Record<string, RpcTypedData> {
    const out: Record<string, RpcTypedData> = {};
    const set = (k: string, v: unknown) => {
        if (v === undefined || v === null) return;
        out[k] = v instanceof Date ? { string: v.toISOString() } : typeof v === 'object' ? { json: JSON.stringify(v) } : typeof v === 'number' ? { json: String(v) } : { string: String(v) };
    };
    set('MessageId', m.messageId);
    // The JS SDK exposes the AMQP header (0 on the first delivery); the host, on the .NET SDK, counts from 1.
    set('DeliveryCount', (m.deliveryCount ?? 0) + 1);
    set('EnqueuedTimeUtc', m.enqueuedTimeUtc);
    set('ExpiresAtUtc', m.expiresAtUtc);
    set('SequenceNumber', m.sequenceNumber?.toNumber());
    set('ContentType', m.contentType);
    set('CorrelationId', m.correlationId);
    set('Subject', m.subject);
    set('Label', m.subject);
    set('To', m.to);
    set('ReplyTo', m.replyTo);
    set('LockToken', m.lockToken);
    set('ApplicationProperties', m.applicationProperties ?? {});
    set('UserProperties', m.applicationProperties ?? {});
    return out;
}

interface Listener {
    fn: RegisteredFunction;
    entity: string;
    receiver?: ServiceBusReceiver;
    close?: () => Promise<void>;
}

/**
 * Service Bus triggers and outputs, delivered through the real `@azure/service-bus`
 * client (against the devhost's broker locally): a handler that succeeds completes
 * its message; one that fails abandons it, so the broker redelivers it and, after
 * the entity's max delivery count, dead-letters it.
 */
export class ServiceBusExtension implements BindingExtension {
    readonly name = 'serviceBus';
    readonly triggerTypes = ['serviceBusTrigger'];
    readonly outputTypes = ['serviceBus'];

    readonly #app: AppContext;
    readonly #clients = new Map<string, ServiceBusClient>();
    readonly #senders = new Map<string, ServiceBusSender>();
    readonly #listeners: Listener[] = [];

    constructor(app: AppContext) {
        this.#app = app;
    }

    /**
     * The client for a binding's connection, as the Functions host resolves it: the setting itself (or
     * `<name>__connectionString`) is a connection string; `<name>__fullyQualifiedNamespace` is an identity-based
     * connection, with the app's managed identity (`<name>__credential: managedidentity`, `<name>__clientId`) or
     * else DefaultAzureCredential, over TLS as in Azure.
     */
    #client(connectionSetting: string | undefined): ServiceBusClient {
        const name = connectionSetting ? this.#app.resolve(connectionSetting) : DEFAULT_CONNECTION;
        const settings = this.#app.settings;
        const connectionString = settings[name] ?? settings[`${name}__connectionString`];
        const namespace = settings[`${name}__fullyQualifiedNamespace`];
        if (!connectionString && !namespace) throw new Error(`Service Bus connection setting "${name}" is not set (nor ${name}__fullyQualifiedNamespace)`);
        const key = connectionString ?? `namespace:${namespace}`;
        let client = this.#clients.get(key);
        if (!client) {
            if (connectionString) {
                client = new ServiceBusClient(connectionString);
            } else {
                const clientId = settings[`${name}__clientId`];
                const credential = settings[`${name}__credential`]?.toLowerCase() === 'managedidentity' ? new ManagedIdentityCredential(clientId ? { clientId } : undefined) : new DefaultAzureCredential(clientId ? { managedIdentityClientId: clientId } : undefined);
                client = new ServiceBusClient(namespace!, credential);
            }
            this.#clients.set(key, client);
        }
        return client;
    }

    /**
     * Messages one trigger processes at once, as the Functions host takes it: an app setting
     * `AzureFunctionsJobHost__extensions__serviceBus__maxConcurrentCalls`, else host.json
     * `extensions.serviceBus.maxConcurrentCalls`, else the extension's default (16 per core; here 16).
     */
    #maxConcurrentCalls(): number {
        const configured = (this.#app.folder.hostJson.extensions?.serviceBus as { maxConcurrentCalls?: unknown } | undefined)?.maxConcurrentCalls;
        const value = Number(this.#app.settings.AzureFunctionsJobHost__extensions__serviceBus__maxConcurrentCalls ?? configured);
        return Number.isInteger(value) && value > 0 ? value : 16;
    }

    addFunction(fn: RegisteredFunction): void {
        const b = fn.metadata.bindings[fn.triggerName];
        const queue = typeof b.queueName === 'string' ? this.#app.resolve(b.queueName) : undefined;
        const topic = typeof b.topicName === 'string' ? this.#app.resolve(b.topicName) : undefined;
        const subscription = typeof b.subscriptionName === 'string' ? this.#app.resolve(b.subscriptionName) : undefined;
        if (!queue && !(topic && subscription)) throw new Error(`Service Bus trigger "${fn.metadata.name}" needs queueName, or topicName and subscriptionName`);
        this.#listeners.push({ fn, entity: queue ?? `${topic}/Subscriptions/${subscription}` });
    }

    describe(fn: RegisteredFunction): string {
        const l = this.#listeners.find((x) => x.fn === fn);
        return l ? `serviceBus ${l.entity}` : '';
    }

    async start(): Promise<void> {
        for (const l of this.#listeners) {
            const b = l.fn.metadata.bindings[l.fn.triggerName];
            const client = this.#client(b.connection as string | undefined);
            const [entity, , subscription] = l.entity.split('/');
            const receiver = subscription ? client.createReceiver(entity, subscription) : client.createReceiver(entity);
            l.receiver = receiver;
            // Settlements go out one at a time: rhea 3.0.5 folds two settlements of consecutive deliveries
            // made in the same tick into one frame with the first outcome (an abandon could become a complete).
            let settling: Promise<unknown> = Promise.resolve();
            const settle = (op: () => Promise<void>) => (settling = settling.then(op, op));
            const sub = receiver.subscribe(
                {
                    processMessage: async (message) => {
                        if (this.#app.stopping) {
                            await settle(() => receiver.abandonMessage(message));
                            return;
                        }
                        let ok = false;
                        try {
                            await this.#app.invoke(l.fn, { data: toTypedData(message.body), triggerMetadata: metadata(message) });
                            ok = true;
                        } catch {
                            // Logged by the runtime; the broker redelivers, then dead-letters after max deliveries.
                        }
                        await settle(() => (ok ? receiver.completeMessage(message) : receiver.abandonMessage(message).catch(() => undefined)));
                    },
                    processError: async (args) => {
                        this.#app.logger.warn({ function: l.fn.metadata.name, entity: l.entity, err: { message: args.error.message } }, 'service bus receiver error');
                    },
                },
                { autoCompleteMessages: false, maxConcurrentCalls: this.#maxConcurrentCalls() },
            );
            l.close = () => sub.close();
        }
    }

    /**
     * No new messages; invocations under way finish before `dispose`. A receiver still retrying its link
     * (an entity that does not exist yet) would hold its close for the SDK's operation timeout (60 s):
     * each close gets a few seconds, then the client's close in `dispose` cuts the connection under it.
     */
    async stop(): Promise<void> {
        await Promise.all(this.#listeners.map((l) => atMost(CLOSE_GRACE_MS, l.close?.())));
    }

    async dispose(): Promise<void> {
        await Promise.all([...this.#senders.values()].map((s) => atMost(CLOSE_GRACE_MS, s.close())));
        await Promise.all(this.#listeners.map((l) => atMost(CLOSE_GRACE_MS, l.receiver?.close())));
        await Promise.all([...this.#clients.values()].map((c) => atMost(CLOSE_GRACE_MS, c.close())));
    }

    async handleOutput(binding: { name: string; [k: string]: unknown }, value: RpcTypedData): Promise<void> {
        const entity = typeof binding.queueName === 'string' ? binding.queueName : typeof binding.topicName === 'string' ? binding.topicName : undefined;
        if (!entity) throw new Error(`Service Bus output "${binding.name}" needs queueName or topicName`);
        const name = this.#app.resolve(entity);
        const key = `${String(binding.connection ?? DEFAULT_CONNECTION)}|${name}`;
        let sender = this.#senders.get(key);
        if (!sender) {
            sender = this.#client(binding.connection as string | undefined).createSender(name);
            this.#senders.set(key, sender);
        }
        const decoded: unknown = typeof value.json === 'string' ? JSON.parse(value.json) : typeof value.string === 'string' ? value.string : value.bytes ? Buffer.from(value.bytes) : null;
        // An array output sends one message per element, as the host does.
        const bodies = Array.isArray(decoded) ? decoded : [decoded];
        await sender.sendMessages(bodies.map((body) => ({ body })));
    }
}

const CLOSE_GRACE_MS = 3000;

/** Waits for `work` (errors ignored: the connection goes anyway), but no longer than `ms`. */
async function atMost(ms: number, work: Promise<unknown> | undefined): Promise<void> {
    if (!work) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([work.catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
    clearTimeout(timer);
}
