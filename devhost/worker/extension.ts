import type { Logger } from 'pino';
import type { AppFolder } from '../appFolder';
import type { RpcBindingInfo, RpcInvocationResponse, RpcParameterBinding, RpcTypedData } from './coreTypes';
import type { RegisteredFunction } from './functionRuntime';

/** What a binding extension sees of the app instance it serves. */
export interface AppContext {
    readonly name: string;
    readonly folder: AppFolder;
    readonly port: number;
    /** The port the instance's HTTP server actually listens on (differs from `port` when that is 0). */
    readonly listeningPort: number;
    readonly stateDir: string;
    readonly logger: Logger;
    readonly settings: Readonly<Record<string, string | undefined>>;
    /** Resolves `%SETTING%` references in a binding option, as the host does. */
    resolve(value: string): string;
    /**
     * Invokes a function: adds the extra inputs of its input bindings, runs it, and
     * hands its output bindings to their extensions. Rejects with the function's error.
     */
    invoke(
        fn: RegisteredFunction,
        trigger: { data: RpcTypedData; triggerMetadata?: Record<string, RpcTypedData> },
        options?: InvokeOptions,
    ): Promise<RpcInvocationResponse>;
    /**
     * Serves a host route outside the function routes (e.g. the Durable webhook API at
     * /runtime/webhooks/durabletask/...), on the instance's own port.
     */
    addSystemRoute(route: SystemRoute): void;
    readonly systemRoutes: readonly SystemRoute[];
    /** Worker capabilities the app declared (e.g. `HttpUri` when it enabled HTTP streaming). */
    readonly capabilities: Readonly<Record<string, string>>;
    /** True once shutdown has begun: no new invocations may start. */
    readonly stopping: boolean;
}

export interface SystemRequest {
    method: string;
    url: URL;
    headers: Record<string, string>;
    body: Buffer;
    /** The capture groups of the route's pattern, URL-decoded. */
    params: string[];
}

export interface SystemResponse {
    status: number;
    headers?: Record<string, string>;
    /** A string or bytes as they are; anything else is sent as JSON. */
    body?: unknown;
}

export interface SystemRoute {
    method: string;
    /** Matched against the request path (no query). */
    pattern: RegExp;
    handler(req: SystemRequest): Promise<SystemResponse>;
}

export interface InvokeOptions {
    invocationId?: string;
    retryContext?: { retryCount: number; maxRetryCount: number };
}

/**
 * A binding extension: the devhost's counterpart of a Functions host extension.
 * Trigger types it listens for, input bindings it fills, output bindings it carries.
 * HTTP and timers ship with the devhost; Durable Functions and Service Bus plug in the same way.
 */
export interface BindingExtension {
    readonly name: string;
    readonly triggerTypes?: readonly string[];
    readonly inputTypes?: readonly string[];
    readonly outputTypes?: readonly string[];
    /** Called once per function whose trigger type this extension listens for. Throw to reject the function. */
    addFunction?(fn: RegisteredFunction): void;
    /** Starts listening (servers, schedules, receivers). */
    start?(): Promise<void>;
    /** Stops starting new invocations. Invocations under way are awaited by the host afterwards. */
    stop?(): Promise<void>;
    /** Releases what is left after every invocation has finished. */
    dispose?(): Promise<void>;
    /** The value of an input binding for one invocation. */
    provideInput?(binding: RpcBindingInfo & { name: string }, fn: RegisteredFunction): Promise<RpcTypedData> | RpcTypedData;
    /** Carries out an output binding's value after a successful invocation. */
    handleOutput?(binding: RpcBindingInfo & { name: string }, value: RpcTypedData, fn: RegisteredFunction): Promise<void>;
    /** The port this extension listens on, once started (lets port 0 resolve to the real one). */
    readonly listeningPort?: number;
    /** One line per function, for the start-up table. */
    describe?(fn: RegisteredFunction): string;
}

export type ExtensionFactory = (app: AppContext) => BindingExtension;

export type { RpcParameterBinding };
