import diagnostics_channel from 'node:diagnostics_channel';
import type { ClientRequest } from 'node:http';

/** Requests to one destination (`host:port`, `/<container>` added for a Cosmos container), reads (GET, HEAD, a Cosmos query or query plan) and the rest. */
export interface CallCount {
    reads: number;
    writes: number;
}

/**
 * What one app instance has done since it started, for benchmarks (`GET /dev/counts`): the
 * HTTP requests it served, its Durable work (orchestrator episodes, activities, entity
 * operations) and the HTTP requests it made, by destination. Per worker thread, so per instance.
 */
export interface AppCounts {
    served: number;
    /** Function executions by trigger type (`httpTrigger`, `timerTrigger`, `serviceBusTrigger`, `orchestrationTrigger`, `activityTrigger`, …): what Azure bills as executions. */
    invocations: Record<string, number>;
    durable: { episodes: number; activities: number; entityOperations: number };
    calls: Record<string, CallCount>;
}

export const appCounts: AppCounts = { served: 0, invocations: {}, durable: { episodes: 0, activities: 0, entityOperations: 0 }, calls: {} };

/** One function execution, by its trigger type. */
export function countInvocation(triggerType: string): void {
    appCounts.invocations[triggerType] = (appCounts.invocations[triggerType] ?? 0) + 1;
}

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

function count(destination: string, read: boolean): void {
    const c = (appCounts.calls[destination] ??= { reads: 0, writes: 0 });
    if (read) c.reads++;
    else c.writes++;
}

/** `host:port` of an origin or Host header, the port filled in from the protocol when absent. */
function destinationOf(host: string, protocol: string): string {
    return /:\d+$/.test(host) ? host : `${host}:${protocol === 'https:' ? 443 : 80}`;
}

let counting = false;

/**
 * Counts this thread's HTTP traffic through Node's diagnostics channels (nothing is patched):
 * `http.client.request.start` (node:http, which the Azure SDKs, ethers and axios use),
 * `undici:request:create` (fetch) and `http.server.request.start` (requests served).
 */
export function startCounting(): void {
    if (counting) return;
    counting = true;
    diagnostics_channel.subscribe('http.client.request.start', (message) => {
        const request = (message as { request: ClientRequest }).request;
        const host = String(request.getHeader('host') ?? request.host);
        // A document store request names its container in the path (`/dbs/<db>/colls/<container>/...`): counted per container.
        const container = /^\/dbs\/[^/]+\/colls\/([^/?]+)/.exec(request.path)?.[1];
        // A query, and the query plan the Cosmos SDK asks for beside each query's first page, are reads.
        const read = READS.has(request.method) || request.getHeader('x-ms-documentdb-isquery') !== undefined || request.getHeader('x-ms-cosmos-is-query-plan-request') !== undefined;
        count(`${destinationOf(host, request.protocol)}${container ? `/${container}` : ''}`, read);
    });
    diagnostics_channel.subscribe('undici:request:create', (message) => {
        const request = (message as { request: { origin: string; method: string } }).request;
        const origin = new URL(request.origin);
        count(destinationOf(origin.host, origin.protocol), READS.has(request.method));
    });
    diagnostics_channel.subscribe('http.server.request.start', () => {
        appCounts.served++;
    });
}
