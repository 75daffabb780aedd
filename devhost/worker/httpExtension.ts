import { randomUUID } from 'node:crypto';
import http, { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RpcHttpCookie, RpcHttpData, RpcTypedData } from './coreTypes';
import type { AppContext, BindingExtension, SystemRoute } from './extension';
import type { RegisteredFunction } from './functionRuntime';
import { compareRoutes, compileRoute, CompiledRoute, matchRoute } from './routes';

interface HttpRoute {
    fn: RegisteredFunction;
    route: CompiledRoute;
    methods: string[];
    /** Name of the http output binding that carries the response (`$return` or an extra output). */
    outputName?: string;
}

const DEFAULT_MAX_BODY = 100 * 1024 * 1024;

export class PayloadTooLarge extends Error {}

/** HTTP triggers: one server per app instance, routes matched as the host matches them. */
export class HttpExtension implements BindingExtension {
    readonly name = 'http';
    readonly triggerTypes = ['httpTrigger'];
    readonly outputTypes = ['http'];

    readonly #app: AppContext;
    readonly #routes: HttpRoute[] = [];
    #server?: http.Server;
    readonly #maxBody: number;

    constructor(app: AppContext) {
        this.#app = app;
        const configured = app.folder.hostJson.extensions?.http?.maxRequestBodySize;
        this.#maxBody = typeof configured === 'number' && configured > 0 ? configured : DEFAULT_MAX_BODY;
    }

    get listeningPort(): number | undefined {
        return (this.#server?.address() as AddressInfo | null)?.port;
    }

    get port(): number {
        return (this.#server?.address() as AddressInfo | null)?.port ?? this.#app.port;
    }

    addFunction(fn: RegisteredFunction): void {
        const trigger = fn.metadata.bindings[fn.triggerName];
        const template = typeof trigger.route === 'string' && trigger.route !== '' ? trigger.route : fn.metadata.name;
        const methods = (Array.isArray(trigger.methods) && trigger.methods.length > 0 ? trigger.methods : ['GET', 'POST']).map(
            (m) => String(m).toUpperCase(),
        );
        const outputName = Object.entries(fn.metadata.bindings).find(
            ([, b]) => b.direction === 'out' && String(b.type).toLowerCase() === 'http',
        )?.[0];
        this.#routes.push({ fn, route: compileRoute(template, this.#app.folder.routePrefix), methods, outputName });
        this.#routes.sort((a, b) => compareRoutes(a.route, b.route));
    }

    describe(fn: RegisteredFunction): string {
        const r = this.#routes.find((x) => x.fn === fn);
        if (!r) return '';
        const path = [this.#app.folder.routePrefix, r.route.template].filter(Boolean).join('/');
        return `${r.methods.join(',')} http://localhost:${this.port}/${path.replace(/^\/+/, '')}`;
    }

    // The library writes the http response itself; the host only reads the value back.
    async handleOutput(): Promise<void> {}

    async start(): Promise<void> {
        const server = http.createServer((req, res) => {
            this.#handle(req, res).catch((err) => {
                this.#app.logger.error({ err: { message: (err as Error).message, stack: (err as Error).stack } }, 'http dispatch failed');
                if (!res.headersSent) {
                    res.writeHead(500);
                }
                res.end();
            });
        });
        server.keepAliveTimeout = 5000;
        // A request Node's parser refuses before any handler sees it (headers or URL over Node's 16 KB,
        // a malformed request line) gets a problem+json answer like every other refusal, not a bare status.
        server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
            if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
            const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
            const status = tooLarge ? 431 : 400;
            const body = JSON.stringify({
                type: 'about:blank',
                title: tooLarge ? 'Request Header Fields Too Large' : 'Bad Request',
                status,
                detail: tooLarge ? 'The request line and headers together may not exceed 16 KB.' : 'The request could not be parsed as HTTP/1.1.',
            });
            socket.end(`HTTP/1.1 ${status} ${tooLarge ? 'Request Header Fields Too Large' : 'Bad Request'}\r\ncontent-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
        });
        this.#server = server;
        await new Promise<void>((resolve, reject) => {
            const onError = (err: NodeJS.ErrnoException) => {
                server.off('listening', onListening);
                reject(
                    err.code === 'EADDRINUSE'
                        ? new Error(`Port ${this.#app.port} is already in use: stop whatever listens there or choose another port for app "${this.#app.name}"`)
                        : err,
                );
            };
            const onListening = () => {
                server.off('error', onError);
                resolve();
            };
            server.once('error', onError);
            server.once('listening', onListening);
            server.listen(this.#app.port, '127.0.0.1');
        });
    }

    async stop(): Promise<void> {
        const server = this.#server;
        if (!server) return;
        // Stop accepting connections; idle keep-alive sockets close now, busy ones after their response.
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        this.#closed = closed;
    }

    #closed?: Promise<void>;

    async dispose(): Promise<void> {
        this.#server?.closeAllConnections();
        await this.#closed;
    }

    async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
        if (this.#app.stopping) {
            res.writeHead(503, { connection: 'close', 'retry-after': '5' });
            res.end();
            return;
        }
        const host = req.headers.host ?? `localhost:${this.port}`;
        const url = new URL(req.url ?? '/', `http://${host}`);
        const method = (req.method ?? 'GET').toUpperCase();
        const pathname = url.pathname;

        const system = this.#app.systemRoutes.filter((r) => r.pattern.test(pathname));
        if (system.length > 0) {
            await this.#serveSystem(system, method, url, req, res);
            return;
        }

        const matches: { r: HttpRoute; params: Record<string, string> }[] = [];
        for (const r of this.#routes) {
            const params = matchRoute(r.route, pathname);
            if (params) matches.push({ r, params });
        }
        if (matches.length === 0) {
            req.resume();
            res.writeHead(404);
            res.end();
            return;
        }
        const hit = matches.find((m) => m.r.methods.includes(method));
        if (!hit) {
            req.resume();
            const allow = [...new Set(matches.flatMap((m) => m.r.methods))].join(', ');
            res.writeHead(405, { allow });
            res.end();
            return;
        }

        const headers: Record<string, string> = {};
        for (const [key, value] of Object.entries(req.headers)) {
            if (value === undefined) continue;
            headers[key] = Array.isArray(value) ? value.join(key === 'cookie' ? '; ' : ', ') : value;
        }
        // As the platform's front end does: append the client's address to X-Forwarded-For.
        const remote = req.socket.remoteAddress ?? '';
        headers['x-forwarded-for'] = headers['x-forwarded-for'] ? `${headers['x-forwarded-for']}, ${remote}` : remote;
        const proxyUri = this.#app.capabilities.HttpUri;
        if (proxyUri) {
            await this.#streamThroughProxy(proxyUri, hit.r.fn, hit.params, headers, url, req, res);
            return;
        }

        let body: Buffer;
        try {
            body = await readBody(req, this.#maxBody);
        } catch (err) {
            if (err instanceof PayloadTooLarge) {
                // The rest of the body is read and dropped for a moment, so the client (still sending) reads
                // the 413 instead of a reset connection; a client that keeps sending is cut off after 5 s.
                res.writeHead(413, { connection: 'close', 'content-type': 'application/problem+json' });
                res.end(JSON.stringify({ type: 'about:blank', title: 'Payload Too Large', status: 413, detail: `The request body may not exceed ${this.#maxBody} bytes (host.json maxRequestBodySize).` }));
                req.resume();
                setTimeout(() => req.destroy(), 5000).unref();
                return;
            }
            throw err;
        }

        const rpc: RpcHttpData = {
            method,
            url: url.toString(),
            headers,
            params: hit.params,
            body: body.length > 0 ? { bytes: body } : undefined,
        };
        let response;
        try {
            response = await this.#app.invoke(hit.r.fn, { data: { http: rpc }, triggerMetadata: {} });
        } catch {
            // The runtime has logged the failure; like the host, answer 500 without internals.
            if (!res.headersSent) res.writeHead(500);
            res.end();
            return;
        }
        const out = hit.r.outputName === '$return' || !hit.r.outputName
            ? response.returnValue
            : response.outputData?.find((o) => o.name === hit.r.outputName)?.data;
        writeResponse(res, method, out ?? undefined);
    }

    async #serveSystem(routes: SystemRoute[], method: string, url: URL, req: IncomingMessage, res: ServerResponse): Promise<void> {
        const route = routes.find((r) => r.method === method);
        if (!route) {
            req.resume();
            res.writeHead(405, { allow: [...new Set(routes.map((r) => r.method))].join(', ') });
            res.end();
            return;
        }
        const body = await readBody(req, this.#maxBody);
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
        const params = route.pattern.exec(url.pathname)!.slice(1).map((p) => (p === undefined ? p : decodeURIComponent(p)));
        const out = await route.handler({ method, url, headers, body, params });
        let payload: Buffer | undefined;
        const outHeaders = { ...(out.headers ?? {}) };
        if (typeof out.body === 'string') payload = Buffer.from(out.body);
        else if (Buffer.isBuffer(out.body)) payload = out.body;
        else if (out.body !== undefined) {
            payload = Buffer.from(JSON.stringify(out.body));
            outHeaders['content-type'] ??= 'application/json; charset=utf-8';
        }
        if (payload) outHeaders['content-length'] = String(payload.length);
        res.writeHead(out.status, outHeaders);
        res.end(payload);
    }

    /**
     * HTTP streaming (`app.setup({ enableHttpStream: true })`): as the host does, the raw
     * request goes to the library's own proxy server, tagged with the invocation id, while
     * the invocation carries headers and route parameters as trigger metadata; the
     * library writes the response to that proxy connection, and it is piped back as it comes.
     */
    async #streamThroughProxy(
        proxyUri: string,
        fn: RegisteredFunction,
        params: Record<string, string>,
        headers: Record<string, string>,
        url: URL,
        req: IncomingMessage,
        res: ServerResponse,
    ): Promise<void> {
        const invocationId = randomUUID();
        const triggerMetadata: Record<string, RpcTypedData> = {
            Headers: { json: JSON.stringify(headers) },
            Query: { json: JSON.stringify(Object.fromEntries(url.searchParams)) },
        };
        for (const [k, v] of Object.entries(params)) triggerMetadata[k] = { string: v };

        const target = new URL(`${url.pathname}${url.search}`, proxyUri);
        const proxyReq = http.request(target, {
            method: req.method,
            headers: {
                ...req.headers,
                'x-ms-invocation-id': invocationId,
                'x-forwarded-host': url.host,
                'x-forwarded-proto': url.protocol.replace(':', ''),
            },
        });
        const answered = new Promise<void>((resolve) => {
            proxyReq.on('response', (proxyRes) => {
                const out: Record<string, string | string[]> = {};
                for (const [k, v] of Object.entries(proxyRes.headers)) {
                    if (v !== undefined && k !== 'x-ms-invocation-id' && k !== 'connection' && k !== 'keep-alive') out[k] = v;
                }
                res.writeHead(proxyRes.statusCode ?? 200, out);
                proxyRes.pipe(res);
                proxyRes.on('end', resolve);
                proxyRes.on('error', resolve);
            });
            proxyReq.on('error', (err) => {
                this.#app.logger.error({ function: fn.metadata.name, invocationId, err: { message: err.message } }, 'http stream proxy failed');
                resolve();
            });
        });
        req.pipe(proxyReq);
        try {
            await this.#app.invoke(fn, { data: {}, triggerMetadata }, { invocationId });
            await answered;
        } catch {
            proxyReq.destroy();
            if (!res.headersSent) res.writeHead(500);
        }
        if (!res.writableEnded) res.end();
    }
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) return Promise.reject(new PayloadTooLarge());
    return new Promise((resolve, reject) => {
        const chunks: Buffer[] = [];
        let size = 0;
        req.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > limit) {
                req.removeAllListeners('data');
                reject(new PayloadTooLarge());
                return;
            }
            chunks.push(chunk);
        });
        req.on('end', () => resolve(Buffer.concat(chunks)));
        req.on('error', reject);
    });
}

function bodyBytes(data: RpcTypedData | null | undefined): Buffer | undefined {
    if (!data) return undefined;
    if (data.bytes) return Buffer.from(data.bytes);
    if (data.stream) return Buffer.from(data.stream);
    if (typeof data.string === 'string') return Buffer.from(data.string);
    if (typeof data.json === 'string') return Buffer.from(data.json);
    return undefined;
}

function writeResponse(res: ServerResponse, method: string, data: RpcTypedData | undefined): void {
    const httpData = data?.http;
    if (!httpData) {
        // No response value at all: nothing to say, successfully.
        res.writeHead(204);
        res.end();
        return;
    }
    const status = Number(httpData.statusCode ?? 200) || 200;
    const headers: Record<string, string | string[]> = {};
    for (const [key, value] of Object.entries(httpData.headers ?? {})) {
        if (key.toLowerCase() === 'set-cookie') continue;
        headers[key] = value;
    }
    const cookies = [
        ...splitSetCookie(httpData.headers),
        ...(httpData.cookies ?? []).map(serializeCookie),
    ];
    if (cookies.length > 0) headers['set-cookie'] = cookies;
    const body = status === 204 || status === 304 || method === 'HEAD' ? undefined : bodyBytes(httpData.body);
    if (body !== undefined) headers['content-length'] = String(body.length);
    res.writeHead(status, headers);
    res.end(body);
}

function splitSetCookie(headers: Record<string, string> | null | undefined): string[] {
    const entry = Object.entries(headers ?? {}).find(([k]) => k.toLowerCase() === 'set-cookie');
    if (!entry) return [];
    // Headers.entries() joins several Set-Cookie values with ", "; split on a comma that starts a new name=value.
    return entry[1].split(/,\s*(?=[^;,=\s]+=)/);
}

function serializeCookie(c: RpcHttpCookie): string {
    const parts = [`${c.name ?? ''}=${encodeURIComponent(c.value ?? '')}`];
    if (c.domain?.value) parts.push(`Domain=${c.domain.value}`);
    if (c.path?.value) parts.push(`Path=${c.path.value}`);
    const seconds = c.expires?.value?.seconds;
    if (seconds !== undefined && seconds !== null) parts.push(`Expires=${new Date(Number(seconds) * 1000).toUTCString()}`);
    if (c.maxAge?.value !== undefined && c.maxAge?.value !== null) parts.push(`Max-Age=${Math.trunc(c.maxAge.value)}`);
    if (c.secure?.value) parts.push('Secure');
    if (c.httpOnly?.value) parts.push('HttpOnly');
    if (c.sameSite === 'lax') parts.push('SameSite=Lax');
    else if (c.sameSite === 'strict') parts.push('SameSite=Strict');
    else if (c.sameSite === 'explicitNone') parts.push('SameSite=None');
    return parts.join('; ');
}
