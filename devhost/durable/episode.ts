import { randomUUID } from 'node:crypto';
import { ActionType, event, EventType, FailureDetails } from './history';
import type { HistoryEvent, HubMessage } from './taskHubStore';

/**
 * One orchestrator episode, planned as the Durable Task Framework would: which new
 * actions the orchestrator asked for, which sequence numbers they take, which
 * history events are appended and which messages are sent.
 *
 * Sequence numbers: the library numbers tasks itself, in the order it tracks them,
 * and matches completions by number only. Besides the tasks behind actions, two
 * kinds of task take numbers without an action of their own, while a completion is
 * being replayed: the timer and the next attempt of a task with retry, and the next
 * piece of a long timer. Processing one new message per episode keeps the order
 * unambiguous: numbers taken by the new message's consequences come first, then
 * the numbers of the actions the orchestrator newly returned, in the order of the
 * action list (depth-first through Task.all / Task.any).
 */

export interface RetryOptions {
    firstRetryIntervalInMilliseconds: number;
    maxNumberOfAttempts: number;
    backoffCoefficient?: number;
    maxRetryIntervalInMilliseconds?: number;
    retryTimeoutInMilliseconds?: number;
}

interface RetryInfo {
    kind: 'activity' | 'subOrchestration';
    options: RetryOptions;
    attempt: number;
    firstAttemptAt: string;
    name: string;
    input?: string;
    instanceId?: string;
    version?: string;
}

export interface OrchestratorOutcome {
    actions: unknown[];
    isDone: boolean;
    output?: unknown;
    customStatus?: unknown;
    /** Set when the orchestrator threw. */
    error?: string;
    failureDetails?: FailureDetails;
}

export interface TimerSettings {
    maximumShortTimerMs: number;
    longRunningTimerIntervalMs: number;
}

export interface EpisodeContext {
    instanceId: string;
    executionId: string;
    now: string;
    timers: TimerSettings;
    parent?: ParentInfo;
}

export interface ParentInfo {
    instanceId: string;
    executionId: string;
    taskScheduledId: number;
    name: string;
}

export interface OutboxItem {
    queue: 'control' | 'workItems';
    message: HubMessage;
    visibleAt?: string;
    /** Fire-and-forget: still sent when the episode ends the execution. */
    signal?: boolean;
}

export interface EpisodePlan {
    /** Events to append after OrchestratorStarted and the new event. */
    events: HistoryEvent[];
    outbox: OutboxItem[];
    customStatus?: unknown;
    completion?: { status: 'Completed' | 'Failed' | 'ContinuedAsNew'; output?: string; failure?: FailureDetails; continueInput?: string };
}

/** What the history says so far: the next free sequence number, actions already handled, scheduled tasks by number. */
export function scanHistory(history: HistoryEvent[]): { nextId: number; actionCount: number; scheduled: Map<number, HistoryEvent>; completed: Set<string> } {
    let nextId = 0;
    let actionCount = 0;
    const scheduled = new Map<number, HistoryEvent>();
    const completed = new Set<string>();
    for (const e of history) {
        switch (e.EventType) {
            case EventType.TaskScheduled:
            case EventType.TimerCreated:
            case EventType.SubOrchestrationInstanceCreated:
            case EventType.EventSent:
                scheduled.set(e.EventId, e);
                nextId = Math.max(nextId, e.EventId + 1);
                break;
            case EventType.OrchestratorCompleted:
                if (typeof e.ActionCount === 'number') actionCount = e.ActionCount;
                break;
            case EventType.TaskCompleted:
            case EventType.TaskFailed:
            case EventType.SubOrchestrationInstanceCompleted:
            case EventType.SubOrchestrationInstanceFailed:
                completed.add(`task:${e.TaskScheduledId as number}`);
                break;
            case EventType.TimerFired:
                completed.add(`timer:${e.TimerId as number}`);
                break;
        }
    }
    return { nextId, actionCount, scheduled, completed };
}

/** True when a completion message repeats one already in history (a redelivered or re-run task). */
export function isDuplicateCompletion(history: HistoryEvent[], e: HistoryEvent): boolean {
    const { completed, scheduled } = scanHistory(history);
    switch (e.EventType) {
        case EventType.TaskCompleted:
        case EventType.TaskFailed:
        case EventType.SubOrchestrationInstanceCompleted:
        case EventType.SubOrchestrationInstanceFailed:
            return completed.has(`task:${e.TaskScheduledId as number}`) || !scheduled.has(e.TaskScheduledId as number);
        case EventType.TimerFired:
            return completed.has(`timer:${e.TimerId as number}`) || !scheduled.has(e.TimerId as number);
        default:
            return false;
    }
}

function flatten(actions: unknown[]): Record<string, unknown>[] {
    // V3: one cumulative list (possibly wrapped in an outer array); V1: one list per yield.
    const out: Record<string, unknown>[] = [];
    const walk = (a: unknown) => {
        if (Array.isArray(a)) a.forEach(walk);
        else if (a && typeof a === 'object') out.push(a as Record<string, unknown>);
    };
    walk(actions);
    return out;
}

const jsonText = (v: unknown): string | undefined => (v === undefined ? undefined : JSON.stringify(v));
/** Activity inputs arrive pre-encoded when they are strings (durable-functions' processInput). */
const activityInputText = (v: unknown): string | undefined => (v === undefined ? undefined : typeof v === 'string' ? v : JSON.stringify(v));

export function retryDelayMs(o: RetryOptions, attempt: number): number {
    const coefficient = o.backoffCoefficient && o.backoffCoefficient > 0 ? o.backoffCoefficient : 1;
    let delay = o.firstRetryIntervalInMilliseconds * Math.pow(coefficient, attempt - 1);
    if (o.maxRetryIntervalInMilliseconds && o.maxRetryIntervalInMilliseconds > 0) delay = Math.min(delay, o.maxRetryIntervalInMilliseconds);
    return Math.max(0, delay);
}

export function entitySchedulerId(name: string, key: string): string {
    return `@${name.toLowerCase()}@${key}`;
}

/**
 * Plans the events and messages that follow from an episode: `newEvent` is the one
 * message this episode processed (already appended after OrchestratorStarted).
 */
export function planEpisode(history: HistoryEvent[], newEvent: HistoryEvent | undefined, outcome: OrchestratorOutcome, ctx: EpisodeContext): EpisodePlan {
    const scan = scanHistory(history);
    let nextId = scan.nextId;
    const events: HistoryEvent[] = [];
    const outbox: OutboxItem[] = [];
    const now = ctx.now;
    const nowMs = Date.parse(now);
    const take = () => nextId++;

    const scheduleActivity = (id: number, name: string, input: string | undefined, retry?: RetryInfo, actionIndex?: number) => {
        events.push(event(EventType.TaskScheduled, { Name: name, Input: input, ...(retry ? { Retry: retry } : {}), ...(actionIndex !== undefined ? { ActionIndex: actionIndex } : {}) }, now, id));
        outbox.push({
            queue: 'workItems',
            message: { id: randomUUID(), instanceId: ctx.instanceId, executionId: ctx.executionId, activity: { name, input, taskScheduledId: id } },
        });
    };
    const startSubOrchestration = (id: number, name: string, input: string | undefined, instanceId: string, version: string | undefined, retry?: RetryInfo, actionIndex?: number) => {
        events.push(event(EventType.SubOrchestrationInstanceCreated, { Name: name, InstanceId: instanceId, Input: input, Version: version, ...(retry ? { Retry: retry } : {}), ...(actionIndex !== undefined ? { ActionIndex: actionIndex } : {}) }, now, id));
        outbox.push({
            queue: 'control',
            message: {
                id: randomUUID(),
                instanceId,
                event: event(EventType.ExecutionStarted, {
                    Name: name,
                    Input: input,
                    Version: version,
                    OrchestrationInstance: { InstanceId: instanceId, ExecutionId: randomUUID().replace(/-/g, '') },
                    ParentInstance: {
                        Name: name,
                        OrchestrationInstance: { InstanceId: ctx.instanceId, ExecutionId: ctx.executionId },
                        TaskScheduleId: id,
                    },
                }, now),
            },
        });
    };
    const createTimer = (id: number, fireAt: string, extra: Record<string, unknown> = {}) => {
        events.push(event(EventType.TimerCreated, { FireAt: fireAt, ...extra }, now, id));
        if (extra.Canceled) return;
        outbox.push({
            queue: 'control',
            visibleAt: fireAt,
            message: { id: randomUUID(), instanceId: ctx.instanceId, executionId: ctx.executionId, fireAt, event: event(EventType.TimerFired, { TimerId: id, FireAt: fireAt }, fireAt) },
        });
    };
    const nextLongTimerPiece = (finalFireAt: string): string => {
        const remaining = Date.parse(finalFireAt) - nowMs;
        return remaining > ctx.timers.maximumShortTimerMs ? new Date(nowMs + ctx.timers.longRunningTimerIntervalMs).toISOString() : finalFireAt;
    };
    const sendEntityMessage = (id: number, action: Record<string, unknown>, signal: boolean) => {
        const target = String(action.instanceId);
        const requestId = randomUUID();
        const input = action.input === undefined ? undefined : JSON.stringify(action.input);
        const request = { op: action.operation, signal, input, id: requestId, parent: ctx.instanceId, parentExecution: ctx.executionId };
        events.push(event(EventType.EventSent, { Name: action.operation, InstanceId: target, Input: JSON.stringify(request) }, now, id));
        outbox.push({
            queue: 'control',
            signal,
            message: {
                id: randomUUID(),
                instanceId: target,
                event: event(EventType.EventRaised, { Name: 'op', Input: JSON.stringify(request) }, now),
            },
        });
    };

    // 1. Consequences of the new message that take sequence numbers: retries and long timers.
    if (newEvent) {
        const ref = newEvent.EventType === EventType.TimerFired ? (newEvent.TimerId as number) : (newEvent.TaskScheduledId as number | undefined);
        const origin = ref !== undefined ? scan.scheduled.get(ref) : undefined;
        const failed = newEvent.EventType === EventType.TaskFailed || newEvent.EventType === EventType.SubOrchestrationInstanceFailed;
        if (origin && failed && origin.Retry) {
            const retry = origin.Retry as RetryInfo;
            const last = retry.attempt >= retry.options.maxNumberOfAttempts;
            // After the last attempt the library still waits for one timer before it fails the task.
            const fireAt = new Date(nowMs + (last ? 0 : retryDelayMs(retry.options, retry.attempt))).toISOString();
            createTimer(take(), fireAt, { RetryTimer: retry });
        } else if (origin && newEvent.EventType === EventType.TimerFired && origin.RetryTimer) {
            const retry = origin.RetryTimer as RetryInfo;
            if (retry.attempt < retry.options.maxNumberOfAttempts) {
                const next: RetryInfo = { ...retry, attempt: retry.attempt + 1 };
                const id = take();
                const timedOut = retry.options.retryTimeoutInMilliseconds && retry.options.retryTimeoutInMilliseconds > 0
                    && nowMs - Date.parse(retry.firstAttemptAt) > retry.options.retryTimeoutInMilliseconds;
                if (timedOut) {
                    // Past the retry timeout: the attempt fails at once, without running.
                    const kind = retry.kind === 'activity' ? EventType.TaskScheduled : EventType.SubOrchestrationInstanceCreated;
                    events.push(event(kind, { Name: retry.name, Input: retry.input, Retry: next }, now, id));
                    outbox.push({
                        queue: 'control',
                        message: {
                            id: randomUUID(),
                            instanceId: ctx.instanceId,
                            executionId: ctx.executionId,
                            event: event(retry.kind === 'activity' ? EventType.TaskFailed : EventType.SubOrchestrationInstanceFailed, {
                                TaskScheduledId: id,
                                Reason: 'Retry timeout exceeded',
                                Details: `The retry timeout of ${retry.options.retryTimeoutInMilliseconds} ms has passed`,
                            }, now),
                        },
                    });
                } else if (retry.kind === 'activity') {
                    scheduleActivity(id, retry.name, retry.input, next);
                } else {
                    startSubOrchestration(id, retry.name, retry.input, retry.instanceId ?? `${ctx.instanceId}:${id}`, retry.version, next);
                }
            }
        } else if (origin && newEvent.EventType === EventType.TimerFired && origin.LongTimer) {
            const finalFireAt = String((origin.LongTimer as { finalFireAt: string }).finalFireAt);
            if (Date.parse(finalFireAt) > nowMs) createTimer(take(), nextLongTimerPiece(finalFireAt), { LongTimer: { finalFireAt } });
        }
    }

    // 2. The actions the orchestrator returned that are new since the last episode.
    const actions = outcome.error === undefined ? flatten(outcome.actions) : [];
    let continueAsNew: Record<string, unknown> | undefined;
    const handle = (a: Record<string, unknown>, index: number) => {
        switch (a.actionType) {
            case ActionType.CallActivity:
                scheduleActivity(take(), String(a.functionName), activityInputText(a.input), undefined, index);
                break;
            case ActionType.CallActivityWithRetry: {
                const retry: RetryInfo = { kind: 'activity', options: a.retryOptions as RetryOptions, attempt: 1, firstAttemptAt: now, name: String(a.functionName), input: activityInputText(a.input) };
                scheduleActivity(take(), retry.name, retry.input, retry, index);
                break;
            }
            case ActionType.CallSubOrchestrator:
            case ActionType.CallSubOrchestratorWithRetry: {
                const id = take();
                const instanceId = typeof a.instanceId === 'string' && a.instanceId ? a.instanceId : `${ctx.instanceId}:${id}`;
                const input = jsonText(a.input);
                const retry: RetryInfo | undefined = a.actionType === ActionType.CallSubOrchestratorWithRetry
                    ? { kind: 'subOrchestration', options: a.retryOptions as RetryOptions, attempt: 1, firstAttemptAt: now, name: String(a.functionName), input, instanceId, version: a.version as string | undefined }
                    : undefined;
                startSubOrchestration(id, String(a.functionName), input, instanceId, a.version as string | undefined, retry, index);
                break;
            }
            case ActionType.CreateTimer: {
                const finalFireAt = new Date(String(a.fireAt)).toISOString();
                const id = take();
                if (a.isCanceled) createTimer(id, finalFireAt, { Canceled: true, ActionIndex: index });
                else if (Date.parse(finalFireAt) - nowMs > ctx.timers.maximumShortTimerMs) createTimer(id, nextLongTimerPiece(finalFireAt), { LongTimer: { finalFireAt }, ActionIndex: index });
                else createTimer(id, finalFireAt, { ActionIndex: index });
                break;
            }
            case ActionType.WaitForExternalEvent:
                break;
            case ActionType.CallEntity:
                sendEntityMessage(take(), a, false);
                break;
            case ActionType.SignalEntity:
                sendEntityMessage(take(), a, true);
                break;
            case ActionType.CallHttp: {
                const id = take();
                const req = a.httpRequest as Record<string, unknown>;
                events.push(event(EventType.TaskScheduled, { Name: 'BuiltIn::HttpActivity', Input: JSON.stringify(req), ActionIndex: index }, now, id));
                outbox.push({
                    queue: 'workItems',
                    message: { id: randomUUID(), instanceId: ctx.instanceId, executionId: ctx.executionId, activity: { name: 'BuiltIn::HttpActivity', input: JSON.stringify(req), taskScheduledId: id } },
                });
                break;
            }
            case ActionType.ContinueAsNew:
                continueAsNew = a;
                break;
            case ActionType.WhenAll:
            case ActionType.WhenAny:
                for (const child of (a.compoundActions as Record<string, unknown>[]) ?? []) handle(child, index);
                break;
            default:
                throw new Error(`Unsupported orchestrator action type ${String(a.actionType)}`);
        }
    };
    actions.forEach((a, i) => {
        if (i >= scan.actionCount) handle(a, i);
        else if (a.actionType === ActionType.ContinueAsNew) continueAsNew = a;
    });

    events.push(event(EventType.OrchestratorCompleted, { ActionCount: Math.max(scan.actionCount, actions.length) }, now));

    const plan: EpisodePlan = { events, outbox, customStatus: outcome.customStatus };
    if (outcome.error !== undefined) {
        const failure: FailureDetails = outcome.failureDetails ?? { ErrorType: 'Error', ErrorMessage: outcome.error };
        plan.outbox = [];
        plan.events = [event(EventType.OrchestratorCompleted, { ActionCount: scan.actionCount }, now)];
        plan.completion = { status: 'Failed', output: JSON.stringify(outcome.error), failure };
    } else if (continueAsNew) {
        // Like activity inputs, a string input arrives JSON-encoded already.
        plan.completion = { status: 'ContinuedAsNew', continueInput: activityInputText(continueAsNew.input) };
    } else if (outcome.isDone) {
        plan.completion = { status: 'Completed', output: jsonText(outcome.output) ?? 'null' };
    }
    if (plan.completion) {
        // Work scheduled by the episode that ends the execution is dropped, as in the framework; signals still go.
        plan.outbox = plan.outbox.filter((o) => o.signal);
        const c = plan.completion;
        plan.events.push(event(EventType.ExecutionCompleted, {
            OrchestrationStatus: c.status,
            Result: c.status === 'Failed' ? outcome.error : c.output,
            ...(c.failure ? { FailureDetails: c.failure } : {}),
        }, now));
        if (ctx.parent && c.status !== 'ContinuedAsNew') plan.outbox.push(parentNotification(ctx.parent, c, now));
    }
    return plan;
}

export function parentNotification(parent: ParentInfo, c: NonNullable<EpisodePlan['completion']>, now: string): OutboxItem {
    const ev = c.status === 'Completed'
        ? event(EventType.SubOrchestrationInstanceCompleted, { TaskScheduledId: parent.taskScheduledId, Result: c.output ?? 'null' }, now)
        : event(EventType.SubOrchestrationInstanceFailed, {
            TaskScheduledId: parent.taskScheduledId,
            Reason: c.failure?.ErrorMessage ?? 'Sub-orchestration failed',
            Details: c.failure?.StackTrace ?? c.failure?.ErrorMessage ?? '',
            FailureDetails: c.failure,
        }, now);
    return { queue: 'control', message: { id: randomUUID(), instanceId: parent.instanceId, executionId: parent.executionId, event: ev } };
}
