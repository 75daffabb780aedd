import http from 'node:http';
import https from 'node:https';
import type { Logger } from 'pino';
import { listenOnLoopback, type LoopbackListener } from './loopbackServer';

/**
 * The document database as an app with Entra ID sees it: `https://localhost:<port>`, Entra ID tokens
 * only (`@azure/cosmos` with `aadCredentials`, the app's managed identity), in front of the local Cosmos
 * server (plain http, account key, which checks nothing). Azure gives each deployment a Cosmos DB account
 * of its own with local auth disabled and a data-plane role for its identity; here the deployments share
 * one server, so the front admits a principal to the databases the devhost's table gives it and nothing
 * else:
 * - a request without `type=aad` authorization, or whose token the local issuer did not sign for this
 *   endpoint (or `https://cosmos.azure.com`), is 401;
 * - a request for a database (`/dbs/<id>/…`, or creating `/dbs` with that id) that is not the caller's,
 *   or listing every database, is 403, as a data-plane role assignment missing in Azure;
 * - everything else is passed to the server as it came, and its answer back as it was.
 * Keys still reach the server directly on its http endpoint: the devhost's plumbing.
 */
export interface CosmosFrontOptions {
    /** The local Cosmos server (http). */
    target: string;
    tls: { cert: string; key: string };
    /** The principal (object id) of a token the local issuer signed for one of `audiences`, or undefined. */
    verify(token: string, audiences: string[]): Promise<string | undefined>;
    /** The databases a principal may use (none: it may use none). */
    databasesOf(oid: string): readonly string[];
    logger: Logger;
}

const AAD_PREFIX = 'type=aad&ver=1.0&sig=';
const MAX_CREATE_BODY = 64 * 1024;

export class CosmosIdentityFront {
    readonly #opts: CosmosFrontOptions;
    readonly #agent = new http.Agent({ keepAlive: true });
    #listener?: LoopbackListener;
    url = '';

    constructor(opts: CosmosFrontOptions) {
        this.#opts = opts;
    }

    async start(port = 0): Promise<void> {
        const server = https.createServer({ cert: this.#opts.tls.cert, key: this.#opts.tls.key, minVersion: 'TLSv1.2' }, (req, res) => {
            this.#handle(req, res).catch((err: Error) => {
                this.#opts.logger.error({ err: { message: err.message } }, 'cosmos front: request failed');
                if (!res.headersSent) refuse(res, 502, 'ServiceUnavailable', 'The local document database did not answer');
                else res.destroy();
            });
        });
        server.keepAliveTimeout = 120_000;
        this.#listener = await listenOnLoopback(server, port, 'the Cosmos DB front');
        this.url = `https://localhost:${this.#listener.port}`;
    }

    async stop(): Promise<void> {
        const listener = this.#listener;
        this.#listener = undefined;
        this.#agent.destroy();
        await listener?.close();
    }

    async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
        const raw = String(req.headers.authorization ?? '');
        const auth = raw.includes('%') ? decodeURIComponent(raw) : raw;
        if (!auth.startsWith(AAD_PREFIX)) return refuse(res, 401, 'Unauthorized', 'Local authorization is disabled here: use Entra ID (aadCredentials). Keys go to the server\'s http endpoint.');
        const oid = await this.#opts.verify(auth.slice(AAD_PREFIX.length), [this.url, 'https://cosmos.azure.com']).catch(() => undefined);
        if (!oid) return refuse(res, 401, 'Unauthorized', 'The token is not the local issuer\'s, is expired, or is not for this account.');
        const path = new URL(req.url ?? '/', 'https://localhost').pathname;
        const body = req.method === 'POST' && /^\/dbs\/?$/i.test(path) ? await readBody(req) : undefined;
        const database = /^\/dbs\/([^/]+)/i.exec(path)?.[1] ?? (body ? String((JSON.parse(body.toString('utf8') || '{}') as { id?: unknown }).id ?? '') : undefined);
        const allowed = this.#opts.databasesOf(oid);
        if (/^\/dbs\/?$/i.test(path) && req.method === 'GET') return this.#forbidden(res, oid, 'every database');
        if (database !== undefined && !allowed.includes(decodeURIComponent(database))) return this.#forbidden(res, oid, `database '${decodeURIComponent(database)}'`);
        const target = new URL(req.url ?? '/', this.#opts.target);
        const headers = { ...req.headers };
        delete headers.host;
        if (body) headers['content-length'] = String(body.length);
        const upstream = http.request(target, { method: req.method, headers, agent: this.#agent });
        await new Promise<void>((resolve, reject) => {
            upstream.once('error', reject);
            upstream.once('response', (answer) => {
                res.writeHead(answer.statusCode ?? 502, answer.headers);
                answer.pipe(res);
                answer.once('end', resolve);
                answer.once('error', reject);
            });
            if (body) upstream.end(body);
            else req.pipe(upstream);
        });
    }

    #forbidden(res: http.ServerResponse, oid: string, what: string): void {
        this.#opts.logger.warn({ oid, what }, 'cosmos front: no data-plane role for the request (403)');
        refuse(res, 403, 'Forbidden', `Request blocked by Auth: the principal [${oid}] does not have the required RBAC permissions on ${what}.`);
    }
}

function refuse(res: http.ServerResponse, status: number, code: string, message: string): void {
    res.writeHead(status, { 'content-type': 'application/json', 'x-ms-substatus': status === 403 ? '5301' : '0' });
    res.end(JSON.stringify({ code, message }));
}

async function readBody(req: http.IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
        size += (chunk as Buffer).length;
        if (size > MAX_CREATE_BODY) throw new Error('The request body is too large');
        chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks);
}
