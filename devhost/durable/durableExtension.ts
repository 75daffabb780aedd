import { parseTimeSpan } from '../appFolder';
import type { RpcTypedData } from '../worker/coreTypes';
import type { AppContext, BindingExtension } from '../worker/extension';
import type { RegisteredFunction } from '../worker/functionRuntime';
import { BackendSettings, DurableBackend, DurableFunctions, EntityBatchResult } from './backend';
import { clientRoutes, managementUrlsFor, WEBHOOK_BASE } from './clientApi';
import { taskHubName } from './hubName';
import { TaskHubStore } from './taskHubStore';

type Kind = 'orchestration' | 'activity' | 'entity';
const TRIGGER_KIND: Record<string, Kind> = { orchestrationtrigger: 'orchestration', activitytrigger: 'activity', entitytrigger: 'entity' };

/** The value an invocation returned, as JSON text. */
export function typedDataToJson(data: RpcTypedData | null | undefined): string {
    if (!data) return 'null';
    if (typeof data.json === 'string') return data.json;
    if (typeof data.string === 'string') return JSON.stringify(data.string);
    if (typeof data.int === 'number' || typeof data.double === 'number') return String(data.int ?? data.double);
    if (data.bytes) return JSON.stringify(Buffer.from(data.bytes).toString('base64'));
    return 'null';
}

function typedDataToValue(data: RpcTypedData | null | undefined): unknown {
    if (!data) return undefined;
    if (typeof data.json === 'string') return JSON.parse(data.json);
    if (typeof data.string === 'string') {
        try {
            return JSON.parse(data.string);
        } catch {
            return data.string;
        }
    }
    return undefined;
}

/**
 * Durable Functions for the devhost: orchestration, activity and entity triggers,
 * the `durableClient` input, and the webhook API, backed by a task hub in the
 * app's storage account (AzureWebJobsStorage, Azurite locally).
 */
export class DurableExtension implements BindingExtension {
    readonly name = 'durable';
    readonly triggerTypes = ['orchestrationTrigger', 'activityTrigger', 'entityTrigger'];
    readonly inputTypes = ['durableClient', 'orchestrationClient'];

    readonly #app: AppContext;
    readonly #functions = new Map<string, { fn: RegisteredFunction; kind: Kind }>();
    #backend?: DurableBackend;
    readonly hubName: string;

    constructor(app: AppContext) {
        this.#app = app;
        this.hubName = taskHubName(app.folder.hostJson, app.settings, app.name);
    }

    #config(): Record<string, unknown> {
        const ext = this.#app.folder.hostJson.extensions as Record<string, unknown> | undefined;
        return (ext?.durableTask as Record<string, unknown>) ?? {};
    }

    addFunction(fn: RegisteredFunction): void {
        this.#functions.set(fn.metadata.name, { fn, kind: TRIGGER_KIND[fn.triggerType.toLowerCase()] });
    }

    describe(fn: RegisteredFunction): string {
        const entry = this.#functions.get(fn.metadata.name);
        return entry ? `${entry.kind} (task hub ${this.hubName})` : '';
    }

    #settings(): BackendSettings {
        const c = this.#config();
        const provider = (c.storageProvider as Record<string, unknown>) ?? {};
        const devhost = (c.devhost as Record<string, unknown>) ?? {};
        const ms = (v: unknown, fallback: number) => parseTimeSpan(typeof v === 'string' ? v : undefined) ?? fallback;
        const int = (v: unknown, fallback: number) => (Number(v) > 0 ? Number(v) : fallback);
        // App settings override host.json as in Azure: AzureFunctionsJobHost__extensions__durableTask__<name>.
        const env = (name: string) => this.#app.settings[`AzureFunctionsJobHost__extensions__durableTask__${name}`];
        return {
            maxConcurrentActivityFunctions: int(env('maxConcurrentActivityFunctions') ?? c.maxConcurrentActivityFunctions, 10),
            maxConcurrentOrchestratorFunctions: int(env('maxConcurrentOrchestratorFunctions') ?? c.maxConcurrentOrchestratorFunctions, 10),
            visibilitySeconds: Math.max(1, Math.round(ms(provider.workItemQueueVisibilityTimeout ?? provider.controlQueueVisibilityTimeout, 30_000) / 1000)),
            maxPollingIntervalMs: ms(provider.maxQueuePollingInterval, 1000),
            timers: {
                // Azure Storage queues can hide a message for at most 7 days; the extension uses 6.
                maximumShortTimerMs: ms(devhost.maximumShortTimerDuration, 6 * 86_400_000),
                longRunningTimerIntervalMs: ms(devhost.longRunningTimerIntervalDuration, 3 * 86_400_000),
            },
        };
    }

    get #needsBackend(): boolean {
        return this.#functions.size > 0 || this.#hasClientBinding();
    }

    #hasClientBinding(): boolean {
        return true;
    }

    async start(): Promise<void> {
        const connection = this.#app.settings.AzureWebJobsStorage;
        if (!this.#needsBackend) return;
        if (!connection) {
            if (this.#functions.size > 0) throw new Error('Durable Functions need AzureWebJobsStorage (start the devhost with storage)');
            return;
        }
        const fns: DurableFunctions = {
            has: (kind, name) => this.#functions.get(name)?.kind === kind,
            orchestrate: async (name, triggerInput) => {
                const res = await this.#app.invoke(this.#fn(name, 'orchestration'), { data: { string: JSON.stringify(triggerInput) } });
                return typedDataToValue(res.returnValue);
            },
            runActivity: async (name, inputJson) => {
                const res = await this.#app.invoke(this.#fn(name, 'activity'), { data: { json: inputJson ?? 'null' } });
                return typedDataToJson(res.returnValue);
            },
            runEntity: async (name, batch) => {
                const res = await this.#app.invoke(this.#fn(name, 'entity'), { data: { string: JSON.stringify(batch) } });
                return typedDataToValue(res.returnValue) as EntityBatchResult;
            },
        };
        const store = new TaskHubStore(connection, this.hubName);
        this.#backend = new DurableBackend(store, fns, this.#settings(), this.#app.logger.child({ taskHub: this.hubName }));
        this.#backend.setEntityNames([...this.#functions.values()].filter((f) => f.kind === 'entity').map((f) => f.fn.metadata.name));
        for (const r of clientRoutes(this.#backend, () => this.hubName, () => `http://localhost:${this.#app.listeningPort}`)) this.#app.addSystemRoute(r);
        await this.#backend.start();
    }

    async stop(): Promise<void> {
        await this.#backend?.stop();
    }

    #fn(name: string, kind: Kind): RegisteredFunction {
        const entry = this.#functions.get(name);
        if (!entry || entry.kind !== kind) throw new Error(`No ${kind} function named "${name}"`);
        return entry.fn;
    }

    provideInput(): RpcTypedData {
        const origin = `http://localhost:${this.#app.listeningPort}`;
        const base = `${origin}${WEBHOOK_BASE}`;
        const clientData = {
            taskHubName: this.hubName,
            creationUrls: {
                createNewInstancePostUri: `${base}/orchestrators/{functionName}[/{instanceId}]?code=devhost`,
                createAndWaitOnNewInstancePostUri: `${base}/orchestrators/{functionName}[/{instanceId}]?timeout={timeoutInSeconds}&pollingInterval={intervalInSeconds}&code=devhost`,
            },
            managementUrls: managementUrlsFor(origin, this.hubName, 'INSTANCEID', 'INSTANCEID'),
            baseUrl: base,
            requiredQueryStringParameters: 'code=devhost',
            rpcBaseUrl: `${base}/`,
        };
        return { string: JSON.stringify(clientData) };
    }
}
