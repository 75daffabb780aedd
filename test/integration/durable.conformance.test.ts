import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fixture, removeDir, RunningDevhost, startDevhost, tempDir, waitFor } from '../harness/devhost';

/**
 * One small orchestration per Durable feature (test/fixtures/durable-app), driven
 * through the unmodified durable-functions client inside the app.
 */
describe('Durable Functions in the devhost', () => {
    let host: RunningDevhost;
    let api: string;
    const out = tempDir();

    beforeAll(async () => {
        host = await startDevhost(['--app', fixture('durable-app'), '--name', 'durable', '--set', `FIXTURE_OUT=${out}`], { storage: true });
        api = `${host.origin('durable')}/api`;
    });
    afterAll(async () => {
        await host?.stop();
        removeDir(out);
        removeDir(host?.stateDir);
    });

    const post = (p: string, body?: unknown) =>
        fetch(`${api}${p}`, { method: 'POST', body: body === undefined ? undefined : JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    const run = async (name: string, input?: unknown) => {
        const res = await post(`/run/${name}`, input);
        return { status: res.status, body: await res.json() };
    };
    const start = async (name: string, input?: unknown, instanceId?: string): Promise<string> => {
        const res = await post(`/start/${name}${instanceId ? `/${instanceId}` : ''}`, input);
        expect(res.status).toBe(202);
        return (await res.json()).id;
    };
    const status = async (id: string, showHistory = false) => (await (await post(`/manage/status/${id}`, { showHistory, showHistoryOutput: showHistory })).json());
    const until = async (id: string, statuses: string[]) => waitFor(async () => {
        const s = await status(id);
        return statuses.includes(s.runtimeStatus) ? s : undefined;
    }, 30000, 100);
    const eventTypes = (s: { history: { EventType: string }[] }) => s.history.map((h) => h.EventType);

    it('counts what the instance did (GET /dev/counts): requests served, function executions by trigger, Durable work items, and its calls by service', async () => {
        type Counts = { apps: Record<string, { served: number; invocations: Record<string, number>; durable: { episodes: number; activities: number; entityOperations: number }; calls: Record<string, { reads: number; writes: number }> }> };
        const counts = async () => ((await (await fetch(`${host.consoleUrl}/dev/counts`)).json()) as Counts).apps.durable;
        const before = await counts();
        const id = await start('sequence');
        await until(id, ['Completed']);
        const after = await counts();
        // The start and at least one status poll were served; three activities ran, in at least four episodes.
        expect(after.served - before.served).toBeGreaterThanOrEqual(2);
        expect(after.durable.activities - before.durable.activities).toBe(3);
        expect(after.durable.episodes - before.durable.episodes).toBeGreaterThanOrEqual(4);
        // Each activity and each episode is a function execution (what Azure bills), counted by its trigger.
        const ran = (trigger: string) => (after.invocations[trigger] ?? 0) - (before.invocations[trigger] ?? 0);
        expect(ran('activityTrigger')).toBe(3);
        expect(ran('orchestrationTrigger')).toBe(after.durable.episodes - before.durable.episodes);
        // The task hub lives in the devhost's storage: its queue and table traffic is named after the service.
        for (const service of ['queue', 'table']) {
            const [b, a] = [before.calls[service] ?? { reads: 0, writes: 0 }, after.calls[service]!];
            expect(a.reads + a.writes).toBeGreaterThan(b.reads + b.writes);
        }
        expect(Object.keys(after.calls).every((k) => !/^(localhost|127\.0\.0\.1):/.test(k))).toBe(true);
    });

    it('runs a sequence of activities and records its history in order', async () => {
        const id = await start('sequence');
        const done = await until(id, ['Completed']);
        expect(done.output).toEqual(['Hello Tokyo!', 'Hello Seattle!', 'Hello London!']);
        const s = await status(id, true);
        expect(eventTypes(s)).toEqual(['ExecutionStarted', 'TaskCompleted', 'TaskCompleted', 'TaskCompleted', 'ExecutionCompleted']);
        expect(s.history[1]).toMatchObject({ FunctionName: 'sayHello', Result: 'Hello Tokyo!' });
        expect(s.history[4]).toMatchObject({ OrchestrationStatus: 'Completed' });
    });

    it('passes inputs to orchestrations and activities with their JSON types', async () => {
        const { status: code, body } = await run('inputs', { a: 1 });
        expect(code).toBe(200);
        expect(body).toEqual({
            input: { a: 1 },
            asString: { got: 'plain string', type: 'string' },
            asObject: { got: { n: 1 }, type: 'object' },
            asNumber: { got: 42, type: 'number' },
        });
    });

    it('fans out and in with Task.all', async () => {
        expect((await run('fanOut', 25)).body).toBe(25);
    });

    it('retries an activity with back-off until it succeeds', async () => {
        const id = await start('retry', { key: 'ok', succeedOn: 3, attempts: 3 });
        const done = await until(id, ['Completed']);
        expect(done.output).toBe('succeeded on attempt 3');
        const s = await status(id, true);
        // Two failures, each followed by its retry timer, then the success.
        expect(eventTypes(s)).toEqual([
            'ExecutionStarted', 'TaskFailed', 'TimerCreated', 'TimerFired', 'TaskFailed', 'TimerCreated', 'TimerFired', 'TaskCompleted', 'ExecutionCompleted',
        ]);
        const fired = s.history.filter((h: { EventType: string }) => h.EventType === 'TimerFired');
        const failed = s.history.filter((h: { EventType: string }) => h.EventType === 'TaskFailed');
        expect(Date.parse(fired[0].Timestamp) - Date.parse(failed[0].Timestamp)).toBeGreaterThanOrEqual(150);
    });

    it('fails the task after the last attempt (with the trailing timer) and lets the orchestrator catch it', async () => {
        const id = await start('retry', { key: 'never', succeedOn: 99, attempts: 2 });
        const done = await until(id, ['Completed']);
        expect(done.output).toBe('gave up: Error: flaky attempt 2 failed');
        expect(eventTypes(await status(id, true))).toEqual([
            'ExecutionStarted', 'TaskFailed', 'TimerCreated', 'TimerFired', 'TaskFailed', 'TimerCreated', 'TimerFired', 'ExecutionCompleted',
        ]);
        expect(readFileSync(path.join(out, 'flaky-never.count'), 'utf8')).toBe('2');
    });

    it('reports an activity failure with its details and an orchestrator failure as Failed', async () => {
        const id = await start('failing');
        const done = await until(id, ['Failed']);
        expect(done.output).toBe('orchestrator gave up');
        expect(done.customStatus).toEqual({ caught: 'CustomError: the activity broke', type: 'CustomError' });
        const s = await status(id, true);
        expect(s.history.find((h: { EventType: string }) => h.EventType === 'TaskFailed')).toMatchObject({
            FunctionName: 'fail',
            FailureDetails: { ErrorType: 'CustomError', ErrorMessage: 'the activity broke' },
        });
        expect(s.history.at(-1)).toMatchObject({ EventType: 'ExecutionCompleted', OrchestrationStatus: 'Failed' });
    });

    it('runs sub-orchestrations with generated and explicit ids, and with retry', async () => {
        const id = await start('parent');
        const done = await until(id, ['Completed']);
        expect(done.output).toEqual({
            a: { greeting: 'Hello one!', instanceId: `${id}:0`, parent: id },
            b: { greeting: 'Hello two!', instanceId: `${id}-explicit-child`, parent: id },
            failure: 'Error: child bad failed',
        });
        expect((await status(`${id}-explicit-child`)).runtimeStatus).toBe('Completed');
        expect(eventTypes(await status(id, true))).toEqual([
            'ExecutionStarted',
            'SubOrchestrationInstanceCompleted',
            'SubOrchestrationInstanceCompleted',
            'SubOrchestrationInstanceFailed',
            'TimerCreated',
            'TimerFired',
            'SubOrchestrationInstanceFailed',
            'TimerCreated',
            'TimerFired',
            'ExecutionCompleted',
        ]);
    });

    it('fires a durable timer no earlier than asked', async () => {
        const { body } = await run('timer');
        expect(body).toBeGreaterThanOrEqual(1500);
    });

    it('splits a timer longer than the maximum short timer into pieces and fires it at the end', async () => {
        const id = await start('longTimer');
        const done = await until(id, ['Completed']);
        expect(done.output).toBeGreaterThanOrEqual(4500);
        // maximumShortTimerDuration 2 s, interval 1 s: 1 s pieces until 2 s or less remain, then the rest.
        // How many pieces depends on when each episode runs (as in the library), so count at least two
        // and check that the last one fired at the requested time.
        const history = (await status(id, true)).history;
        const fired = history.filter((h: { EventType: string }) => h.EventType === 'TimerFired');
        const created = history.filter((h: { EventType: string }) => h.EventType === 'TimerCreated');
        expect(fired.length).toBeGreaterThanOrEqual(2);
        expect(created.length).toBe(fired.length);
        const startedAt = Date.parse(history[0].Timestamp);
        expect(Date.parse(fired.at(-1).FireAt) - startedAt).toBeGreaterThanOrEqual(4500);
        expect(fired.slice(0, -1).every((f: { FireAt: string }) => Date.parse(f.FireAt) < Date.parse(fired.at(-1).FireAt))).toBe(true);
    });

    it('waits for an external event and cancels the timer it raced', async () => {
        const id = await start('approval', { timeoutMs: 60000 });
        await until(id, ['Running']);
        expect((await post(`/manage/raise/${id}`, { name: 'Decision', data: { approved: true } })).status).toBe(202);
        const done = await until(id, ['Completed']);
        expect(done.output).toEqual({ decided: { approved: true } });
        // The timer was created, lost the race and was cancelled: it never fires.
        expect(eventTypes(await status(id, true))).toEqual(['ExecutionStarted', 'TimerCreated', 'EventRaised', 'ExecutionCompleted']);
    });

    it('lets the timer win when no event comes', async () => {
        expect((await run('approval', { timeoutMs: 500 })).body).toEqual({ decided: 'expired' });
    });

    it('buffers events that arrive before they are awaited, in order', async () => {
        const id = await start('twoEvents');
        await until(id, ['Running']);
        await post(`/manage/raise/${id}`, { name: 'Step', data: 1 });
        await post(`/manage/raise/${id}`, { name: 'Step', data: 2 });
        expect((await until(id, ['Completed'])).output).toEqual([1, 2]);
    });

    it('continues as new with a fresh history, keeping the custom status', async () => {
        const id = await start('counter', 0);
        const done = await until(id, ['Completed']);
        expect(done.output).toBe('finished at 3');
        expect(done.customStatus).toEqual({ generation: 2 });
        expect(eventTypes(await status(id, true))).toEqual(['ExecutionStarted', 'ExecutionCompleted']);
    });

    it('gives the same newGuid and currentUtcDateTime on every replay', async () => {
        const id = await start('deterministic');
        const done = await until(id, ['Completed']);
        const { g1, g2, again, t1, t2 } = done.output;
        expect(new Set([g1, g2, again]).size).toBe(3);
        expect(Date.parse(t2)).toBeGreaterThan(Date.parse(t1));
        // The first episode's values, recomputed on the two later replays, did not change:
        // the output was built on the last replay and still carries them.
        expect(g1).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        const s = await status(id, true);
        expect(Date.parse(s.history[0].Timestamp)).toBeLessThanOrEqual(Date.parse(t1));
    });

    it('calls and signals an entity from an orchestration and from the client', async () => {
        const key = `k-${Date.now()}`;
        const { body } = await run('useEntity', key);
        expect(body).toEqual({ value: 15, read: 15 });
        expect((await post('/manage/signal', { entity: 'Counter', key, op: 'add', data: 7 })).status).toBe(202);
        const state = await waitFor(async () => {
            const r = await (await post('/manage/readEntity', { entity: 'Counter', key })).json();
            return r.entityState === 22 ? r : undefined;
        });
        expect(state).toEqual({ entityExists: true, entityState: 22 });
        const missing = await (await post('/manage/readEntity', { entity: 'Counter', key: 'nobody' })).json();
        expect(missing).toEqual({ entityExists: false });
    });

    it('terminates, suspends and resumes an instance', async () => {
        const id = await start('waitForever');
        await until(id, ['Running']);
        await post(`/manage/suspend/${id}`, { reason: 'hold on' });
        await until(id, ['Suspended']);
        await post(`/manage/raise/${id}`, { name: 'ignored', data: 1 });
        await post(`/manage/resume/${id}`, { reason: 'go on' });
        await until(id, ['Running']);
        // The event held while suspended is delivered after the resume.
        await waitFor(async () => eventTypes(await status(id, true)).includes('EventRaised'), 15000, 100);
        await post(`/manage/terminate/${id}`, { reason: 'enough' });
        const done = await until(id, ['Terminated']);
        expect(done.output).toBe('enough');
        expect(eventTypes(await status(id, true))).toEqual([
            'ExecutionStarted', 'ExecutionSuspended', 'ExecutionResumed', 'EventRaised', 'ExecutionTerminated', 'ExecutionCompleted',
        ]);
        // A finished instance: raising an event is accepted and ignored (410 inside the client).
        expect((await post(`/manage/raise/${id}`, { name: 'late', data: 1 })).status).toBe(202);
    });

    it('honours a caller-given instance id, refuses to start it twice while running, and purges it when done', async () => {
        const id = `given-${Date.now()}`;
        expect(await start('waitForever', undefined, id)).toBe(id);
        const again = await post(`/start/waitForever/${id}`);
        expect(again.status).toBe(500);
        const direct = await fetch(`${host.origin('durable')}/runtime/webhooks/durabletask/orchestrators/waitForever/${id}`, { method: 'POST' });
        expect(direct.status).toBe(409);
        await post(`/manage/terminate/${id}`, { reason: 'done' });
        await until(id, ['Terminated']);
        expect(await (await post(`/manage/purge/${id}`)).json()).toEqual({ instancesDeleted: 1 });
        const gone = await fetch(`${host.origin('durable')}/runtime/webhooks/durabletask/instances/${id}`);
        expect(gone.status).toBe(404);
    });

    it('lists instances by status, page by page', async () => {
        const ids = await Promise.all([1, 2, 3].map(() => start('waitForever')));
        for (const id of ids) await until(id, ['Running']);
        const running = await (await post('/manage/list', { runtimeStatus: ['Running'] })).json();
        const runningIds = running.map((s: { instanceId: string }) => s.instanceId);
        for (const id of ids) expect(runningIds).toContain(id);
        expect(running.every((s: { runtimeStatus: string }) => s.runtimeStatus === 'Running')).toBe(true);
        const page = await fetch(`${host.origin('durable')}/runtime/webhooks/durabletask/instances/?top=2`);
        expect((await page.json()).length).toBe(2);
        expect(page.headers.get('x-ms-continuation-token')).toBe('2');
        const all = await (await post('/manage/all')).json();
        expect(all.length).toBeGreaterThan(2);
        for (const id of ids) await post(`/manage/terminate/${id}`, { reason: 'cleanup' });
    });

    it('answers the rewind route with 501', async () => {
        const res = await fetch(`${host.origin('durable')}/runtime/webhooks/durabletask/instances/x/rewind`, { method: 'POST' });
        expect(res.status).toBe(501);
    });
});
