/**
 * The subset of the `@azure/functions-core` contract the devhost implements.
 * Shapes follow the worker's `types-core/index.d.ts`; see ../../../shared/DEVHOST.md.
 */
export type RpcLogLevel = 'trace' | 'debug' | 'information' | 'warning' | 'error' | 'critical' | 'none';
export type RpcLogCategory = 'user' | 'system' | 'customMetric';

export interface RpcBindingInfo {
    type?: string | null;
    direction?: 'in' | 'out' | 'inout' | null;
    dataType?: string | null;
    properties?: Record<string, string> | null;
    [option: string]: unknown;
}

export interface FunctionMetadata {
    name: string;
    functionId?: string;
    bindings: Record<string, RpcBindingInfo>;
    retryOptions?: RpcRetryOptions | null;
}

export interface RpcDuration {
    seconds?: number | null;
    nanos?: number | null;
}

export interface RpcRetryOptions {
    maxRetryCount?: number | null;
    delayInterval?: RpcDuration | null;
    minimumInterval?: RpcDuration | null;
    maximumInterval?: RpcDuration | null;
    retryStrategy?: 'exponentialBackoff' | 'fixedDelay' | null;
}

export interface RpcHttpCookie {
    name?: string | null;
    value?: string | null;
    domain?: { value?: string | null } | null;
    path?: { value?: string | null } | null;
    expires?: { value?: { seconds?: number | null; nanos?: number | null } | null } | null;
    secure?: { value?: boolean | null } | null;
    httpOnly?: { value?: boolean | null } | null;
    sameSite?: 'none' | 'lax' | 'strict' | 'explicitNone' | null;
    maxAge?: { value?: number | null } | null;
}

export interface RpcHttpData {
    method?: string | null;
    url?: string | null;
    headers?: Record<string, string> | null;
    body?: RpcTypedData | null;
    params?: Record<string, string> | null;
    statusCode?: string | null;
    query?: Record<string, string> | null;
    enableContentNegotiation?: boolean | null;
    cookies?: RpcHttpCookie[] | null;
}

export interface RpcTypedData {
    string?: string | null;
    json?: string | null;
    bytes?: Uint8Array | null;
    stream?: Uint8Array | null;
    http?: RpcHttpData | null;
    int?: number | null;
    double?: number | null;
    collectionBytes?: { bytes?: Uint8Array[] | null } | null;
    collectionString?: { string?: string[] | null } | null;
}

export interface RpcParameterBinding {
    name?: string | null;
    data?: RpcTypedData | null;
}

export interface RpcException {
    source?: string | null;
    stackTrace?: string | null;
    message?: string | null;
}

export interface RpcInvocationRequest {
    invocationId?: string | null;
    functionId?: string | null;
    inputData?: RpcParameterBinding[] | null;
    triggerMetadata?: Record<string, RpcTypedData> | null;
    traceContext?: { traceParent?: string | null; traceState?: string | null; attributes?: Record<string, string> } | null;
    retryContext?: { retryCount?: number | null; maxRetryCount?: number | null; exception?: RpcException | null } | null;
}

export interface RpcInvocationResponse {
    invocationId?: string | null;
    outputData?: RpcParameterBinding[] | null;
    returnValue?: RpcTypedData | null;
}

export type InvocationState = 'preInvocationHooks' | 'postInvocationHooks' | 'invocation';

export interface CoreInvocationContext {
    invocationId: string;
    request: RpcInvocationRequest;
    metadata: FunctionMetadata;
    state?: InvocationState;
    log(level: RpcLogLevel, category: RpcLogCategory, message: string): void;
}

export interface InvocationModel {
    getArguments(): Promise<{ context: unknown; inputs: unknown[] }>;
    invokeFunction(context: unknown, inputs: unknown[], callback: FunctionCallback): Promise<unknown>;
    getResponse(context: unknown, result: unknown): Promise<RpcInvocationResponse>;
}

export interface ProgrammingModel {
    name: string;
    version: string;
    getInvocationModel(coreContext: CoreInvocationContext): InvocationModel | Promise<InvocationModel>;
    getCapabilities?(capabilities: Record<string, string>): Record<string, string> | Promise<Record<string, string>>;
}

export type FunctionCallback = (...args: unknown[]) => unknown;
export type HookName = 'appStart' | 'appTerminate' | 'preInvocation' | 'postInvocation' | 'log';
export type HookCallback = (context: any) => unknown;
