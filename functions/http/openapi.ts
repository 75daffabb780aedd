import { z } from 'zod';
import type { DeploymentRole, RouteEntry } from './route';

type Json = Record<string, unknown>;

/** A zod schema as JSON Schema 2020-12 (OpenAPI 3.1's dialect), as requests are read: before defaults and transforms. */
export function jsonSchema(schema: z.ZodType): Json {
    const { $schema: _s, ...out } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' }) as Json;
    return out;
}

/** `orgs/{orgId}/users/{userId:guid?}` → the parameter names, without constraints. */
export const pathParams = (route: string): string[] => [...route.matchAll(/\{\*{0,2}([A-Za-z_][A-Za-z0-9_]*)[^}]*\}/g)].map((m) => m[1]!);

/** The route as an OpenAPI path (constraints dropped), under the Functions prefix. */
export const openApiPath = (route: string): string => `/api/${route.replace(/\{\*{0,2}([A-Za-z_][A-Za-z0-9_]*)[^}]*\}/g, '{$1}')}`;

const problem = { $ref: '#/components/responses/Problem' };
const ERRORS: Record<string, string> = {
    '400': 'Invalid input (field errors in `errors`)',
    '401': 'No token, or a bad one',
    '403': 'Not allowed for this caller',
    '404': 'Unknown (also another organisation’s resource)',
    '409': 'Conflict: duplicate, wrong state, stale ETag',
    '413': 'Body too large',
    '415': 'Wrong content type',
    '422': 'Refused: the input is well-formed but cannot be applied',
    '429': 'Over quota (Retry-After)',
    '502': 'The ledger or a dependency failed',
    '503': 'Not ready: a dependency is unreachable',
};

/**
 * The OpenAPI 3.1 document of one deployment's API, generated from the route table: the same zod
 * schemas that validate each request's query and body, the roles next to each route, and one
 * problem+json shape for every error.
 */
export function openApiDocument(routes: readonly RouteEntry[], deployment: DeploymentRole, opts: { serverUrl?: string; version: string }): Json {
    const paths: Record<string, Record<string, Json>> = {};
    for (const r of routes.filter((x) => x.deployments.includes(deployment))) {
        const path = openApiPath(r.route);
        const access = r.access === 'anonymous' ? undefined : r.access;
        const secured = !!access;
        for (const method of r.methods) {
            const parameters: Json[] = pathParams(r.route).map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' } }));
            if (r.query) {
                const q = jsonSchema(r.query) as { properties?: Record<string, Json>; required?: string[] };
                for (const [name, schema] of Object.entries(q.properties ?? {})) parameters.push({ name, in: 'query', required: (q.required ?? []).includes(name), schema });
            }
            if (method === 'POST' && secured) {
                parameters.push({ name: 'Idempotency-Key', in: 'header', required: false, description: 'A retry with the same key gets the first answer back (Idempotent-Replayed: true)', schema: { type: 'string', pattern: '^[\\x21-\\x7e]{1,200}$' } });
            }
            const op: Json = {
                operationId: r.methods.length > 1 ? `${r.name}${method[0]}${method.slice(1).toLowerCase()}` : r.name,
                summary: r.summary,
                tags: [r.route.split('/')[0]],
                ...(parameters.length ? { parameters } : {}),
                ...(access ? { security: [{ bearer: [] }], 'x-roles': access.roles, ...(access.org ? { 'x-org-scope': access.org } : {}) } : { security: r.tokenIfSent ? [{}, { bearer: [] }] : [] }),
            };
            const requestBody = bodyOf(r);
            if (requestBody) op.requestBody = requestBody;
            const responses: Json = { '2XX': { description: 'Success' } };
            const codes = new Set(['503']);
            if (secured) ['401', '403', '429'].forEach((c) => codes.add(c));
            if (access?.org) codes.add('404');
            if (pathParams(r.route).length) codes.add('404');
            if (r.query || requestBody) codes.add('400');
            if (requestBody) ['413', '415', '409'].forEach((c) => codes.add(c));
            for (const c of [...codes].sort()) responses[c] = { ...problem, description: ERRORS[c] };
            for (const [c, r2] of Object.entries(r.responses ?? {})) {
                if (c.startsWith('2')) delete responses['2XX'];
                responses[c] = c.startsWith('2')
                    ? { description: r2.description, ...(r2.schema ? { content: { 'application/json': { schema: jsonSchema(r2.schema) } } } : {}) }
                    : { ...problem, description: r2.description };
            }
            op.responses = responses;
            (paths[path] ??= {})[method.toLowerCase()] = op;
        }
    }
    return {
        openapi: '3.1.0',
        info: {
            title: `Flexchange ${deployment} API`,
            version: opts.version,
            description:
                deployment === 'core'
                    ? 'The consortium operator’s deployment: registrations, organisations, proposals and the signing saga, contracts, treasury, node registry, events.'
                    : 'A member organisation’s own deployment: its accounts and keys, its copies of proposals, signing, keystore backups, its nodes.',
        },
        jsonSchemaDialect: 'https://spec.openapis.org/oas/3.1/dialect/base',
        ...(opts.serverUrl ? { servers: [{ url: opts.serverUrl }] } : {}),
        paths,
        components: {
            securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'An Entra ID access token for the API’s audience (locally: `npm run -s token`)' } },
            schemas: {
                Problem: {
                    type: 'object',
                    description: 'RFC 9457 problem details',
                    properties: {
                        type: { type: 'string' },
                        title: { type: 'string' },
                        status: { type: 'integer' },
                        detail: { type: 'string' },
                        code: { type: 'string' },
                        errors: { type: 'array', items: { type: 'object', properties: { path: { type: 'string' }, message: { type: 'string' } }, required: ['path', 'message'] } },
                    },
                    required: ['type', 'title', 'status'],
                },
            },
            responses: { Problem: { description: 'An error', content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } } },
        },
    };
}

function bodyOf(r: RouteEntry): Json | undefined {
    if (r.body) return { required: true, content: { 'application/json': { schema: jsonSchema(r.body) } } };
    if (!r.rawBody) return undefined;
    const content: Record<string, Json> = {};
    for (const type of r.rawBody.contentTypes) {
        content[type] = { schema: r.rawBody.schema && !type.endsWith('octet-stream') && type !== '*/*' ? jsonSchema(r.rawBody.schema) : { type: 'string', contentMediaType: type === '*/*' ? 'application/octet-stream' : type } };
    }
    return { required: true, description: r.rawBody.description, content };
}
