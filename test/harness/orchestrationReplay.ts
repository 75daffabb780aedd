import { InvocationContext } from '@azure/functions';
import type { OrchestrationHandler } from 'durable-functions';
import { planEpisode, type OrchestratorOutcome, type OutboxItem } from '../../devhost/durable/episode';
import { event, EventType } from '../../devhost/durable/history';
import type { HistoryEvent } from '../../devhost/durable/taskHubStore';

// The library's own orchestrator runner (what `df.app.orchestration` wraps a handler in); durable-js tests it the same way. It ships no types.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Orchestrator } = require('durable-functions/lib/src/orchestrations/Orchestrator') as {
    Orchestrator: new (fn: OrchestrationHandler) => { listen(): (trigger: unknown, context: unknown) => Promise<unknown> };
};

export interface ScheduledActivity {
    name: string;
    input: unknown;
    id: number;
}

export interface ScheduledTimer {
    fireAt: string;
    id: number;
    /** The TimerFired event the backend would deliver. */
    fired: HistoryEvent;
}

/**
 * An orchestrator replayed against a made-up history, without a host: each `deliver` is one
 * episode, as the devhost's Durable backend runs it (the history so far replayed, then the new
 * event), with the backend's own episode planning numbering what the orchestrator schedules.
 * Tests answer activities, raise events and fire timers, and read what it does next.
 */
export class OrchestrationReplay {
    readonly history: HistoryEvent[] = [];
    /** The activities the last episode scheduled. */
    activities: ScheduledActivity[] = [];
    /** Every timer scheduled so far, oldest first (a timer an orchestrator gave up on still fires, and is ignored). */
    readonly timers: ScheduledTimer[] = [];
    outcome: OrchestratorOutcome = { actions: [], isDone: false };
    #clock: number;

    constructor(
        private readonly handler: OrchestrationHandler,
        private readonly instanceId: string,
        private readonly input: unknown,
        start = Date.parse('2027-01-01T00:00:00.000Z'),
    ) {
        this.#clock = start;
    }

    get now(): string {
        return new Date(this.#clock).toISOString();
    }

    /** Moves the orchestration's clock (the next episode's OrchestratorStarted time). */
    advanceTo(iso: string): void {
        this.#clock = Math.max(this.#clock, Date.parse(iso));
    }

    start(): Promise<OrchestratorOutcome> {
        return this.deliver(event(EventType.ExecutionStarted, { Name: 'replayed', Input: JSON.stringify(this.input) }, this.now));
    }

    complete(activity: ScheduledActivity, result: unknown): Promise<OrchestratorOutcome> {
        return this.deliver(event(EventType.TaskCompleted, { TaskScheduledId: activity.id, Result: JSON.stringify(result) }, this.now));
    }

    raise(name: string, input: unknown): Promise<OrchestratorOutcome> {
        return this.deliver(event(EventType.EventRaised, { Name: name, Input: JSON.stringify(input) }, this.now));
    }

    /** Fires the newest timer set for that time (the one the orchestrator waits on now). */
    fire(fireAt: string): Promise<OrchestratorOutcome> {
        const timer = this.timers.filter((t) => t.fireAt === fireAt).at(-1);
        if (!timer) throw new Error(`no timer for ${fireAt}; timers: [${this.timers.map((t) => t.fireAt).join(', ')}]`);
        this.advanceTo(fireAt);
        return this.deliver({ ...timer.fired, Timestamp: this.now });
    }

    /** One episode: the orchestrator replays the history with `arriving` new, and what it schedules is appended. */
    async deliver(arriving: HistoryEvent): Promise<OrchestratorOutcome> {
        this.#clock += 1;
        const started = event(EventType.OrchestratorStarted, {}, this.now);
        const fresh = { ...arriving, IsPlayed: false };
        const replay = [...this.history.map((e) => ({ ...e, IsPlayed: true })), started, fresh];
        const trigger = {
            history: replay,
            input: this.input,
            instanceId: this.instanceId,
            isReplaying: this.history.length > 0,
            upperSchemaVersion: 1,
            upperSchemaVersionNew: 2,
            maximumShortTimerDuration: '6.00:00:00',
            longRunningTimerIntervalDuration: '3.00:00:00',
            defaultHttpAsyncRequestSleepTimeMillseconds: 30000,
        };
        const context = new InvocationContext({ functionName: 'replayed', invocationId: `replay-${this.history.length}`, logHandler: () => undefined });
        this.outcome = (await new Orchestrator(this.handler).listen()(trigger, context)) as OrchestratorOutcome;
        const plan = planEpisode(this.history, fresh, this.outcome, {
            instanceId: this.instanceId,
            executionId: 'replay',
            now: this.now,
            timers: { maximumShortTimerMs: 6 * 86_400_000, longRunningTimerIntervalMs: 3 * 86_400_000 },
        });
        this.history.push(started, fresh, ...plan.events);
        this.activities = plan.outbox.flatMap((o: OutboxItem) => (o.message.activity ? [{ name: o.message.activity.name, input: JSON.parse(String(o.message.activity.input)), id: o.message.activity.taskScheduledId }] : []));
        this.timers.push(
            ...plan.outbox.flatMap((o: OutboxItem) =>
                o.message.event?.EventType === EventType.TimerFired ? [{ fireAt: String(o.message.event.FireAt), id: Number(o.message.event.TimerId), fired: o.message.event }] : [],
            ),
        );
        return this.outcome;
    }

    /** The one activity the last episode scheduled, checked by name. */
    only(name: string): ScheduledActivity {
        const names = this.activities.map((a) => a.name);
        if (names.length !== 1 || names[0] !== name) throw new Error(`expected exactly ${name} to be scheduled, got [${names.join(', ')}]`);
        return this.activities[0]!;
    }
}
