import * as df from 'durable-functions';
import type { DurableClient } from 'durable-functions';
import { app, HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { z } from 'zod';
import type { Principal } from '../../shared/auth/tokenValidator';
import { getServices } from '../../shared/composition';
import { deploymentRole, type DeploymentRole } from '../../shared/config';
import { AppError, Forbidden, Invalid, NotFound, TooLarge, UnsupportedMediaType } from '../../shared/errors';
import { toProblem } from '../../shared/http/problem';
import type { RateRule } from '../../shared/limits/rateLimiter';
import { IdempotentResponses } from '../../shared/http/idempotency';

/**
 * Who may call a route (API.md, "Identity and roles"): any of `roles`; with `org`, only
 * for the organisation named by that route parameter (the operator's admins for any).
 * Another organisation's resource answers 404, so its existence does not leak.
 */
export type Access = 'anonymous' | { roles: readonly string[]; org?: string };

/** The caller: its token, and its organisation from the directory (never from the request). */
export interface Caller {
    principal: Principal;
    orgId?: string;
    /** Operator staff (`Flexchange.Admin`): may act on every organisation. */
    isOperator: boolean;
}

export const OPERATOR_ROLE = 'Flexchange.Admin';

/** An organisation's admins, for the organisation the route's `orgId` names (the operator's admins for any). */
export const ORG_ADMINS: Access = { roles: ['Org.Admin', OPERATOR_ROLE], org: 'orgId' };

/** Who did it, as the audit trail records a caller. */
export const actorOf = (caller: Caller) => ({ oid: caller.principal.oid, orgId: caller.orgId, appOnly: caller.principal.appOnly });
/** The core deployment's app identity, when it calls a member deployment. */
export const CORE_APP_ROLE = 'Deployment.Core';

/** Which deployment serves a route, and the role this app instance runs in (read when the functions are registered). */
export { deploymentRole, type DeploymentRole };

export interface RouteDefinition<B extends z.ZodType, Q extends z.ZodType> {
    route: string;
    methods: ('GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE')[];
    access: Access;
    /**
     * An anonymous route that still reads a bearer token when one is sent (the handler answers the operator
     * more): a token that is sent must be valid (401 otherwise); its roles are the handler's business.
     */
    tokenIfSent?: true;
    /** The deployments that serve it (default: the core only). */
    deployments?: DeploymentRole[];
    body?: B;
    query?: Q;
    /**
     * A body the handler reads itself (a document, a form): its content types for the OpenAPI document,
     * and the zod schema it checks a structured one with.
     */
    rawBody?: RawBody;
    /** A POST that takes no body (said out loud: the OpenAPI test fails on a POST that says nothing). */
    noBody?: true;
    maxBodyBytes?: number;
    /** Rate limits, counted after validation (for anonymous routes: per client address, per email...). */
    rateLimit?: (input: { request: HttpRequest; body: z.infer<B>; clientAddress: string }) => RateRule[];
    summary: string;
    /** Answers worth describing beyond the defaults (by status code: a 2xx body's schema, a problem's `code`s), for the OpenAPI document. */
    responses?: Responses;
    /** The handler gets a Durable Functions client (to start workflows and raise events). */
    durable?: boolean;
    handler(input: {
        request: HttpRequest;
        context: InvocationContext;
        principal?: Principal;
        caller?: Caller;
        body: z.infer<B>;
        query: z.infer<Q>;
        params: Record<string, string>;
        durable?: DurableClient;
    }): Promise<HttpResponseInit>;
}

/** What an organisation id looks like (as registration makes them): anything else names no organisation. */
const ORG_ID_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

const IDEMPOTENCY_KEY_RE = /^[\x21-\x7e]{1,200}$/;

/** The request's `Idempotency-Key` header, if any (1-200 visible ASCII characters, else 400). */
export function idempotencyKeyOf(request: HttpRequest): string | undefined {
    const key = request.headers.get('idempotency-key') ?? undefined;
    if (key !== undefined && !IDEMPOTENCY_KEY_RE.test(key)) throw new Invalid('The Idempotency-Key header must be 1-200 visible ASCII characters', [{ path: 'headers.idempotency-key', message: '1-200 visible ASCII characters' }]);
    return key;
}

/** Every route defined through `httpRoute` (with the deployments that serve it), for the OpenAPI document and the authorization matrix. */
export interface RawBody {
    contentTypes: string[];
    description: string;
    schema?: z.ZodType;
}

export type Responses = Record<string, { description: string; schema?: z.ZodType }>;

export interface RouteEntry {
    name: string;
    route: string;
    methods: string[];
    access: Access;
    tokenIfSent?: true;
    deployments: DeploymentRole[];
    summary: string;
    body?: z.ZodType;
    query?: z.ZodType;
    rawBody?: RawBody;
    noBody?: true;
    responses?: Responses;
}

export const routeTable: RouteEntry[] = [];

const DEFAULT_MAX_BODY = 256 * 1024;

/**
 * The client's address: the last entry of X-Forwarded-For, the one the platform's
 * front end appended (earlier entries are whatever the client claimed).
 */
export function clientAddress(request: HttpRequest): string {
    const forwarded = request.headers.get('x-forwarded-for')?.split(',').at(-1)?.trim();
    if (!forwarded) return 'unknown';
    // `1.2.3.4:5678` and `[2001:db8::1]:5678` carry a port; a bare IPv6 address (`::1`) does not.
    const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(forwarded);
    if (bracketed) return bracketed[1]!;
    return /^\d{1,3}(\.\d{1,3}){3}:\d+$/.test(forwarded) ? forwarded.replace(/:\d+$/, '') : forwarded;
}

function issues(error: z.ZodError, prefix: string): { path: string; message: string }[] {
    return error.issues.map((i) => ({ path: [prefix, ...i.path.map(String)].filter(Boolean).join('.'), message: i.message }));
}

async function readJsonBody(request: HttpRequest, limit: number): Promise<{ raw: Buffer; value: unknown }> {
    const type = request.headers.get('content-type') ?? '';
    const declared = Number(request.headers.get('content-length') ?? 0);
    if (declared > limit) throw new TooLarge(`The body is larger than ${limit} bytes`);
    const raw = Buffer.from(await request.arrayBuffer());
    if (raw.length === 0) return { raw, value: undefined };
    if (!/^application\/(.+\+)?json\b/i.test(type)) throw new UnsupportedMediaType('Send the body as application/json');
    if (raw.length > limit) throw new TooLarge(`The body is larger than ${limit} bytes`);
    try {
        return { raw, value: JSON.parse(raw.toString('utf8')) };
    } catch {
        throw new Invalid('The body is not valid JSON');
    }
}

/** The response as it can be kept and replayed (JSON or text bodies only). */
function storable(result: HttpResponseInit): { status: number; headers: Record<string, string>; body: string } | undefined {
    const status = result.status ?? 200;
    if (status < 200 || status >= 300) return undefined;
    const body = result.jsonBody !== undefined ? JSON.stringify(result.jsonBody) : typeof result.body === 'string' ? result.body : undefined;
    if (body === undefined) return undefined;
    const headers: Record<string, string> = result.jsonBody !== undefined ? { 'content-type': 'application/json' } : {};
    if (result.headers && !(result.headers instanceof Headers) && !Array.isArray(result.headers)) Object.assign(headers, result.headers as Record<string, string>);
    return { status, headers, body };
}

/**
 * Registers an HTTP function with the pipeline every route goes through: token
 * validation, role check, schema validation of query and body, then the handler;
 * every error leaves as problem+json from one mapping.
 */
export function httpRoute<B extends z.ZodType = z.ZodUndefined, Q extends z.ZodType = z.ZodObject<Record<string, never>>>(name: string, def: RouteDefinition<B, Q>): void {
    const deployments = def.deployments ?? ['core'];
    routeTable.push({ name, route: def.route, methods: def.methods, access: def.access, tokenIfSent: def.tokenIfSent, deployments, summary: def.summary, body: def.body, query: def.query, rawBody: def.rawBody, noBody: def.noBody, responses: def.responses });
    // A route another deployment serves is not registered here at all (it answers 404 like any unknown path).
    if (!deployments.includes(deploymentRole())) return;
    app.http(name, {
        route: def.route,
        methods: def.methods,
        authLevel: 'anonymous',
        ...(def.durable ? { extraInputs: [df.input.durableClient()] } : {}),
        handler: async (request, context) => {
            try {
                const services = getServices();
                let principal: Principal | undefined;
                let caller: Caller | undefined;
                if (def.access === 'anonymous' && def.tokenIfSent && request.headers.get('authorization')) {
                    principal = await services.tokens.validate(request.headers.get('authorization'));
                } else if (def.access !== 'anonymous') {
                    principal = await services.tokens.validate(request.headers.get('authorization'));
                    const allowed = def.access.roles;
                    if (!principal.roles.some((r) => allowed.includes(r))) throw new Forbidden('Your roles do not allow this');
                    const entry = await services.directory.resolve(principal.oid);
                    caller = { principal, orgId: entry?.orgId, isOperator: principal.roles.includes(OPERATOR_ROLE) };
                    // A member deployment serves its own organisation, and the core's calls; nobody else.
                    const member = services.settings.FLEXCHANGE_ROLE === 'member' ? services.settings.FLEXCHANGE_ORG_ID : undefined;
                    if (member && caller.orgId !== member && !principal.roles.includes(CORE_APP_ROLE)) throw new Forbidden(`This deployment serves organisation ${member} only`);
                    if (def.access.org) {
                        const target = request.params[def.access.org] ?? '';
                        if (!ORG_ID_RE.test(target)) throw new NotFound('No such organisation');
                        if (!caller.isOperator && (!caller.orgId || caller.orgId !== target)) throw new NotFound('No such organisation');
                        // The operator acts on organisations that exist: a change to an unknown one would make it half-exist.
                        if (caller.isOperator && caller.orgId !== target && request.method !== 'GET' && services.settings.FLEXCHANGE_ROLE === 'core' && !(await services.organizations.read(target, target))) {
                            throw new NotFound(`There is no organisation ${target}`);
                        }
                    }
                    // Operator staff without an organisation of their own are counted as the operator.
                    const billedOrg = caller.orgId ?? (caller.isOperator ? 'operator' : undefined);
                    if (billedOrg) services.usage.count(billedOrg, name);
                }
                const query = def.query ? def.query.safeParse(Object.fromEntries(request.query.entries())) : { success: true as const, data: {} };
                if (!query.success) throw new Invalid('The query is not valid', issues(query.error, 'query'));
                let body: unknown;
                let raw: Buffer | undefined;
                if (def.body) {
                    const read = await readJsonBody(request, def.maxBodyBytes ?? DEFAULT_MAX_BODY);
                    raw = read.raw;
                    const parsed = def.body.safeParse(read.value);
                    if (!parsed.success) throw new Invalid('The body is not valid', issues(parsed.error, ''));
                    body = parsed.data;
                }
                // Idempotency-Key on a signed-in POST with a JSON body: a retry gets the first answer back.
                const key = request.method === 'POST' && principal && raw ? idempotencyKeyOf(request) : undefined;
                const keptId = key ? IdempotentResponses.keyOf(principal!.oid, name, key) : undefined;
                if (keptId) {
                    const kept = await services.idempotency.find(keptId, raw!);
                    if (kept) return { status: kept.status, headers: { ...kept.headers, 'idempotent-replayed': 'true' }, body: kept.body };
                }
                if (def.rateLimit) {
                    await services.limiter.hit(def.rateLimit({ request, body: body as z.infer<B>, clientAddress: clientAddress(request) }));
                }
                const result = await def.handler({ request, context, principal, caller, body: body as z.infer<B>, query: query.data as z.infer<Q>, params: request.params, durable: def.durable ? df.getClient(context) : undefined });
                const keep = keptId ? storable(result) : undefined;
                if (keep) await services.idempotency.keep(keptId!, name, raw!, keep);
                return result;
            } catch (err) {
                const problem = toProblem(err);
                if (!(err instanceof AppError) || problem.status >= 500) {
                    const e = err as Error & { cause?: unknown };
                    context.error(`${name} failed: ${e?.message}`, e?.cause instanceof Error ? e.cause.message : '');
                }
                const headers: Record<string, string> = { 'content-type': 'application/problem+json', 'cache-control': 'no-store' };
                if (problem.status === 401) headers['www-authenticate'] = 'Bearer';
                const retryAfter = (err as { retryAfterSeconds?: number }).retryAfterSeconds;
                if (problem.status === 429 && retryAfter) headers['retry-after'] = String(retryAfter);
                return { status: problem.status, headers, body: JSON.stringify(problem) };
            }
        },
    });
}
