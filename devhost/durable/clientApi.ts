import type { SystemRequest, SystemResponse, SystemRoute } from '../worker/extension';
import { ConflictError, DurableBackend, NotFoundError, OperationResult } from './backend';
import { EventType, EventTypeName } from './history';
import type { HistoryEvent, InstanceRecord, RuntimeStatus } from './taskHubStore';

export const WEBHOOK_BASE = '/runtime/webhooks/durabletask';

/**
 * The management URLs of an instance, as the extension builds them. With `pathId`
 * `INSTANCEID` and `id` `INSTANCEID` they are the templates of the durableClient binding.
 */
export function managementUrlsFor(origin: string, hub: string, pathId: string, id: string) {
    const q = `taskHub=${encodeURIComponent(hub)}&connection=Storage&code=devhost`;
    const i = `${origin}${WEBHOOK_BASE}/instances/${pathId}`;
    return {
        id,
        statusQueryGetUri: `${i}?${q}`,
        sendEventPostUri: `${i}/raiseEvent/{eventName}?${q}`,
        terminatePostUri: `${i}/terminate?reason={text}&${q}`,
        rewindPostUri: `${i}/rewind?reason={text}&${q}`,
        purgeHistoryDeleteUri: `${i}?${q}`,
        restartPostUri: `${i}/restart?${q}`,
        suspendPostUri: `${i}/suspend?reason={text}&${q}`,
        resumePostUri: `${i}/resume?reason={text}&${q}`,
    };
}
const PAGE_SIZE = 100;

/**
 * The Durable extension's HTTP webhook API (the routes `df.getClient(context)` calls),
 * served on the app instance's own port under /runtime/webhooks/durabletask.
 */
export function clientRoutes(backend: DurableBackend, hub: () => string, origin: () => string): SystemRoute[] {
    const base = WEBHOOK_BASE.replace(/\//g, '\\/');
    const route = (method: string, path: string, handler: (req: SystemRequest) => Promise<SystemResponse>): SystemRoute => ({
        method,
        pattern: new RegExp(`^${base}${path}$`),
        handler: async (req) => {
            try {
                return await handler(req);
            } catch (err) {
                if (err instanceof ConflictError) return { status: 409, body: { message: err.message } };
                if (err instanceof NotFoundError) return { status: 400, body: { message: err.message } };
                throw err;
            }
        },
    });
    const managementUrls = (id: string) => managementUrlsFor(origin(), hub(), encodeURIComponent(id), id);
    const operation = (result: OperationResult): SystemResponse =>
        result === 'accepted' ? { status: 202 } : result === 'gone' ? { status: 410 } : { status: 404, body: { message: 'No instance with that ID was found' } };
    const bodyJson = (req: SystemRequest): string | undefined => (req.body.length === 0 ? undefined : req.body.toString('utf8'));

    return [
        route('POST', '/orchestrators/([^/]+)(?:/([^/]+))?', async (req) => {
            const [fn, instanceId] = req.params;
            const id = await backend.startNew(fn, instanceId, bodyJson(req), req.url.searchParams.get('version') ?? undefined);
            const urls = managementUrls(id);
            return { status: 202, headers: { location: urls.statusQueryGetUri, 'retry-after': '10' }, body: urls };
        }),
        route('POST', '/instances/([^/]+)/raiseEvent/([^/]+)', async (req) => operation(await backend.raiseEvent(req.params[0], req.params[1], bodyJson(req)))),
        route('POST', '/instances/([^/]+)/terminate', async (req) => operation(await backend.terminate(req.params[0], req.url.searchParams.get('reason') ?? undefined))),
        route('POST', '/instances/([^/]+)/suspend', async (req) => operation(await backend.suspend(req.params[0], req.url.searchParams.get('reason') ?? undefined))),
        route('POST', '/instances/([^/]+)/resume', async (req) => operation(await backend.resume(req.params[0], req.url.searchParams.get('reason') ?? undefined))),
        route('POST', '/instances/([^/]+)/rewind', async () => ({ status: 501, body: 'Rewind is not supported by the devhost backend' })),
        route('GET', '/instances/([^/]+)', async (req) => {
            const inst = await backend.getInstance(req.params[0]);
            if (!inst) return { status: 404, body: { message: `No instance with ID '${req.params[0]}' was found` } };
            const q = req.url.searchParams;
            const showInput = q.get('showInput') !== 'false';
            const body = statusPayload(inst, showInput) as Record<string, unknown>;
            if (q.get('showHistory') === 'true') {
                const history = presentHistory(await backend.getHistory(inst), q.get('showHistoryOutput') === 'true', showInput);
                body.historyEvents = history;
                body.history = history;
            }
            const running = ['Running', 'Pending', 'ContinuedAsNew', 'Suspended'].includes(inst.runtimeStatus);
            return running ? { status: 202, headers: { location: req.url.toString(), 'retry-after': '5' }, body } : { status: 200, body };
        }),
        route('GET', '/instances/?', async (req) => {
            const q = req.url.searchParams;
            const from = q.get('createdTimeFrom');
            const to = q.get('createdTimeTo');
            const statuses = q.get('runtimeStatus')?.split(',').filter(Boolean) as RuntimeStatus[] | undefined;
            const prefix = q.get('instanceIdPrefix');
            const top = Number(q.get('top')) || PAGE_SIZE;
            const all: InstanceRecord[] = [];
            for await (const inst of backend.listInstances()) {
                if (inst.instanceId.startsWith('@')) continue; // entities are not orchestrations
                if (from && inst.createdTime < new Date(from).toISOString()) continue;
                if (to && inst.createdTime > new Date(to).toISOString()) continue;
                if (statuses && statuses.length > 0 && !statuses.includes(inst.runtimeStatus)) continue;
                if (prefix && !inst.instanceId.startsWith(prefix)) continue;
                all.push(inst);
            }
            all.sort((a, b) => (a.createdTime === b.createdTime ? a.instanceId.localeCompare(b.instanceId) : a.createdTime.localeCompare(b.createdTime)));
            const start = Number(req.headers['x-ms-continuation-token'] ?? 0) || 0;
            const page = all.slice(start, start + top);
            const headers: Record<string, string> = {};
            if (start + top < all.length) headers['x-ms-continuation-token'] = String(start + top);
            return { status: 200, headers, body: page.map((i) => statusPayload(i, q.get('showInput') !== 'false')) };
        }),
        route('DELETE', '/instances/([^/]+)', async (req) => {
            const deleted = await backend.purge(req.params[0]);
            return deleted ? { status: 200, body: { instancesDeleted: 1 } } : { status: 404, body: { message: 'No purgeable instance with that ID' } };
        }),
        route('DELETE', '/instances/?', async (req) => {
            const q = req.url.searchParams;
            const from = q.get('createdTimeFrom');
            const to = q.get('createdTimeTo') ?? new Date().toISOString();
            const statuses = q.get('runtimeStatus')?.split(',').filter(Boolean);
            let n = 0;
            const victims: string[] = [];
            for await (const inst of backend.listInstances()) {
                if (inst.instanceId.startsWith('@')) continue;
                if (from && inst.createdTime < new Date(from).toISOString()) continue;
                if (inst.createdTime > new Date(to).toISOString()) continue;
                if (statuses && statuses.length > 0 && !statuses.includes(inst.runtimeStatus)) continue;
                victims.push(inst.instanceId);
            }
            for (const id of victims) if (await backend.purge(id)) n++;
            return n > 0 ? { status: 200, body: { instancesDeleted: n } } : { status: 404, body: { message: 'No instances matched' } };
        }),
        route('POST', '/entities/([^/]+)/([^/]+)', async (req) => {
            await backend.signalEntity(req.params[0], req.params[1], req.url.searchParams.get('op') ?? '', bodyJson(req));
            return { status: 202 };
        }),
        route('GET', '/entities/([^/]+)/([^/]+)', async (req) => {
            const entity = await backend.readEntity(req.params[0], req.params[1]);
            if (!entity.exists) return { status: 404 };
            return { status: 200, headers: { 'content-type': 'application/json' }, body: entity.state ?? 'null' };
        }),
    ];
}

const parse = (text: string | undefined): unknown => (text === undefined || text === null ? null : JSON.parse(text));

function statusPayload(inst: InstanceRecord, showInput: boolean): Record<string, unknown> {
    return {
        name: inst.name,
        instanceId: inst.instanceId,
        runtimeStatus: inst.runtimeStatus,
        input: showInput ? parse(inst.input) : null,
        customStatus: parse(inst.customStatus),
        output: parse(inst.output),
        createdTime: inst.createdTime,
        lastUpdatedTime: inst.lastUpdatedTime,
    };
}

/** History as the extension presents it: named event types, scheduling merged into completions, no replay bookkeeping. */
function presentHistory(events: HistoryEvent[], showOutput: boolean, showInput: boolean): Record<string, unknown>[] {
    const scheduled = new Map<number, HistoryEvent>();
    const out: Record<string, unknown>[] = [];
    for (const e of events) {
        if (e.EventType === EventType.OrchestratorStarted || e.EventType === EventType.OrchestratorCompleted) continue;
        if (e.EventType === EventType.TaskScheduled || e.EventType === EventType.SubOrchestrationInstanceCreated) {
            scheduled.set(e.EventId, e);
            continue;
        }
        const { EventType: type, EventId: _id, IsPlayed: _p, Timestamp, Retry: _r, RetryTimer: _rt, LongTimer: _lt, ActionIndex: _ai, ActionCount: _ac, ...rest } = e;
        const entry: Record<string, unknown> = { EventType: EventTypeName[type] ?? String(type), Timestamp, ...rest };
        if (type === EventType.ExecutionStarted) {
            entry.FunctionName = entry.Name;
            delete entry.Name;
            if (showInput) entry.Input = parse(e.Input as string | undefined);
            else delete entry.Input;
        }
        if ('TaskScheduledId' in entry) {
            const origin = scheduled.get(entry.TaskScheduledId as number);
            if (origin) {
                entry.FunctionName = origin.Name;
                entry.ScheduledTime = origin.Timestamp;
                if (showInput) entry.Input = parse(origin.Input as string | undefined);
            }
            delete entry.TaskScheduledId;
        }
        if ('Result' in entry) {
            if (showOutput) {
                try {
                    entry.Result = parse(entry.Result as string | undefined);
                } catch {
                    // failure messages are plain text
                }
            } else delete entry.Result;
        }
        if (type === EventType.TimerFired) delete entry.TimerId;
        out.push(entry);
    }
    return out;
}
