import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { appendFileDurable, appendFileDurableAsync, writeFileAtomic, writeFileAtomicAsync } from '../files';
import type { AddressInfo, Server, Socket } from 'node:net';
import { createSecureContext, TLSSocket, type SecureContext } from 'node:tls';
import { Duplex } from 'node:stream';
import path from 'node:path';
import type { Logger } from 'pino';
import { create_container, message as rheaMessageUtil, string_to_uuid, uuid_to_string, type Connection, type Container, type Delivery, type EventContext, type Message, type Receiver, type Sender } from 'rhea';
import { dotnetGuidBytes, encodeMessage, inspectMessage, messageForDelivery, messageIdKey, messagesOfTransfer, replaceApplicationProperties, types, withApplicationProperties, withMessageId, type ArrivingMessage, type Typed } from './codec';
import { resolveEntities, resolveQueue, resolveSubscription, resolveTopicSettings, RULE_NAME_RE, type EntitiesConfig, type QueueConfig, type ResolvedQueue, type ResolvedSubscription, type ResolvedTopic, type SubscriptionConfig, type TopicConfig } from './entities';
import { compileRuleWithAction, normalizeRule, toStorable, type RuleConfig } from './filters';
import { ConnectionClaims, entityPath, managementRight, type BusAccessPolicy, type BusRight } from './access';

export type { EntitiesConfig, QueueConfig, TopicConfig, SubscriptionConfig } from './entities';
export type { RuleConfig, CorrelationFilterConfig } from './filters';

/**
 * A local stand-in for an Azure Service Bus namespace: an AMQP 1.0 broker on
 * `rhea` that the unmodified `@azure/service-bus` v7 client works against with
 * `UseDevelopmentEmulator=true` in its connection string (plain AMQP, no TLS,
 * the port taken from the endpoint). The official emulator needs Docker; see
 * shared/DEVHOST.md ("Service Bus") for what the SDK expects from a broker.
 *
 * What it keeps faithful because application code depends on it:
 * - claims-based security (`$cbs` `put-token`): without an access policy every
 *   token is accepted; with one (see access.ts) a JWT must be the local
 *   issuer's for Service Bus, and every link and `$management` operation needs
 *   the Send / Listen / Manage right its principal's roles give on the entity
 *   (`amqp:unauthorized-access` otherwise); SAS tokens (connection strings)
 *   have every right and their key is not checked;
 * - AMQP over TLS on the same port (what a client built from a namespace and a
 *   credential uses: `amqps`), once serveTls gave the broker a certificate;
 * - queues, topics with subscriptions and rules (correlation filters and a SQL
 *   subset, see filters.ts), and every entity's `$DeadLetterQueue`;
 * - peek-lock with settle-second (complete, abandon, defer, dead-letter, lock
 *   renewal, lock expiry, max delivery count → dead-letter with reason
 *   `MaxDeliveryCountExceeded`) and receive-and-delete;
 * - the `$management` operations the SDK uses for peek, schedule / cancel,
 *   renew-lock, deferred messages (receive-by-sequence-number,
 *   update-disposition);
 * - scheduled messages, time to live, duplicate detection by `messageId`;
 * - link credit, including drain, so many receivers share an entity and each
 *   message goes to exactly one of them;
 * - sessions on queues and subscriptions declared with `requiresSession`:
 *   messages without a session id are refused; `acceptSession` locks the named
 *   session for one receiver (a second gets `session-cannot-be-locked`);
 *   `acceptNextSession` gets the free session with the oldest message, or is
 *   held until one has messages (answered with `com.microsoft:timeout` at the
 *   client's operation timeout, as Azure does); messages go out in order within
 *   a session, locked by the session's lock, which `renew-session-lock`
 *   extends; an expired lock detaches the receiver with `session-lock-lost`;
 *   a closed or lost receiver's unsettled messages come back (delivery count
 *   + 1); session state (`get-` / `set-session-state`, 256 KB) is kept with
 *   the entity; `get-message-sessions` lists sessions with messages or state.
 *
 * Expired messages are dropped, as with Azure's default
 * `deadLetteringOnMessageExpiration: false`; there is no setting to dead-letter
 * them instead. Rule actions are the `SET` / `REMOVE` subset of filters.ts.
 * Not served: transactions and auto-forwarding.
 * Rules change over AMQP too (the rule manager's `add-rule`, `remove-rule`,
 * `enumerate-rules`). Queues, topics, subscriptions and rules are created,
 * updated and deleted at run time through the methods below, which admin.ts
 * serves as the administration client's HTTP/ATOM API (on this broker's port
 * over TLS, see serveTls, and on its own plain-HTTP port); those changes are
 * kept in `$admin-changes.json` and outlive a restart.
 *
 * Persistence: per queue, topic and subscription under `dir`, a state file
 * (replaced atomically: temp + fsync + rename) and a change log appended to
 * (fsync) with what changed since, replaced by a new state file (the next
 * epoch) once it outgrows it; duplicate detection history in a log of its own.
 * A sender's transfer is settled only after its message is on disk; a
 * settlement is answered only after its effect is. Locks do not survive a restart: a message locked when the broker
 * stopped is available again with its delivery count raised by one.
 */

export interface LocalServiceBusOptions {
    /** Folder for the entities' state files. */
    dir: string;
    entities: EntitiesConfig;
    logger: Logger;
    /** Checks tokens and rights (see access.ts); without it every client may do everything. */
    access?: BusAccessPolicy;
}

// Azure's limit for a message on the Standard tier (and the emulator's); the SDK sizes batches by it.
const MAX_MESSAGE_BYTES = 256 * 1024;
const TICK_MS = 100;
const SWEEP_EVERY_TICKS = 10;
const STATE_FORMAT = 1;
const DEAD_LETTER_CONDITION = 'com.microsoft:dead-letter';
const LOCK_LOST = 'com.microsoft:message-lock-lost';
const NOT_FOUND = 'com.microsoft:message-not-found';
const SESSION_LOCK_LOST = 'com.microsoft:session-lock-lost';
const SESSION_CANNOT_BE_LOCKED = 'com.microsoft:session-cannot-be-locked';
const SESSION_FILTER = 'com.microsoft:session-filter';
const MESSAGE_STATE = { active: 0, deferred: 1, scheduled: 2 } as const;
// Azure's limit for a session's state (Standard tier).
const MAX_SESSION_STATE_BYTES = 256 * 1024;
// How long a receiver asking for the next session is held when none is free (Azure answers at the client's operation timeout).
const DEFAULT_ACCEPT_WAIT_MS = 60_000;
// .NET ticks (100 ns since 0001-01-01) at the Unix epoch: how Service Bus writes `com.microsoft:locked-until-utc`.
const EPOCH_TICKS = 621_355_968_000_000_000n;

type MessageState = keyof typeof MESSAGE_STATE;

interface StoredMessage {
    seq: number;
    /** The message as sent (bare message: header, annotations, properties, application properties, body). */
    raw: Buffer;
    enqueuedAt: number;
    /** AMQP's delivery-count: earlier deliveries that failed (abandoned, lock expired). */
    deliveryCount: number;
    state: MessageState;
    scheduledAt?: number;
    expiresAt?: number;
    lockToken?: string;
    lockedUntil?: number;
    /** Its session, in an entity that requires sessions. */
    sessionId?: string;
}

interface PersistedMessage {
    seq: number;
    raw: string;
    enqueuedAt: number;
    deliveryCount: number;
    state: MessageState;
    scheduledAt?: number;
    expiresAt?: number;
    locked?: true;
    session?: string;
}

/**
 * A session of an entity that requires sessions: its messages are delivered in
 * order to the one receiver that holds its lock, which renews it or loses it.
 */
interface MessageSession {
    id: string;
    /** Sequence numbers of its active, unlocked messages, ascending. */
    readonly ready: number[];
    /** Its messages in any state; the session is forgotten when this is 0 and it has no state and no holder. */
    messages: number;
    /** Session state (binary, set by the receiver holding the lock); persisted. */
    state?: Buffer;
    holder?: Consumer;
    lockedUntil?: number;
}

/** One state file; `dirty` = memory has changes the file has not. */
/** What an entity's state file holds: its head (counters, session states) and its messages, by list. */
interface UnitState {
    head: Record<string, unknown>;
    lists: Record<string, Iterable<StoredMessage>>;
}

/** A message as its unit's files hold it now: what may change about it, and its bytes (compared by identity). */
interface WrittenMessage {
    meta: string;
    raw: Buffer;
}

class Unit {
    dirty = false;
    /**
     * The changes since the state file was written (`<entity>.<epoch>.log`), one JSON line per change: the
     * head (`h`), a message put (`p`: list and message) or removed (`r`: list and sequence number). The
     * state file names its epoch; a log of another epoch is stale. A burst's every send and settlement
     * rewrote the whole state file, every message of a backlog with it (a member's subscription: 57 KB a
     * write, 98 MB in a 21 s burst); now a write appends what changed, and the state file is written
     * again (the next epoch) when the log has grown past twice its size.
     */
    epoch = 0;
    logBytes = 0;
    snapshotBytes = 0;
    /** Write the state file at the next write (the log was cut short, or a write failed). */
    compact = false;
    readonly written = new Map<string, WrittenMessage>();
    writtenHead = '';
    /**
     * An entity's duplicate detection history, appended to its own file (`<entity>.duplicates.log`, a
     * `[messageId, seenAt]` line per message) rather than written with the entity's snapshot: the history
     * of a 10-minute window was rewritten whole with every message sent (a busy topic's grew past
     * 60 KB, 115 MB written in a 27 s burst). Rewritten from the live entries when it holds many more lines.
     */
    duplicates?: { file: string; pending: string[]; lines: number; rewrite: boolean };
    constructor(
        readonly file: string,
        readonly state: () => UnitState,
        withDuplicates = false,
    ) {
        if (withDuplicates) this.duplicates = { file: file.replace(/\.json$/, '') + '.duplicates.log', pending: [], lines: 0, rewrite: false };
    }

    logFile(epoch = this.epoch): string {
        return `${this.file.replace(/\.json$/, '')}.${epoch}.log`;
    }

    /** Its change logs on disk, of any epoch (file names in `dir`). */
    logsIn(names: string[]): string[] {
        const stem = path.basename(this.file).replace(/\.json$/, '');
        return names.filter((n) => n.startsWith(`${stem}.`) && /^\d+\.log$/.test(n.slice(stem.length + 1)));
    }
}

/** A unit's write: lines appended to its change log, or its whole state file (then its log of the epoch before is stale). */
interface PlannedWrite {
    unit: Unit;
    file: string;
    data: string;
    whole: boolean;
    staleLog?: string;
}

/** The smallest change log worth replacing with a new state file (bytes). */
const MIN_COMPACTION_BYTES = 256 * 1024;

/** What may change about a stored message after it is stored. */
function metaOf(m: StoredMessage): string {
    return `${m.seq}|${m.enqueuedAt}|${m.deliveryCount}|${m.state}|${m.scheduledAt ?? ''}|${m.expiresAt ?? ''}|${m.lockToken ? 1 : 0}|${m.sessionId ?? ''}`;
}

/** A message's bytes in base64, worked out once per message (a backlog's messages went into every write). */
const base64Of = new WeakMap<Buffer, string>();
function rawBase64(raw: Buffer): string {
    let b64 = base64Of.get(raw);
    if (b64 === undefined) {
        b64 = raw.toString('base64');
        base64Of.set(raw, b64);
    }
    return b64;
}

/** Messages that are locked and settled as a unit: a queue, a subscription, or the dead-letter queue of either. */
class Store {
    readonly messages = new Map<number, StoredMessage>();
    /** Sequence numbers of active, unlocked messages, ascending: the delivery order. */
    readonly ready: number[] = [];
    readonly locks = new Map<string, StoredMessage>();
    /** Scheduled messages of a queue (a topic keeps its own until they are due). */
    readonly scheduled = new Map<number, StoredMessage>();
    readonly consumers: Consumer[] = [];
    /** Sessions by id (entities that require sessions only). */
    readonly sessions = new Map<string, MessageSession>();
    /** Receivers asking for the next free session, held unanswered until one has messages (or their wait ends). */
    readonly waiting: Consumer[] = [];
    nextConsumer = 0;
    pumping = false;
    dlq?: Store;

    constructor(
        /** The address, as shown in logs and errors. */
        readonly path: string,
        readonly unit: Unit,
        /** Changed by an update through the administration API. */
        public maxDeliveryCount: number,
        public lockDurationMs: number,
        readonly requiresSession = false,
    ) {}

    get isDeadLetterQueue(): boolean {
        return this.dlq === undefined;
    }

    /** The session of that id, created on first use. */
    session(id: string): MessageSession {
        let s = this.sessions.get(id);
        if (!s) {
            s = { id, ready: [], messages: 0 };
            this.sessions.set(id, s);
        }
        return s;
    }

    /** Forgets a session nobody holds that has no messages and no state. */
    forgetIfIdle(s: MessageSession): void {
        if (s.messages === 0 && !s.holder && s.state === undefined) this.sessions.delete(s.id);
    }

    add(m: StoredMessage): void {
        this.messages.set(m.seq, m);
        if (this.requiresSession) this.session(m.sessionId!).messages++;
        this.unit.dirty = true;
    }

    markReady(seq: number): void {
        insertSorted(this.ready, seq);
        if (this.requiresSession) insertSorted(this.session(this.messages.get(seq)!.sessionId!).ready, seq);
    }

    unready(seq: number): void {
        removeSorted(this.ready, seq);
        const sessionId = this.requiresSession ? this.messages.get(seq)?.sessionId : undefined;
        if (sessionId !== undefined) {
            const s = this.sessions.get(sessionId);
            if (s) removeSorted(s.ready, seq);
        }
    }

    remove(m: StoredMessage): void {
        if (!this.messages.has(m.seq)) return;
        this.unready(m.seq);
        this.messages.delete(m.seq);
        this.scheduled.delete(m.seq);
        if (m.lockToken) this.locks.delete(m.lockToken);
        if (this.requiresSession) {
            const s = this.sessions.get(m.sessionId!);
            if (s) {
                s.messages--;
                this.forgetIfIdle(s);
            }
        }
        this.unit.dirty = true;
    }
}

function position(list: number[], seq: number): number {
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (list[mid] < seq) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

function insertSorted(list: number[], seq: number): void {
    const i = position(list, seq);
    if (list[i] !== seq) list.splice(i, 0, seq);
}

function removeSorted(list: number[], seq: number): void {
    const i = position(list, seq);
    if (list[i] === seq) list.splice(i, 1);
}

interface QueueEntity {
    kind: 'queue';
    config: ResolvedQueue;
    store: Store;
    nextSeq: number;
    duplicates: Map<string, number>;
    unit: Unit;
}

interface SubscriptionEntity {
    config: ResolvedSubscription;
    store: Store;
}

interface TopicEntity {
    kind: 'topic';
    config: ResolvedTopic;
    nextSeq: number;
    duplicates: Map<string, number>;
    /** Scheduled messages: routed to the subscriptions when due, as Azure does. */
    scheduled: Map<number, StoredMessage>;
    subscriptions: Map<string, SubscriptionEntity>;
    unit: Unit;
}

type SendEntity = QueueEntity | TopicEntity;

/** What an address names. */
type Node =
    | { kind: 'cbs' }
    | { kind: 'send'; entity: SendEntity }
    | { kind: 'receive'; store: Store }
    | { kind: 'management'; store?: Store; entity?: SendEntity; path: string };

interface Consumer {
    link: Sender;
    store: Store;
    receiveAndDelete: boolean;
    /** The link's delivery-count up to which the receiver has given credit. */
    granted: number;
    /** Deliveries handed to the link, in the same count. */
    sent: number;
    /** The session it holds (session receivers). */
    session?: MessageSession;
    /** A receiver held for the next free session: when its wait ends unanswered. */
    waitUntil?: number;
}

/** rhea internals the broker relies on (rhea 3.0.x); its typings leave them out. */
interface LinkInternals {
    credit: number;
    delivery_count: number;
    _draining: boolean;
    _drained: boolean;
    _get_drain(): boolean;
    local: { attach: { snd_settle_mode?: number; rcv_settle_mode?: number; max_message_size?: number; properties?: Record<string, unknown> } };
    session: { outgoing: { available(): number } };
    /** rhea opens a link as soon as its attach arrives; the broker takes that back to hold a receiver waiting for a session. */
    state: { local_open: boolean; open_requests: number };
}
interface DeliveryInternals {
    settled: boolean;
    remote_settled: boolean;
}
interface Outcomes {
    accepted(): { described(): unknown };
    released(): { described(): unknown };
    rejected(fields: { error?: { condition: string; description?: string } }): { described(): unknown };
    modified(fields: { delivery_failed?: boolean; undeliverable_here?: boolean }): { described(): unknown };
}
const outcomes = rheaMessageUtil as unknown as Outcomes;

/** An error answered to the client: an AMQP condition, and for management requests a status code. */
class BrokerError extends Error {
    constructor(
        readonly condition: string,
        message: string,
        readonly status = 500,
    ) {
        super(message);
    }
}

const lower = (s: string) => s.toLowerCase();
const fileName = (...parts: string[]) => `${parts.map((p) => encodeURIComponent(lower(p))).join('~')}.json`;

export class LocalServiceBus {
    readonly #dir: string;
    readonly #log: Logger;
    readonly #queues = new Map<string, QueueEntity>();
    readonly #topics = new Map<string, TopicEntity>();
    readonly #stores: Store[] = [];
    readonly #units: Unit[] = [];
    readonly #consumers = new Map<Sender, Consumer>();
    readonly #receivers = new Map<Receiver, Node>();
    readonly #deliveries = new WeakMap<Delivery, { store: Store; token: string }>();
    readonly #connections = new Set<Connection>();
    readonly #sockets = new Set<Socket>();
    readonly #changesFile: string;
    /** Subscriptions created, changed or deleted at run time (null = deleted), by `topic/subscription` in lower case. */
    readonly #changes: Changes;
    #flushWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
    #flushScheduled = false;
    /** The write on its way to disk (one at a time: what changes meanwhile goes in the next). */
    #flushing?: Promise<void>;
    #container?: Container;
    #server?: Server;
    #timer?: NodeJS.Timeout;
    #ticks = 0;
    #port = 0;
    #tls?: { context: SecureContext; http: (stream: Duplex) => void };
    readonly #access?: BusAccessPolicy;
    readonly #claims = new WeakMap<Connection, ConnectionClaims>();

    constructor(opts: LocalServiceBusOptions) {
        this.#dir = opts.dir;
        this.#log = opts.logger;
        this.#access = opts.access;
        this.#changesFile = path.join(this.#dir, CHANGES_FILE);
        this.#changes = readChanges(this.#changesFile);
        // Checked here so that a bad declaration fails at construction, before anything listens.
        const { queues, topics } = resolveEntities(withChanges(opts.entities, this.#changes, this.#log));
        for (const q of queues) this.#addQueue(q);
        for (const t of topics) this.#addTopic(t);
    }

    #addQueue(q: ResolvedQueue): QueueEntity {
        const unit = new Unit(path.join(this.#dir, fileName('queue', q.name)), () => this.#queueState(entity), true);
        const store = this.#newStore(q.name, unit, q.maxDeliveryCount, q.lockDurationMs, q.requiresSession);
        const entity: QueueEntity = { kind: 'queue', config: q, store, nextSeq: 1, duplicates: new Map(), unit };
        this.#queues.set(lower(q.name), entity);
        this.#units.push(unit);
        return entity;
    }

    #addTopic(t: ResolvedTopic): TopicEntity {
        const unit = new Unit(path.join(this.#dir, fileName('topic', t.name)), () => this.#topicState(entity), true);
        const entity: TopicEntity = { kind: 'topic', config: { ...t, subscriptions: [] }, nextSeq: 1, duplicates: new Map(), scheduled: new Map(), subscriptions: new Map(), unit };
        this.#units.push(unit);
        for (const s of t.subscriptions) this.#addSubscription(entity, s);
        this.#topics.set(lower(t.name), entity);
        return entity;
    }

    /**
     * Serves TLS on the broker's port with this certificate: AMQP over TLS (amqps) is the broker's own, any other
     * protocol in it (the administration API's HTTP, see admin.ts) goes to `http` as the decrypted stream. Without
     * this, a TLS connection is closed.
     */
    serveTls(certificate: { cert: string; key: string }, http: (stream: Duplex) => void): void {
        this.#tls = { context: createSecureContext({ cert: certificate.cert, key: certificate.key, minVersion: 'TLSv1.2' }), http };
    }

    /** The port the broker listens on (after start). */
    get port(): number {
        if (!this.#server) throw new Error('The local Service Bus is not running');
        return this.#port;
    }

    /** A connection string for ServiceBusClient; the key is not checked. */
    get connectionString(): string {
        return `Endpoint=sb://127.0.0.1:${this.port};SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=local-dev-key;UseDevelopmentEmulator=true`;
    }

    async start(port: number): Promise<void> {
        if (this.#server) throw new Error('The local Service Bus is already running');
        // Load first: a corrupt state file must stop the start before anything listens.
        this.#load();
        const container = create_container({
            id: 'flexchange-local-servicebus',
            // Everything is settled by hand, after the state is on disk.
            autoaccept: false,
            autosettle: false,
            // Abandon and defer are both "modified"; they must not be folded into "released".
            treat_modified_as_released: false,
        });
        this.#wire(container);
        const server = container.listen({ port, host: '127.0.0.1' });
        try {
            await new Promise<void>((resolve, reject) => {
                server.once('error', (err: NodeJS.ErrnoException) => reject(new Error(err.code === 'EADDRINUSE' ? `Port ${port} for the local Service Bus is already in use` : err.message)));
                server.once('listening', () => resolve());
            });
        } catch (err) {
            container.removeAllListeners();
            this.#forget();
            throw err;
        }
        // One port, two protocols, as Azure's namespace endpoint: AMQP, and (TLS) the administration API the SDK
        // derives from the connection string (https://<endpoint host:port>). The first byte tells them apart.
        const acceptAmqp = server.listeners('connection') as ((socket: Socket) => void)[];
        server.removeAllListeners('connection');
        server.on('connection', (socket: Socket) => {
            // Request / response on $management is small frames both ways: Nagle plus delayed ACKs would add ~40 ms to each.
            socket.setNoDelay(true);
            this.#sockets.add(socket);
            socket.once('close', () => this.#sockets.delete(socket));
            socket.once('error', () => socket.destroy());
            const amqp = (s: Socket, first: Buffer) => {
                s.pause();
                s.unshift(first);
                for (const accept of acceptAmqp) accept.call(server, s);
                s.resume();
            };
            socket.once('data', (first: Buffer) => {
                if (first[0] !== TLS_HANDSHAKE) return amqp(socket, first);
                const tls = this.#tls;
                if (!tls) return socket.destroy();
                // Inside TLS, the first bytes tell AMQP ('AMQP' protocol header) from HTTP again.
                const secure = new TLSSocket(replayed(socket, first) as unknown as Socket, { isServer: true, secureContext: tls.context });
                secure.once('error', (err) => {
                    this.#log.debug({ err: { message: err.message } }, 'service bus: TLS connection failed');
                    secure.destroy();
                });
                secure.once('data', (plain: Buffer) => {
                    if (plain.subarray(0, 4).toString('latin1') === 'AMQP') return amqp(secure, plain);
                    tls.http(replayed(secure, plain));
                });
            });
        });
        this.#container = container;
        this.#server = server;
        this.#port = (server.address() as AddressInfo).port;
        this.#timer = setInterval(() => this.#tick(), TICK_MS);
        this.#timer.unref();
        this.#log.info({ port: this.#port, queues: this.#queues.size, topics: this.#topics.size, messages: this.#stores.reduce((n, s) => n + s.messages.size, 0) }, 'service bus: listening');
    }

    async stop(): Promise<void> {
        const server = this.#server;
        if (!server) return;
        this.#server = undefined;
        clearInterval(this.#timer);
        for (const c of this.#connections) {
            try {
                c.close({ condition: 'amqp:connection:forced', description: 'The local Service Bus is stopping' });
            } catch {
                // already gone
            }
        }
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        // Give clients a moment to see the close frame, then cut what is left.
        await new Promise((r) => setTimeout(r, 50));
        for (const s of this.#sockets) s.destroy();
        await closed;
        this.#connections.clear();
        this.#consumers.clear();
        this.#receivers.clear();
        for (const store of this.#stores) store.consumers.length = 0;
        await this.#flushing;
        this.#flushNow();
        this.#container?.removeAllListeners();
        this.#container = undefined;
        this.#forget();
        this.#log.info('service bus: stopped');
    }

    /** Drops the messages from memory; a later start reloads them (and releases the locks) from the files. */
    #forget(): void {
        for (const store of this.#stores) {
            store.messages.clear();
            store.ready.length = 0;
            store.locks.clear();
            store.scheduled.clear();
        }
        for (const t of this.#topics.values()) {
            t.scheduled.clear();
            t.duplicates.clear();
        }
        for (const q of this.#queues.values()) q.duplicates.clear();
        for (const unit of this.#units) if (unit.duplicates) unit.duplicates.pending.length = 0;
    }

    // -- administration (subscriptions and rules at run time) ------------------

    /** The queues as they are now (declared, then changed at run time). */
    queues(): ResolvedQueue[] {
        return [...this.#queues.values()].map((q) => q.config);
    }

    queue(name: string): ResolvedQueue {
        return this.#queue(name).config;
    }

    /** Message counts of a queue: active, dead-lettered, scheduled. */
    queueCounts(name: string): { active: number; deadLetter: number; scheduled: number } {
        const q = this.#queue(name);
        let active = 0;
        for (const m of q.store.messages.values()) if (m.state === 'active') active++;
        return { active, deadLetter: q.store.dlq!.messages.size, scheduled: q.store.scheduled.size };
    }

    /** Creates a queue (409 if a queue or topic has the name). */
    createQueue(config: QueueConfig): ResolvedQueue {
        this.#nameFree(config.name);
        const resolved = this.#check(() => resolveQueue(config, `queue "${config.name}"`));
        this.#addQueue(resolved);
        this.#recordEntityChange('queue', resolved.name, config);
        this.#log.info({ queue: resolved.name }, 'service bus: queue created');
        return resolved;
    }

    /** Changes a queue's settings; whether it requires sessions is fixed at creation, as in Azure. Its messages stay. */
    updateQueue(config: QueueConfig): ResolvedQueue {
        const q = this.#queue(config.name);
        const resolved = this.#check(() => resolveQueue({ ...config, name: q.config.name }, `queue "${q.config.name}"`));
        if (resolved.requiresSession !== q.config.requiresSession) throw new EntityError(400, 'BadRequest', `RequiresSession of the queue '${q.config.name}' cannot be changed after it is created.`);
        q.config = resolved;
        q.store.maxDeliveryCount = resolved.maxDeliveryCount;
        q.store.lockDurationMs = q.store.dlq!.lockDurationMs = resolved.lockDurationMs;
        this.#recordEntityChange('queue', resolved.name, { ...config, name: resolved.name });
        this.#log.info({ queue: resolved.name }, 'service bus: queue updated');
        return resolved;
    }

    /** Deletes a queue with its messages; its links are detached. */
    deleteQueue(name: string): void {
        const q = this.#queue(name);
        this.#queues.delete(lower(name));
        this.#dropStore(q.store, `The queue '${q.config.name}' was deleted`);
        this.#detachSenders(q, `The queue '${q.config.name}' was deleted`);
        this.#units.splice(this.#units.indexOf(q.unit), 1);
        this.#removeUnitState(q.unit);
        this.#recordEntityChange('queue', q.config.name, null);
        this.#log.info({ queue: q.config.name }, 'service bus: queue deleted');
    }

    /** The topics as they are now, with their settings (their subscriptions: see subscriptions()). */
    topics(): ResolvedTopic[] {
        return [...this.#topics.values()].map((t) => t.config);
    }

    topic(name: string): ResolvedTopic {
        return this.#topic(name).config;
    }

    topicCounts(name: string): { scheduled: number; subscriptions: number } {
        const t = this.#topic(name);
        return { scheduled: t.scheduled.size, subscriptions: t.subscriptions.size };
    }

    createTopic(config: Omit<TopicConfig, 'subscriptions'>): ResolvedTopic {
        this.#nameFree(config.name);
        const settings = this.#check(() => resolveTopicSettings(config, `topic "${config.name}"`));
        const t = this.#addTopic({ kind: 'topic', ...settings, subscriptions: [] });
        this.#recordEntityChange('topic', settings.name, { ...config, subscriptions: [] });
        this.#log.info({ topic: settings.name }, 'service bus: topic created');
        return t.config;
    }

    updateTopic(config: Omit<TopicConfig, 'subscriptions'>): ResolvedTopic {
        const t = this.#topic(config.name);
        const settings = this.#check(() => resolveTopicSettings({ ...config, name: t.config.name }, `topic "${t.config.name}"`));
        t.config = { ...t.config, ...settings };
        this.#recordEntityChange('topic', settings.name, { ...config, name: settings.name, subscriptions: [] });
        this.#log.info({ topic: settings.name }, 'service bus: topic updated');
        return t.config;
    }

    /** Deletes a topic with its subscriptions and their messages. */
    deleteTopic(name: string): void {
        const t = this.#topic(name);
        for (const sub of [...t.subscriptions.values()]) this.deleteSubscription(t.config.name, sub.config.name);
        this.#topics.delete(lower(name));
        this.#detachSenders(t, `The topic '${t.config.name}' was deleted`);
        this.#units.splice(this.#units.indexOf(t.unit), 1);
        this.#removeUnitState(t.unit);
        this.#recordEntityChange('topic', t.config.name, null);
        this.#log.info({ topic: t.config.name }, 'service bus: topic deleted');
    }

    /** Changes a subscription's settings; its rules and messages stay, and whether it requires sessions is fixed. */
    updateSubscription(topic: string, config: SubscriptionConfig): ResolvedSubscription {
        const t = this.#topic(topic);
        const sub = this.#subscription(topic, config.name);
        const rules = sub.config.declared.rules;
        const resolved = this.#check(() => resolveSubscription(t.config.name, { ...config, name: sub.config.name, rules }, `subscription "${t.config.name}/${sub.config.name}"`));
        if (resolved.requiresSession !== sub.config.requiresSession) throw new EntityError(400, 'BadRequest', `RequiresSession of the subscription '${t.config.name}/${sub.config.name}' cannot be changed after it is created.`);
        sub.config = resolved;
        sub.store.maxDeliveryCount = resolved.maxDeliveryCount;
        sub.store.lockDurationMs = sub.store.dlq!.lockDurationMs = resolved.lockDurationMs;
        this.#recordChange(t, sub.config.name, sub.config.declared);
        this.#log.info({ topic: t.config.name, subscription: sub.config.name }, 'service bus: subscription updated');
        return resolved;
    }

    /** Replaces a rule of that name (404 if there is none). */
    updateRule(topic: string, subscription: string, rule: RuleConfig): RuleConfig {
        const sub = this.#subscription(topic, subscription);
        const rules = sub.config.declared.rules ?? [];
        const i = rules.findIndex((r) => lower(r.name) === lower(rule.name));
        if (i < 0) throw new EntityError(404, 'MessageEntityNotFoundError', `The rule '${rule.name}' does not exist on subscription '${topic}/${sub.config.name}'.`);
        const named = normalizeRule({ ...rule, name: rules[i].name });
        const compiled = this.#check(() => compileRuleWithAction(named));
        this.#changeRules(
            topic,
            sub,
            rules.map((r, k) => (k === i ? named : r)),
            sub.config.filters.map((f) => (lower(f.name) === lower(rule.name) ? { name: named.name, ...compiled } : f)),
        );
        return named;
    }

    #queue(name: string): QueueEntity {
        const q = this.#queues.get(lower(name));
        if (!q) throw new EntityError(404, 'MessageEntityNotFoundError', `The queue '${name}' does not exist.`);
        return q;
    }

    /** Queues and topics share one namespace, case-insensitively. */
    #nameFree(name: string): void {
        if (typeof name === 'string' && (this.#queues.has(lower(name)) || this.#topics.has(lower(name)))) {
            throw new EntityError(409, 'MessageEntityAlreadyExistsError', `The messaging entity '${name}' already exists.`);
        }
    }

    /** Detaches the receivers of a store and its dead-letter queue, and forgets both. */
    #dropStore(store: Store, why: string): void {
        for (const s of [store, store.dlq!]) {
            for (const c of [...s.consumers, ...s.waiting]) {
                this.#dropConsumer(c);
                try {
                    c.link.close({ condition: 'amqp:not-found', description: why });
                } catch {
                    // the connection is already gone
                }
            }
            const i = this.#stores.indexOf(s);
            if (i >= 0) this.#stores.splice(i, 1);
        }
    }

    /** Detaches the links that send to an entity (or ask its $management). */
    #detachSenders(entity: SendEntity, why: string): void {
        for (const [link, node] of [...this.#receivers]) {
            if ((node.kind === 'send' && node.entity === entity) || (node.kind === 'management' && (node.entity === entity || (entity.kind === 'queue' && (node.store === entity.store || node.store === entity.store.dlq))))) {
                this.#receivers.delete(link);
                try {
                    link.close({ condition: 'amqp:not-found', description: why });
                } catch {
                    // the connection is already gone
                }
            }
        }
    }

    /** A topic's subscriptions as they are now (declared, then changed at run time). */
    subscriptions(topic: string): ResolvedSubscription[] {
        return [...this.#topic(topic).subscriptions.values()].map((s) => s.config);
    }

    subscription(topic: string, name: string): ResolvedSubscription {
        return this.#subscription(topic, name).config;
    }

    /** Message counts of a subscription and its dead-letter queue. */
    counts(topic: string, name: string): { active: number; deadLetter: number } {
        const sub = this.#subscription(topic, name);
        let active = 0;
        for (const m of sub.store.messages.values()) if (m.state === 'active') active++;
        return { active, deadLetter: sub.store.dlq!.messages.size };
    }

    /** Creates a subscription (409 if it exists). Messages sent from now on are routed to it. */
    createSubscription(topic: string, config: SubscriptionConfig): ResolvedSubscription {
        const t = this.#topic(topic);
        if (t.subscriptions.has(lower(config.name))) throw new EntityError(409, 'MessageEntityAlreadyExistsError', `The subscription '${config.name}' already exists on topic '${t.config.name}'.`);
        const resolved = this.#check(() => resolveSubscription(t.config.name, config, `subscription "${t.config.name}/${config.name}"`));
        this.#addSubscription(t, resolved);
        this.#recordChange(t, resolved.name, resolved.declared);
        this.#log.info({ topic: t.config.name, subscription: resolved.name, rules: resolved.declared.rules }, 'service bus: subscription created');
        return resolved;
    }

    /** Deletes a subscription with its messages; its receivers are detached. */
    deleteSubscription(topic: string, name: string): void {
        const t = this.#topic(topic);
        const sub = this.#subscription(topic, name);
        t.subscriptions.delete(lower(name));
        this.#dropStore(sub.store, `The subscription '${t.config.name}/${sub.config.name}' was deleted`);
        this.#units.splice(this.#units.indexOf(sub.store.unit), 1);
        this.#removeUnitState(sub.store.unit);
        this.#recordChange(t, sub.config.name, null);
        this.#log.info({ topic: t.config.name, subscription: sub.config.name }, 'service bus: subscription deleted');
    }

    /** Adds a rule to a subscription (409 if one has that name). */
    createRule(topic: string, subscription: string, rule: RuleConfig): RuleConfig {
        const sub = this.#subscription(topic, subscription);
        const rules = sub.config.declared.rules ?? [];
        if (rules.some((r) => lower(r.name) === lower(rule.name))) throw new EntityError(409, 'MessageEntityAlreadyExistsError', `The rule '${rule.name}' already exists on subscription '${topic}/${sub.config.name}'.`);
        if (!RULE_NAME_RE.test(rule.name)) throw new EntityError(400, 'BadRequest', `The rule name '${rule.name}' is not valid (1-50 letters, digits, '.', '-', '_', '$').`);
        const normalized = normalizeRule(rule);
        const compiled = this.#check(() => compileRuleWithAction(normalized));
        this.#changeRules(topic, sub, [...rules, normalized], [...sub.config.filters, { name: rule.name, ...compiled }]);
        return normalized;
    }

    deleteRule(topic: string, subscription: string, ruleName: string): void {
        const sub = this.#subscription(topic, subscription);
        const rules = sub.config.declared.rules ?? [];
        if (!rules.some((r) => lower(r.name) === lower(ruleName))) throw new EntityError(404, 'MessageEntityNotFoundError', `The rule '${ruleName}' does not exist on subscription '${topic}/${sub.config.name}'.`);
        this.#changeRules(
            topic,
            sub,
            rules.filter((r) => lower(r.name) !== lower(ruleName)),
            sub.config.filters.filter((f) => lower(f.name) !== lower(ruleName)),
        );
    }

    #changeRules(topic: string, sub: SubscriptionEntity, rules: RuleConfig[], filters: ResolvedSubscription['filters']): void {
        const t = this.#topic(topic);
        sub.config = { ...sub.config, filters, declared: { ...sub.config.declared, rules } };
        this.#recordChange(t, sub.config.name, sub.config.declared);
        this.#log.info({ topic: t.config.name, subscription: sub.config.name, rules }, 'service bus: subscription rules changed');
    }

    #topic(name: string): TopicEntity {
        const t = this.#topics.get(lower(name));
        if (!t) throw new EntityError(404, 'MessageEntityNotFoundError', `The topic '${name}' does not exist.`);
        return t;
    }

    #subscription(topic: string, name: string): SubscriptionEntity {
        const sub = this.#topic(topic).subscriptions.get(lower(name));
        if (!sub) throw new EntityError(404, 'MessageEntityNotFoundError', `The subscription '${topic}/${name}' does not exist.`);
        return sub;
    }

    #check<T>(fn: () => T): T {
        try {
            return fn();
        } catch (err) {
            throw new EntityError(400, 'BadRequest', (err as Error).message.replace(/^Service Bus entities: /, ''));
        }
    }

    #addSubscription(t: TopicEntity, s: ResolvedSubscription): void {
        const subUnit = new Unit(path.join(this.#dir, fileName('subscription', t.config.name, s.name)), () => this.#storeState(sub.store, { kind: 'subscription', topic: t.config.name, name: s.name }));
        const sub: SubscriptionEntity = { config: s, store: this.#newStore(`${t.config.name}/Subscriptions/${s.name}`, subUnit, s.maxDeliveryCount, s.lockDurationMs, s.requiresSession) };
        t.subscriptions.set(lower(s.name), sub);
        this.#units.push(subUnit);
    }

    /** Records a run-time change on disk before it is answered, so that it outlives a restart. */
    #recordChange(t: TopicEntity, name: string, subscription: SubscriptionConfig | null): void {
        this.#changes.subscriptions.set(`${lower(t.config.name)}/${lower(name)}`, { topic: t.config.name, name, subscription });
        this.#writeChanges();
    }

    #recordEntityChange(kind: 'queue', name: string, config: QueueConfig | null): void;
    #recordEntityChange(kind: 'topic', name: string, config: TopicConfig | null): void;
    #recordEntityChange(kind: 'queue' | 'topic', name: string, config: QueueConfig | TopicConfig | null): void {
        const map = kind === 'queue' ? this.#changes.queues : this.#changes.topics;
        map.set(lower(name), { name, config } as never);
        this.#writeChanges();
    }

    #writeChanges(): void {
        mkdirSync(this.#dir, { recursive: true });
        writeAtomically(
            this.#changesFile,
            JSON.stringify(toStorable({ format: STATE_FORMAT, queues: [...this.#changes.queues.values()], topics: [...this.#changes.topics.values()], subscriptions: [...this.#changes.subscriptions.values()] }), null, 2),
        );
    }

    // -- AMQP plumbing -----------------------------------------------------

    #wire(container: Container): void {
        const on = (event: string, fn: (ctx: EventContext) => void) =>
            container.on(event, (ctx: EventContext) => {
                try {
                    fn(ctx);
                } catch (err) {
                    this.#log.error({ err, event }, 'service bus: event handler failed');
                }
            });
        on('connection_open', (ctx) => {
            this.#connections.add(ctx.connection);
            this.#log.debug({ container: ctx.connection.container_id }, 'service bus: connection open');
        });
        const dropConnection = (ctx: EventContext) => {
            this.#connections.delete(ctx.connection);
            for (const [link, c] of this.#consumers) if (link.connection === ctx.connection) this.#dropConsumer(c);
            for (const link of this.#receivers.keys()) if (link.connection === ctx.connection) this.#receivers.delete(link);
        };
        on('connection_close', dropConnection);
        on('disconnected', dropConnection);
        on('connection_error', (ctx) => this.#log.debug({ err: ctx.connection.error }, 'service bus: connection error'));
        on('session_error', (ctx) => this.#log.debug({ err: ctx.session?.error }, 'service bus: session error'));
        on('sender_open', (ctx) => this.#onSenderOpen(ctx.sender!));
        on('receiver_open', (ctx) => this.#onReceiverOpen(ctx.receiver!));
        on('sender_flow', (ctx) => this.#onCredit(ctx.sender!));
        on('sendable', (ctx) => this.#onCredit(ctx.sender!));
        on('sender_draining', (ctx) => this.#onDrain(ctx.sender!));
        const senderGone = (ctx: EventContext) => {
            const c = this.#consumers.get(ctx.sender!);
            if (c) this.#dropConsumer(c);
        };
        on('sender_close', senderGone);
        on('sender_error', senderGone);
        const receiverGone = (ctx: EventContext) => void this.#receivers.delete(ctx.receiver!);
        on('receiver_close', receiverGone);
        on('receiver_error', receiverGone);
        on('message', (ctx) => this.#onMessage(ctx));
        for (const outcome of ['accepted', 'released', 'rejected', 'modified'] as const) on(outcome, (ctx) => this.#onOutcome(ctx, outcome));
        container.on('error', (err: Error) => this.#log.warn({ err }, 'service bus: AMQP error'));
    }

    /** Resolves an address (`queue`, `topic`, `topic/Subscriptions/sub`, `.../$DeadLetterQueue`, `.../$management`, `$cbs`); case-insensitive. */
    #resolve(address: string | undefined): Node | BrokerError {
        if (!address) return new BrokerError('amqp:not-found', 'The link has no address');
        let a = address.replace(/^(amqps?|sb):\/\/[^/]+\//i, '').replace(/^\/+/, '');
        if (lower(a) === '$cbs') return { kind: 'cbs' };
        let management = false;
        if (/\/\$management$/i.test(a)) {
            management = true;
            a = a.slice(0, -'/$management'.length);
        }
        let deadLetter = false;
        if (/\/\$deadletterqueue$/i.test(a)) {
            deadLetter = true;
            a = a.slice(0, -'/$DeadLetterQueue'.length);
        }
        const notFound = () => new BrokerError('amqp:not-found', `The messaging entity '${address}' could not be found. Declare it in the local Service Bus entities.`);
        let store: Store | undefined;
        let entity: SendEntity | undefined;
        const sub = /^(.+)\/subscriptions\/([^/]+)$/i.exec(a);
        if (sub) {
            store = this.#topics.get(lower(sub[1]))?.subscriptions.get(lower(sub[2]))?.store;
            if (!store) return notFound();
        } else if (this.#queues.has(lower(a))) {
            entity = this.#queues.get(lower(a))!;
            store = entity.store;
        } else if (this.#topics.has(lower(a))) {
            entity = this.#topics.get(lower(a))!;
            if (deadLetter) return notFound();
        } else {
            return notFound();
        }
        if (deadLetter) {
            store = store!.dlq;
            entity = undefined;
        }
        if (management) return { kind: 'management', store, entity, path: address };
        if (sub || deadLetter) return { kind: 'receive', store: store! };
        // A queue is sent to and received from; the link's role decides.
        return { kind: 'send', entity: entity! };
    }

    /** Our sender = the client's receiver (messages out of an entity, or replies to $cbs / $management requests). */
    #onSenderOpen(link: Sender): void {
        const address = link.source?.address;
        const node = this.#resolve(address);
        link.set_source({ address });
        link.set_target({ address: link.target?.address });
        if (node instanceof BrokerError) return link.close({ condition: node.condition, description: node.message });
        if (node.kind === 'cbs' || node.kind === 'management') return;
        const refused = this.#refuse(link.connection, address!, 'Listen');
        if (refused) return link.close({ condition: refused.condition, description: refused.message });
        let store: Store;
        if (node.kind === 'receive') store = node.store;
        else if (node.entity.kind === 'queue') store = node.entity.store;
        else return link.close({ condition: 'amqp:not-allowed', description: `Cannot receive from the topic '${address}'; receive from one of its subscriptions (<topic>/Subscriptions/<name>)` });
        const filter = (link.source as { filter?: Record<string, unknown> } | undefined)?.filter;
        const sessionKey = filter ? Object.keys(filter).find((k) => lower(k) === SESSION_FILTER) : undefined;
        if (store.requiresSession && sessionKey === undefined) {
            return link.close({ condition: 'amqp:not-allowed', description: `It is not possible for an entity that requires sessions to create a non-sessionful message receiver ('${store.path}'). Use acceptSession or acceptNextSession.` });
        }
        if (!store.requiresSession && sessionKey !== undefined) {
            return link.close({ condition: 'amqp:not-allowed', description: `It is not possible for an entity that does not require sessions to create a sessionful message receiver ('${store.path}').` });
        }
        const requested = sessionKey === undefined ? undefined : filter![sessionKey];
        if (requested !== undefined && requested !== null && typeof requested !== 'string') {
            return link.close({ condition: 'amqp:invalid-field', description: 'The session filter must be a session id (a string) or null for the next available session' });
        }
        const internals = link as unknown as LinkInternals;
        // Answer with the settle modes asked for: settled (1) = receive-and-delete, second (1) = peek-lock settled by our reply.
        internals.local.attach.snd_settle_mode = link.snd_settle_mode;
        internals.local.attach.rcv_settle_mode = link.rcv_settle_mode;
        // rhea answers a drain only while it still counts credit; when transfers in flight used it
        // all up, the receiver would wait for the drain forever (the SDK then closes its link).
        internals._get_drain = function (this: LinkInternals) {
            if (!this._draining || !this._drained) return false;
            this.delivery_count += this.credit;
            this.credit = 0;
            return true;
        };
        const consumer: Consumer = { link, store, receiveAndDelete: link.snd_settle_mode === 1, granted: 0, sent: 0 };
        const now = Date.now();
        let session: MessageSession | undefined;
        if (typeof requested === 'string') {
            session = store.session(requested);
            if (this.#held(store, session, now)) {
                return link.close({ condition: SESSION_CANNOT_BE_LOCKED, description: `The requested session '${requested}' cannot be accepted. It may be locked by another receiver.` });
            }
        } else if (sessionKey !== undefined) {
            session = this.#nextFreeSession(store, now);
        }
        this.#consumers.set(link, consumer);
        if (sessionKey !== undefined) {
            if (!session) {
                // No session has messages now: hold the attach unanswered until one has, as Azure does, or until the wait ends.
                internals.state.local_open = false;
                internals.state.open_requests = 0;
                const asked = toNumber((link.properties as Record<string, unknown> | undefined)?.['com.microsoft:timeout']);
                consumer.waitUntil = now + Math.max(500, Math.min(asked ?? DEFAULT_ACCEPT_WAIT_MS, DEFAULT_ACCEPT_WAIT_MS) - 1000);
                store.waiting.push(consumer);
                this.#log.debug({ address }, 'service bus: session receiver waiting for the next session');
                return;
            }
            this.#grant(store, consumer, session, now);
        }
        store.consumers.push(consumer);
        this.#log.debug({ address, mode: consumer.receiveAndDelete ? 'receiveAndDelete' : 'peekLock', session: consumer.session?.id }, 'service bus: receiver attached');
    }

    // -- sessions ----------------------------------------------------------

    /** True if a live receiver holds the session's lock; an expired lock is taken back first. */
    #held(store: Store, session: MessageSession, now: number): boolean {
        if (!session.holder) return false;
        if (session.lockedUntil! > now) return true;
        this.#loseSession(store, session);
        return false;
    }

    /** The free session whose oldest ready message is the oldest (FIFO across sessions). */
    #nextFreeSession(store: Store, now: number): MessageSession | undefined {
        let best: MessageSession | undefined;
        for (const session of store.sessions.values()) {
            if (session.ready.length === 0 || this.#held(store, session, now)) continue;
            if (!best || session.ready[0] < best.ready[0]) best = session;
        }
        return best;
    }

    /** Locks the session for the receiver and says so in the attach it answers with (session id in the filter, lock expiry in .NET ticks). */
    #grant(store: Store, c: Consumer, session: MessageSession, now: number): void {
        session.holder = c;
        session.lockedUntil = now + store.lockDurationMs;
        c.session = session;
        c.waitUntil = undefined;
        c.link.set_source({ address: c.link.source?.address, filter: { [SESSION_FILTER]: session.id } });
        const internals = c.link as unknown as LinkInternals;
        internals.local.attach.properties = { ...internals.local.attach.properties, 'com.microsoft:locked-until-utc': types.wrap_long(dotnetTicks(session.lockedUntil) as unknown as number) };
        this.#log.debug({ entity: store.path, session: session.id }, 'service bus: session accepted');
    }

    /** The receiver holding the session is gone or lost its lock: the session is free and the messages it had locked come back. */
    #releaseSession(store: Store, session: MessageSession): void {
        session.holder = undefined;
        session.lockedUntil = undefined;
        for (const m of [...store.locks.values()]) if (m.sessionId === session.id) this.#abandon(store, m, undefined, true);
        store.forgetIfIdle(session);
        this.#changed(store);
    }

    #loseSession(store: Store, session: MessageSession): void {
        const c = session.holder;
        if (!c) return;
        this.#log.debug({ entity: store.path, session: session.id }, 'service bus: session lock expired');
        this.#dropConsumer(c);
        try {
            c.link.close({ condition: SESSION_LOCK_LOST, description: `The session lock has expired on the session '${session.id}'. Accept the session again.` });
        } catch {
            // the connection is already gone
        }
    }

    /** A receiver held for the next session whose wait ended: answered with no session and a timeout, as Azure does. */
    #endWait(store: Store, c: Consumer): void {
        store.waiting.splice(store.waiting.indexOf(c), 1);
        this.#consumers.delete(c.link);
        try {
            c.link.open();
            c.link.close({ condition: 'com.microsoft:timeout', description: `No session of '${store.path}' had messages to receive within the wait; try again.` });
        } catch {
            // the connection is already gone
        }
    }

    /** The session a management request names, which the asking receiver must hold. */
    #heldSession(store: Store, body: Record<string, unknown>, linkName: unknown, now: number): MessageSession {
        if (!store.requiresSession) throw new BrokerError('amqp:not-allowed', `'${store.path}' does not require sessions`, 400);
        const id = body['session-id'];
        if (typeof id !== 'string') throw new BrokerError('com.microsoft:argument-error', 'The request needs a "session-id"', 400);
        const session = store.sessions.get(id);
        if (!session || !this.#held(store, session, now) || (typeof linkName === 'string' && session.holder!.link.name !== linkName)) {
            throw new BrokerError(SESSION_LOCK_LOST, `The session lock has expired on the session '${id}', or another receiver holds it. Accept the session again.`, 410);
        }
        return session;
    }

    /** Our receiver = the client's sender (messages into an entity, or $cbs / $management requests). */
    #onReceiverOpen(link: Receiver): void {
        const address = link.target?.address;
        const node = this.#resolve(address);
        link.set_target({ address });
        link.set_source({ address: link.source?.address });
        if (node instanceof BrokerError) return link.close({ condition: node.condition, description: node.message });
        if (node.kind === 'receive') return link.close({ condition: 'amqp:not-allowed', description: `Cannot send to '${address}'; send to a queue or a topic` });
        const refused = node.kind === 'send' ? this.#refuse(link.connection, address!, 'Send') : undefined;
        if (refused) return link.close({ condition: refused.condition, description: refused.message });
        (link as unknown as LinkInternals).local.attach.max_message_size = MAX_MESSAGE_BYTES;
        this.#receivers.set(link, node);
    }

    #dropConsumer(c: Consumer): void {
        this.#consumers.delete(c.link);
        const i = c.store.consumers.indexOf(c);
        if (i >= 0) c.store.consumers.splice(i, 1);
        const w = c.store.waiting.indexOf(c);
        if (w >= 0) c.store.waiting.splice(w, 1);
        // A session receiver's messages are locked by its session lock, which ends with it.
        if (c.session?.holder === c) this.#releaseSession(c.store, c.session);
        // Other messages it holds stay locked until their locks expire, as in Azure; they can still be settled through $management.
    }

    #onCredit(link: Sender): void {
        const c = this.#consumers.get(link);
        if (!c) return;
        const internals = link as unknown as LinkInternals;
        c.granted = internals.credit + internals.delivery_count;
        this.#pump(c.store);
    }

    #onDrain(link: Sender): void {
        const c = this.#consumers.get(link);
        if (!c) return;
        this.#onCredit(link);
        // Whatever credit is left is used up by the drain; nothing more goes out until new credit.
        c.sent = Math.max(c.sent, c.granted);
        link.set_drained(true);
    }

    #available(c: Consumer): boolean {
        const internals = c.link as unknown as LinkInternals;
        return c.granted - c.sent > 0 && c.link.is_open() && internals.session.outgoing.available() > 0;
    }

    #pump(store: Store): void {
        if (store.requiresSession) return this.#pumpSessions(store);
        if (store.pumping || store.consumers.length === 0) return;
        store.pumping = true;
        try {
            const now = Date.now();
            while (store.ready.length > 0) {
                let consumer: Consumer | undefined;
                const n = store.consumers.length;
                for (let i = 0; i < n; i++) {
                    const candidate = store.consumers[(store.nextConsumer + i) % n];
                    if (this.#available(candidate)) {
                        consumer = candidate;
                        store.nextConsumer = (store.nextConsumer + i + 1) % n;
                        break;
                    }
                }
                if (!consumer) break;
                this.#offer(store, consumer, store.ready.shift()!, now);
            }
        } finally {
            store.pumping = false;
        }
    }

    /** Sessions: waiting receivers get the free sessions that have messages; each holder gets its session's messages in order. */
    #pumpSessions(store: Store): void {
        if (store.pumping) return;
        store.pumping = true;
        try {
            const now = Date.now();
            while (store.waiting.length > 0) {
                const session = this.#nextFreeSession(store, now);
                if (!session) break;
                const c = store.waiting.shift()!;
                this.#grant(store, c, session, now);
                c.link.open();
                store.consumers.push(c);
            }
            for (const c of store.consumers) {
                const session = c.session!;
                while (session.ready.length > 0 && this.#available(c)) {
                    const seq = session.ready[0];
                    store.unready(seq);
                    this.#offer(store, c, seq, now);
                }
            }
        } finally {
            store.pumping = false;
        }
    }

    /** Delivers a message just taken off the ready list, unless it was settled, locked or expired meanwhile. */
    #offer(store: Store, c: Consumer, seq: number, now: number): void {
        const m = store.messages.get(seq);
        if (!m || m.state !== 'active' || m.lockToken) return;
        if (m.expiresAt !== undefined && m.expiresAt <= now) return this.#expire(store, m);
        this.#deliver(store, c, m, now);
    }

    #deliver(store: Store, c: Consumer, m: StoredMessage, now: number): void {
        const annotations: Record<string, Typed> = {
            'x-opt-sequence-number': types.wrap_long(m.seq),
            'x-opt-enqueued-time': types.wrap_timestamp(m.enqueuedAt),
        };
        let token: string;
        if (c.receiveAndDelete) {
            token = randomUUID();
            store.remove(m);
        } else {
            token = this.#lock(store, m, now, c.session?.lockedUntil);
            annotations['x-opt-locked-until'] = types.wrap_timestamp(m.lockedUntil!);
        }
        const payload = messageForDelivery(m.raw, m.deliveryCount, annotations);
        // Service Bus puts the lock token in the delivery tag, in .NET's GUID byte order.
        const delivery = c.link.send(payload, dotnetGuidBytes(string_to_uuid(token)), 0);
        c.sent++;
        if (c.receiveAndDelete) (delivery as unknown as DeliveryInternals).settled = true;
        else this.#deliveries.set(delivery, { store, token });
        this.#changed();
    }

    /** Locks a message; in a session, until the session's lock ends (`until`). */
    #lock(store: Store, m: StoredMessage, now: number, until = now + store.lockDurationMs): string {
        const token = randomUUID();
        m.lockToken = token;
        m.lockedUntil = until;
        store.locks.set(token, m);
        store.unready(m.seq);
        // Persisted (without waiting) so that a crash still counts this delivery.
        store.unit.dirty = true;
        return token;
    }

    #unlock(store: Store, m: StoredMessage): void {
        if (m.lockToken) store.locks.delete(m.lockToken);
        m.lockToken = undefined;
        m.lockedUntil = undefined;
        store.unit.dirty = true;
    }

    /** Settles our side of a delivery and tells the receiver (settle-second: it waits for this). */
    #settle(delivery: Delivery, state: unknown): void {
        const d = delivery as unknown as DeliveryInternals;
        if (d.settled) return;
        try {
            if (!delivery.link.connection.is_open()) return;
            delivery.update(true, state);
        } catch (err) {
            this.#log.debug({ err }, 'service bus: could not settle a delivery');
        }
        // In settle-second the receiver settles on our reply without telling us; mark it so rhea can free the slot.
        d.remote_settled = true;
    }

    #onOutcome(ctx: EventContext, outcome: 'accepted' | 'released' | 'rejected' | 'modified'): void {
        const delivery = ctx.delivery!;
        const ref = this.#deliveries.get(delivery);
        if (!ref) return this.#settle(delivery, outcomes.accepted().described());
        this.#deliveries.delete(delivery);
        const { store, token } = ref;
        const m = store.locks.get(token);
        if (!m) {
            return this.#settle(delivery, outcomes.rejected({ error: { condition: LOCK_LOST, description: 'The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.' } }).described());
        }
        const state = (delivery.remote_state ?? {}) as Record<string, unknown>;
        let echo: unknown;
        switch (outcome) {
            case 'accepted':
                this.#complete(store, m);
                echo = outcomes.accepted().described();
                break;
            case 'released':
                // Released = never looked at: back without counting a failed delivery.
                this.#abandon(store, m, undefined, false);
                echo = outcomes.released().described();
                break;
            case 'modified': {
                const props = state.message_annotations as Record<string, unknown> | undefined;
                if (state.undeliverable_here === true) this.#defer(store, m, props);
                else this.#abandon(store, m, props, true);
                echo = outcomes.modified({ delivery_failed: state.delivery_failed === true, undeliverable_here: state.undeliverable_here === true }).described();
                break;
            }
            case 'rejected': {
                const error = (state.error ?? {}) as { condition?: string; description?: string; info?: Record<string, unknown> };
                const { DeadLetterReason, DeadLetterErrorDescription, ...props } = error.info ?? {};
                this.#deadLetter(store, m, DeadLetterReason ?? (error.condition !== DEAD_LETTER_CONDITION ? error.condition : undefined), DeadLetterErrorDescription ?? error.description, props);
                // No error in the echo: the SDK fails the settlement when the reply carries one.
                echo = outcomes.rejected({}).described();
                break;
            }
        }
        this.#persist().then(
            () => this.#settle(delivery, echo),
            (err: Error) => this.#settle(delivery, outcomes.rejected({ error: { condition: 'amqp:internal-error', description: `The local Service Bus could not save the settlement: ${err.message}` } }).described()),
        );
    }

    // -- message lifecycle -------------------------------------------------

    #complete(store: Store, m: StoredMessage): void {
        store.remove(m);
    }

    #applyProperties(m: StoredMessage, props: Record<string, unknown> | undefined): void {
        if (props && Object.keys(props).length > 0) m.raw = withApplicationProperties(m.raw, props);
    }

    /** Back to the entity; `failed` counts a delivery attempt (abandon, lock expiry) towards the max delivery count. */
    #abandon(store: Store, m: StoredMessage, props: Record<string, unknown> | undefined, failed: boolean): void {
        this.#unlock(store, m);
        this.#applyProperties(m, props);
        if (failed) m.deliveryCount++;
        if (failed && !store.isDeadLetterQueue && m.deliveryCount >= store.maxDeliveryCount) {
            this.#deadLetter(store, m, 'MaxDeliveryCountExceeded', `Message could not be consumed after ${store.maxDeliveryCount} delivery attempts.`, undefined);
            return;
        }
        // A deferred message stays deferred: it is only ever received by sequence number.
        if (m.state === 'active') {
            store.markReady(m.seq);
            this.#changed(store);
        }
    }

    #defer(store: Store, m: StoredMessage, props: Record<string, unknown> | undefined): void {
        this.#unlock(store, m);
        this.#applyProperties(m, props);
        m.state = 'deferred';
        store.unready(m.seq);
    }

    #deadLetter(store: Store, m: StoredMessage, reason: unknown, description: unknown, props: Record<string, unknown> | undefined): void {
        if (!store.dlq) {
            // Already in a dead-letter queue: Azure has nowhere further to move it, so it only gets the new properties.
            this.#abandon(store, m, { ...props, DeadLetterReason: reason, DeadLetterErrorDescription: description }, false);
            return;
        }
        store.remove(m);
        const dead: StoredMessage = {
            seq: m.seq,
            raw: withApplicationProperties(m.raw, { ...props, DeadLetterReason: reason, DeadLetterErrorDescription: description }),
            enqueuedAt: m.enqueuedAt,
            deliveryCount: m.deliveryCount,
            state: 'active',
        };
        store.dlq.messages.set(dead.seq, dead);
        store.dlq.markReady(dead.seq);
        store.dlq.unit.dirty = true;
        this.#log.debug({ entity: store.path, seq: m.seq, reason }, 'service bus: message dead-lettered');
        this.#changed(store.dlq);
    }

    #expire(store: Store, m: StoredMessage): void {
        store.remove(m);
        this.#log.debug({ entity: store.path, seq: m.seq }, 'service bus: message expired (dropped)');
        this.#changed();
    }

    /** Marks state to be written soon and, given a store, offers its messages to its receivers. */
    #changed(store?: Store): void {
        if (!this.#flushScheduled && this.#units.some((u) => u.dirty)) void this.#persist().catch(() => undefined);
        if (store) queueMicrotask(() => this.#pump(store));
    }

    #ttl(...limits: (number | undefined)[]): number | undefined {
        const given = limits.filter((l): l is number => l !== undefined);
        return given.length ? Math.min(...given) : undefined;
    }

    /** Duplicate detection: true if the id was seen within the entity's window (and records it otherwise). */
    #duplicate(entity: SendEntity, info: ArrivingMessage, now: number): boolean {
        const window = entity.config.duplicateWindowMs;
        const key = messageIdKey(info.routable.messageId);
        if (window === undefined || key === undefined) return false;
        const seen = entity.duplicates.get(key);
        if (seen !== undefined && now - seen < window) return true;
        entity.duplicates.set(key, now);
        entity.unit.duplicates!.pending.push(`${JSON.stringify([key, now])}\n`);
        return false;
    }

    /** Azure refuses a message without a session id for a queue, or a subscription it would reach, that requires sessions. */
    #requireSessionId(entity: SendEntity, info: ArrivingMessage): void {
        if (info.routable.sessionId !== undefined) return;
        const needs =
            entity.kind === 'queue'
                ? entity.store.requiresSession
                : [...entity.subscriptions.values()].some((sub) => sub.store.requiresSession && sub.config.filters.some((rule) => rule.matches(info.routable)));
        if (needs) {
            throw new BrokerError(
                'amqp:not-allowed',
                `The SessionId was not set on a message, and it cannot be sent to the entity '${entity.config.name}'. Entities that have session support enabled can only receive messages that have the SessionId set to a valid value.`,
                400,
            );
        }
    }

    /**
     * Takes one arriving message into an entity: scheduled, or stored in the queue
     * / every matching subscription. Returns the stored messages, which become
     * visible once they are on disk.
     */
    #accept(entity: SendEntity, raw: Buffer, info: ArrivingMessage, seq: number, now: number): [Store, StoredMessage][] {
        const sessionId = info.routable.sessionId;
        if (info.scheduledAt !== undefined && info.scheduledAt > now) {
            const m: StoredMessage = { seq, raw, enqueuedAt: now, deliveryCount: 0, state: 'scheduled', scheduledAt: info.scheduledAt };
            if (entity.kind === 'queue') {
                if (entity.store.requiresSession) m.sessionId = sessionId;
                entity.store.add(m);
                entity.store.scheduled.set(seq, m);
            } else {
                entity.scheduled.set(seq, m);
                entity.unit.dirty = true;
            }
            return [];
        }
        if (entity.kind === 'queue') {
            const ttl = this.#ttl(info.ttlMs, entity.config.defaultTtlMs);
            const m: StoredMessage = { seq, raw, enqueuedAt: now, deliveryCount: 0, state: 'active', expiresAt: ttl === undefined ? undefined : now + ttl };
            if (entity.store.requiresSession) m.sessionId = sessionId;
            entity.store.add(m);
            return [[entity.store, m]];
        }
        const out: [Store, StoredMessage][] = [];
        for (const sub of entity.subscriptions.values()) {
            // Azure: a message goes to a subscription when any of its rules matches (no rules: nothing does); rules
            // without an action give it one copy together, each matching rule with an action a copy of its own, with
            // the action applied and the rule's name in `RuleName`.
            const matched = sub.config.filters.filter((rule) => rule.matches(info.routable));
            if (matched.length === 0) continue;
            if (sub.store.requiresSession && sessionId === undefined) {
                // Checked at send time; a subscription made session-enabled since a message was scheduled drops it, as it cannot be received.
                this.#log.warn({ topic: entity.config.name, subscription: sub.config.name, seq }, 'service bus: a message without a session id was not routed to a subscription that requires sessions');
                continue;
            }
            const copies: Buffer[] = matched.some((rule) => !rule.action) ? [raw] : [];
            for (const rule of matched) if (rule.action) copies.push(replaceApplicationProperties(raw, { ...rule.action(info.routable), RuleName: rule.name }));
            const ttl = this.#ttl(info.ttlMs, entity.config.defaultTtlMs, sub.config.defaultTtlMs);
            copies.forEach((copy, i) => {
                // The first copy has the topic's sequence number; each further copy takes the next one.
                const m: StoredMessage = { seq: i === 0 ? seq : entity.nextSeq++, raw: copy, enqueuedAt: now, deliveryCount: 0, state: 'active', expiresAt: ttl === undefined ? undefined : now + ttl };
                if (sub.store.requiresSession) m.sessionId = sessionId;
                sub.store.add(m);
                out.push([sub.store, m]);
            });
        }
        if (out.length === 0) this.#log.debug({ topic: entity.config.name, seq }, 'service bus: no subscription matched; message dropped');
        return out;
    }

    #reveal(stored: [Store, StoredMessage][]): void {
        const touched = new Set<Store>();
        for (const [store, m] of stored) {
            if (store.messages.get(m.seq) !== m || m.state !== 'active' || m.lockToken) continue;
            store.markReady(m.seq);
            touched.add(store);
        }
        for (const store of touched) this.#pump(store);
    }

    #onMessage(ctx: EventContext): void {
        const link = ctx.receiver!;
        const delivery = ctx.delivery!;
        const node = this.#receivers.get(link);
        if (!node) {
            delivery.reject({ condition: 'amqp:not-found', description: 'The link is not attached to an entity' });
            return;
        }
        if (node.kind === 'cbs') return void this.#onCbs(ctx.connection, ctx.message!, delivery);
        if (node.kind === 'management') return void this.#onManagement(ctx.connection, node, ctx.message!, delivery);
        if (node.kind !== 'send') return;
        const format = (ctx as unknown as { format?: number }).format ?? 0;
        void this.#onSend(node.entity, format === 0 ? encodeMessage(ctx.message) : (ctx.message as unknown as Buffer), format, link, delivery);
    }

    async #onSend(entity: SendEntity, payload: Buffer, format: number, link: Receiver, delivery: Delivery): Promise<void> {
        try {
            if (payload.length > MAX_MESSAGE_BYTES) {
                throw new BrokerError('amqp:link:message-size-exceeded', `The message of ${payload.length} bytes exceeds the limit of ${MAX_MESSAGE_BYTES} bytes`);
            }
            let parsed: { raw: Buffer; info: ArrivingMessage }[];
            try {
                parsed = messagesOfTransfer(payload, format).map((raw) => arriving(raw));
            } catch (err) {
                throw new BrokerError('amqp:decode-error', `The message could not be decoded: ${(err as Error).message}`);
            }
            const now = Date.now();
            const stored: [Store, StoredMessage][] = [];
            for (const { info } of parsed) this.#requireSessionId(entity, info);
            for (const { raw, info } of parsed) {
                if (this.#duplicate(entity, info, now)) {
                    this.#log.debug({ entity: entity.config.name, messageId: info.routable.messageId }, 'service bus: duplicate message dropped');
                    continue;
                }
                const seq = entity.nextSeq++;
                entity.unit.dirty = true;
                stored.push(...this.#accept(entity, raw, info, seq, now));
            }
            await this.#persist();
            this.#reveal(stored);
            if (usable(link)) delivery.accept();
        } catch (err) {
            const e = err instanceof BrokerError ? err : new BrokerError('amqp:internal-error', `The local Service Bus could not store the message: ${(err as Error).message}`);
            if (!(err instanceof BrokerError)) this.#log.error({ err, entity: entity.config.name }, 'service bus: send failed');
            if (usable(link)) delivery.reject({ condition: e.condition, description: e.message });
        }
    }

    // -- request / response ($cbs, $management) ----------------------------

    #reply(connection: Connection, request: Message, applicationProperties: Record<string, unknown>, body?: unknown): void {
        // The reply goes to the link whose target (or, for $cbs, whose name) is the request's reply-to.
        const replyTo = request.reply_to as string | undefined;
        const link = replyTo ? connection.find_sender((l: Sender) => (l.target?.address === replyTo || l.name === replyTo) && l.is_open()) : undefined;
        if (!link) {
            this.#log.warn({ replyTo }, 'service bus: no link to reply on');
            return;
        }
        const d = link.send({ correlation_id: request.message_id, application_properties: applicationProperties, body: body ?? null } as Message);
        // Replies need no acknowledgement; presettled, rhea frees them as soon as they are out.
        (d as unknown as DeliveryInternals).settled = true;
    }

    async #onCbs(connection: Connection, request: Message, delivery: Delivery): Promise<void> {
        delivery.accept();
        const props = (request.application_properties ?? {}) as Record<string, unknown>;
        if (props.operation !== 'put-token') {
            return this.#reply(connection, request, { 'status-code': 400, 'status-description': `Unsupported $cbs operation ${String(props.operation)}` });
        }
        const access = this.#access;
        // Without an access policy every token is accepted: the broker checks nothing.
        if (!access) return this.#reply(connection, request, { 'status-code': 202, 'status-description': 'Accepted' });
        const audience = typeof props.name === 'string' ? props.name : '';
        const token = typeof request.body === 'string' ? request.body : '';
        let claims = this.#claims.get(connection);
        if (!claims) this.#claims.set(connection, (claims = new ConnectionClaims()));
        if (props.type === 'servicebus.windows.net:sastoken') {
            // A connection string's key: the devhost's plumbing. The key is not checked; it has every right.
            const expiry = Number(/[?&]se=(\d+)/.exec(token)?.[1]);
            claims.put(audience, { expiresAt: Number.isFinite(expiry) ? expiry * 1000 : Date.now() + 3_600_000 });
            return this.#reply(connection, request, { 'status-code': 202, 'status-description': 'Accepted' });
        }
        const principal = props.type === 'jwt' && token ? await access.principal(token).catch(() => undefined) : undefined;
        if (!principal) {
            this.#log.warn({ audience, type: props.type }, 'service bus: token refused on $cbs');
            return this.#reply(connection, request, { 'status-code': 401, 'status-description': 'InvalidSignature: The token is not the local issuer\'s, is expired, or is not for https://servicebus.azure.net.' });
        }
        claims.put(audience, { oid: principal.oid, expiresAt: principal.expiresAt });
        this.#reply(connection, request, { 'status-code': 202, 'status-description': 'Accepted' });
    }

    /** With an access policy: the error a client gets for lacking `right` on the entity at `address`, if it does. */
    #refuse(connection: Connection, address: string, right: BusRight): BrokerError | undefined {
        const access = this.#access;
        if (!access) return undefined;
        const path = entityPath(address);
        if (this.#claims.get(connection)?.rights(path, access).has(right)) return undefined;
        this.#log.warn({ entity: path, right, principals: this.#claims.get(connection)?.principals() ?? [] }, 'service bus: access refused');
        return new BrokerError('amqp:unauthorized-access', `Unauthorized access. '${right}' claim(s) are required to perform this operation. Resource: 'sb://127.0.0.1:${this.#port}/${path}'.`, 401);
    }

    async #onManagement(connection: Connection, node: Extract<Node, { kind: 'management' }>, request: Message, delivery: Delivery): Promise<void> {
        delivery.accept();
        const props = (request.application_properties ?? {}) as Record<string, unknown>;
        const operation = String(props.operation ?? '');
        const body = (request.body ?? {}) as Record<string, unknown>;
        try {
            const refused = this.#refuse(connection, node.path, managementRight(operation));
            if (refused) throw refused;
            const { status, body: out } = await this.#management(node, operation, body, props['associated-link-name']);
            this.#reply(connection, request, { statusCode: status, statusDescription: status === 204 ? 'No Content' : 'OK' }, out);
        } catch (err) {
            const e = err instanceof BrokerError ? err : new BrokerError('amqp:internal-error', (err as Error).message);
            if (!(err instanceof BrokerError)) this.#log.error({ err, operation }, 'service bus: management operation failed');
            this.#reply(connection, request, { statusCode: e.status, statusDescription: e.message, errorCondition: e.condition });
        }
    }

    async #management(node: Extract<Node, { kind: 'management' }>, operation: string, body: Record<string, unknown>, linkName: unknown): Promise<{ status: number; body?: unknown }> {
        const needStore = (): Store => {
            if (!node.store) throw new BrokerError('amqp:not-allowed', `${operation} is not available on '${node.path}'; use a queue or a subscription`, 400);
            return node.store;
        };
        const needEntity = (): SendEntity => {
            if (!node.entity) throw new BrokerError('amqp:not-allowed', `${operation} is only available on a queue or a topic, not on '${node.path}'`, 400);
            return node.entity;
        };
        const now = Date.now();
        switch (operation) {
            case 'com.microsoft:peek-message': {
                const store = needStore();
                const from = toNumber(body['from-sequence-number']) ?? 1;
                const count = Math.max(1, toNumber(body['message-count']) ?? 1);
                const sessionId = typeof body['session-id'] === 'string' ? body['session-id'] : undefined;
                const found = [...store.messages.values()]
                    .filter((m) => m.seq >= from && (sessionId === undefined || m.sessionId === sessionId))
                    .sort((a, b) => a.seq - b.seq)
                    .slice(0, count);
                if (found.length === 0) return { status: 204 };
                return { status: 200, body: { messages: found.map((m) => ({ message: this.#encode(m) })) } };
            }
            case 'com.microsoft:schedule-message': {
                const entity = needEntity();
                const items = asArray(body.messages);
                const seqs: number[] = [];
                const stored: [Store, StoredMessage][] = [];
                for (const item of items) {
                    const raw = (item as Record<string, unknown> | undefined)?.message;
                    if (!Buffer.isBuffer(raw)) throw new BrokerError('com.microsoft:argument-error', 'Each scheduled message needs an encoded "message"', 400);
                    let message: { raw: Buffer; info: ArrivingMessage };
                    try {
                        message = arriving(raw);
                    } catch (err) {
                        throw new BrokerError('com.microsoft:argument-error', `A scheduled message could not be decoded: ${(err as Error).message}`, 400);
                    }
                    this.#requireSessionId(entity, message.info);
                    const seq = entity.nextSeq++;
                    entity.unit.dirty = true;
                    seqs.push(seq);
                    if (this.#duplicate(entity, message.info, now)) continue;
                    stored.push(...this.#accept(entity, message.raw, { ...message.info, scheduledAt: message.info.scheduledAt ?? now }, seq, now));
                }
                await this.#persist();
                this.#reveal(stored);
                return { status: 200, body: { 'sequence-numbers': types.wrap_array(seqs, 0x81, undefined) } };
            }
            case 'com.microsoft:cancel-scheduled-message': {
                const entity = needEntity();
                // Unknown or already enqueued sequence numbers are ignored, so that a cancel racing the schedule is harmless.
                for (const seq of asArray(body['sequence-numbers']).map(toNumber)) {
                    if (seq === undefined) continue;
                    if (entity.kind === 'queue') {
                        const m = entity.store.scheduled.get(seq);
                        if (m) entity.store.remove(m);
                    } else if (entity.scheduled.delete(seq)) {
                        entity.unit.dirty = true;
                    }
                }
                await this.#persist();
                return { status: 200 };
            }
            case 'com.microsoft:renew-lock': {
                const store = needStore();
                const expirations = lockTokens(body).map((token) => {
                    const m = store.locks.get(token);
                    if (!m) throw lockLost();
                    m.lockedUntil = now + store.lockDurationMs;
                    return m.lockedUntil;
                });
                return { status: 200, body: { expirations: types.wrap_array(expirations, 0x83, undefined) } };
            }
            case 'com.microsoft:receive-by-sequence-number': {
                const store = needStore();
                // A session receiver's deferred messages are locked by its session lock.
                const session = store.requiresSession ? this.#heldSession(store, body, linkName, now) : undefined;
                const receiveAndDelete = toNumber(body['receiver-settle-mode']) === 0;
                const wanted = asArray(body['sequence-numbers']).map(toNumber);
                const found = wanted.map((seq) => {
                    const m = seq === undefined ? undefined : store.messages.get(seq);
                    if (!m || m.state !== 'deferred' || m.lockToken || (session && m.sessionId !== session.id)) {
                        throw new BrokerError(NOT_FOUND, `Failed to lock one or more specified messages. The message with sequence number ${String(seq)} is not deferred, is locked, or does not exist.`, 404);
                    }
                    return m;
                });
                const messages = found.map((m) => {
                    if (receiveAndDelete) {
                        store.remove(m);
                        return { message: this.#encode(m) };
                    }
                    const token = this.#lock(store, m, now, session?.lockedUntil);
                    return { 'lock-token': types.wrap_uuid(string_to_uuid(token)), message: this.#encode(m) };
                });
                await this.#persist();
                return { status: 200, body: { messages } };
            }
            case 'com.microsoft:update-disposition': {
                const store = needStore();
                const status = String(body['disposition-status'] ?? '');
                const props = isRecord(body['properties-to-modify']) ? body['properties-to-modify'] : undefined;
                const held = lockTokens(body).map((token) => {
                    const m = store.locks.get(token);
                    if (!m) throw lockLost();
                    return m;
                });
                for (const m of held) {
                    if (status === 'completed') this.#complete(store, m);
                    else if (status === 'abandoned') this.#abandon(store, m, props, true);
                    else if (status === 'defered' || status === 'deferred') this.#defer(store, m, props);
                    else if (status === 'suspended') this.#deadLetter(store, m, body['deadletter-reason'], body['deadletter-description'], props);
                    else throw new BrokerError('com.microsoft:argument-error', `Unknown disposition-status "${status}"`, 400);
                }
                await this.#persist();
                return { status: 200 };
            }
            case 'com.microsoft:add-rule':
            case 'com.microsoft:remove-rule':
            case 'com.microsoft:enumerate-rules':
                return this.#ruleOperation(node.path, operation, body);
            case 'com.microsoft:renew-session-lock': {
                const store = needStore();
                const session = this.#heldSession(store, body, linkName, now);
                session.lockedUntil = now + store.lockDurationMs;
                for (const m of store.locks.values()) if (m.sessionId === session.id) m.lockedUntil = session.lockedUntil;
                return { status: 200, body: { expiration: types.wrap_timestamp(session.lockedUntil) } };
            }
            case 'com.microsoft:set-session-state': {
                const store = needStore();
                const session = this.#heldSession(store, body, linkName, now);
                const state = body['session-state'];
                if (state === null || state === undefined) session.state = undefined;
                else if (!Buffer.isBuffer(state)) throw new BrokerError('com.microsoft:argument-error', 'The session state must be binary', 400);
                else if (state.length > MAX_SESSION_STATE_BYTES) throw new BrokerError('amqp:link:message-size-exceeded', `The session state of ${state.length} bytes exceeds the limit of ${MAX_SESSION_STATE_BYTES} bytes`, 400);
                else session.state = Buffer.from(state);
                store.unit.dirty = true;
                await this.#persist();
                return { status: 200 };
            }
            case 'com.microsoft:get-session-state': {
                const store = needStore();
                const session = this.#heldSession(store, body, linkName, now);
                return { status: 200, body: { 'session-state': session.state ?? null } };
            }
            case 'com.microsoft:get-message-sessions': {
                const store = needStore();
                if (!store.requiresSession) throw new BrokerError('amqp:not-allowed', `'${store.path}' does not require sessions`, 400);
                const skip = Math.max(0, toNumber(body.skip) ?? 0);
                const top = Math.max(0, toNumber(body.top) ?? Number.MAX_SAFE_INTEGER);
                // Sessions with messages or state; the broker does not keep when each was last updated, so all of them count.
                const ids = [...store.sessions.values()].filter((x) => x.messages > 0 || x.state !== undefined).map((x) => x.id);
                const page = ids.slice(skip, skip + top);
                if (page.length === 0) return { status: 204 };
                return { status: 200, body: { skip: types.wrap_int(skip + page.length), 'sessions-ids': page } };
            }
            default:
                throw new BrokerError('amqp:not-implemented', `The management operation "${operation}" is not supported by the local Service Bus`, 501);
        }
    }

    /** The rule manager's operations on a subscription's `$management` (the same rules the administration API changes). */
    #ruleOperation(address: string, operation: string, body: Record<string, unknown>): { status: number; body?: unknown } {
        const m = /^(?:(?:amqps?|sb):\/\/[^/]+\/)?\/*(.+)\/subscriptions\/([^/]+)\/\$management$/i.exec(address);
        if (!m) throw new BrokerError('amqp:not-allowed', `${operation} is only available on a subscription, not on '${address}'`, 400);
        const [, topic, subscription] = m;
        try {
            if (operation === 'com.microsoft:enumerate-rules') {
                const rules = this.subscription(topic, subscription).declared.rules ?? [];
                const skip = Math.max(0, toNumber(body.skip) ?? 0);
                const top = Math.max(0, toNumber(body.top) ?? rules.length);
                const page = rules.slice(skip, skip + top);
                if (page.length === 0) return { status: 204 };
                return { status: 200, body: { rules: page.map((r) => ({ 'rule-description': amqpRuleDescription(r) })) } };
            }
            const name = body['rule-name'];
            if (typeof name !== 'string' || !name) throw new BrokerError('com.microsoft:argument-error', 'The request needs a "rule-name"', 400);
            if (operation === 'com.microsoft:remove-rule') {
                this.deleteRule(topic, subscription, name);
                return { status: 200 };
            }
            this.createRule(topic, subscription, ruleOfAmqp(name, body['rule-description']));
            return { status: 200 };
        } catch (err) {
            if (!(err instanceof EntityError)) throw err;
            const condition = err.status === 404 ? 'amqp:not-found' : err.status === 409 ? 'com.microsoft:entity-already-exists' : 'com.microsoft:argument-error';
            throw new BrokerError(condition, err.message, err.status);
        }
    }

    /** A stored message as peek and receive-by-sequence-number return it (with its state and lock). */
    #encode(m: StoredMessage): Buffer {
        const annotations: Record<string, Typed> = {
            'x-opt-sequence-number': types.wrap_long(m.seq),
            'x-opt-enqueued-time': types.wrap_timestamp(m.enqueuedAt),
            'x-opt-message-state': types.wrap_int(MESSAGE_STATE[m.state]),
        };
        if (m.lockedUntil !== undefined) annotations['x-opt-locked-until'] = types.wrap_timestamp(m.lockedUntil);
        if (m.scheduledAt !== undefined) annotations['x-opt-scheduled-enqueue-time'] = types.wrap_timestamp(m.scheduledAt);
        return messageForDelivery(m.raw, m.deliveryCount, annotations);
    }

    // -- time --------------------------------------------------------------

    #tick(): void {
        const now = Date.now();
        const sweep = ++this.#ticks % SWEEP_EVERY_TICKS === 0;
        for (const store of this.#stores) {
            if (store.requiresSession) {
                for (const session of [...store.sessions.values()]) if (session.holder && session.lockedUntil! <= now) this.#loseSession(store, session);
                for (const c of [...store.waiting]) if (c.waitUntil! <= now) this.#endWait(store, c);
            }
            for (const m of store.locks.values()) {
                if (m.lockedUntil! > now) continue;
                this.#log.debug({ entity: store.path, seq: m.seq }, 'service bus: lock expired');
                this.#abandon(store, m, undefined, true);
            }
            for (const m of store.scheduled.values()) {
                if (m.scheduledAt! > now) continue;
                store.scheduled.delete(m.seq);
                const ttl = this.#ttl(inspectMessage(m.raw).ttlMs, this.#queueOf(store)?.config.defaultTtlMs);
                m.state = 'active';
                m.enqueuedAt = now;
                m.expiresAt = ttl === undefined ? undefined : now + ttl;
                store.markReady(m.seq);
                store.unit.dirty = true;
            }
            if (sweep && !store.isDeadLetterQueue) {
                for (const seq of [...store.ready]) {
                    const m = store.messages.get(seq);
                    if (m?.expiresAt !== undefined && m.expiresAt <= now) this.#expire(store, m);
                }
            }
        }
        for (const topic of this.#topics.values()) {
            const due = [...topic.scheduled.values()].filter((m) => m.scheduledAt! <= now).sort((a, b) => a.seq - b.seq);
            for (const m of due) {
                topic.scheduled.delete(m.seq);
                topic.unit.dirty = true;
                this.#reveal(this.#accept(topic, m.raw, { ...inspectMessage(m.raw), scheduledAt: undefined }, m.seq, now));
            }
        }
        if (sweep) {
            for (const e of [...this.#queues.values(), ...this.#topics.values()]) {
                const window = e.config.duplicateWindowMs;
                if (window === undefined) continue;
                for (const [key, seen] of e.duplicates) if (now - seen >= window) e.duplicates.delete(key);
                const log = e.unit.duplicates!;
                if (log.lines + log.pending.length > 2 * e.duplicates.size + 1024) log.rewrite = true;
            }
        }
        for (const store of this.#stores) this.#pump(store);
        this.#changed();
    }

    #queueOf(store: Store): QueueEntity | undefined {
        for (const q of this.#queues.values()) if (q.store === store) return q;
        return undefined;
    }

    // -- persistence -------------------------------------------------------

    #newStore(name: string, unit: Unit, maxDeliveryCount: number, lockDurationMs: number, requiresSession: boolean): Store {
        const store = new Store(name, unit, maxDeliveryCount, lockDurationMs, requiresSession);
        // A dead-letter queue never requires sessions, as in Azure.
        store.dlq = new Store(`${name}/$DeadLetterQueue`, unit, Number.POSITIVE_INFINITY, lockDurationMs);
        this.#stores.push(store, store.dlq);
        return store;
    }

    /**
     * Resolves once every change made so far is on disk. Many callers share one write (group
     * commit): the changes of one turn of the event loop, and whatever changed while the write
     * before was on its way to disk, go in the next write.
     */
    #persist(): Promise<void> {
        return new Promise((resolve, reject) => {
            this.#flushWaiters.push({ resolve, reject });
            this.#scheduleFlush();
        });
    }

    #scheduleFlush(): void {
        if (this.#flushScheduled || this.#flushing) return;
        this.#flushScheduled = true;
        setImmediate(() => {
            this.#flushScheduled = false;
            this.#flushing = this.#flushAsync().finally(() => {
                this.#flushing = undefined;
                if (this.#flushWaiters.length || this.#units.some((u) => u.dirty)) this.#scheduleFlush();
            });
        });
    }

    /**
     * Writes the entities changed since the last write, off the event loop: the snapshots are taken
     * now (so they hold every change the waiters made), the files written, flushed to disk and renamed
     * in the thread pool. Written synchronously, each write and its fsync stopped the devhost's main
     * thread, which also serves the document store's front, the vault and the identity issuer: a
     * quarter of that thread at 32 proposers (bench/README).
     */
    async #flushAsync(): Promise<void> {
        const waiters = this.#flushWaiters;
        this.#flushWaiters = [];
        const writes: PlannedWrite[] = [];
        const appends: { unit: Unit; lines: string[]; rewrite?: string }[] = [];
        for (const unit of this.#units) {
            const log = this.#takeDuplicates(unit);
            if (log) appends.push(log);
            const write = unit.dirty ? this.#planWrite(unit) : undefined;
            if (write) writes.push(write);
        }
        try {
            await Promise.all([
                ...writes.map(async (w) => {
                    if (!w.whole) return appendFileDurableAsync(w.file, w.data);
                    await writeFileAtomicAsync(w.file, w.data, 0o600, true);
                    // The state file names its epoch: the log of the one before is stale now.
                    await rm(w.staleLog!, { force: true });
                }),
                ...appends.map((a) => (a.rewrite !== undefined ? writeFileAtomicAsync(a.unit.duplicates!.file, a.rewrite, 0o600, true) : appendFileDurableAsync(a.unit.duplicates!.file, a.lines.join('')))),
            ]);
        } catch (err) {
            for (const w of writes) this.#unwritten(w.unit);
            for (const a of appends) this.#returnDuplicates(a);
            this.#log.error({ err, dir: this.#dir }, 'service bus: cannot write state');
            for (const w of waiters) w.reject(err as Error);
            return;
        }
        for (const w of waiters) w.resolve();
    }

    /**
     * The duplicate detection lines to write now: those added since the last write (appended), or, when the
     * log has grown well past the live entries, all live entries (the log rewritten). Undefined: nothing to write.
     */
    #takeDuplicates(unit: Unit): { unit: Unit; lines: string[]; rewrite?: string } | undefined {
        const log = unit.duplicates;
        if (!log || (!log.pending.length && !log.rewrite)) return undefined;
        const lines = log.pending.splice(0);
        if (!log.rewrite) {
            log.lines += lines.length;
            return { unit, lines };
        }
        log.rewrite = false;
        const entity = [...this.#queues.values(), ...this.#topics.values()].find((e) => e.unit === unit);
        const live = [...(entity?.duplicates ?? [])].map(([key, seen]) => `${JSON.stringify([key, seen])}\n`);
        log.lines = live.length;
        return { unit, lines, rewrite: live.join('') };
    }

    /** A write of duplicate detection lines failed: they go in the next one. */
    #returnDuplicates(a: { unit: Unit; lines: string[]; rewrite?: string }): void {
        const log = a.unit.duplicates!;
        if (a.rewrite !== undefined) log.rewrite = true;
        else {
            log.lines -= a.lines.length;
            log.pending.unshift(...a.lines);
        }
    }

    /** Removes a deleted entity's files: its state file, its change logs and its duplicate detection log. */
    #removeUnitState(unit: Unit): void {
        const names = existsSync(this.#dir) ? readdirSync(this.#dir) : [];
        for (const file of [unit.file, ...unit.logsIn(names).map((n) => path.join(this.#dir, n)), ...(unit.duplicates ? [unit.duplicates.file] : [])]) this.#removeState(file);
    }

    /** Removes a deleted entity's file, again after a write on its way to disk (which may rename a snapshot of it back). */
    #removeState(file: string): void {
        rmSync(file, { force: true });
        void this.#flushing?.then(() => rmSync(file, { force: true }));
    }

    /** Writes what has changed at once, on the event loop (at start-up and when stopping). */
    #flushNow(): void {
        const waiters = this.#flushWaiters;
        this.#flushWaiters = [];
        try {
            mkdirSync(this.#dir, { recursive: true });
            for (const unit of this.#units) {
                const log = this.#takeDuplicates(unit);
                try {
                    if (log?.rewrite !== undefined) writeAtomically(unit.duplicates!.file, log.rewrite);
                    else if (log) appendFileDurable(unit.duplicates!.file, log.lines.join(''));
                } catch (err) {
                    if (log) this.#returnDuplicates(log);
                    throw err;
                }
                const write = unit.dirty ? this.#planWrite(unit) : undefined;
                if (!write) continue;
                try {
                    if (!write.whole) appendFileDurable(write.file, write.data);
                    else {
                        writeAtomically(write.file, write.data);
                        rmSync(write.staleLog!, { force: true });
                    }
                } catch (err) {
                    this.#unwritten(unit);
                    throw err;
                }
            }
        } catch (err) {
            this.#log.error({ err, dir: this.#dir }, 'service bus: cannot write state');
            for (const w of waiters) w.reject(err as Error);
            return;
        }
        for (const w of waiters) w.resolve();
    }

    #queueState(q: QueueEntity): UnitState {
        const state = this.#storeState(q.store, { kind: 'queue', name: q.config.name });
        state.head.nextSeq = q.nextSeq;
        return state;
    }

    #topicState(t: TopicEntity): UnitState {
        return { head: { format: STATE_FORMAT, kind: 'topic', name: t.config.name, nextSeq: t.nextSeq }, lists: { scheduled: t.scheduled.values() } };
    }

    #storeState(store: Store, head: Record<string, string>): UnitState {
        const state: UnitState = { head: { format: STATE_FORMAT, ...head }, lists: { messages: store.messages.values(), deadLetters: store.dlq!.messages.values() } };
        const states = [...store.sessions.values()].filter((x) => x.state !== undefined).map((x) => ({ id: x.id, state: x.state!.toString('base64') }));
        if (states.length) state.head.sessionStates = states;
        return state;
    }

    /**
     * What to write for a changed unit: the lines for its change log, or, when the log has grown past twice
     * the state file (or must be replaced), the whole state file of the next epoch. What it returns is
     * taken as written; if the write fails, `#unwritten` makes the next one a whole state file.
     */
    #planWrite(unit: Unit): PlannedWrite | undefined {
        unit.dirty = false;
        const state = unit.state();
        if (unit.compact || unit.logBytes > Math.max(MIN_COMPACTION_BYTES, 2 * unit.snapshotBytes)) {
            const staleLog = unit.logFile();
            unit.epoch++;
            unit.written.clear();
            const whole: Record<string, unknown> = { ...state.head, epoch: unit.epoch };
            for (const [list, messages] of Object.entries(state.lists)) {
                whole[list] = [...messages].map((m) => {
                    unit.written.set(`${list}:${m.seq}`, { meta: metaOf(m), raw: m.raw });
                    return persisted(m);
                });
            }
            unit.writtenHead = JSON.stringify(state.head);
            const data = JSON.stringify(whole);
            unit.snapshotBytes = data.length;
            unit.logBytes = 0;
            unit.compact = false;
            return { unit, file: unit.file, data, whole: true, staleLog };
        }
        const lines: string[] = [];
        const head = JSON.stringify(state.head);
        if (head !== unit.writtenHead) {
            lines.push(`{"h":${head}}`);
            unit.writtenHead = head;
        }
        const present = new Set<string>();
        for (const [list, messages] of Object.entries(state.lists)) {
            for (const m of messages) {
                const key = `${list}:${m.seq}`;
                present.add(key);
                const meta = metaOf(m);
                const before = unit.written.get(key);
                if (before && before.meta === meta && before.raw === m.raw) continue;
                lines.push(JSON.stringify({ p: [list, persisted(m)] }));
                unit.written.set(key, { meta, raw: m.raw });
            }
        }
        for (const key of unit.written.keys()) {
            if (present.has(key)) continue;
            const [list, seq] = key.split(':') as [string, string];
            lines.push(JSON.stringify({ r: [list, Number(seq)] }));
            unit.written.delete(key);
        }
        if (!lines.length) return undefined;
        const data = `${lines.join('\n')}\n`;
        unit.logBytes += data.length;
        return { unit, file: unit.logFile(), data, whole: false };
    }

    /** A planned write did not reach the disk: the next write is a whole state file (of a new epoch). */
    #unwritten(unit: Unit): void {
        unit.compact = true;
        unit.dirty = true;
    }

    /**
     * An entity's duplicate detection log, read into its history (a snapshot written before the log
     * existed holds the history itself; both are read). A last line cut short by a crash was never
     * acknowledged: it is left out, and the log is rewritten whole at the next write.
     */
    #loadDuplicates(entity: QueueEntity | TopicEntity): void {
        const log = entity.unit.duplicates!;
        if (!existsSync(log.file)) return;
        const lines = readFileSync(log.file, 'utf8').split('\n');
        let torn = false;
        for (const line of lines) {
            if (!line) continue;
            try {
                const [key, seen] = JSON.parse(line) as [unknown, unknown];
                if (typeof key === 'string' && typeof seen === 'number') entity.duplicates.set(key, seen);
            } catch {
                torn = true;
            }
        }
        log.lines = lines.length;
        if (torn) log.rewrite = true;
    }

    #load(): void {
        mkdirSync(this.#dir, { recursive: true });
        const known = new Set([...this.#units.map((u) => path.basename(u.file)), CHANGES_FILE]);
        const strangers = readdirSync(this.#dir).filter((f) => f.endsWith('.json') && !known.has(f));
        if (strangers.length) this.#log.warn({ dir: this.#dir, files: strangers }, 'service bus: state files of entities that are no longer declared were left alone');
        const names = readdirSync(this.#dir);
        /** The unit's state file with its epoch's change log replayed over it (other epochs' logs are stale: removed). */
        const read = (unit: Unit): Record<string, unknown> | undefined => {
            // A temp file left by a crash never replaced its state file, so the state file is the last complete state.
            rmSync(`${unit.file}.tmp`, { force: true });
            unit.written.clear();
            unit.writtenHead = '';
            unit.logBytes = 0;
            unit.snapshotBytes = 0;
            let data: Record<string, unknown> | undefined;
            try {
                if (existsSync(unit.file)) {
                    const text = readFileSync(unit.file, 'utf8');
                    data = JSON.parse(text) as Record<string, unknown>;
                    unit.snapshotBytes = text.length;
                }
                unit.epoch = Number(data?.epoch) || 0;
                for (const n of unit.logsIn(names)) if (path.join(this.#dir, n) !== unit.logFile()) rmSync(path.join(this.#dir, n), { force: true });
                if (existsSync(unit.logFile())) {
                    data ??= {};
                    const text = readFileSync(unit.logFile(), 'utf8');
                    unit.logBytes = text.length;
                    const lists = new Map<string, Map<number, PersistedMessage>>();
                    const list = (name: string) => {
                        let l = lists.get(name);
                        if (!l) {
                            l = new Map((asArray(data![name]) as PersistedMessage[]).map((m) => [m.seq, m]));
                            lists.set(name, l);
                        }
                        return l;
                    };
                    for (const line of text.split('\n')) {
                        if (!line) continue;
                        let change: { h?: Record<string, unknown>; p?: [string, PersistedMessage]; r?: [string, number] };
                        try {
                            change = JSON.parse(line) as typeof change;
                        } catch {
                            // Cut short by a crash while it was written, so never acknowledged: left out, and the log replaced at once.
                            unit.compact = true;
                            continue;
                        }
                        if (change.h) Object.assign(data, change.h);
                        else if (change.p) list(change.p[0]).set(change.p[1].seq, change.p[1]);
                        else if (change.r) list(change.r[0]).delete(change.r[1]);
                    }
                    for (const [name, l] of lists) data[name] = [...l.values()];
                }
                if (!data) return undefined;
                if (data.format !== STATE_FORMAT) throw new Error(`unknown format ${String(data.format)}`);
                return data;
            } catch (err) {
                throw new Error(`Cannot read the local Service Bus state file ${unit.file}: ${(err as Error).message}. Move it away to start that entity empty.`);
            }
        };
        let released = 0;
        const fill = (store: Store, list: unknown) => {
            for (const p of asArray(list) as PersistedMessage[]) {
                const m = restored(p);
                if (store.requiresSession) {
                    m.sessionId ??= inspectMessage(m.raw).routable.sessionId;
                    if (m.sessionId === undefined) {
                        // The entity was declared session-enabled after this message was stored: it could never be received, so it is dead-lettered.
                        store.dlq!.add({ ...m, state: 'active', raw: withApplicationProperties(m.raw, { DeadLetterReason: 'SessionIdIsMissing', DeadLetterErrorDescription: 'The entity now requires sessions and the message has no session id.' }) });
                        store.dlq!.markReady(m.seq);
                        continue;
                    }
                }
                store.add(m);
                if (m.state === 'scheduled') store.scheduled.set(m.seq, m);
                if (p.locked) {
                    // The lock died with the broker: that delivery counts as failed.
                    released++;
                    m.deliveryCount++;
                    store.unit.dirty = true;
                    if (!store.isDeadLetterQueue && m.deliveryCount >= store.maxDeliveryCount) {
                        this.#deadLetter(store, m, 'MaxDeliveryCountExceeded', `Message could not be consumed after ${store.maxDeliveryCount} delivery attempts.`, undefined);
                        continue;
                    }
                }
                if (m.state === 'active') store.markReady(m.seq);
            }
        };
        const fillSessions = (store: Store, list: unknown) => {
            for (const x of asArray(list) as { id?: unknown; state?: unknown }[]) {
                if (typeof x.id === 'string' && typeof x.state === 'string' && store.requiresSession) store.session(x.id).state = Buffer.from(x.state, 'base64');
            }
        };
        const maxSeq = (stores: Store[]) => Math.max(0, ...stores.flatMap((s) => [...s.messages.keys(), ...s.dlq!.messages.keys()]));
        for (const q of this.#queues.values()) {
            const data = read(q.unit);
            if (!data) continue;
            fill(q.store.dlq!, data.deadLetters);
            fill(q.store, data.messages);
            fillSessions(q.store, data.sessionStates);
            q.nextSeq = Math.max(Number(data.nextSeq) || 1, maxSeq([q.store]) + 1);
            for (const [k, t] of asArray(data.duplicates) as [string, number][]) q.duplicates.set(k, t);
        }
        for (const q of this.#queues.values()) this.#loadDuplicates(q);
        for (const t of this.#topics.values()) {
            const data = read(t.unit);
            const subs = [...t.subscriptions.values()];
            for (const sub of subs) {
                const subUnit = sub.store.unit;
                const subData = read(subUnit);
                if (!subData) continue;
                fill(sub.store.dlq!, subData.deadLetters);
                fill(sub.store, subData.messages);
                fillSessions(sub.store, subData.sessionStates);
            }
            if (data) {
                for (const p of asArray(data.scheduled) as PersistedMessage[]) {
                    const m = restored(p);
                    t.scheduled.set(m.seq, m);
                }
                for (const [k, seen] of asArray(data.duplicates) as [string, number][]) t.duplicates.set(k, seen);
            }
            this.#loadDuplicates(t);
            const scheduledMax = Math.max(0, ...t.scheduled.keys());
            t.nextSeq = Math.max(Number(data?.nextSeq) || 1, maxSeq(subs.map((s) => s.store)) + 1, scheduledMax + 1);
        }
        if (released) this.#log.info({ released }, 'service bus: messages locked at the last stop are available again');
        for (const unit of this.#units) {
            // Changed while loading (locks released, messages moved): written whole. Else the files hold what memory holds.
            if (unit.dirty || unit.compact) {
                unit.compact = true;
                unit.dirty = true;
                continue;
            }
            const state = unit.state();
            // With nothing on disk yet, the first write carries the head.
            if (unit.snapshotBytes || unit.logBytes) unit.writtenHead = JSON.stringify(state.head);
            for (const [list, messages] of Object.entries(state.lists)) for (const m of messages) unit.written.set(`${list}:${m.seq}`, { meta: metaOf(m), raw: m.raw });
        }
        if (this.#units.some((u) => u.dirty)) this.#flushNow();
    }
}

/** A message as it arrives: decoded for routing, and given a message id if it has none (Service Bus assigns one). */
function arriving(raw: Buffer): { raw: Buffer; info: ArrivingMessage } {
    const info = inspectMessage(raw);
    if (info.routable.messageId !== undefined && info.routable.messageId !== null) return { raw, info };
    const messageId = randomUUID().replace(/-/g, '');
    return { raw: withMessageId(raw, messageId), info: { ...info, routable: { ...info.routable, messageId } } };
}

function writeAtomically(file: string, data: string): void {
    writeFileAtomic(file, data, 0o600, true);
}

function persisted(m: StoredMessage): PersistedMessage {
    const p: PersistedMessage = { seq: m.seq, raw: rawBase64(m.raw), enqueuedAt: m.enqueuedAt, deliveryCount: m.deliveryCount, state: m.state };
    if (m.scheduledAt !== undefined) p.scheduledAt = m.scheduledAt;
    if (m.expiresAt !== undefined) p.expiresAt = m.expiresAt;
    if (m.lockToken) p.locked = true;
    if (m.sessionId !== undefined) p.session = m.sessionId;
    return p;
}

function restored(p: PersistedMessage): StoredMessage {
    if (typeof p.seq !== 'number' || typeof p.raw !== 'string' || !(p.state in MESSAGE_STATE)) throw new Error(`a malformed message entry (seq ${String(p.seq)})`);
    return { seq: p.seq, raw: Buffer.from(p.raw, 'base64'), enqueuedAt: p.enqueuedAt, deliveryCount: p.deliveryCount ?? 0, state: p.state, scheduledAt: p.scheduledAt, expiresAt: p.expiresAt, sessionId: typeof p.session === 'string' ? p.session : undefined };
}

/** A link a disposition can still go out on (a stop or a disconnect may have come while the state was written). */
function usable(link: Receiver): boolean {
    return !link.is_closed() && link.connection.is_open();
}

function asArray(v: unknown): unknown[] {
    return Array.isArray(v) ? v : [];
}

function isRecord(v: unknown): v is Record<string, unknown> {
    return typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v);
}

/** AMQP longs arrive as numbers (or as 8 bytes when beyond 2^53). */
function toNumber(v: unknown): number | undefined {
    if (typeof v === 'number') return v;
    if (Buffer.isBuffer(v) && v.length === 8) return Number(v.readBigInt64BE(0));
    return undefined;
}

// Service Bus's AMQP descriptors for rule descriptions (as @azure/core-amqp's Constants.descriptorCodes name them).
const RULE_DESCRIPTOR = { rule: 1335734829060, emptyAction: 1335734829061, sqlAction: 1335734829062, sqlFilter: 83483426822, trueFilter: 83483426823, falseFilter: 83483426824, correlationFilter: 83483426825 };

/** A rule as `enumerate-rules` answers it: a described rule-description list (filter, action, name). */
function amqpRuleDescription(rule: RuleConfig): Typed {
    const described = (code: number, items: Typed[]) => types.described(types.wrap_ulong(code), types.wrap_list(items));
    const str = (v: string | undefined) => (v === undefined ? types.Null() : types.wrap_string(v));
    let filter: Typed;
    if (rule.sql !== undefined) {
        filter = rule.sql === '1=1' ? described(RULE_DESCRIPTOR.trueFilter, []) : rule.sql === '1=0' ? described(RULE_DESCRIPTOR.falseFilter, []) : described(RULE_DESCRIPTOR.sqlFilter, [types.wrap_string(rule.sql), types.wrap_int(20)]);
    } else {
        const c = rule.correlation ?? {};
        const props = c.properties && Object.keys(c.properties).length ? types.wrap_map(c.properties) : types.Null();
        filter = described(RULE_DESCRIPTOR.correlationFilter, [str(c.correlationId), str(c.messageId), str(c.to), str(c.replyTo), str(c.subject ?? c.label), str(c.sessionId), str(c.replyToSessionId), str(c.contentType), props]);
    }
    const action = rule.action === undefined ? described(RULE_DESCRIPTOR.emptyAction, []) : described(RULE_DESCRIPTOR.sqlAction, [types.wrap_string(rule.action), types.wrap_int(20)]);
    return described(RULE_DESCRIPTOR.rule, [filter, action, types.wrap_string(rule.name)]);
}

/** The rule an `add-rule` request describes (a SQL or correlation filter; rule actions are refused, as by the administration API). */
function ruleOfAmqp(name: string, description: unknown): RuleConfig {
    if (!isRecord(description)) throw new BrokerError('com.microsoft:argument-error', 'The request needs a "rule-description"', 400);
    const rawAction = description['sql-rule-action'];
    let action: string | undefined;
    if (rawAction !== undefined && rawAction !== null) {
        if (!isRecord(rawAction) || typeof rawAction.expression !== 'string') throw new BrokerError('com.microsoft:argument-error', 'A SQL rule action needs an expression', 400);
        action = rawAction.expression;
    }
    const withAction = (rule: RuleConfig): RuleConfig => (action === undefined ? rule : { ...rule, action });
    const sql = description['sql-filter'];
    if (isRecord(sql)) {
        if (typeof sql.expression !== 'string' || !sql.expression) throw new BrokerError('com.microsoft:argument-error', 'A SQL filter needs an expression', 400);
        return withAction({ name, sql: sql.expression });
    }
    const c = description['correlation-filter'];
    if (!isRecord(c)) throw new BrokerError('com.microsoft:argument-error', 'The rule description needs a "sql-filter" or a "correlation-filter"', 400);
    const correlation: NonNullable<RuleConfig['correlation']> = {};
    const put = (key: 'correlationId' | 'messageId' | 'to' | 'replyTo' | 'subject' | 'sessionId' | 'replyToSessionId' | 'contentType', field: string) => {
        const v = c[field];
        if (typeof v === 'string' && v !== '') correlation[key] = v;
    };
    put('correlationId', 'correlation-id');
    put('messageId', 'message-id');
    put('to', 'to');
    put('replyTo', 'reply-to');
    put('subject', 'label');
    put('sessionId', 'session-id');
    put('replyToSessionId', 'reply-to-session-id');
    put('contentType', 'content-type');
    if (isRecord(c.properties) && Object.keys(c.properties).length) correlation.properties = c.properties as NonNullable<typeof correlation.properties>;
    return withAction({ name, correlation });
}

/** Milliseconds since the epoch as .NET ticks, the 8 bytes Service Bus sends for `com.microsoft:locked-until-utc`. */
function dotnetTicks(ms: number): Buffer {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(BigInt(Math.round(ms)) * 10_000n + EPOCH_TICKS);
    return b;
}

function lockTokens(body: Record<string, unknown>): string[] {
    return asArray(body['lock-tokens']).map((t) => (Buffer.isBuffer(t) ? uuid_to_string(t) : String(t)));
}

function lockLost(): BrokerError {
    return new BrokerError(LOCK_LOST, 'The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.', 410);
}

const CHANGES_FILE = '$admin-changes.json';
// The first byte of a TLS ClientHello record; an AMQP connection starts with 'A'.
const TLS_HANDSHAKE = 0x16;

/**
 * The socket as a stream whose first chunk is `first` again. A TLS server cannot take the socket itself: it
 * reads the socket's handle directly and would miss the bytes the broker read to tell the protocols apart.
 */
function replayed(socket: Socket, first: Buffer): Duplex {
    const stream = new Duplex({
        read() {
            socket.resume();
        },
        write(chunk: Buffer, _encoding, done) {
            socket.write(chunk, done);
        },
        final(done) {
            socket.end(done);
        },
        destroy(err, done) {
            socket.destroy();
            done(err);
        },
    });
    stream.push(first);
    socket.on('data', (chunk: Buffer) => {
        if (!stream.push(chunk)) socket.pause();
    });
    socket.on('end', () => stream.push(null));
    socket.on('close', () => stream.destroy());
    return stream;
}

/** An administration request the broker refuses: the HTTP status and Service Bus error code admin.ts answers with. */
export class EntityError extends Error {
    constructor(
        readonly status: 400 | 404 | 409,
        readonly code: string,
        message: string,
    ) {
        super(message);
    }
}

interface SubscriptionChange {
    topic: string;
    name: string;
    subscription: SubscriptionConfig | null;
}

/** Entities created, changed or deleted at run time (null = deleted), by lower-case name (`topic/subscription` for subscriptions). */
interface Changes {
    queues: Map<string, { name: string; config: QueueConfig | null }>;
    topics: Map<string, { name: string; config: TopicConfig | null }>;
    subscriptions: Map<string, SubscriptionChange>;
}

function readChanges(file: string): Changes {
    const changes: Changes = { queues: new Map(), topics: new Map(), subscriptions: new Map() };
    if (!existsSync(file)) return changes;
    let data: { format?: unknown; queues?: unknown; topics?: unknown; subscriptions?: unknown };
    try {
        data = JSON.parse(readFileSync(file, 'utf8')) as typeof data;
        if (data.format !== STATE_FORMAT) throw new Error(`unknown format ${String(data.format)}`);
    } catch (err) {
        throw new Error(`Cannot read the local Service Bus run-time changes ${file}: ${(err as Error).message}. Move it away to start with the declared entities only.`);
    }
    for (const c of asArray(data.queues) as { name?: unknown; config?: QueueConfig | null }[]) {
        if (typeof c.name === 'string') changes.queues.set(lower(c.name), { name: c.name, config: c.config ?? null });
    }
    for (const c of asArray(data.topics) as { name?: unknown; config?: TopicConfig | null }[]) {
        if (typeof c.name === 'string') changes.topics.set(lower(c.name), { name: c.name, config: c.config ?? null });
    }
    for (const c of asArray(data.subscriptions) as Partial<SubscriptionChange>[]) {
        const name = c.subscription?.name ?? c.name;
        if (typeof c.topic !== 'string' || typeof name !== 'string') continue;
        changes.subscriptions.set(`${lower(c.topic)}/${lower(name)}`, { topic: c.topic, name, subscription: c.subscription ?? null });
    }
    return changes;
}

/** The declared entities with the run-time changes applied: a change replaces the declaration of the same name. */
function withChanges(entities: EntitiesConfig, changes: Changes, log: Logger): EntitiesConfig {
    const queues = [...(entities.queues ?? [])];
    for (const [key, change] of changes.queues) {
        const i = queues.findIndex((q) => lower(q.name) === key);
        if (i >= 0) queues.splice(i, 1);
        if (change.config) queues.push(change.config);
    }
    const topics = (entities.topics ?? []).map((t) => ({ ...t, subscriptions: [...(t.subscriptions ?? [])] }));
    for (const [key, change] of changes.topics) {
        const i = topics.findIndex((t) => lower(t.name) === key);
        // A changed topic keeps its declared subscriptions (a deleted one recorded their deletion too).
        const declared = i >= 0 ? topics[i].subscriptions : [];
        if (i >= 0) topics.splice(i, 1);
        if (change.config) topics.push({ ...change.config, subscriptions: declared });
    }
    for (const [key, change] of changes.subscriptions) {
        const t = topics.find((x) => lower(x.name) === lower(change.topic));
        if (!t) {
            if (change.subscription) log.warn({ topic: change.topic }, 'service bus: a run-time change names a topic that no longer exists; ignored');
            continue;
        }
        const name = key.slice(key.lastIndexOf('/') + 1);
        const i = t.subscriptions.findIndex((s) => lower(s.name) === name);
        if (i >= 0) t.subscriptions.splice(i, 1);
        if (change.subscription) t.subscriptions.push(change.subscription);
    }
    return { ...entities, queues, topics };
}
