import { odata, TableClient, TransactionAction } from '@azure/data-tables';
import { BlobServiceClient, ContainerClient } from '@azure/storage-blob';
import { QueueClient } from '@azure/storage-queue';
import { randomUUID } from 'node:crypto';

/**
 * The task hub in Azure Storage, laid out as the Durable extension's Azure Storage
 * provider lays it out: an Instances table, a History table (one partition per
 * instance), a control queue for orchestration messages and a work-item queue for
 * activities, with large payloads in a blob container.
 *
 * Crash safety: an episode's new history rows and the messages it sends ("outbox"
 * rows, in the same partition) are committed in one table transaction; messages are
 * sent afterwards and their outbox rows then removed. On start, outbox rows left by
 * a crash are sent again. Control messages are deleted only after their effect is
 * committed, and every history row records the message it came from, so a message
 * delivered twice is applied once.
 */

export type HistoryEvent = Record<string, unknown> & { EventType: number; EventId: number; Timestamp: string };

export type RuntimeStatus = 'Pending' | 'Running' | 'Completed' | 'ContinuedAsNew' | 'Failed' | 'Terminated' | 'Suspended' | 'Canceled';

export interface InstanceRecord {
    instanceId: string;
    name: string;
    executionId: string;
    runtimeStatus: RuntimeStatus;
    input?: string;
    output?: string;
    customStatus?: string;
    createdTime: string;
    lastUpdatedTime: string;
    parentInstanceId?: string;
    /** Number of history rows of the current execution. */
    historyLength: number;
    etag?: string;
}

/** A message for an orchestration (control queue) or an activity (work-item queue). */
export interface HubMessage {
    id: string;
    instanceId: string;
    executionId?: string;
    /** For the control queue: the history event to append. */
    event?: HistoryEvent;
    /** For the work-item queue: the activity to run. */
    activity?: { name: string; input?: string; taskScheduledId: number };
    /** For a timer: when it is due (the message stays invisible until then). */
    fireAt?: string;
}

export interface CommittedOutbox {
    instanceId: string;
    rows: { rowKey: string; queue: 'control' | 'workItems'; message: HubMessage; visibleAt?: string }[];
}

export interface ReceivedMessage {
    message: HubMessage;
    messageId: string;
    popReceipt: string;
}

const CHUNK = 30_000; // characters per table property (a property holds at most 64 KiB)
const MAX_INLINE_ENTITY = 900_000;
const MAX_QUEUE_TEXT = 48_000;

export class TaskHubStore {
    readonly hub: string;
    readonly instances: TableClient;
    readonly history: TableClient;
    readonly control: QueueClient;
    readonly workItems: QueueClient;
    readonly largeMessages: ContainerClient;

    constructor(connectionString: string, hub: string) {
        this.hub = hub;
        const tableOptions = { allowInsecureConnection: true };
        this.instances = TableClient.fromConnectionString(connectionString, `${hub}Instances`, tableOptions);
        this.history = TableClient.fromConnectionString(connectionString, `${hub}History`, tableOptions);
        const q = hub.toLowerCase();
        this.control = new QueueClient(connectionString, `${q}-control-00`);
        this.workItems = new QueueClient(connectionString, `${q}-workitems`);
        this.largeMessages = BlobServiceClient.fromConnectionString(connectionString).getContainerClient(`${q}-largemessages`);
    }

    async createIfNotExists(): Promise<void> {
        await Promise.all([
            this.instances.createTable(),
            this.history.createTable(),
            this.control.createIfNotExists(),
            this.workItems.createIfNotExists(),
            this.largeMessages.createIfNotExists(),
        ]);
    }

    // ---------- instances ----------

    async getInstance(instanceId: string): Promise<InstanceRecord | undefined> {
        try {
            const e = await this.instances.getEntity<Record<string, unknown>>(instanceId, '');
            return await this.#fromInstanceEntity(e);
        } catch (err) {
            if ((err as { statusCode?: number }).statusCode === 404) return undefined;
            throw err;
        }
    }

    /** Creates the instance row; returns its ETag, or false when one exists (callers decide whether it may be replaced). */
    async createInstance(record: InstanceRecord): Promise<string | false> {
        try {
            return (await this.instances.createEntity(await this.#toInstanceEntity(record))).etag ?? '';
        } catch (err) {
            if ((err as { statusCode?: number }).statusCode === 409) return false;
            throw err;
        }
    }

    /** Replaces the instance row, guarded by its ETag when known; returns the new ETag. */
    async putInstance(record: InstanceRecord): Promise<string> {
        const entity = await this.#toInstanceEntity(record);
        const res = record.etag ? await this.instances.updateEntity(entity, 'Replace', { etag: record.etag }) : await this.instances.upsertEntity(entity, 'Replace');
        return res.etag ?? '';
    }

    async *listInstances(filter?: string): AsyncGenerator<InstanceRecord> {
        for await (const e of this.instances.listEntities<Record<string, unknown>>({ queryOptions: filter ? { filter } : undefined })) {
            yield await this.#fromInstanceEntity(e);
        }
    }

    async deleteInstance(instanceId: string): Promise<boolean> {
        const rows: TransactionAction[] = [];
        for await (const e of this.history.listEntities({ queryOptions: { filter: odata`PartitionKey eq ${instanceId}`, select: ['RowKey'] } })) {
            rows.push(['delete', { partitionKey: instanceId, rowKey: e.rowKey! }]);
        }
        for (let i = 0; i < rows.length; i += 100) await this.history.submitTransaction(rows.slice(i, i + 100));
        try {
            await this.instances.deleteEntity(instanceId, '');
            return true;
        } catch (err) {
            if ((err as { statusCode?: number }).statusCode === 404) return false;
            throw err;
        }
    }

    // ---------- history ----------

    async loadHistory(instanceId: string, executionId: string): Promise<{ events: HistoryEvent[]; messageIds: Set<string> }> {
        const prefix = historyPrefix(executionId);
        const rows: { rowKey: string; event: HistoryEvent; messageId?: string }[] = [];
        const filter = odata`PartitionKey eq ${instanceId} and RowKey ge ${prefix} and RowKey lt ${`${prefix}~`}`;
        for await (const e of this.history.listEntities<Record<string, unknown>>({ queryOptions: { filter } })) {
            rows.push({ rowKey: e.rowKey!, event: JSON.parse(await this.#readPayload(e, 'Event')) as HistoryEvent, messageId: e.MessageId as string | undefined });
        }
        rows.sort((a, b) => (a.rowKey < b.rowKey ? -1 : 1));
        return { events: rows.map((r) => r.event), messageIds: new Set(rows.map((r) => r.messageId).filter((m): m is string => !!m)) };
    }

    /**
     * Commits an episode: new history rows (each with the id of the message it came
     * from) and the outbox of messages to send, in transactions of the instance's
     * partition, history and outbox of the same chunk together. `done`: outbox rows of
     * work items run in this process whose completion this episode applies, removed in
     * the same transaction (so the work item is re-sent after a crash until then).
     */
    async commitEpisode(
        instanceId: string,
        executionId: string,
        startIndex: number,
        events: { event: HistoryEvent; messageId?: string }[],
        outbox: { queue: 'control' | 'workItems'; message: HubMessage; visibleAt?: string }[],
        done: string[] = [],
    ): Promise<CommittedOutbox> {
        const committed: CommittedOutbox = { instanceId, rows: [] };
        const actions: TransactionAction[] = done.map((rowKey) => ['delete', { partitionKey: instanceId, rowKey }]);
        for (let i = 0; i < events.length; i++) {
            const rowKey = `${historyPrefix(executionId)}${String(startIndex + i).padStart(8, '0')}`;
            const entity: Record<string, unknown> & { partitionKey: string; rowKey: string } = { partitionKey: instanceId, rowKey, EventType: events[i].event.EventType };
            if (events[i].messageId) entity.MessageId = events[i].messageId;
            await this.#writePayload(entity, 'Event', JSON.stringify(events[i].event), instanceId, rowKey);
            actions.push(['upsert', entity, 'Replace']);
        }
        // Row keys keep the episode's order, so messages to one target are sent (and, FIFO, received) in order.
        const batch = `${Date.now().toString(36).padStart(10, '0')}${(outboxCounter++ % 1e6).toString(36).padStart(4, '0')}`;
        for (const [i, item] of outbox.entries()) {
            const rowKey = `${OUTBOX}${batch}:${String(i).padStart(5, '0')}:${item.message.id}`;
            const entity: Record<string, unknown> & { partitionKey: string; rowKey: string } = { partitionKey: instanceId, rowKey, Queue: item.queue, VisibleAt: item.visibleAt ?? '' };
            await this.#writePayload(entity, 'Message', JSON.stringify(item.message), instanceId, rowKey);
            actions.push(['upsert', entity, 'Replace']);
            committed.rows.push({ rowKey, ...item });
        }
        for (let i = 0; i < actions.length; i += 100) {
            await this.history.submitTransaction(actions.slice(i, i + 100));
        }
        return committed;
    }

    /**
     * Sends the messages an episode just committed, in order, then removes their outbox rows; the rows
     * `keep` selects (work items the caller runs itself) are neither sent nor removed, and are returned.
     */
    async sendCommitted(committed: CommittedOutbox, keep: (row: CommittedOutbox['rows'][number]) => boolean = () => false): Promise<CommittedOutbox['rows']> {
        const kept = committed.rows.filter(keep);
        const sent = committed.rows.filter((r) => !kept.includes(r));
        if (sent.length === 0) return kept;
        for (const row of sent) {
            await this.send(row.queue === 'workItems' ? this.workItems : this.control, row.message, row.visibleAt);
        }
        const deletes: TransactionAction[] = sent.map((r) => ['delete', { partitionKey: committed.instanceId, rowKey: r.rowKey }]);
        for (let i = 0; i < deletes.length; i += 100) await this.history.submitTransaction(deletes.slice(i, i + 100));
        return kept;
    }

    /** Removes one outbox row (a work item run here whose completion was dropped); gone already is fine. */
    async removeOutboxRow(instanceId: string, rowKey: string): Promise<void> {
        try {
            await this.history.deleteEntity(instanceId, rowKey);
        } catch (err) {
            if ((err as { statusCode?: number }).statusCode !== 404) throw err;
        }
    }

    /** Sends an instance's outbox messages and removes their rows, but for the rows `skip` names (work items running here). */
    async flushOutbox(instanceId: string, skip: ReadonlySet<string> = new Set()): Promise<number> {
        const filter = odata`PartitionKey eq ${instanceId} and RowKey ge ${OUTBOX} and RowKey lt ${`${OUTBOX}~`}`;
        return this.#flush(filter, skip);
    }

    /** After a crash: sends every outbox message that was committed but not yet sent. */
    async recoverOutboxes(): Promise<number> {
        return this.#flush(odata`RowKey ge ${OUTBOX} and RowKey lt ${`${OUTBOX}~`}`);
    }

    async #flush(filter: string, skip: ReadonlySet<string> = new Set()): Promise<number> {
        let n = 0;
        for await (const e of this.history.listEntities<Record<string, unknown>>({ queryOptions: { filter } })) {
            if (skip.has(e.rowKey!)) continue;
            const message = JSON.parse(await this.#readPayload(e, 'Message')) as HubMessage;
            const queue = e.Queue === 'workItems' ? this.workItems : this.control;
            await this.send(queue, message, typeof e.VisibleAt === 'string' && e.VisibleAt ? e.VisibleAt : undefined);
            await this.history.deleteEntity(e.partitionKey!, e.rowKey!);
            n++;
        }
        return n;
    }

    // ---------- queues ----------

    /** Sends a message, invisible until `visibleAt` (timers); payloads over the queue limit go to a blob. */
    async send(queue: QueueClient, message: HubMessage, visibleAt?: string): Promise<void> {
        let text = JSON.stringify(message);
        if (text.length > MAX_QUEUE_TEXT) {
            const blobName = `${message.instanceId}/${message.id}.json`;
            await this.largeMessages.getBlockBlobClient(blobName).upload(text, Buffer.byteLength(text));
            text = JSON.stringify({ blob: blobName });
        }
        // A queue message can stay invisible for at most 7 days; later timers are re-sent when that runs out.
        const delay = visibleAt ? Math.max(0, Math.ceil((Date.parse(visibleAt) - Date.now()) / 1000)) : 0;
        await queue.sendMessage(Buffer.from(text).toString('base64'), {
            visibilityTimeout: Math.min(delay, 7 * 24 * 3600 - 60),
            messageTimeToLive: -1,
        });
    }

    async receive(queue: QueueClient, max: number, visibilitySeconds: number): Promise<ReceivedMessage[]> {
        const res = await queue.receiveMessages({ numberOfMessages: Math.min(32, Math.max(1, max)), visibilityTimeout: visibilitySeconds });
        const out: ReceivedMessage[] = [];
        for (const m of res.receivedMessageItems) {
            let parsed = JSON.parse(Buffer.from(m.messageText, 'base64').toString('utf8')) as HubMessage | { blob: string };
            if ('blob' in parsed) {
                const buf = await this.largeMessages.getBlockBlobClient(parsed.blob).downloadToBuffer();
                parsed = JSON.parse(buf.toString('utf8')) as HubMessage;
            }
            out.push({ message: parsed, messageId: m.messageId, popReceipt: m.popReceipt });
        }
        return out;
    }

    /** Keeps a message invisible while it is being worked on; returns the new pop receipt. */
    async renew(queue: QueueClient, m: ReceivedMessage, visibilitySeconds: number): Promise<string> {
        const res = await queue.updateMessage(m.messageId, m.popReceipt, undefined, visibilitySeconds);
        m.popReceipt = res.popReceipt!;
        return m.popReceipt;
    }

    async delete(queue: QueueClient, m: ReceivedMessage): Promise<void> {
        try {
            await queue.deleteMessage(m.messageId, m.popReceipt);
        } catch (err) {
            // Already gone (deleted, or its lease ran out and another receive took it): nothing to do.
            if ((err as { statusCode?: number }).statusCode !== 404) throw err;
        }
    }

    // ---------- payloads ----------

    async #writePayload(entity: Record<string, unknown>, name: string, text: string, instanceId: string, rowKey: string): Promise<void> {
        if (text.length * 2 > MAX_INLINE_ENTITY) {
            const blobName = `${instanceId}/${encodeURIComponent(rowKey)}-${name}-${randomUUID()}.json`;
            await this.largeMessages.getBlockBlobClient(blobName).upload(text, Buffer.byteLength(text));
            entity[`${name}Blob`] = blobName;
            return;
        }
        const parts = Math.max(1, Math.ceil(text.length / CHUNK));
        entity[`${name}Parts`] = parts;
        for (let i = 0; i < parts; i++) entity[`${name}${i}`] = text.slice(i * CHUNK, (i + 1) * CHUNK);
    }

    async #readPayload(entity: Record<string, unknown>, name: string): Promise<string> {
        const blob = entity[`${name}Blob`];
        if (typeof blob === 'string') return (await this.largeMessages.getBlockBlobClient(blob).downloadToBuffer()).toString('utf8');
        const parts = Number(entity[`${name}Parts`] ?? 0);
        let text = '';
        for (let i = 0; i < parts; i++) text += String(entity[`${name}${i}`] ?? '');
        return text;
    }

    async #toInstanceEntity(r: InstanceRecord): Promise<Record<string, unknown> & { partitionKey: string; rowKey: string }> {
        const entity: Record<string, unknown> & { partitionKey: string; rowKey: string } = {
            partitionKey: r.instanceId,
            rowKey: '',
            Name: r.name,
            ExecutionId: r.executionId,
            RuntimeStatus: r.runtimeStatus,
            CreatedTime: r.createdTime,
            LastUpdatedTime: r.lastUpdatedTime,
            ParentInstanceId: r.parentInstanceId ?? '',
            HistoryLength: r.historyLength,
        };
        const payload = JSON.stringify({ input: r.input, output: r.output, customStatus: r.customStatus });
        await this.#writePayload(entity, 'Data', payload, r.instanceId, 'instance');
        return entity;
    }

    async #fromInstanceEntity(e: Record<string, unknown>): Promise<InstanceRecord> {
        const data = JSON.parse((await this.#readPayload(e, 'Data')) || '{}') as { input?: string; output?: string; customStatus?: string };
        return {
            instanceId: e.partitionKey as string,
            name: e.Name as string,
            executionId: e.ExecutionId as string,
            runtimeStatus: e.RuntimeStatus as RuntimeStatus,
            createdTime: e.CreatedTime as string,
            lastUpdatedTime: e.LastUpdatedTime as string,
            parentInstanceId: (e.ParentInstanceId as string) || undefined,
            historyLength: Number(e.HistoryLength ?? 0),
            input: data.input,
            output: data.output,
            customStatus: data.customStatus,
            etag: e.etag as string | undefined,
        };
    }
}

const OUTBOX = '~outbox:';
let outboxCounter = 0;

function historyPrefix(executionId: string): string {
    return `h:${executionId}:`;
}
