import { message as rheaMessage, types as rheaTypes } from 'rhea';
import type { RoutableMessage } from './filters';

/**
 * AMQP message handling at the level of encoded sections. The broker keeps each
 * message as the bytes it was sent as and only rewrites the sections it owns
 * (header, message annotations, and application properties when a settlement
 * modifies them), so properties and body reach the receiver exactly as sent.
 */

/** The parts of rhea's `types` used here; its typings leave them out or type them loosely. */
export interface Typed {
    value: unknown;
    descriptor?: { value: unknown };
}
interface RheaTypes {
    Reader: new (buffer: Buffer) => { read(): Typed; remaining(): number };
    Writer: new () => { write(t: Typed): void; toBuffer(): Buffer };
    wrap(v: unknown): Typed;
    wrap_ulong(v: number): Typed;
    wrap_long(v: number): Typed;
    wrap_uint(v: number): Typed;
    wrap_int(v: number): Typed;
    wrap_ubyte(v: number): Typed;
    wrap_boolean(v: boolean): Typed;
    wrap_timestamp(v: number): Typed;
    wrap_symbol(v: string): Typed;
    wrap_string(v: string): Typed;
    wrap_uuid(v: Buffer): Typed;
    wrap_list(v: Typed[]): Typed;
    wrap_map(v: Record<string, unknown>): Typed;
    wrap_array(v: unknown[], code: number, descriptor: undefined): Typed;
    Map32(items: Typed[]): Typed;
    Null(): Typed;
    described(descriptor: Typed, value: Typed): Typed;
    unwrap(v: unknown, leaveDescribed?: boolean): unknown;
}
export const types = rheaTypes as unknown as RheaTypes;

/** The message format of a Service Bus batch: one envelope whose data sections are encoded messages. */
export const BATCH_FORMAT = 0x80013700;

const HEADER = 0x70;
const DELIVERY_ANNOTATIONS = 0x71;
const MESSAGE_ANNOTATIONS = 0x72;
const PROPERTIES = 0x73;
const APPLICATION_PROPERTIES = 0x74;
const DATA = 0x75;
const FOOTER = 0x78;

const SYMBOLIC: Record<string, number> = {
    'amqp:header:list': HEADER,
    'amqp:delivery-annotations:map': DELIVERY_ANNOTATIONS,
    'amqp:message-annotations:map': MESSAGE_ANNOTATIONS,
    'amqp:properties:list': PROPERTIES,
    'amqp:application-properties:map': APPLICATION_PROPERTIES,
    'amqp:data:binary': DATA,
    'amqp:amqp-sequence:list': 0x76,
    'amqp:amqp-value:*': 0x77,
    'amqp:footer:map': FOOTER,
};

interface Section {
    code: number;
    bytes: Buffer;
    typed: Typed;
}

function encodeTyped(t: Typed): Buffer {
    const w = new types.Writer();
    w.write(t);
    return w.toBuffer();
}

function readSections(raw: Buffer): Section[] {
    const reader = new types.Reader(raw);
    const out: Section[] = [];
    let start = 0;
    while (reader.remaining() > 0) {
        const typed = reader.read();
        const end = raw.length - reader.remaining();
        const d = typed.descriptor?.value;
        const code = typeof d === 'number' ? d : typeof d === 'string' ? SYMBOLIC[d] : undefined;
        if (code === undefined) throw new Error('not an AMQP message: a section without a known descriptor');
        out.push({ code, bytes: raw.subarray(start, end), typed });
        start = end;
    }
    return out;
}

// Sections in the order AMQP requires; body sections (data, sequence, value) share one rank and keep their order.
const rank = (code: number) => (code >= DATA && code < FOOTER ? DATA : code);

function assemble(sections: { code: number; bytes: Buffer }[]): Buffer {
    const ordered = sections.map((s, i) => ({ s, i })).sort((a, b) => rank(a.s.code) - rank(b.s.code) || a.i - b.i);
    return Buffer.concat(ordered.map(({ s }) => s.bytes));
}

/** The encoded messages of a delivery: the message itself, or each message of a batch envelope. */
export function messagesOfTransfer(payload: Buffer, format: number): Buffer[] {
    if (format === 0) return [payload];
    if (format !== BATCH_FORMAT) throw new Error(`unsupported message format 0x${format.toString(16)}`);
    const inner = readSections(payload)
        .filter((s) => s.code === DATA)
        .map((s) => s.typed.value as Buffer);
    if (inner.length === 0) throw new Error('a batch without messages');
    return inner;
}

/** What the broker reads from a message as it arrives. */
export interface ArrivingMessage {
    routable: RoutableMessage;
    /** Header time to live, in milliseconds. */
    ttlMs?: number;
    /** `x-opt-scheduled-enqueue-time`, in milliseconds since the epoch. */
    scheduledAt?: number;
}

export function inspectMessage(raw: Buffer): ArrivingMessage {
    // Validates the encoding as a side effect: a malformed message throws here, before it is stored.
    readSections(raw);
    const m = rheaMessage.decode(raw) as unknown as Record<string, unknown>;
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
    const annotations = (m.message_annotations ?? {}) as Record<string, unknown>;
    const scheduled = annotations['x-opt-scheduled-enqueue-time'];
    const scheduledAt = scheduled instanceof Date ? scheduled.getTime() : typeof scheduled === 'number' ? scheduled : undefined;
    const ttl = typeof m.ttl === 'number' && m.ttl > 0 ? m.ttl : undefined;
    return {
        routable: {
            applicationProperties: (m.application_properties ?? {}) as Record<string, unknown>,
            messageId: m.message_id,
            correlationId: m.correlation_id,
            subject: str(m.subject),
            to: str(m.to),
            replyTo: str(m.reply_to),
            sessionId: str(m.group_id),
            replyToSessionId: str(m.reply_to_group_id),
            contentType: str(m.content_type),
        },
        ttlMs: ttl,
        scheduledAt: scheduledAt !== undefined && Number.isFinite(scheduledAt) ? scheduledAt : undefined,
    };
}

/** The message id as a stable string key (ids may be strings, numbers, uuids or binary). */
export function messageIdKey(id: unknown): string | undefined {
    if (typeof id === 'string') return `s:${id}`;
    if (typeof id === 'number') return `n:${id}`;
    if (Buffer.isBuffer(id)) return `b:${id.toString('hex')}`;
    return undefined;
}

/**
 * The message as a receiver gets it: its own header with `deliveryCount`, its
 * message annotations merged with the broker's (which win), everything else as
 * sent. Delivery annotations are the sender's hop-by-hop data and are dropped.
 */
export function messageForDelivery(raw: Buffer, deliveryCount: number, annotations: Record<string, Typed>): Buffer {
    const sections = readSections(raw);
    const header = sections.find((s) => s.code === HEADER);
    const h = header ? (rheaMessage.decode(header.bytes) as unknown as Record<string, unknown>) : {};
    const headerTyped = types.described(
        types.wrap_ulong(HEADER),
        types.wrap_list([
            types.wrap_boolean(h.durable === true),
            types.wrap_ubyte(typeof h.priority === 'number' ? h.priority : 4),
            typeof h.ttl === 'number' ? types.wrap_uint(h.ttl) : types.Null(),
            types.wrap_boolean(h.first_acquirer === true),
            types.wrap_uint(deliveryCount),
        ]),
    );
    const items: Typed[] = [];
    const existing = sections.find((s) => s.code === MESSAGE_ANNOTATIONS);
    if (existing) {
        const pairs = existing.typed.value as Typed[];
        for (let i = 0; i + 1 < pairs.length; i += 2) {
            const key = types.unwrap(pairs[i]);
            if (typeof key === 'string' && key in annotations) continue;
            items.push(pairs[i], pairs[i + 1]);
        }
    }
    for (const [k, v] of Object.entries(annotations)) items.push(types.wrap_symbol(k), v);
    const annotationsTyped = types.described(types.wrap_ulong(MESSAGE_ANNOTATIONS), types.Map32(items));
    return assemble([
        { code: HEADER, bytes: encodeTyped(headerTyped) },
        { code: MESSAGE_ANNOTATIONS, bytes: encodeTyped(annotationsTyped) },
        ...sections.filter((s) => s.code !== HEADER && s.code !== DELIVERY_ANNOTATIONS && s.code !== MESSAGE_ANNOTATIONS),
    ]);
}

/**
 * Sets application properties (as a settlement's "properties to modify" or a
 * dead-letter reason does); `undefined`/`null` values are skipped. Only the
 * application-properties section is re-encoded.
 */
export function withApplicationProperties(raw: Buffer, patch: Record<string, unknown>): Buffer {
    const entries = Object.entries(patch).filter(([, v]) => v !== undefined && v !== null);
    if (entries.length === 0) return raw;
    const sections = readSections(raw);
    const existing = sections.find((s) => s.code === APPLICATION_PROPERTIES);
    const props = existing ? { ...((rheaMessage.decode(existing.bytes) as unknown as { application_properties?: Record<string, unknown> }).application_properties ?? {}) } : {};
    for (const [k, v] of entries) props[k] = v;
    const section = { code: APPLICATION_PROPERTIES, bytes: encodeTyped(types.described(types.wrap_ulong(APPLICATION_PROPERTIES), types.wrap_map(props))) };
    return assemble([...sections.filter((s) => s.code !== APPLICATION_PROPERTIES), section]);
}

/** The message with exactly these application properties (a rule action's copy); only that section is re-encoded. */
export function replaceApplicationProperties(raw: Buffer, props: Record<string, unknown>): Buffer {
    const sections = readSections(raw).filter((s) => s.code !== APPLICATION_PROPERTIES);
    const kept = Object.fromEntries(Object.entries(props).filter(([, v]) => v !== undefined && v !== null));
    const section = { code: APPLICATION_PROPERTIES, bytes: encodeTyped(types.described(types.wrap_ulong(APPLICATION_PROPERTIES), types.wrap_map(kept))) };
    return assemble([...sections, section]);
}

const PROPERTY_FIELDS = ['message_id', 'user_id', 'to', 'subject', 'reply_to', 'correlation_id', 'content_type', 'content_encoding', 'absolute_expiry_time', 'creation_time', 'group_id', 'group_sequence', 'reply_to_group_id'];

/**
 * Gives a message without a message id the given one, as Service Bus does on
 * arrival (the SDK relies on every received message having one). Only the
 * properties section is re-encoded.
 */
export function withMessageId(raw: Buffer, messageId: string): Buffer {
    const sections = readSections(raw);
    const existing = sections.find((s) => s.code === PROPERTIES);
    const fields: Record<string, unknown> = {};
    if (existing) {
        const decoded = rheaMessage.decode(existing.bytes) as unknown as Record<string, unknown>;
        for (const f of PROPERTY_FIELDS) if (decoded[f] !== undefined && decoded[f] !== null) fields[f] = decoded[f];
    }
    if (fields.message_id !== undefined) return raw;
    fields.message_id = messageId;
    const properties = readSections(rheaMessage.encode(fields)).find((s) => s.code === PROPERTIES)!;
    return assemble([...sections.filter((s) => s.code !== PROPERTIES), { code: PROPERTIES, bytes: properties.bytes }]);
}

/** Encodes a whole message given as rhea's decoded form (a message that arrived as a single transfer). */
export function encodeMessage(m: unknown): Buffer {
    return rheaMessage.encode(m);
}

/** 16 bytes of a GUID in .NET's byte order (as Service Bus puts lock tokens in delivery tags), from its string form. */
export function dotnetGuidBytes(uuid: Buffer): Buffer {
    return Buffer.from([uuid[3], uuid[2], uuid[1], uuid[0], uuid[5], uuid[4], uuid[7], uuid[6], ...uuid.subarray(8, 16)]);
}
