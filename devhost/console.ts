import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
/** What the console lists of each app instance the host runs. */
export interface ListedApp {
    name: string;
    role?: string;
    orgId?: string;
    url: string;
    /** The release package it runs from (member deployments). */
    package?: { container: string; blob: string; sha256: string };
}

export interface ConsoleHost {
    readonly apps: ListedApp[];
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, params: string[]) => Promise<void> | void;

/** Local services registered by the devhost (ledger, storage, ...), by name, with their URLs. */
export type ServiceDirectory = Record<string, string>;

/**
 * The devhost console on :7070: the local development surface of API.md
 * ("Local development surface"). Never part of a deployment.
 */
export class DevConsole {
    readonly services: ServiceDirectory = {};
    readonly #host: ConsoleHost;
    readonly #log: Logger;
    readonly #routes: { method: string; pattern: RegExp; handler: Handler }[] = [];
    #server?: http.Server;

    constructor(opts: { host: ConsoleHost; logger: Logger }) {
        this.#host = opts.host;
        this.#log = opts.logger;
        this.route('GET', /^\/dev\/services$/, (_req, res) => {
            sendJson(res, 200, {
                apps: this.#host.apps.map(({ name, role, orgId, url, package: pkg }) => ({ name, role, orgId, url, ...(pkg ? { package: pkg } : {}) })),
                services: this.services,
            });
        });
    }

    get url(): string | undefined {
        const addr = this.#server?.address() as AddressInfo | null | undefined;
        return addr ? `http://localhost:${addr.port}` : undefined;
    }

    /** Adds a console route; later issues plug in tokens, mail and fault injection here. */
    route(method: string, pattern: RegExp, handler: Handler): void {
        this.#routes.push({ method, pattern, handler });
    }

    async listen(port: number): Promise<void> {
        const server = http.createServer((req, res) => {
            this.#dispatch(req, res).catch((err: Error) => {
                this.#log.error({ err: { message: err.message, stack: err.stack } }, 'console request failed');
                if (!res.headersSent) sendProblem(res, 500, 'Internal error', 'The devhost console failed to answer');
                else res.end();
            });
        });
        this.#server = server;
        await new Promise<void>((resolve, reject) => {
            server.once('error', (err: NodeJS.ErrnoException) =>
                reject(err.code === 'EADDRINUSE' ? new Error(`Port ${port} for the devhost console is already in use (use --console-port)`) : err),
            );
            server.listen(port, '127.0.0.1', () => resolve());
        });
    }

    async close(): Promise<void> {
        const server = this.#server;
        if (!server) return;
        await new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
        });
    }

    async #dispatch(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
        const pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
        const matching = this.#routes.filter((r) => r.pattern.test(pathname));
        if (matching.length === 0) return sendProblem(res, 404, 'Not found', `No console route ${pathname}`);
        const route = matching.find((r) => r.method === req.method);
        if (!route) {
            res.setHeader('allow', [...new Set(matching.map((r) => r.method))].join(', '));
            return sendProblem(res, 405, 'Method not allowed', `${req.method} is not allowed on ${pathname}`);
        }
        const params = route.pattern.exec(pathname)!.slice(1);
        await route.handler(req, res, params);
    }
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
}

export function sendProblem(res: http.ServerResponse, status: number, title: string, detail: string): void {
    const text = JSON.stringify({ type: 'about:blank', title, status, detail, code: title.toLowerCase().replace(/\W+/g, '_') });
    res.writeHead(status, { 'content-type': 'application/problem+json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
}
