import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { CosmosClient } from '@azure/cosmos';
import fc from 'fast-check';
import type { z } from 'zod';
import { jsonSchema, pathParams } from '../../functions/http/openapi';
import { routeTable, type RouteEntry } from '../../functions/http/route';
import { devToken, removeDir, repoRoot, type RunningDevhost, startDevhost } from '../harness/devhost';

// Loading every function file fills the route table (outside a host the library only warns that it is in test mode).
const functionsDir = path.join(repoRoot, 'functions');
const quiet = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
for (const f of readdirSync(functionsDir).filter((n) => n.endsWith('.ts'))) require(path.join(functionsDir, f));
quiet.mockRestore();

/**
 * Property-based fuzzing of every HTTP route's body, query, path parameters and headers, on the
 * core and on a member deployment. Every request built here is invalid by construction (checked
 * against the route's own zod schemas where they exist), so the app must refuse it: a 4xx
 * problem+json with `type`, `title` and the same `status`, no internals in the body, and nothing
 * written to the document database.
 *
 * FUZZ_RUNS scales the runs per property; FUZZ_SEED replays a failure (fast-check prints the seed).
 */

const ORG = 'fuzz-org';
const MEMBER_APP = 'member-fuzz';
const RUNS = Number(process.env.FUZZ_RUNS ?? 20);
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;

type Deployment = 'core' | 'member';
type Kind = 'body' | 'query' | 'path' | 'headers';
type TokenName = 'user' | 'memberApp' | 'coreApp';

/** Who each minted token is, and the roles it holds (the user holds every user role, for the member's organisation). */
const TOKEN_ROLES: Record<TokenName, string[]> = {
    user: ['Flexchange.Admin', 'Flexchange.Approver', 'Org.Admin', 'Org.Trader'],
    memberApp: ['Deployment.Member'],
    coreApp: ['Deployment.Core'],
};

/**
 * Containers that change on requests that are refused, by design: `usage` counts every
 * authorised call before validation (billing), `ratelimits` counts every request to a
 * rate-limited route (its window is the point).
 */
const UNWATCHED_CONTAINERS = new Set(['usage', 'ratelimits']);

/** The approval link's page is for a browser: its refusals are HTML pages (functions/registrations.ts `errorPage`). */
const HTML_PAGES = new Set(['approvalsPage']);

/**
 * `POST /approvals/{token}` counts every request against a window of 30 per client address per
 * 10 minutes, and the host appends the real client address, so it cannot be spread out: more
 * runs would only fuzz the limiter (whose 429 would still have to be problem+json).
 */
const FEWER_RUNS: Record<string, number> = { approvalsDecide: 8 };

/** The media types `POST /assets` accepts with the devhost's settings (FLEXCHANGE_ASSET_CONTENT_TYPES's default). */
const ASSET_TYPES = ['application/pdf', 'application/json', 'application/xml', 'text/plain', 'text/csv', 'image/png', 'image/jpeg'];
const mediaType = (t: string) => t.split(';')[0]!.trim().toLowerCase();

/** The Idempotency-Key format (functions/http/route.ts): fuzzed keys must never match it. */
const IDEMPOTENCY_KEY_RE = /^[\x21-\x7e]{1,200}$/;
const JSON_TYPE_RE = /^application\/(.+\+)?json\b/i;

/** The subset of JSON Schema that `jsonSchema()` produces for these routes. */
interface Schema {
    type?: string | string[];
    properties?: Record<string, Schema>;
    required?: string[];
    additionalProperties?: boolean | Schema;
    items?: Schema;
    enum?: unknown[];
    const?: unknown;
    anyOf?: Schema[];
    pattern?: string;
    format?: string;
    minLength?: number;
    maxLength?: number;
    minimum?: number;
    maximum?: number;
    exclusiveMinimum?: number;
    minItems?: number;
    maxItems?: number;
}
const schemaOf = (zod: z.ZodType) => jsonSchema(zod) as Schema;

/** One request, as sent; `note` says how it was broken, for the human reading a failure. */
interface Fuzzed {
    note: string;
    method: string;
    /** Under /api/, path parameters already encoded. */
    path: string;
    query?: string;
    token?: TokenName;
    headers: Record<string, string>;
    body?: string | Uint8Array;
}

interface Target {
    deployment: Deployment;
    app: string;
    route: RouteEntry;
    method: string;
    kind: Kind;
    /** The path parameter a `path` target fuzzes (one target each, so that one's bug does not hide another's). */
    param?: string;
}

// ---------------------------------------------------------------------------------------------
// Valid values from a JSON Schema (best effort: they are the unbroken rest of a request, so that
// a broken header or path parameter is what the app has to deal with)

const ALNUM = [...'abcdefghijklmnopqrstuvwxyz0123456789'];

function validString(s: Schema, key: string): fc.Arbitrary<string> {
    const max = s.maxLength ?? 10_000;
    const fits = (v: string) => v.length >= (s.minLength ?? 0) && v.length <= max;
    if (s.format === 'date-time') return fc.date({ min: new Date('2031-01-01T00:00:00Z'), max: new Date('2032-01-01T00:00:00Z'), noInvalidDate: true }).map((d) => d.toISOString());
    if (s.format === 'uuid') return fc.uuid({ version: 4 });
    if (s.format === 'uri' || key === 'url') return fc.webUrl({ validSchemes: ['https'] }).filter(fits);
    if (s.pattern) return fc.stringMatching(new RegExp(s.pattern)).filter(fits);
    const min = Math.max(1, s.minLength ?? 0);
    return fc.string({ unit: fc.constantFrom(...ALNUM), minLength: min, maxLength: Math.max(min, Math.min(max, 24)) });
}

function valid(s: Schema, key = ''): fc.Arbitrary<unknown> {
    if (s.const !== undefined) return fc.constant(s.const);
    if (s.enum) return fc.constantFrom(...s.enum);
    if (s.anyOf) return fc.oneof(...s.anyOf.map((x) => valid(x, key)));
    switch (Array.isArray(s.type) ? s.type[0] : s.type) {
        case 'string':
            return validString(s, key);
        case 'integer': {
            const min = s.minimum ?? 0;
            return fc.integer({ min, max: Math.min(s.maximum ?? min + 1000, min + 1000) });
        }
        case 'number': {
            const min = s.minimum ?? (s.exclusiveMinimum !== undefined ? s.exclusiveMinimum + 1 : 0);
            return fc.double({ min, max: Math.min(s.maximum ?? min + 1000, min + 1000), noNaN: true, noDefaultInfinity: true });
        }
        case 'boolean':
            return fc.boolean();
        case 'null':
            return fc.constant(null);
        case 'array': {
            const min = s.minItems ?? 0;
            return fc.array(valid(s.items ?? {}), { minLength: min, maxLength: Math.min(s.maxItems ?? min + 2, min + 2) });
        }
        case 'object':
            if (s.properties) {
                const model = Object.fromEntries(Object.entries(s.properties).map(([k, v]) => [k, valid(v, k)]));
                return fc.record(model, { requiredKeys: s.required ?? [] });
            }
            return fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 });
        default:
            return fc.jsonValue({ maxDepth: 2 });
    }
}

// ---------------------------------------------------------------------------------------------
// Breaking one field of a schema-shaped value

interface Breaking {
    label: string;
    apply(value: unknown): unknown;
}

type Step = string | number;
const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

function setAt(root: unknown, at: Step[], update: (current: unknown) => unknown): unknown {
    if (at.length === 0) return update(root);
    const top: Record<string | number, unknown> = typeof root === 'object' && root !== null ? (root as Record<string, unknown>) : {};
    let node = top;
    for (const step of at.slice(0, -1)) {
        const next = node[step];
        if (typeof next !== 'object' || next === null) node[step] = typeof step === 'number' ? [] : {};
        node = node[step] as Record<string | number, unknown>;
    }
    const last = at.at(-1)!;
    const value = update(node[last]);
    if (value === undefined) delete node[last];
    else node[last] = value;
    return top;
}

const jsonTypeOf = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'number' ? (Number.isInteger(v) ? 'integer' : 'number') : typeof v);

function typesOf(s: Schema): string[] | undefined {
    if (s.anyOf) {
        const all = s.anyOf.map(typesOf);
        return all.some((t) => t === undefined) ? undefined : all.flat() as string[];
    }
    if (s.type === undefined) return undefined;
    return Array.isArray(s.type) ? s.type : [s.type];
}

/** Every way to break a value of this schema at one place: a wrong type, a too-long string, a negative count, an extra property... */
function breakingsOf(s: Schema, at: Step[] = []): Breaking[] {
    const where = at.length ? at.join('.') : 'the body';
    const out: Breaking[] = [];
    const put = (label: string, value: (current: unknown) => unknown) => out.push({ label: `${where}: ${label}`, apply: (v) => setAt(v, at, value) });
    const types = typesOf(s);
    if (types) {
        const allowed = (v: unknown) => types.includes(jsonTypeOf(v)) || (jsonTypeOf(v) === 'integer' && types.includes('number'));
        for (const wrong of [12345, 'fuzz', true, null, [], {}, 0.5]) if (!allowed(wrong)) put(`wrong type (${jsonTypeOf(wrong)})`, () => wrong);
    }
    if (s.maxLength !== undefined) put(`${s.maxLength + 1} characters`, () => 'x'.repeat(s.maxLength! + 1));
    if (s.minLength) put('empty string', () => '');
    if (s.pattern) put('not matching its pattern', (c) => `${typeof c === 'string' ? c : 'x'}\u2603 `);
    if (s.enum) put('not one of its values', () => `not-${String(s.enum![0])}`);
    if (s.format === 'date-time') put('not a date-time', () => '2031-02-30T25:61:00');
    if ((s.minimum !== undefined && s.minimum >= 0) || (s.exclusiveMinimum !== undefined && s.exclusiveMinimum >= 0)) put('negative', () => -1);
    if (s.maximum !== undefined) put('over its maximum', () => s.maximum! * 2 + 1);
    if (types?.includes('integer') && !types.includes('number')) put('not an integer', () => 1.5);
    if (s.minItems) put('empty array', () => []);
    if (s.maxItems !== undefined) put(`${s.maxItems + 1} items`, (c) => Array.from({ length: s.maxItems! + 1 }, () => (Array.isArray(c) && c.length ? c[0] : 1)));
    if (s.items) out.push(...breakingsOf(s.items, [...at, 0]));
    if (s.properties) {
        for (const key of s.required ?? []) out.push({ label: `${[...at, key].join('.')}: missing`, apply: (v) => setAt(v, [...at, key], () => undefined) });
        for (const [key, sub] of Object.entries(s.properties)) out.push(...breakingsOf(sub, [...at, key]));
    }
    if (s.additionalProperties === false) {
        put('an extra property', (c) => ({ ...(typeof c === 'object' && c !== null ? c : {}), fuzzExtra: 1 }));
        // A JSON `__proto__` key is an own property after JSON.parse: it must be refused as any extra key is.
        put('an extra __proto__ property', (c) => Object.defineProperty({ ...(typeof c === 'object' && c !== null ? c : {}) }, '__proto__', { value: { isOperator: true }, enumerable: true }));
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Garbage

/** Bodies that are not JSON at all, for a request that says it is. */
const notJson = fc
    .oneof(
        fc.uint8Array({ minLength: 1, maxLength: 64 }).map((b) => Buffer.from(b)),
        fc.constantFrom('{', '{"a":', "{'a':1}", 'NaN', 'undefined', '{"a":1}}', '[1,]', '\uFEFF{}', '{"a":1} trailing', '"unterminated', '0x10', '--', '<xml/>').map((s) => Buffer.from(s, 'utf8')),
    )
    .filter((b) => {
        try {
            JSON.parse(b.toString('utf8'));
            return false;
        } catch {
            return true;
        }
    })
    .map((b) => new Uint8Array(b));

const jsonTypes = fc.constantFrom('application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON');

/** Content types that are not JSON (nor a form, which the approval link takes). */
const notJsonType = fc
    .oneof(
        fc.constantFrom('text/plain', 'text/html', 'application/xml', 'application/octet-stream', 'multipart/form-data; boundary=fuzz', 'text/json', 'application/jsonp', 'json', 'application/x-ndjson', '*/*', 'application'),
        fc.stringMatching(/^[a-z]{1,10}\/[a-z0-9.+-]{1,16}$/),
    )
    .filter((t) => !JSON_TYPE_RE.test(t) && mediaType(t) !== 'application/x-www-form-urlencoded');

/** Media types documents are not accepted in. */
const notAssetType = fc
    .oneof(fc.constantFrom('application/octet-stream', 'text/html', 'application/zip', 'video/mp4', 'application/x-msdownload', 'image/svg+xml'), fc.stringMatching(/^x-[a-z]{1,8}\/[a-z0-9.+-]{1,16}$/))
    .filter((t) => !ASSET_TYPES.includes(mediaType(t)));

/** Path parameter values that name nothing and are malformed as ids: unicode, traversal, very long, injection-shaped. */
const anyGarbage = fc
    .oneof(
        fc.string({ unit: 'binary', minLength: 1, maxLength: 30 }),
        fc.string({ unit: 'grapheme', minLength: 1, maxLength: 10 }),
        fc.constantFrom('../../etc/passwd', '..', '../', '..%2F..%2F', '..\\..\\windows', '%', '%00', '%zz', '/', '//', '?', '#', '\\', ' ', '\t', '\u0000', '\u202e', '\uFEFF', '\u{1F4A9}'),
        fc.constantFrom('0', '-1', '1.5', '1e309', 'NaN', 'Infinity', 'null', 'undefined', 'true', '[]', '{}', "' OR '1'='1", 'SELECT * FROM c', '<script>alert(1)</script>', '${jndi:ldap://x}', '{{7*7}}'),
        // Names every plain object has: a lookup table indexed by a path parameter must not find them.
        fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty'),
        fc.tuple(fc.integer({ min: 201, max: 3000 }), fc.constantFrom('a', '0', '-', 'F')).map(([n, c]) => c.repeat(n)),
    )
    // `.` and `..` are resolved away by the URL parser before the request leaves.
    .filter((v) => v !== '.' && v !== '..');

/**
 * What a well-formed value of each path parameter looks like. Fuzzed values never are one: a
 * well-formed id of something missing is a fair question (404 or an empty list), not bad input.
 */
const WELL_FORMED: Record<string, (v: string) => boolean> = {
    orgId: (v) => /^[a-z0-9][a-z0-9-]{0,62}$/.test(v),
    nodeId: (v) => /^[a-z0-9][a-z0-9-]{0,62}$/.test(v),
    version: (v) => Number.isInteger(Number(v)) && Number(v) >= 1,
    address: (v) => /^0x[0-9a-fA-F]{40}$/.test(v),
    file: (v) => /^[a-z0-9-]+(\.[a-z0-9]+)+$/.test(v),
    token: (v) => /^[\w-]+\.[\w-]+$/.test(v),
};
const uuidLike = (v: string) => /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i.test(v);
const garbageFor = (param: string) => anyGarbage.filter((v) => !(WELL_FORMED[param] ?? uuidLike)(v));

/** Idempotency-Key values outside 1-200 visible ASCII characters (fetch trims spaces and tabs at the ends, so they go inside). */
const badIdempotencyKey = fc
    .oneof(
        fc.integer({ min: 201, max: 2000 }).map((n) => 'k'.repeat(n)),
        fc.tuple(fc.string({ minLength: 1, maxLength: 20 }), fc.constantFrom(' ', '\t', 'é', '\u00a0', 'ÿ'), fc.string({ minLength: 1, maxLength: 20 })).map(([a, c, b]) => `${a}${c}${b}`),
    )
    .filter((k) => !IDEMPOTENCY_KEY_RE.test(k.replace(/^[ \t]+|[ \t]+$/g, '')) && k.trim() !== '');

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

/** Authorization headers that must all answer 401: no scheme, other schemes, malformed or forged tokens. */
function badAuthorization(tokens: Record<TokenName, string>, foreign: string): fc.Arbitrary<{ note: string; value: string }> {
    const real = fc.constantFrom(...(Object.keys(tokens) as TokenName[]));
    const tamper = (token: string, part: number, at: number, by: string) => {
        const parts = token.split('.');
        const seg = parts[part]!;
        // Never the last character: its low bits may be padding, so changing it can leave the bytes as they were.
        const i = at % Math.max(1, seg.length - 1);
        parts[part] = seg.slice(0, i) + (seg[i] === by ? (by === 'A' ? 'B' : 'A') : by) + seg.slice(i + 1);
        return parts.join('.');
    };
    return fc.oneof(
        fc.string({ maxLength: 80 }).map((s) => ({ note: 'garbage', value: s })),
        fc.string({ maxLength: 80 }).map((s) => ({ note: 'Bearer garbage', value: `Bearer ${s}` })),
        fc.constantFrom('Bearer', 'Bearer ', 'Basic ZnV6ejpmdXp6', 'Token abc', 'Bearer null', 'Bearer a.b', 'Bearer a.b.c.d', `Bearer ${'a'.repeat(6000)}.b.c`).map((v) => ({ note: 'malformed', value: v })),
        fc.tuple(fc.base64String({ minLength: 4, maxLength: 60 }), fc.base64String({ minLength: 4, maxLength: 200 }), fc.base64String({ maxLength: 100 })).map(([a, b, c]) => ({
            note: 'random JWT-shaped',
            value: `Bearer ${[a, b, c].map((x) => x.replace(/\+/g, '-').replace(/\//g, '_').replace(/=/g, '')).join('.')}`,
        })),
        fc.tuple(real, fc.constantFrom('none', 'HS256', 'RS512', 'ES256')).map(([name, alg]) => {
            const [, payload] = tokens[name].split('.');
            return { note: `the ${name} token's claims under alg ${alg}`, value: `Bearer ${b64({ alg, typ: 'JWT', kid: 'fuzz' })}.${payload}.${alg === 'none' ? '' : 'c2lnbmF0dXJl'}` };
        }),
        fc.tuple(real, fc.constantFrom(1, 2), fc.nat(), fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_')).map(([name, part, at, by]) => ({
            note: `the ${name} token with one character of its ${part === 1 ? 'claims' : 'signature'} changed`,
            value: `Bearer ${tamper(tokens[name], part, at, by)}`,
        })),
        real.map((name) => ({ note: `the ${name} token's header over claims that are not JSON`, value: `Bearer ${tokens[name].split('.')[0]}.${Buffer.from('not json').toString('base64url')}.c2lnbmF0dXJl` })),
        fc.constant({ note: 'a token for another audience', value: `Bearer ${foreign}` }),
        real.map((name) => ({ note: `the ${name} token without its scheme`, value: tokens[name] })),
        real.map((name) => ({ note: `the ${name} token as Basic`, value: `Basic ${tokens[name]}` })),
    );
}

// ---------------------------------------------------------------------------------------------
// Requests for one target

const PLACEHOLDERS: Record<string, string> = {
    orgId: ORG,
    address: '0x000000000000000000000000000000000000f022',
    version: '424242',
    nodeId: 'fuzz-node-0',
    token: 'fuzz-not-an-approval-link',
};
/** A well-formed id of nothing: for the path parameters a request does not fuzz. */
const placeholder = (name: string) => PLACEHOLDERS[name] ?? '7d0f3c4e-2b1a-4c3d-8e9f-0123456789ab';

const takesBody = (method: string) => method === 'POST' || method === 'PUT' || method === 'PATCH';
const isAssetUpload = (r: RouteEntry) => !!r.rawBody && !r.rawBody.schema;

function pathWith(route: string, values: Record<string, string>): string {
    return route.replace(/\{\*{0,2}([A-Za-z_][A-Za-z0-9_]*)[^}]*\}/g, (_m, name: string) => encodeURIComponent(values[name] ?? placeholder(name)));
}

/** The tokens whose roles the route allows (none for anonymous routes). */
function allowedTokens(r: RouteEntry): TokenName[] {
    if (r.access === 'anonymous') return [];
    const roles = r.access.roles;
    return (Object.keys(TOKEN_ROLES) as TokenName[]).filter((t) => TOKEN_ROLES[t].some((role) => roles.includes(role)));
}

/** The route's input schema for JSON bodies: `body`, or the structured form of a raw body. */
const bodySchema = (r: RouteEntry): z.ZodType | undefined => r.body ?? r.rawBody?.schema;

/** A body the route would accept if nothing else were wrong (best effort: a request with an invalid one is refused all the same). */
function validBody(r: RouteEntry): fc.Arbitrary<{ type: string; body: string | Uint8Array } | undefined> {
    if (isAssetUpload(r)) return fc.constant({ type: 'text/plain', body: 'a fuzzing document' });
    const schema = bodySchema(r);
    if (!schema) return fc.constant(undefined);
    return valid(schemaOf(schema)).map((v) => ({ type: 'application/json', body: JSON.stringify(v) }));
}

const rejects = (schema: z.ZodType | undefined, text: string) => {
    if (!schema) return true;
    let value: unknown;
    try {
        value = JSON.parse(text);
    } catch {
        return true;
    }
    return !schema.safeParse(value).success;
};

function bodyCases(r: RouteEntry): fc.Arbitrary<{ note: string; type?: string; body: string | Uint8Array }> {
    if (isAssetUpload(r)) {
        return fc.oneof(
            fc.tuple(notAssetType, fc.uint8Array({ minLength: 1, maxLength: 256 })).map(([type, bytes]) => ({ note: 'a document of a type not accepted', type, body: bytes })),
            fc.uint8Array({ minLength: 1, maxLength: 64 }).map((bytes) => ({ note: 'a document without a content type', body: bytes })),
            fc.constantFrom(...ASSET_TYPES).map((type) => ({ note: 'an empty document', type, body: new Uint8Array(0) })),
        );
    }
    const schema = bodySchema(r);
    const options: fc.WeightedArbitrary<{ note: string; type?: string; body: string | Uint8Array }>[] = [
        fc.tuple(fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)), jsonTypes)
            .filter(([text]) => rejects(schema, text))
            .map(([text, type]) => ({ note: 'any JSON value', type, body: text })),
        fc.tuple(notJson, jsonTypes).map(([bytes, type]) => ({ note: 'not JSON, sent as JSON', type, body: bytes })),
        fc.tuple(validBody(r), notJsonType).map(([b, type]) => ({ note: 'a JSON body under another content type', type, body: b?.body ?? '{}' })),
    ].map((arbitrary) => ({ arbitrary, weight: 4 }));
    if (schema) {
        const s = schemaOf(schema);
        const breakings = breakingsOf(s);
        if (breakings.length) {
            options.push({
                arbitrary: fc
                    .tuple(valid(s), fc.constantFrom(...breakings), jsonTypes)
                    .map(([v, b, type]) => ({ note: b.label, type, body: JSON.stringify(b.apply(clone(v))) }))
                    .filter((c) => rejects(schema, c.body)),
                weight: 8,
            });
        }
    }
    if (r.body) options.push({ arbitrary: fc.constant({ note: 'a body over the 256 KiB limit', type: 'application/json', body: JSON.stringify({ pad: 'x'.repeat(300_000) }) }), weight: 1 });
    return fc.oneof(...options);
}

function queryCases(r: RouteEntry): fc.Arbitrary<{ note: string; query: string }> {
    const schema = r.query!;
    const props = Object.entries(schemaOf(schema).properties ?? {});
    const wrong = (s: Schema): fc.Arbitrary<string> =>
        fc.oneof(
            fc.string({ maxLength: 20 }),
            fc.constantFrom('', ' ', '-1', '1.5', 'abc', 'NaN', '1e999', '[]', 'null', 'true', '\u2603', '%00'),
            ...(s.maxLength !== undefined ? [fc.constant('q'.repeat(s.maxLength + 1))] : []),
            ...(s.maximum !== undefined ? [fc.constant(String(s.maximum * 2 + 1))] : []),
        );
    const randomPairs = fc.array(fc.tuple(fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }), fc.string({ unit: 'binary', maxLength: 40 })), { minLength: 1, maxLength: 4 }).map((pairs) => ({ note: 'random keys', pairs }));
    const options = [randomPairs];
    if (props.length) {
        options.push(
            fc.array(fc.constantFrom(...props).chain(([k, s]) => wrong(s).map((v): [string, string] => [k, v])), { minLength: 1, maxLength: props.length })
                .map((pairs) => ({ note: 'its own keys with wrong values', pairs })),
        );
    }
    return fc
        .oneof(...options)
        .map(({ note, pairs }) => ({ note, query: new URLSearchParams(pairs).toString() }))
        .filter(({ query }) => !schema.safeParse(Object.fromEntries(new URLSearchParams(query).entries())).success);
}

/** Every request one property sends for a target (`token` names the real token it is sent with). */
function requestsFor(t: Target): fc.Arbitrary<Fuzzed> {
    const r = t.route;
    const base = (path = pathWith(r.route, {})) => ({ method: t.method, path });
    const allowed = allowedTokens(r);
    const token: fc.Arbitrary<TokenName | undefined> = allowed.length ? fc.constantFrom(...allowed) : fc.constant(undefined);
    const withBody = takesBody(t.method) && !r.noBody;
    const body = withBody ? validBody(r) : fc.constant(undefined);
    const typed = (b: { type: string; body: string | Uint8Array } | undefined, extra: Record<string, string> = {}): Pick<Fuzzed, 'headers' | 'body'> => ({ headers: { ...(b ? { 'content-type': b.type } : {}), ...extra }, body: b?.body });

    switch (t.kind) {
        case 'body':
            return fc.tuple(bodyCases(r), token).map(([c, tk]): Fuzzed => ({ ...base(), note: c.note, token: tk, headers: c.type ? { 'content-type': c.type } : {}, body: c.body }));
        case 'query':
            return fc.tuple(queryCases(r), token).map(([q, tk]) => ({ ...base(), note: `query: ${q.note}`, query: q.query, token: tk, headers: {} }));
        case 'path':
            return fc.tuple(garbageFor(t.param!), token, body).map(([value, tk, b]) => ({ ...base(pathWith(r.route, { [t.param!]: value })), note: `path parameter ${t.param}`, token: tk, ...typed(b) }));
        case 'headers': {
            const options: fc.Arbitrary<Fuzzed>[] = [];
            if (t.method === 'POST') {
                options.push(fc.tuple(badIdempotencyKey, token, body).map(([key, tk, b]) => ({ ...base(), note: 'a malformed Idempotency-Key', token: tk, ...typed(b, { 'idempotency-key': key }) })));
            }
            if (r.body) {
                options.push(fc.tuple(notJsonType, token, body).map(([type, tk, b]) => ({ ...base(), note: 'content-type', token: tk, headers: { 'content-type': type }, body: b?.body ?? '{}' })));
            }
            return fc.oneof(...options);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What is fuzzed

function targets(): Target[] {
    const out: Target[] = [];
    for (const [deployment, app] of [['core', 'core'], ['member', MEMBER_APP]] as const) {
        for (const route of routeTable.filter((r) => r.deployments.includes(deployment))) {
            const params = pathParams(route.route);
            // A route that takes no body and no parameters performs its action on any authorised call
            // (POST /keystore/backups makes a backup): it has no input that could be invalid.
            if (route.noBody && params.length === 0) continue;
            for (const method of route.methods) {
                const add = (kind: Kind, param?: string) => out.push({ deployment, app, route, method, kind, param });
                const withBody = takesBody(method) && !route.noBody && !!(route.body || route.rawBody);
                if (withBody) add('body');
                if (route.query) add('query');
                for (const param of params) add('path', param);
                // Idempotency-Key and content-type, on a signed-in request with a body (an anonymous one's content type is in `body`).
                if (route.access !== 'anonymous' && withBody && (method === 'POST' || route.body)) add('headers');
                // Anonymous and no input (health, openapi.json): nothing to fuzz.
            }
        }
    }
    return out;
}

/**
 * Where a broken Authorization header must answer 401: every signed-in route, and the anonymous
 * `GET /registrations/{id}`, which reads a token when the request has no status key.
 */
function authorizationTargets(deployment: Deployment): { route: RouteEntry; method: string }[] {
    return routeTable
        .filter((r) => r.deployments.includes(deployment) && (r.access !== 'anonymous' || r.name === 'registrationsGet') && !(r.noBody && pathParams(r.route).length === 0))
        .flatMap((route) => route.methods.map((method) => ({ route, method })));
}

// ---------------------------------------------------------------------------------------------
// Sending and judging

interface Answer {
    status: number;
    contentType: string;
    text: string;
}

/** Long runs of one character are shown as such (the rest verbatim), so a failure stays readable. */
const compact = (s: string) => s.replace(/(.)\1{39,}/gsu, (run, c: string) => `⟨${JSON.stringify(c)} × ${[...run].length}⟩`);

function describeRequest(req: Fuzzed, url: string, headers: Record<string, string>, tokens: Record<TokenName, string>): string {
    const redact = (v: string) => (Object.entries(tokens) as [TokenName, string][]).reduce((s, [name, tok]) => s.split(tok).join(`<${name} token>`), v);
    const body = req.body === undefined ? '(no body)' : typeof req.body === 'string' ? compact(req.body).slice(0, 3000) : `(${req.body.length} bytes, base64) ${Buffer.from(req.body).toString('base64').slice(0, 3000)}`;
    return [`fuzzed: ${req.note}`, `${req.method} ${compact(url)}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${compact(redact(v))}`), '', body].join('\n');
}

function judge(route: RouteEntry, res: Answer): string | undefined {
    if (res.status >= 200 && res.status < 300) return `accepted an invalid request (${res.status})`;
    if (res.status >= 500) return `failed with ${res.status}`;
    if (res.status < 400) return `answered ${res.status}`;
    if (/\n\s+at /.test(res.text) || res.text.includes('Error:')) return 'the body shows internals (a stack trace or an error name)';
    if (HTML_PAGES.has(route.name) && /^text\/html/i.test(res.contentType)) return undefined;
    if (!/^application\/problem\+json/i.test(res.contentType)) return `content-type ${res.contentType || '(none)'}, not application/problem+json`;
    let problem: { type?: unknown; title?: unknown; status?: unknown };
    try {
        problem = JSON.parse(res.text) as typeof problem;
    } catch {
        return 'the problem body is not JSON';
    }
    if (typeof problem !== 'object' || problem === null) return 'the problem body is not an object';
    if (typeof problem.type !== 'string' || typeof problem.title !== 'string') return 'the problem has no type or title';
    if (problem.status !== res.status) return `the problem says status ${String(problem.status)}, the response ${res.status}`;
    return undefined;
}

type Snapshot = Map<string, string[]>;

/** Every document of every watched container of every database, as JSON (with `_etag`/`_ts`, so an update shows). */
async function documents(client: CosmosClient): Promise<Snapshot> {
    const out: Snapshot = new Map();
    const { resources: dbs } = await client.databases.readAll().fetchAll();
    for (const db of dbs) {
        const { resources: containers } = await client.database(db.id).containers.readAll().fetchAll();
        for (const c of containers) {
            if (UNWATCHED_CONTAINERS.has(c.id)) continue;
            const { resources: items } = await client.database(db.id).container(c.id).items.readAll().fetchAll();
            out.set(`${db.id}/${c.id}`, items.map((i) => JSON.stringify(i)).sort());
        }
    }
    return out;
}

/** Per container: how many documents appeared or went (a change is both), with a few of them, system properties left out. */
function changes(before: Snapshot, after: Snapshot): string[] {
    const shown = (doc: string) => compact(JSON.stringify(Object.fromEntries(Object.entries(JSON.parse(doc) as Record<string, unknown>).filter(([k]) => !k.startsWith('_'))))).slice(0, 400);
    const out: string[] = [];
    for (const key of new Set([...before.keys(), ...after.keys()])) {
        const was = new Set(before.get(key) ?? []);
        const now = new Set(after.get(key) ?? []);
        const written = [...now].filter((d) => !was.has(d));
        const gone = [...was].filter((d) => !now.has(d));
        if (written.length) out.push(`${key}: ${written.length} written or changed, e.g. ${written.slice(0, 3).map(shown).join(' | ')}`);
        if (gone.length) out.push(`${key}: ${gone.length} deleted or changed, e.g. ${gone.slice(0, 3).map(shown).join(' | ')}`);
    }
    return out;
}

describe('fuzzing every route: invalid input answers 4xx problem+json and writes nothing', () => {
    let host: RunningDevhost;
    let cosmos: CosmosClient;
    let before: Snapshot;
    const tokens = {} as Record<TokenName, string>;
    let foreign = '';

    beforeAll(async () => {
        // The member gets a database of its own, as the members the devhost makes at run time do (`member-<orgId>`).
        host = await startDevhost(['--app', repoRoot, '--name', 'core', '--app', repoRoot, '--name', MEMBER_APP, '--set', 'FLEXCHANGE_ROLE=member', '--set', `FLEXCHANGE_ORG_ID=${ORG}`, '--set', `COSMOS_DATABASE=member-${ORG}`], {
            storage: true,
            timeoutMs: 120_000,
        });
        // The member deployment's own app identity, entered in the core's directory for its organisation (as onboarding does).
        tokens.memberApp = await devToken(host, { roles: TOKEN_ROLES.memberApp, orgId: ORG, appOnly: true, name: `flexchange-${MEMBER_APP}` });
        tokens.user = await devToken(host, { roles: TOKEN_ROLES.user, orgId: ORG, email: `fuzzer@${ORG}.example` });
        tokens.coreApp = await devToken(host, { roles: TOKEN_ROLES.coreApp, appOnly: true, name: 'fuzz-core-app' });
        const res = await fetch(`${host.consoleUrl}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ roles: TOKEN_ROLES.user, email: `fuzzer@${ORG}.example`, audience: 'api://not-flexchange' }) });
        foreign = ((await res.json()) as { access_token: string }).access_token;
        // Every token works where it should, so the fuzzed requests get past authorization.
        for (const [app, name] of [['core', 'user'], ['core', 'memberApp'], ['core', 'coreApp'], [MEMBER_APP, 'user'], [MEMBER_APP, 'coreApp']] as const) {
            const me = await fetch(`${host.origin(app)}/api/me`, { headers: { authorization: `Bearer ${tokens[name]}` } });
            expect({ app, name, status: me.status }).toEqual({ app, name, status: 200 });
        }
        const storage = JSON.parse(readFileSync(path.join(host.stateDir, 'storage.json'), 'utf8')) as { cosmos: { endpoint: string; key: string } };
        cosmos = new CosmosClient({ endpoint: storage.cosmos.endpoint, key: storage.cosmos.key, connectionPolicy: { enableEndpointDiscovery: false } });
        before = await documents(cosmos);
    }, 180_000);

    afterAll(async () => {
        cosmos?.dispose();
        await host?.stop();
        removeDir(host?.stateDir);
    });

    const all = targets();

    it('fuzzes both deployments', () => {
        expect(all.filter((t) => t.deployment === 'core').length).toBeGreaterThan(40);
        expect(all.filter((t) => t.deployment === 'member').length).toBeGreaterThan(7);
        expect(new Set(all.map((t) => t.kind))).toEqual(new Set(['body', 'query', 'path', 'headers']));
    });

    /** Sends one request; a failure is a message with the request and the answer, for a human to replay. */
    async function check(app: string, route: RouteEntry, req: Fuzzed): Promise<{ problem: string; detail: string } | undefined> {
        const url = `${host.origin(app)}/api/${req.path}${req.query ? `?${req.query}` : ''}`;
        const headers: Record<string, string> = { ...req.headers, ...(req.token ? { authorization: `Bearer ${tokens[req.token]}` } : {}) };
        const shown = () => describeRequest(req, url, headers, tokens);
        let answer: Answer;
        try {
            const res = await fetch(url, { method: req.method, headers, body: req.body, signal: AbortSignal.timeout(20_000) });
            answer = { status: res.status, contentType: res.headers.get('content-type') ?? '', text: await res.text() };
        } catch (err) {
            return { problem: `the request failed (${(err as Error).message})`, detail: shown() };
        }
        const problem = judge(route, answer);
        return problem ? { problem, detail: `${problem}\n\n${shown()}\n\n→ ${answer.status} ${answer.contentType}\n${compact(answer.text).slice(0, 2000)}` } : undefined;
    }

    it.each(all.map((t) => [`${t.deployment} ${t.method} /api/${t.route.route} (${t.param ? `path ${t.param}` : t.kind})`, t] as const))('%s', async (_name, t) => {
        await fc.assert(
            fc.asyncProperty(requestsFor(t), async (req) => {
                const wrong = await check(t.app, t.route, req);
                if (wrong) throw new Error(wrong.detail);
            }),
            { numRuns: FEWER_RUNS[t.route.name] ?? RUNS, seed: SEED, includeErrorInReport: true },
        );
    });

    // Tokens are checked by the pipeline every route shares: each broken header goes to every route of the
    // deployment at once, so that one flaw of the check is one failure naming the routes it breaks.
    it.each([
        ['core', 'core'],
        ['member', MEMBER_APP],
    ] as const)('%s: a broken Authorization header answers 401 problem+json on every route that reads one', async (deployment, app) => {
        const routes = authorizationTargets(deployment);
        expect(routes.length).toBeGreaterThan(deployment === 'core' ? 30 : 8);
        await fc.assert(
            fc.asyncProperty(badAuthorization(tokens, foreign), async (auth) => {
                const failures: { where: string; problem: string; detail: string }[] = [];
                for (const { route, method } of routes) {
                    const json = takesBody(method) && !route.noBody;
                    const req: Fuzzed = { note: `authorization: ${auth.note}`, method, path: pathWith(route.route, {}), headers: { authorization: auth.value, ...(json ? { 'content-type': 'application/json' } : {}) }, body: json ? '{}' : undefined };
                    const wrong = await check(app, route, req);
                    if (wrong) failures.push({ where: `${method} /api/${req.path}`, ...wrong });
                }
                if (failures.length) throw new Error(`${failures.length} of ${routes.length} routes answered wrongly:\n${failures.map((f) => `  ${f.where}: ${f.problem}`).join('\n')}\n\nthe first:\n${failures[0]!.detail}`);
            }),
            { numRuns: RUNS, seed: SEED, includeErrorInReport: true },
        );
    });

    it('wrote nothing to the database', async () => {
        expect(changes(before, await documents(cosmos))).toEqual([]);
    });
});
