import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { appCounts } from '../worker/counts';
import { event, EventType, failureOf, FailureDetails } from './history';
import { entitySchedulerId, isDuplicateCompletion, OrchestratorOutcome, OutboxItem, ParentInfo, parentNotification, planEpisode, TimerSettings } from './episode';
import type { QueueClient } from '@azure/storage-queue';
import type { HistoryEvent, HubMessage, InstanceRecord, ReceivedMessage, RuntimeStatus, TaskHubStore } from './taskHubStore';

/** How the backend reaches the app's functions (through the devhost's invocation pipeline). */
export interface DurableFunctions {
    has(kind: 'orchestration' | 'activity' | 'entity', name: string): boolean;
    /** Runs an orchestrator episode; resolves with the orchestrator state, or rejects with the function's error. */
    orchestrate(name: string, triggerInput: Record<string, unknown>): Promise<unknown>;
    /** Runs an activity with its input as JSON text; resolves with its result as JSON text. */
    runActivity(name: string, inputJson: string | undefined): Promise<string>;
    /** Runs an entity batch; resolves with the entity function's result object. */
    runEntity(name: string, batch: Record<string, unknown>): Promise<EntityBatchResult>;
}

export interface EntityBatchResult {
    entityExists: boolean;
    entityState?: string;
    results: { isError: boolean; result?: string; duration?: number }[];
    signals: { target: { name: string; key: string }; name: string; input?: string }[];
}

export interface BackendSettings {
    maxConcurrentActivityFunctions: number;
    maxConcurrentOrchestratorFunctions: number;
    timers: TimerSettings;
    /** How long a received message stays invisible before it is renewed (or redelivered after a crash). */
    visibilitySeconds: number;
    /** Longest pause between two polls of an idle queue. */
    maxPollingIntervalMs: number;
}

const HISTORY_CACHE_SIZE = 2000;
const INSTANCE_CACHE_SIZE = 5000;

/** A message for an instance: received from the control queue, or the completion of a work item run here (`local`: its outbox row). */
type Held = ReceivedMessage & { local?: string };
const MAX_HELD_CONTROL_MESSAGES = 256;
const TERMINAL: RuntimeStatus[] = ['Completed', 'Failed', 'Terminated', 'Canceled'];
const OUT_OF_PROC_MARKER = '$OutOfProcData$:';

export class ConflictError extends Error {}

export type OperationResult = 'accepted' | 'gone' | 'notfound';

/**
 * The Durable Task backend for one app instance: control and work-item dispatch over
 * the task hub in Azure Storage. Orchestrator episodes run one at a time per instance;
 * activities run in parallel up to `maxConcurrentActivityFunctions`.
 *
 * This backend is its task hub's only worker (the devhost refuses two instances on one
 * hub), which lets it skip storage round trips the Azure Storage provider makes for
 * workers that share a hub, with the same guarantees:
 * - a work item an episode schedules runs in this process straight away: its outbox row,
 *   committed with the episode, stays until the episode that applies its completion
 *   removes it in the same table transaction; after a crash the row is sent to the
 *   work-item queue like any other, and the activity runs again;
 * - instance rows are kept in memory (they are written by this backend only) and
 *   written when what a status query shows changes (runtime status, output, custom
 *   status), not on every episode; the last update time and history length follow
 *   with the next such write, or at a graceful stop;
 * - an idle queue is polled every `maxPollingIntervalMs`: everything this process sends
 *   wakes its own loops at once.
 *
 * Delivery: activities run at least once. A work item whose activity finished but
 * whose completion was not yet recorded when the host died runs again after restart;
 * its second completion is ignored by the orchestration. Orchestrator episodes are
 * replays and may run any number of times.
 */
export class DurableBackend {
    readonly store: TaskHubStore;
    readonly #fns: DurableFunctions;
    readonly #log: Logger;
    readonly #settings: BackendSettings;
    #stopped = false;
    readonly #wakers = new Set<() => void>();
    readonly #loops: Promise<void>[] = [];
    readonly #instanceQueues = new Map<string, Held[]>();
    /** Work items scheduled by this process's episodes, waiting for an activity slot. */
    readonly #localWork: { instanceId: string; rowKey: string; message: HubMessage }[] = [];
    /** Outbox rows of work items run here and not yet applied (a flush of the outbox leaves them). */
    readonly #localRows = new Set<string>();
    /** Instance rows as this backend last wrote or read them, and whether the stored row lags behind. */
    readonly #instances = new Map<string, { record: InstanceRecord; stale: boolean }>();
    readonly #busyInstances = new Set<string>();
    readonly #episodes = new Set<Promise<void>>();
    readonly #activities = new Set<Promise<void>>();
    #renewTimer?: NodeJS.Timeout;
    #lastTimestamp = 0;

    constructor(store: TaskHubStore, fns: DurableFunctions, settings: BackendSettings, logger: Logger) {
        this.store = store;
        this.#fns = fns;
        this.#settings = settings;
        this.#log = logger;
    }

    async start(): Promise<void> {
        await this.store.createIfNotExists();
        const recovered = await this.store.recoverOutboxes();
        if (recovered > 0) this.#log.info({ messages: recovered }, 'durable: sent messages left in outboxes by an earlier stop');
        this.#loops.push(this.#controlLoop(), this.#workItemLoop());
        this.#renewTimer = setInterval(() => void this.#renewHeld(), Math.max(1000, (this.#settings.visibilitySeconds * 1000) / 3));
    }

    /** Stops receiving; episodes and activities under way finish, and instance rows that lag are written. */
    async stop(): Promise<void> {
        this.#stopped = true;
        this.nudge();
        await Promise.all(this.#loops);
        while (this.#episodes.size > 0 || this.#activities.size > 0) {
            await Promise.allSettled([...this.#episodes, ...this.#activities]);
        }
        clearInterval(this.#renewTimer);
        for (const [id, entry] of this.#instances) {
            if (!entry.stale) continue;
            await this.#writeInstance({ ...entry.record, etag: undefined }).catch((err: Error) => this.#log.warn({ instanceId: id, err: { message: err.message } }, 'durable: instance row not brought up to date at stop'));
        }
    }

    // ---------------------------------------------------------------- instance rows

    async #instance(instanceId: string): Promise<InstanceRecord | undefined> {
        const cached = this.#instances.get(instanceId);
        if (cached) return { ...cached.record };
        const stored = await this.store.getInstance(instanceId);
        if (stored) this.#keepInstance(stored, false);
        return stored;
    }

    #keepInstance(record: InstanceRecord, stale: boolean): void {
        this.#instances.delete(record.instanceId);
        this.#instances.set(record.instanceId, { record: { ...record }, stale });
        // The oldest go; one that lags is written first.
        while (this.#instances.size > INSTANCE_CACHE_SIZE) {
            const [id, oldest] = this.#instances.entries().next().value!;
            this.#instances.delete(id);
            if (oldest.stale) void this.#writeInstance({ ...oldest.record, etag: undefined }).catch(() => undefined);
        }
    }

    /** Writes the instance row (under its ETag when the record carries one) and keeps what was written. */
    async #writeInstance(record: InstanceRecord): Promise<void> {
        const etag = await this.store.putInstance(record);
        this.#keepInstance({ ...record, etag }, false);
    }

    /**
     * An episode's change of the instance row: written when what a status query shows changes
     * (runtime status, output, custom status) or the row was never written for this execution;
     * otherwise kept here and written with the next such change.
     */
    async #updateInstance(before: InstanceRecord, next: InstanceRecord): Promise<void> {
        const visible = (r: InstanceRecord) => [r.executionId, r.runtimeStatus, r.output, r.customStatus, r.input].join('\u0000');
        if (visible(before) === visible(next) && this.#instances.has(next.instanceId)) this.#keepInstance({ ...next, etag: undefined }, true);
        else await this.#writeInstance({ ...next, etag: undefined });
    }

    /** Instance rows, the ones this backend holds newer than the table's as it holds them. */
    async *listInstances(): AsyncGenerator<InstanceRecord> {
        for await (const inst of this.store.listInstances()) yield this.#instances.has(inst.instanceId) ? { ...this.#instances.get(inst.instanceId)!.record } : inst;
    }

    /** Something was sent: poll now instead of after the idle back-off. */
    nudge(): void {
        for (const wake of [...this.#wakers]) wake();
    }

    // ---------------------------------------------------------------- client operations

    async startNew(name: string, instanceId: string | undefined, inputJson: string | undefined, version?: string): Promise<string> {
        if (!this.#fns.has('orchestration', name)) throw new NotFoundError(`No orchestrator function named "${name}"`);
        const id = instanceId ?? randomUUID().replace(/-/g, '');
        const running = (existing: InstanceRecord) => new ConflictError(`An instance with ID '${id}' already exists and is ${existing.runtimeStatus}`);
        // Known here, or not: then the row is created at once, and read only when one is there already.
        let existing = this.#instances.get(id)?.record;
        if (existing && !TERMINAL.includes(existing.runtimeStatus)) throw running(existing);
        const executionId = randomUUID().replace(/-/g, '');
        const now = new Date().toISOString();
        const record: InstanceRecord = {
            instanceId: id,
            name,
            executionId,
            runtimeStatus: 'Pending',
            input: inputJson,
            createdTime: now,
            lastUpdatedTime: now,
            historyLength: 0,
        };
        if (!existing) {
            const etag = await this.store.createInstance(record);
            if (etag !== false) this.#keepInstance({ ...record, etag }, false);
            else {
                existing = await this.store.getInstance(id);
                if (!existing) throw new ConflictError(`An instance with ID '${id}' was created and removed at the same time`);
                this.#keepInstance(existing, false);
                if (!TERMINAL.includes(existing.runtimeStatus)) throw running(existing);
            }
        }
        // An ended instance is started again in its row, under the row's ETag (a concurrent start of the same id fails).
        if (existing) await this.#writeInstance({ ...record, etag: existing.etag });
        // A new execution's history is empty: its first episode need not read it.
        this.#remember(id, executionId, [], []);
        await this.store.send(this.store.control, {
            id: randomUUID(),
            instanceId: id,
            executionId,
            event: event(EventType.ExecutionStarted, { Name: name, Input: inputJson, Version: version, OrchestrationInstance: { InstanceId: id, ExecutionId: executionId } }, now),
        });
        this.nudge();
        return id;
    }

    async raiseEvent(instanceId: string, name: string, inputJson: string | undefined): Promise<OperationResult> {
        return this.#sendToInstance(instanceId, event(EventType.EventRaised, { Name: name, Input: inputJson }, new Date().toISOString()));
    }

    async terminate(instanceId: string, reason: string | undefined): Promise<OperationResult> {
        return this.#sendToInstance(instanceId, event(EventType.ExecutionTerminated, { Input: reason === undefined ? undefined : JSON.stringify(reason) }, new Date().toISOString()));
    }

    async suspend(instanceId: string, reason: string | undefined): Promise<OperationResult> {
        return this.#sendToInstance(instanceId, event(EventType.ExecutionSuspended, { Reason: reason }, new Date().toISOString()));
    }

    async resume(instanceId: string, reason: string | undefined): Promise<OperationResult> {
        return this.#sendToInstance(instanceId, event(EventType.ExecutionResumed, { Reason: reason }, new Date().toISOString()));
    }

    async #sendToInstance(instanceId: string, ev: HistoryEvent): Promise<OperationResult> {
        const inst = await this.#instance(instanceId);
        if (!inst) return 'notfound';
        if (TERMINAL.includes(inst.runtimeStatus)) return 'gone';
        await this.store.send(this.store.control, { id: randomUUID(), instanceId, event: ev });
        this.nudge();
        return 'accepted';
    }

    async getInstance(instanceId: string): Promise<InstanceRecord | undefined> {
        return this.#instance(instanceId);
    }

    async getHistory(instance: InstanceRecord): Promise<HistoryEvent[]> {
        return (await this.store.loadHistory(instance.instanceId, instance.executionId)).events;
    }

    async purge(instanceId: string): Promise<boolean> {
        const inst = await this.#instance(instanceId);
        if (!inst || !TERMINAL.includes(inst.runtimeStatus)) return false;
        this.#forget(instanceId);
        this.#instances.delete(instanceId);
        return this.store.deleteInstance(instanceId);
    }

    async signalEntity(name: string, key: string, op: string, inputJson: string | undefined): Promise<void> {
        const target = entitySchedulerId(name, key);
        const request = { op, signal: true, input: inputJson, id: randomUUID() };
        await this.store.send(this.store.control, { id: randomUUID(), instanceId: target, event: event(EventType.EventRaised, { Name: 'op', Input: JSON.stringify(request) }, new Date().toISOString()) });
        this.nudge();
    }

    async readEntity(name: string, key: string): Promise<{ exists: boolean; state?: string }> {
        const inst = await this.#instance(entitySchedulerId(name, key));
        if (!inst || inst.input === undefined) return { exists: false };
        const entity = JSON.parse(inst.input) as { exists: boolean; state?: string };
        return entity;
    }

    // ---------------------------------------------------------------- dispatch loops

    async #sleep(ms: number): Promise<void> {
        await new Promise<void>((resolve) => {
            const wake = () => {
                clearTimeout(t);
                this.#wakers.delete(wake);
                resolve();
            };
            const t = setTimeout(wake, ms);
            this.#wakers.add(wake);
        });
    }

    /**
     * Receives from a queue while there is capacity, backing off while it is empty
     * (a nudge ends the back-off at once), and hands each message on.
     */
    async #pollLoop(name: string, queue: QueueClient, room: () => number, take: (m: ReceivedMessage) => void): Promise<void> {
        let idle = 10;
        while (!this.#stopped) {
            const free = room();
            if (free <= 0) {
                await Promise.race([...this.#episodes, ...this.#activities, this.#sleep(100)]);
                continue;
            }
            let received: ReceivedMessage[] = [];
            try {
                received = await this.store.receive(queue, free, this.#settings.visibilitySeconds);
            } catch (err) {
                this.#log.warn({ err: { message: (err as Error).message } }, `durable: ${name} queue unavailable`);
                await this.#sleep(1000);
                continue;
            }
            if (received.length === 0) {
                // Whatever this process sends wakes the loop (a nudge); what comes due by itself (a timer,
                // a message hidden for a while) is seen within the polling interval.
                await this.#sleep(idle);
                idle = this.#settings.maxPollingIntervalMs;
                continue;
            }
            // A full batch: more may be waiting. Otherwise look again shortly, then at the interval.
            idle = received.length >= free ? 0 : 10;
            received.forEach(take);
        }
    }

    #controlLoop(): Promise<void> {
        // Received control messages wait per instance (kept invisible by renewal); hold a bounded number.
        return this.#pollLoop('control', this.store.control, () => MAX_HELD_CONTROL_MESSAGES - this.#heldCount(), (m) => this.#hold(m));
    }

    /** A message for its instance, processed after those before it. */
    #hold(m: Held): void {
        const q = this.#instanceQueues.get(m.message.instanceId) ?? [];
        q.push(m);
        this.#instanceQueues.set(m.message.instanceId, q);
        this.#drainInstance(m.message.instanceId);
    }

    /** Done with a message: a received one is deleted from the control queue; a local completion that was not applied takes its work item's outbox row with it. */
    async #settle(m: Held): Promise<void> {
        if (m.local === undefined) return this.store.delete(this.store.control, m);
        this.#localRows.delete(m.local);
        await this.store.removeOutboxRow(m.message.instanceId, m.local);
    }

    #heldCount(): number {
        let n = 0;
        for (const q of this.#instanceQueues.values()) n += q.length;
        return n;
    }

    /** Processes an instance's messages one episode at a time, at most `maxConcurrentOrchestratorFunctions` episodes at once. */
    #drainInstance(instanceId: string): void {
        if (this.#busyInstances.has(instanceId)) return;
        if (this.#episodes.size >= this.#settings.maxConcurrentOrchestratorFunctions) return;
        const q = this.#instanceQueues.get(instanceId);
        const next = q?.shift();
        if (!next) {
            this.#instanceQueues.delete(instanceId);
            return;
        }
        this.#busyInstances.add(instanceId);
        const run = this.#process(next)
            .catch((err: Error) => {
                // The message stays in the queue and comes back after its visibility timeout; a local completion is held that long too.
                this.#log.error({ instanceId, err: { message: err.message, stack: err.stack } }, 'durable: episode failed; the message will be retried');
                if (next.local !== undefined) setTimeout(() => this.#hold(next), this.#settings.visibilitySeconds * 1000).unref();
            })
            .finally(() => {
                this.#busyInstances.delete(instanceId);
                this.#episodes.delete(run);
                this.#drainInstance(instanceId);
                // A slot is free: let instances that were waiting for one go on.
                for (const waiting of this.#instanceQueues.keys()) {
                    if (this.#episodes.size >= this.#settings.maxConcurrentOrchestratorFunctions) break;
                    this.#drainInstance(waiting);
                }
            });
        this.#episodes.add(run);
    }

    async #renewHeld(): Promise<void> {
        for (const q of this.#instanceQueues.values()) {
            for (const m of q) {
                if (m.local !== undefined) continue;
                try {
                    await this.store.renew(this.store.control, m, this.#settings.visibilitySeconds);
                } catch {
                    // It may already be gone; the episode that takes it will find out.
                }
            }
        }
    }

    #workItemLoop(): Promise<void> {
        // Work items in the queue: those a crash left in outboxes (sent again at start), or sent by another process.
        return this.#pollLoop('work-item', this.store.workItems, () => this.#settings.maxConcurrentActivityFunctions - this.#activities.size - this.#localWork.length, (m) => {
            const run = this.#runWorkItem(m)
                .catch((err: Error) => this.#log.error({ err: { message: err.message } }, 'durable: work item failed; it will be retried'))
                .finally(() => this.#activities.delete(run));
            this.#activities.add(run);
        });
    }

    async #runWorkItem(m: ReceivedMessage): Promise<void> {
        const { activity, instanceId, executionId } = m.message;
        if (!activity) {
            await this.store.delete(this.store.workItems, m);
            return;
        }
        const renew = setInterval(() => void this.store.renew(this.store.workItems, m, this.#settings.visibilitySeconds).catch(() => undefined), Math.max(1000, (this.#settings.visibilitySeconds * 1000) / 3));
        let completion: HistoryEvent;
        try {
            completion = await this.#runActivity(activity);
        } finally {
            clearInterval(renew);
        }
        await this.store.send(this.store.control, { id: randomUUID(), instanceId, executionId, event: completion });
        await this.store.delete(this.store.workItems, m);
        this.nudge();
    }

    /** Runs work items this process's episodes scheduled while activity slots are free; each completion goes straight to its instance. */
    #runLocalWork(): void {
        while (this.#localWork.length > 0 && this.#activities.size < this.#settings.maxConcurrentActivityFunctions) {
            const item = this.#localWork.shift()!;
            const run = this.#runActivity(item.message.activity!)
                .then((completion) => this.#hold({ message: { id: randomUUID(), instanceId: item.instanceId, executionId: item.message.executionId, event: completion }, messageId: '', popReceipt: '', local: item.rowKey }))
                .finally(() => {
                    this.#activities.delete(run);
                    this.#runLocalWork();
                });
            this.#activities.add(run);
        }
    }

    /** Runs an activity; its completion (or failure) as the history event the orchestration receives. */
    async #runActivity(activity: NonNullable<HubMessage['activity']>): Promise<HistoryEvent> {
        const now = () => new Date().toISOString();
        appCounts.durable.activities++;
        try {
            const result = activity.name === 'BuiltIn::HttpActivity' ? await durableHttp(activity.input) : await this.#fns.runActivity(activity.name, activity.input);
            return event(EventType.TaskCompleted, { TaskScheduledId: activity.taskScheduledId, Result: result }, now());
        } catch (err) {
            const failure = failureOf(err);
            return event(EventType.TaskFailed, {
                TaskScheduledId: activity.taskScheduledId,
                Reason: `Activity function '${activity.name}' failed: ${failure.ErrorMessage}`,
                Details: failure.StackTrace ?? failure.ErrorMessage,
                FailureDetails: failure,
            }, now());
        }
    }

    // ---------------------------------------------------------------- episodes

    // The history of recently active executions, kept in memory: this backend is their only writer.
    readonly #historyCache = new Map<string, { executionId: string; events: HistoryEvent[]; messageIds: Set<string> }>();

    async #history(instanceId: string, executionId: string): Promise<{ events: HistoryEvent[]; messageIds: Set<string> }> {
        const cached = this.#historyCache.get(instanceId);
        if (cached && cached.executionId === executionId) {
            // Refresh its position (Map keeps insertion order: oldest first).
            this.#historyCache.delete(instanceId);
            this.#historyCache.set(instanceId, cached);
            return { events: [...cached.events], messageIds: new Set(cached.messageIds) };
        }
        const loaded = await this.store.loadHistory(instanceId, executionId);
        this.#remember(instanceId, executionId, loaded.events, [...loaded.messageIds]);
        return loaded;
    }

    #remember(instanceId: string, executionId: string, events: HistoryEvent[], messageIds: string[]): void {
        const previous = this.#historyCache.get(instanceId);
        const ids = new Set(previous && previous.executionId === executionId ? previous.messageIds : []);
        for (const id of messageIds) ids.add(id);
        this.#historyCache.delete(instanceId);
        this.#historyCache.set(instanceId, { executionId, events, messageIds: ids });
        while (this.#historyCache.size > HISTORY_CACHE_SIZE) this.#historyCache.delete(this.#historyCache.keys().next().value!);
    }

    #forget(instanceId: string): void {
        this.#historyCache.delete(instanceId);
    }

    #timestamp(): string {
        // Strictly increasing, so every episode's OrchestratorStarted time is distinct and ordered.
        const t = Math.max(Date.now(), this.#lastTimestamp + 1);
        this.#lastTimestamp = t;
        return new Date(t).toISOString();
    }

    async #process(m: Held): Promise<void> {
        const msg = m.message;
        if (msg.instanceId.startsWith('@')) {
            await this.#processEntity(m);
            return;
        }
        const ev = msg.event;
        if (!ev) {
            await this.#settle(m);
            return;
        }
        let inst = await this.#instance(msg.instanceId);

        if (ev.EventType === EventType.ExecutionStarted) {
            const orchestration = ev.OrchestrationInstance as { InstanceId: string; ExecutionId: string };
            if (!inst) {
                // A sub-orchestration: its instance row is created by its first message.
                const now = new Date().toISOString();
                const parent = ev.ParentInstance as { OrchestrationInstance: { InstanceId: string } } | undefined;
                inst = {
                    instanceId: msg.instanceId,
                    name: String(ev.Name),
                    executionId: orchestration.ExecutionId,
                    runtimeStatus: 'Pending',
                    input: ev.Input as string | undefined,
                    createdTime: now,
                    lastUpdatedTime: now,
                    parentInstanceId: parent?.OrchestrationInstance.InstanceId,
                    historyLength: 0,
                };
                const etag = await this.store.createInstance(inst);
                if (etag === false) inst = await this.store.getInstance(msg.instanceId);
                else this.#keepInstance({ ...inst, etag }, false);
            } else if (inst.executionId !== orchestration.ExecutionId) {
                if (ev.ParentInstance && !TERMINAL.includes(inst.runtimeStatus)) {
                    await this.#failParentOfDuplicate(ev, inst);
                    await this.#settle(m);
                    return;
                }
                if (ev.ParentInstance || ev.ContinuedAsNew) {
                    inst = { ...inst, executionId: orchestration.ExecutionId, runtimeStatus: 'Pending', input: ev.Input as string | undefined, output: undefined, customStatus: inst.customStatus, historyLength: 0, lastUpdatedTime: new Date().toISOString() };
                    await this.#writeInstance(inst);
                    inst = (await this.#instance(msg.instanceId))!;
                } else {
                    // A start for an execution that has since been replaced: stale.
                    await this.#settle(m);
                    return;
                }
            }
            if (!inst) return;
            await this.#episode(m, inst);
            return;
        }

        if (!inst || (msg.executionId && msg.executionId !== inst.executionId) || TERMINAL.includes(inst.runtimeStatus)) {
            this.#log.debug({ instanceId: msg.instanceId, eventType: ev.EventType }, 'durable: message for an instance that is gone or finished; dropped');
            await this.#settle(m);
            return;
        }
        if (inst.runtimeStatus === 'Pending' || inst.runtimeStatus === 'ContinuedAsNew') {
            // Its (next) execution has not started yet: look again shortly.
            if (m.local !== undefined) setTimeout(() => this.#hold(m), 1000).unref();
            else await this.store.renew(this.store.control, m, 1);
            return;
        }
        if (ev.EventType === EventType.ExecutionTerminated) {
            await this.#terminate(m, inst, ev);
            return;
        }
        if (ev.EventType === EventType.ExecutionSuspended || ev.EventType === EventType.ExecutionResumed) {
            await this.#suspendOrResume(m, inst, ev);
            return;
        }
        if (inst.runtimeStatus === 'Suspended') {
            // Held until the instance is resumed.
            if (m.local !== undefined) setTimeout(() => this.#hold(m), 2000).unref();
            else await this.store.renew(this.store.control, m, 2);
            return;
        }
        await this.#episode(m, inst);
    }

    async #episode(m: Held, inst: InstanceRecord): Promise<void> {
        appCounts.durable.episodes++;
        const msg = m.message;
        const newEvent = msg.event!;
        const { events: history, messageIds } = await this.#history(inst.instanceId, inst.executionId);
        if (messageIds.has(msg.id)) {
            // Applied before a crash; finish what may not have been finished.
            await this.#reconcile(inst, history);
            await this.#settle(m);
            return;
        }
        if (newEvent.EventType === EventType.ExecutionStarted && history.length > 0) {
            await this.#settle(m);
            return;
        }
        if (isDuplicateCompletion(history, newEvent)) {
            this.#log.debug({ instanceId: inst.instanceId, eventType: newEvent.EventType }, 'durable: duplicate completion ignored');
            await this.#settle(m);
            return;
        }

        const startEvent = history.find((e) => e.EventType === EventType.ExecutionStarted) ?? newEvent;
        const now = this.#timestamp();
        const started = event(EventType.OrchestratorStarted, {}, now);
        const arriving: HistoryEvent = { ...newEvent, IsPlayed: false };
        const replay = [...history.map((e) => ({ ...e, IsPlayed: true })), started, arriving];
        const parent = parentOf(startEvent);
        const input = startEvent.Input === undefined || startEvent.Input === null ? undefined : JSON.parse(String(startEvent.Input));
        const outcome = await this.#runOrchestrator(inst.name, {
            history: replay,
            input,
            instanceId: inst.instanceId,
            isReplaying: history.length > 0,
            parentInstanceId: parent?.instanceId,
            upperSchemaVersion: 1,
            upperSchemaVersionNew: 2,
            maximumShortTimerDuration: timeSpan(this.#settings.timers.maximumShortTimerMs),
            longRunningTimerIntervalDuration: timeSpan(this.#settings.timers.longRunningTimerIntervalMs),
            defaultHttpAsyncRequestSleepTimeMillseconds: 30000,
        });
        const plan = planEpisode(history, arriving, outcome, {
            instanceId: inst.instanceId,
            executionId: inst.executionId,
            now,
            timers: this.#settings.timers,
            parent,
        });

        const outbox = [...plan.outbox];
        let nextExecution: { executionId: string; input?: string } | undefined;
        if (plan.completion?.status === 'ContinuedAsNew') {
            nextExecution = { executionId: randomUUID().replace(/-/g, ''), input: plan.completion.continueInput };
            outbox.push({
                queue: 'control',
                message: {
                    id: randomUUID(),
                    instanceId: inst.instanceId,
                    event: event(EventType.ExecutionStarted, {
                        Name: inst.name,
                        Input: nextExecution.input,
                        ContinuedAsNew: true,
                        ParentInstance: startEvent.ParentInstance,
                        OrchestrationInstance: { InstanceId: inst.instanceId, ExecutionId: nextExecution.executionId },
                    }, now),
                },
            });
        }
        const appended = [{ event: started }, { event: arriving, messageId: msg.id }, ...plan.events.map((e) => ({ event: e }))];
        // A local completion's work item leaves the outbox with the episode that applies it.
        const committed = await this.store.commitEpisode(inst.instanceId, inst.executionId, history.length, appended, outbox, m.local === undefined ? [] : [m.local]);
        if (m.local !== undefined) this.#localRows.delete(m.local);
        this.#remember(inst.instanceId, inst.executionId, [...history, ...appended.map((a) => a.event)], [msg.id]);

        const status: RuntimeStatus = plan.completion ? plan.completion.status : 'Running';
        await this.#updateInstance(inst, {
            ...inst,
            runtimeStatus: status,
            output: plan.completion?.output,
            customStatus: plan.customStatus === undefined ? inst.customStatus : JSON.stringify(plan.customStatus),
            lastUpdatedTime: now,
            historyLength: history.length + appended.length,
        });
        // Work items due now run here; the rest (timers, messages to other instances) go to the queues.
        const local = await this.store.sendCommitted(committed, (row) => row.queue === 'workItems' && !row.visibleAt && !this.#stopped);
        if (m.local === undefined) await this.store.delete(this.store.control, m);
        for (const row of local) {
            this.#localRows.add(row.rowKey);
            this.#localWork.push({ instanceId: inst.instanceId, rowKey: row.rowKey, message: row.message });
        }
        this.#runLocalWork();
        if (outbox.length > local.length) this.nudge();
    }

    async #runOrchestrator(name: string, triggerInput: Record<string, unknown>): Promise<OrchestratorOutcome> {
        try {
            const state = (await this.#fns.orchestrate(name, triggerInput)) as OrchestratorOutcome;
            return state;
        } catch (err) {
            const message = (err as Error).message ?? String(err);
            const at = message.indexOf(OUT_OF_PROC_MARKER);
            if (at >= 0) {
                const state = JSON.parse(message.slice(at + OUT_OF_PROC_MARKER.length)) as OrchestratorOutcome & { error?: string };
                // The message before the marker is not meaningful (the library prints "false" there).
                return { ...state, error: state.error ?? 'The orchestrator function failed' };
            }
            const failure = failureOf(err);
            return { actions: [], isDone: false, error: failure.ErrorMessage, failureDetails: failure };
        }
    }

    /** After a crash between committing an episode and finishing it: bring the instance row and outbox up to date. */
    async #reconcile(inst: InstanceRecord, history: HistoryEvent[]): Promise<void> {
        const completed = [...history].reverse().find((e) => e.EventType === EventType.ExecutionCompleted);
        if (completed && !TERMINAL.includes(inst.runtimeStatus) && inst.runtimeStatus !== 'ContinuedAsNew') {
            const status = completed.OrchestrationStatus as RuntimeStatus;
            await this.#writeInstance({
                ...inst,
                runtimeStatus: status,
                output: status === 'Failed' ? JSON.stringify(completed.Result) : (completed.Result as string | undefined),
                lastUpdatedTime: new Date().toISOString(),
                historyLength: history.length,
                etag: undefined,
            });
        } else if (inst.runtimeStatus === 'Pending' && history.length > 0) {
            await this.#writeInstance({ ...inst, runtimeStatus: 'Running', historyLength: history.length, etag: undefined });
        }
        await this.store.flushOutbox(inst.instanceId, this.#localRows);
        this.nudge();
    }

    async #terminate(m: Held, inst: InstanceRecord, ev: HistoryEvent): Promise<void> {
        this.#forget(inst.instanceId);
        const { events: history } = await this.store.loadHistory(inst.instanceId, inst.executionId);
        const now = this.#timestamp();
        const reason = ev.Input as string | undefined;
        const startEvent = history.find((e) => e.EventType === EventType.ExecutionStarted);
        const parent = startEvent ? parentOf(startEvent) : undefined;
        const failure: FailureDetails = { ErrorType: 'Terminated', ErrorMessage: reason ? String(JSON.parse(reason)) : 'Terminated' };
        const outbox: OutboxItem[] = parent ? [parentNotification(parent, { status: 'Failed', failure }, now)] : [];
        const events = [
            { event: event(EventType.ExecutionTerminated, { Input: reason }, now), messageId: m.message.id },
            { event: event(EventType.ExecutionCompleted, { OrchestrationStatus: 'Terminated', Result: reason }, now) },
        ];
        const committed = await this.store.commitEpisode(inst.instanceId, inst.executionId, history.length, events, outbox);
        await this.#writeInstance({ ...inst, runtimeStatus: 'Terminated', output: reason, lastUpdatedTime: now, historyLength: history.length + 2, etag: undefined });
        await this.store.sendCommitted(committed);
        await this.#settle(m);
        if (committed.rows.length > 0) this.nudge();
    }

    async #suspendOrResume(m: Held, inst: InstanceRecord, ev: HistoryEvent): Promise<void> {
        const suspend = ev.EventType === EventType.ExecutionSuspended;
        if ((suspend && inst.runtimeStatus === 'Suspended') || (!suspend && inst.runtimeStatus !== 'Suspended')) {
            await this.#settle(m);
            return;
        }
        this.#forget(inst.instanceId);
        const { events: history } = await this.store.loadHistory(inst.instanceId, inst.executionId);
        const now = this.#timestamp();
        await this.store.commitEpisode(inst.instanceId, inst.executionId, history.length, [{ event: { ...ev, Timestamp: now }, messageId: m.message.id }], []);
        await this.#writeInstance({ ...inst, runtimeStatus: suspend ? 'Suspended' : 'Running', lastUpdatedTime: now, historyLength: history.length + 1, etag: undefined });
        await this.#settle(m);
        if (!suspend) this.nudge();
    }

    async #failParentOfDuplicate(ev: HistoryEvent, inst: InstanceRecord): Promise<void> {
        const parent = parentOf(ev);
        if (!parent) return;
        const failure: FailureDetails = { ErrorType: 'InvalidOperationException', ErrorMessage: `An instance with ID '${inst.instanceId}' already exists and is ${inst.runtimeStatus}` };
        const item = parentNotification(parent, { status: 'Failed', failure }, new Date().toISOString());
        await this.store.send(this.store.control, item.message);
    }

    // ---------------------------------------------------------------- entities

    async #processEntity(m: ReceivedMessage): Promise<void> {
        appCounts.durable.entityOperations++;
        const target = m.message.instanceId;
        const request = JSON.parse(String(m.message.event?.Input ?? '{}')) as { op: string; signal: boolean; input?: string; id: string; parent?: string; parentExecution?: string };
        const [, name, ...rest] = target.split('@');
        const key = rest.join('@');
        const now = new Date().toISOString();
        let inst = await this.#instance(target);
        if (!inst) {
            inst = { instanceId: target, name, executionId: 'entity', runtimeStatus: 'Running', createdTime: now, lastUpdatedTime: now, historyLength: 0 };
            const etag = await this.store.createInstance(inst);
            if (etag === false) inst = (await this.store.getInstance(target))!;
            else this.#keepInstance({ ...inst, etag }, false);
        }
        const { messageIds } = await this.store.loadHistory(target, inst.executionId);
        if (messageIds.has(m.message.id)) {
            await this.store.flushOutbox(target);
            await this.store.delete(this.store.control, m);
            return;
        }
        const current = inst.input ? (JSON.parse(inst.input) as { exists: boolean; state?: string }) : { exists: false };
        const fnName = this.#entityFunction(name);
        let result: EntityBatchResult;
        if (!fnName) {
            result = { entityExists: current.exists, entityState: current.state, results: [{ isError: true, result: JSON.stringify(`No entity function named '${name}'`) }], signals: [] };
        } else {
            try {
                result = await this.#fns.runEntity(fnName, {
                    self: { name, key },
                    exists: current.exists,
                    state: current.exists ? current.state ?? null : null,
                    batch: [{ name: request.op, input: request.input ?? null, isSignal: request.signal, id: request.id }],
                });
            } catch (err) {
                result = { entityExists: current.exists, entityState: current.state, results: [{ isError: true, result: JSON.stringify((err as Error).message) }], signals: [] };
            }
        }
        const outbox: OutboxItem[] = [];
        const op = result.results[0] ?? { isError: false };
        if (!request.signal && request.parent) {
            const response = op.isError ? { result: op.result ?? JSON.stringify('entity operation failed'), exceptionType: 'Error' } : op.result !== undefined ? { result: op.result } : {};
            outbox.push({
                queue: 'control',
                message: { id: randomUUID(), instanceId: request.parent, executionId: request.parentExecution, event: event(EventType.EventRaised, { Name: request.id, Input: JSON.stringify(response) }, now) },
            });
        }
        for (const s of result.signals ?? []) {
            const signal = { op: s.name, signal: true, input: s.input === '' ? undefined : s.input, id: randomUUID() };
            outbox.push({
                queue: 'control',
                message: { id: randomUUID(), instanceId: entitySchedulerId(s.target.name, s.target.key), event: event(EventType.EventRaised, { Name: 'op', Input: JSON.stringify(signal) }, now) },
            });
        }
        // The processed request is recorded with the outbox in one transaction; the state follows.
        const { events } = await this.store.loadHistory(target, inst.executionId);
        const committed = await this.store.commitEpisode(target, inst.executionId, events.length, [{ event: event(EventType.EventRaised, { Name: request.op }, now), messageId: m.message.id }], outbox);
        await this.#writeInstance({
            ...inst,
            input: JSON.stringify({ exists: result.entityExists, state: result.entityExists ? result.entityState ?? null : undefined }),
            lastUpdatedTime: now,
            historyLength: events.length + 1,
            etag: undefined,
        });
        await this.store.sendCommitted(committed);
        await this.store.delete(this.store.control, m);
        if (outbox.length > 0) this.nudge();
    }

    #entityFunction(lowercased: string): string | undefined {
        return this.#entityNames?.get(lowercased);
    }

    #entityNames?: Map<string, string>;
    setEntityNames(names: string[]): void {
        this.#entityNames = new Map(names.map((n) => [n.toLowerCase(), n]));
    }
}

export class NotFoundError extends Error {}

function parentOf(startEvent: HistoryEvent): ParentInfo | undefined {
    const p = startEvent.ParentInstance as { Name?: string; OrchestrationInstance: { InstanceId: string; ExecutionId: string }; TaskScheduleId: number } | undefined;
    if (!p) return undefined;
    return { instanceId: p.OrchestrationInstance.InstanceId, executionId: p.OrchestrationInstance.ExecutionId, taskScheduledId: p.TaskScheduleId, name: p.Name ?? '' };
}

/** A .NET TimeSpan string ("d.hh:mm:ss.fff"), as the extension sends timer settings. */
export function timeSpan(ms: number): string {
    const days = Math.floor(ms / 86_400_000);
    const rest = ms % 86_400_000;
    const h = Math.floor(rest / 3_600_000);
    const m = Math.floor((rest % 3_600_000) / 60_000);
    const s = Math.floor((rest % 60_000) / 1000);
    const f = rest % 1000;
    const pad = (n: number, w = 2) => String(n).padStart(w, '0');
    return `${days > 0 ? `${days}.` : ''}${pad(h)}:${pad(m)}:${pad(s)}${f ? `.${pad(f, 3)}` : ''}`;
}

/** The built-in HTTP activity behind `callHttp`: the request is made by the host, not by user code. */
async function durableHttp(inputJson: string | undefined): Promise<string> {
    const req = JSON.parse(inputJson ?? '{}') as { method: string; uri: string; content?: string; headers?: Record<string, string> };
    const res = await fetch(req.uri, { method: req.method, headers: req.headers, body: req.content });
    const headers: Record<string, string> = {};
    res.headers.forEach((v, k) => (headers[k] = v));
    return JSON.stringify({ statusCode: res.status, headers, content: await res.text() });
}

export type { HubMessage };
