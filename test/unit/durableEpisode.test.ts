import { event, EventType, ActionType } from '../../devhost/durable/history';
import { isDuplicateCompletion, planEpisode, retryDelayMs, scanHistory } from '../../devhost/durable/episode';
import { timeSpan } from '../../devhost/durable/backend';
import type { HistoryEvent } from '../../devhost/durable/taskHubStore';

const T0 = '2026-11-24T10:00:00.000Z';
const ctx = (now = T0) => ({ instanceId: 'i1', executionId: 'e1', now, timers: { maximumShortTimerMs: 2000, longRunningTimerIntervalMs: 1000 } });
const started: HistoryEvent[] = [event(EventType.OrchestratorStarted, {}, T0), event(EventType.ExecutionStarted, { Name: 'o' }, T0)];
const ids = (events: HistoryEvent[]) => events.filter((e) => e.EventId >= 0).map((e) => [e.EventType, e.EventId]);

describe('planning an orchestrator episode', () => {
    it('numbers new actions in list order, depth first through Task.all, and skips event waits', () => {
        const plan = planEpisode(started, undefined, {
            isDone: false,
            actions: [[
                { actionType: ActionType.CallActivity, functionName: 'a', input: '"x"' },
                { actionType: ActionType.WhenAll, compoundActions: [
                    { actionType: ActionType.WaitForExternalEvent, externalEventName: 'E' },
                    { actionType: ActionType.CreateTimer, fireAt: '2026-11-24T10:00:01.000Z', isCanceled: false },
                    { actionType: ActionType.CallSubOrchestrator, functionName: 'child', input: { n: 1 } },
                ] },
            ]],
        }, ctx());
        expect(ids(plan.events)).toEqual([[EventType.TaskScheduled, 0], [EventType.TimerCreated, 1], [EventType.SubOrchestrationInstanceCreated, 2]]);
        expect(plan.outbox.map((o) => o.queue)).toEqual(['workItems', 'control', 'control']);
        expect(plan.outbox[0].message.activity).toEqual({ name: 'a', input: '"x"', taskScheduledId: 0 });
        expect(plan.outbox[1].visibleAt).toBe('2026-11-24T10:00:01.000Z');
        expect(plan.outbox[2].message.instanceId).toBe('i1:2');
        expect(plan.events.at(-1)).toMatchObject({ EventType: EventType.OrchestratorCompleted, ActionCount: 2 });
    });

    it('does not schedule actions again on the next episode', () => {
        const first = planEpisode(started, undefined, { isDone: false, actions: [[{ actionType: ActionType.CallActivity, functionName: 'a' }]] }, ctx());
        const history = [...started, ...first.events];
        const completed = event(EventType.TaskCompleted, { TaskScheduledId: 0, Result: '1' }, T0);
        const second = planEpisode(history, completed, {
            isDone: false,
            actions: [[{ actionType: ActionType.CallActivity, functionName: 'a' }, { actionType: ActionType.CallActivity, functionName: 'b' }]],
        }, ctx());
        expect(ids(second.events)).toEqual([[EventType.TaskScheduled, 1]]);
        expect(second.outbox[0].message.activity?.name).toBe('b');
    });

    it('gives a failed retry attempt its timer first, then the next attempt when the timer fires', () => {
        const retry = { actionType: ActionType.CallActivityWithRetry, functionName: 'flaky', retryOptions: { firstRetryIntervalInMilliseconds: 500, maxNumberOfAttempts: 2 } };
        const first = planEpisode(started, undefined, { isDone: false, actions: [[retry]] }, ctx());
        let history = [...started, ...first.events];
        const failed = event(EventType.TaskFailed, { TaskScheduledId: 0, Reason: 'r', Details: 'd' }, T0);
        const afterFailure = planEpisode(history, failed, { isDone: false, actions: [[retry]] }, ctx());
        expect(ids(afterFailure.events)).toEqual([[EventType.TimerCreated, 1]]);
        expect(afterFailure.outbox[0].visibleAt).toBe('2026-11-24T10:00:00.500Z');
        history = [...history, failed, ...afterFailure.events];
        const fired = event(EventType.TimerFired, { TimerId: 1 }, T0);
        const afterTimer = planEpisode(history, fired, { isDone: false, actions: [[retry]] }, ctx('2026-11-24T10:00:00.600Z'));
        expect(ids(afterTimer.events)).toEqual([[EventType.TaskScheduled, 2]]);
        history = [...history, fired, ...afterTimer.events];
        // The last attempt fails: one more (immediate) timer, and no further attempt when it fires.
        const lastFailure = event(EventType.TaskFailed, { TaskScheduledId: 2, Reason: 'r', Details: 'd' }, T0);
        const trailing = planEpisode(history, lastFailure, { isDone: false, actions: [[retry]] }, ctx('2026-11-24T10:00:01.000Z'));
        expect(ids(trailing.events)).toEqual([[EventType.TimerCreated, 3]]);
        expect(trailing.outbox[0].visibleAt).toBe('2026-11-24T10:00:01.000Z');
        history = [...history, lastFailure, ...trailing.events];
        const end = planEpisode(history, event(EventType.TimerFired, { TimerId: 3 }, T0), { isDone: true, actions: [[retry]], output: 'gave up' }, ctx('2026-11-24T10:00:01.100Z'));
        expect(ids(end.events)).toEqual([]);
        expect(end.completion).toEqual({ status: 'Completed', output: '"gave up"' });
    });

    it('splits a long timer into pieces and stops when the final time is reached', () => {
        const action = { actionType: ActionType.CreateTimer, fireAt: '2026-11-24T10:00:03.500Z', isCanceled: false };
        const first = planEpisode(started, undefined, { isDone: false, actions: [[action]] }, ctx());
        expect(first.outbox[0].visibleAt).toBe('2026-11-24T10:00:01.000Z');
        let history = [...started, ...first.events];
        const piece = (id: number, at: string) => {
            const fired = event(EventType.TimerFired, { TimerId: id }, at);
            const plan = planEpisode(history, fired, { isDone: false, actions: [[action]] }, ctx(at));
            history = [...history, fired, ...plan.events];
            return plan.outbox.map((o) => o.visibleAt);
        };
        // 2.5 s left is more than the 2 s maximum: another 1 s piece; then 1.5 s left: the rest at once.
        expect(piece(0, '2026-11-24T10:00:01.000Z')).toEqual(['2026-11-24T10:00:02.000Z']);
        expect(piece(1, '2026-11-24T10:00:02.000Z')).toEqual(['2026-11-24T10:00:03.500Z']);
        expect(piece(2, '2026-11-24T10:00:03.500Z')).toEqual([]);
    });

    it('records a cancelled timer without sending it', () => {
        const plan = planEpisode(started, undefined, { isDone: false, actions: [[{ actionType: ActionType.CreateTimer, fireAt: T0, isCanceled: true }]] }, ctx());
        expect(ids(plan.events)).toEqual([[EventType.TimerCreated, 0]]);
        expect(plan.outbox).toEqual([]);
    });

    it('on completion drops work scheduled in the same episode but still sends entity signals, and notifies the parent', () => {
        const plan = planEpisode(started, undefined, {
            isDone: true,
            output: 7,
            actions: [[
                { actionType: ActionType.SignalEntity, instanceId: '@counter@k', operation: 'add', input: 1 },
                { actionType: ActionType.CallActivity, functionName: 'late' },
            ]],
        }, { ...ctx(), parent: { instanceId: 'p', executionId: 'pe', taskScheduledId: 4, name: 'o' } });
        expect(plan.completion).toEqual({ status: 'Completed', output: '7' });
        expect(plan.outbox.map((o) => o.message.instanceId)).toEqual(['@counter@k', 'p']);
        expect(plan.outbox[1].message.event).toMatchObject({ EventType: EventType.SubOrchestrationInstanceCompleted, TaskScheduledId: 4, Result: '7' });
    });

    it('turns an orchestrator failure into a Failed completion with no other effects', () => {
        const plan = planEpisode(started, undefined, { isDone: false, actions: [[{ actionType: ActionType.CallActivity, functionName: 'a' }]], error: 'boom' }, ctx());
        expect(plan.outbox).toEqual([]);
        expect(plan.completion).toMatchObject({ status: 'Failed', output: '"boom"', failure: { ErrorMessage: 'boom' } });
    });

    it('recognises completions that were already applied', () => {
        const first = planEpisode(started, undefined, { isDone: false, actions: [[{ actionType: ActionType.CallActivity, functionName: 'a' }]] }, ctx());
        const done = event(EventType.TaskCompleted, { TaskScheduledId: 0, Result: '1' }, T0);
        const history = [...started, ...first.events, done];
        expect(isDuplicateCompletion(history, done)).toBe(true);
        expect(isDuplicateCompletion(history, event(EventType.TaskCompleted, { TaskScheduledId: 9, Result: '1' }, T0))).toBe(true);
        expect(isDuplicateCompletion([...started, ...first.events], done)).toBe(false);
        expect(scanHistory(history).nextId).toBe(1);
    });
});

describe('retry and time helpers', () => {
    it('backs off exponentially up to the maximum interval', () => {
        const o = { firstRetryIntervalInMilliseconds: 100, maxNumberOfAttempts: 5, backoffCoefficient: 2, maxRetryIntervalInMilliseconds: 300 };
        expect([1, 2, 3, 4].map((a) => retryDelayMs(o, a))).toEqual([100, 200, 300, 300]);
    });

    it('writes .NET TimeSpans', () => {
        expect(timeSpan(6 * 86_400_000)).toBe('6.00:00:00');
        expect(timeSpan(1500)).toBe('00:00:01.500');
    });
});
