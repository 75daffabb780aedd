import { randomUUID } from 'node:crypto';
import Module from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { format } from 'node:util';
import type { Logger } from 'pino';
import { pinoLevel } from '../log';
import type {
    CoreInvocationContext,
    FunctionCallback,
    FunctionMetadata,
    HookCallback,
    HookName,
    ProgrammingModel,
    RpcInvocationRequest,
    RpcInvocationResponse,
    RpcLogCategory,
    RpcLogLevel,
    RpcParameterBinding,
} from './coreTypes';

export interface RegisteredFunction {
    metadata: FunctionMetadata;
    callback: FunctionCallback;
    /** The trigger binding: its name in `metadata.bindings` and its options. */
    triggerName: string;
    triggerType: string;
}

export interface InvocationInput {
    inputData: RpcParameterBinding[];
    triggerMetadata?: RpcInvocationRequest['triggerMetadata'];
    retryContext?: RpcInvocationRequest['retryContext'];
    traceContext?: RpcInvocationRequest['traceContext'];
    invocationId?: string;
}

export class Disposable {
    static from(...items: { dispose: () => unknown }[]): Disposable {
        return new Disposable(() => items.forEach((i) => i.dispose()));
    }
    #callOnDispose: () => unknown;
    constructor(callOnDispose: () => unknown) {
        this.#callOnDispose = callOnDispose;
    }
    dispose(): unknown {
        return this.#callOnDispose();
    }
}

const HOOK_NAMES: HookName[] = ['appStart', 'appTerminate', 'preInvocation', 'postInvocation', 'log'];
const WORKER_VERSION = '3.11.0-flexchange-devhost';
const HOST_VERSION = '4.1040.0';

// Dynamic import that survives compilation to CommonJS (tsc would turn `import()` into `require`).
const importModule = new Function('specifier', 'return import(specifier)') as (s: string) => Promise<unknown>;

/**
 * The Functions worker's side of one app: the `@azure/functions-core` module the
 * library registers into, the hooks, and invocation through the library's own
 * programming model, in the order the real Node.js worker uses.
 */
export class FunctionRuntime {
    readonly functions = new Map<string, RegisteredFunction>();
    readonly appHookData: Record<string, unknown> = {};
    programmingModel?: ProgrammingModel;
    capabilities: Record<string, string> = {};

    readonly #hooks = new Map<HookName, HookCallback[]>(HOOK_NAMES.map((n) => [n, []]));
    readonly #inFlight = new Set<Promise<unknown>>();
    readonly #log: Logger;
    readonly #appDir: string;
    #loaded = false;

    constructor(opts: { logger: Logger; appDir: string }) {
        this.#log = opts.logger;
        this.#appDir = opts.appDir;
    }

    get inFlightCount(): number {
        return this.#inFlight.size;
    }

    /** The object `require('@azure/functions-core')` returns inside the app. */
    coreModule(): Record<string, unknown> {
        return {
            version: WORKER_VERSION,
            hostVersion: HOST_VERSION,
            Disposable,
            registerFunction: (metadata: FunctionMetadata, callback: FunctionCallback) =>
                this.#registerFunction(metadata, callback),
            registerHook: (name: string, callback: HookCallback) => this.#registerHook(name, callback),
            setProgrammingModel: (pm: ProgrammingModel) => {
                this.programmingModel = pm;
                this.#log.debug({ programmingModel: `${pm.name}@${pm.version}` }, 'programming model set');
            },
            getProgrammingModel: () => this.programmingModel,
            log: (level: RpcLogLevel, category: RpcLogCategory, message: string) =>
                this.emitLog(level, category, message),
        };
    }

    /** Makes `@azure/functions-core` resolvable for every module in this thread, as the real worker does. */
    installCoreModule(): void {
        const core = this.coreModule();
        const proto = Module.prototype as unknown as { require: (id: string) => unknown };
        const original = proto.require;
        proto.require = function (this: unknown, id: string) {
            if (id === '@azure/functions-core') return core;
            // eslint-disable-next-line prefer-rest-params
            return original.apply(this, arguments as unknown as [string]);
        };
    }

    async loadEntryFiles(files: string[], packageType?: string): Promise<void> {
        for (const file of files) {
            const esm = file.endsWith('.mjs') || (packageType === 'module' && file.endsWith('.js'));
            if (esm) {
                await importModule(pathToFileURL(file).href);
            } else {
                require(file);
            }
            this.#log.debug({ file: path.relative(this.#appDir, file) }, 'loaded entry file');
        }
        if (this.programmingModel?.getCapabilities) {
            this.capabilities = { ...(await this.programmingModel.getCapabilities({})) };
        }
        this.#loaded = true;
    }

    async runAppStart(): Promise<void> {
        await this.runHooks('appStart', { hookData: {}, appHookData: this.appHookData, functionAppDirectory: this.#appDir });
    }

    async runAppTerminate(): Promise<void> {
        await this.runHooks('appTerminate', { hookData: {}, appHookData: this.appHookData });
    }

    async runHooks(name: HookName, context: Record<string, unknown>): Promise<void> {
        for (const hook of [...(this.#hooks.get(name) ?? [])]) {
            await hook(context);
        }
    }

    /** Waits until every invocation under way has finished. */
    async drain(): Promise<void> {
        while (this.#inFlight.size > 0) {
            await Promise.allSettled([...this.#inFlight]);
        }
    }

    /**
     * Invokes a function as the worker does: arguments from the programming model,
     * preInvocation hooks, the handler, postInvocation hooks, then the response.
     * Rejects with the function's error.
     */
    invoke(functionName: string, input: InvocationInput): Promise<RpcInvocationResponse> {
        const run = this.#invoke(functionName, input);
        this.#inFlight.add(run);
        const forget = () => this.#inFlight.delete(run);
        run.then(forget, forget);
        return run;
    }

    async #invoke(functionName: string, input: InvocationInput): Promise<RpcInvocationResponse> {
        const fn = this.functions.get(functionName);
        if (!fn) throw new Error(`Function "${functionName}" is not registered`);
        const pm = this.programmingModel;
        if (!pm) throw new Error('No programming model was set by the app');

        const invocationId = input.invocationId ?? randomUUID();
        const request: RpcInvocationRequest = {
            invocationId,
            functionId: fn.metadata.functionId ?? fn.metadata.name,
            inputData: input.inputData,
            triggerMetadata: input.triggerMetadata ?? {},
            retryContext: input.retryContext ?? null,
            traceContext: input.traceContext ?? { traceParent: traceParent(), traceState: '', attributes: {} },
        };
        let invocationContext: unknown;
        const runtime = this;
        const coreCtx: CoreInvocationContext = {
            invocationId,
            request,
            metadata: fn.metadata,
            state: undefined,
            log(level, category, message) {
                runtime.emitLog(level, category, message, { functionName, invocationId, invocationContext });
            },
        };
        const started = Date.now();
        this.#log.debug({ function: functionName, invocationId }, 'executing');

        const model = await pm.getInvocationModel(coreCtx);
        const hookData: Record<string, unknown> = {};
        const args = await model.getArguments();
        const context = args.context;
        invocationContext = context;
        const preContext = {
            hookData,
            appHookData: this.appHookData,
            invocationContext: context,
            functionCallback: fn.callback,
            inputs: args.inputs,
        };
        coreCtx.state = 'preInvocationHooks';
        try {
            await this.runHooks('preInvocation', preContext);
        } finally {
            coreCtx.state = undefined;
        }

        const postContext: Record<string, unknown> = {
            hookData,
            appHookData: this.appHookData,
            invocationContext: context,
            inputs: preContext.inputs,
            result: null,
            error: null,
        };
        coreCtx.state = 'invocation';
        try {
            postContext.result = await model.invokeFunction(context, preContext.inputs, preContext.functionCallback);
        } catch (err) {
            postContext.error = err;
        } finally {
            coreCtx.state = undefined;
        }

        coreCtx.state = 'postInvocationHooks';
        try {
            await this.runHooks('postInvocation', postContext);
        } finally {
            coreCtx.state = undefined;
        }

        const durationMs = Date.now() - started;
        if (postContext.error) {
            const error = postContext.error as Error;
            this.#log.error(
                { function: functionName, invocationId, durationMs, err: { message: error?.message, stack: error?.stack } },
                'function failed',
            );
            throw postContext.error;
        }
        const response = await model.getResponse(context, postContext.result);
        this.#log.debug({ function: functionName, invocationId, durationMs }, 'executed');
        return response;
    }

    /** The log path of the worker: log hooks may change a user log's level and message, then it goes to pino. */
    emitLog(
        level: RpcLogLevel,
        category: RpcLogCategory,
        message: string,
        invocation?: { functionName: string; invocationId: string; invocationContext?: unknown },
    ): void {
        const hooks = this.#hooks.get('log') ?? [];
        if (hooks.length > 0) {
            const hookContext = {
                hookData: {},
                appHookData: this.appHookData,
                invocationContext: invocation?.invocationContext,
                category,
                level,
                message,
            };
            for (const hook of hooks) {
                try {
                    hook(hookContext);
                } catch (err) {
                    this.#log.warn({ err: format(err) }, 'log hook failed');
                }
            }
            if (category === 'user') {
                level = hookContext.level;
                message = hookContext.message;
            }
        }
        const pl = pinoLevel(level);
        if (!pl) return;
        this.#log[pl](
            invocation
                ? { category, function: invocation.functionName, invocationId: invocation.invocationId }
                : { category },
            message,
        );
    }

    #registerFunction(metadata: FunctionMetadata, callback: FunctionCallback): Disposable {
        if (this.#loaded) {
            throw new Error('A function can only be registered while the app is loading');
        }
        const name = metadata.name;
        if (this.functions.has(name)) {
            throw new Error(`A function with the name "${name}" has already been registered`);
        }
        const trigger = Object.entries(metadata.bindings).find(
            ([, b]) => typeof b.type === 'string' && b.type.toLowerCase().endsWith('trigger'),
        );
        if (!trigger) throw new Error(`Function "${name}" has no trigger binding`);
        this.functions.set(name, {
            metadata,
            callback,
            triggerName: trigger[0],
            triggerType: String(trigger[1].type),
        });
        return new Disposable(() => this.functions.delete(name));
    }

    #registerHook(name: string, callback: HookCallback): Disposable {
        const list = this.#hooks.get(name as HookName);
        if (!list) {
            const err = new RangeError(`Unrecognized hook "${name}"`) as RangeError & { isAzureFunctionsSystemError: boolean };
            err.isAzureFunctionsSystemError = true;
            throw err;
        }
        list.push(callback);
        return new Disposable(() => {
            const i = list.indexOf(callback);
            if (i >= 0) list.splice(i, 1);
        });
    }
}

function traceParent(): string {
    const hex = (n: number) => randomUUID().replace(/-/g, '').slice(0, n);
    return `00-${hex(32)}-${hex(16)}-01`;
}
