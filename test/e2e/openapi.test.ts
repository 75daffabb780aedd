import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathParams, openApiPath } from '../../functions/http/openapi';
import { routeTable } from '../../functions/http/route';
import { CATCH_ALL_FUNCTION } from '../../functions/notFound';
import { removeDir, repoRoot, RunningDevhost, startDevhost } from '../harness/devhost';

// Loading every function file fills the route table (outside a host the library only warns that it is in test mode).
const functionsDir = path.join(repoRoot, 'functions');
const quiet = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
for (const f of readdirSync(functionsDir).filter((n) => n.endsWith('.ts'))) require(path.join(functionsDir, f));
quiet.mockRestore();

interface Operation {
    operationId: string;
    parameters?: { name: string; in: string; required: boolean; schema: Record<string, unknown> }[];
    requestBody?: { content: Record<string, { schema: Record<string, unknown> }> };
    security: unknown[];
    'x-roles'?: string[];
    responses: Record<string, unknown>;
}
type Doc = { openapi: string; info: { title: string; version: string }; paths: Record<string, Record<string, Operation>>; components: Record<string, unknown> };

/** The OpenAPI 3.1 documents the core and a member serve, checked against the route table and the functions each registers. */
describe('OpenAPI documents and Swagger UI', () => {
    let host: RunningDevhost;
    const docs = new Map<string, Doc>();

    beforeAll(async () => {
        host = await startDevhost(['--app', repoRoot, '--name', 'core', '--app', repoRoot, '--name', 'member-docs', '--set', 'FLEXCHANGE_ROLE=member', '--set', 'FLEXCHANGE_ORG_ID=docs-org'], { storage: true });
        for (const app of ['core', 'member-docs']) {
            const res = await fetch(`${host.origin(app)}/api/openapi.json`);
            expect(res.status).toBe(200);
            expect(res.headers.get('content-type')).toMatch(/^application\/json/);
            docs.set(app, (await res.json()) as Doc);
        }
    });
    afterAll(async () => {
        await host?.stop();
        removeDir(host?.stateDir);
    });

    it.each([
        ['core', 'core'],
        ['member-docs', 'member'],
    ] as const)('%s: documents every HTTP function it registers, each with the schemas that validate its input', (app, deployment) => {
        const doc = docs.get(app)!;
        expect(doc.openapi).toBe('3.1.0');
        expect(doc.info.title).toBe(`Flexchange ${deployment} API`);
        const operations = Object.entries(doc.paths).flatMap(([p, ops]) => Object.entries(ops).map(([method, op]) => ({ path: p, method: method.toUpperCase(), op })));
        // Every HTTP function the app registered is an operation of the document.
        const runtime = JSON.parse(readFileSync(path.join(host.stateDir, 'devhost.json'), 'utf8')) as { apps: { name: string; functions: { name: string; trigger: string }[] }[] };
        // Except the catch-all that answers unknown routes with a problem (functions/notFound.ts): it is no operation of the API.
        const registered = runtime.apps.find((a) => a.name === app)!.functions.filter((f) => f.trigger === 'httpTrigger').map((f) => f.name).filter((n) => n !== CATCH_ALL_FUNCTION);
        expect(runtime.apps.find((a) => a.name === app)!.functions.map((f) => f.name)).toContain(CATCH_ALL_FUNCTION);
        const ids = new Set(operations.map((o) => o.op.operationId));
        const documented = (name: string) => ids.has(name) || ['Get', 'Post', 'Put', 'Patch', 'Delete'].some((m) => ids.has(`${name}${m}`));
        for (const name of registered) expect({ name, documented: documented(name) }).toEqual({ name, documented: true });

        const missing: string[] = [];
        for (const r of routeTable.filter((x) => x.deployments.includes(deployment))) {
            for (const method of r.methods) {
                const op = doc.paths[openApiPath(r.route)]?.[method.toLowerCase()];
                if (!op) {
                    missing.push(`${method} ${r.route}: not in the document`);
                    continue;
                }
                const params = op.parameters ?? [];
                for (const p of pathParams(r.route)) if (!params.some((x) => x.in === 'path' && x.name === p)) missing.push(`${method} ${r.route}: path parameter ${p}`);
                if (r.query) {
                    const shape = Object.keys((r.query as unknown as { shape?: Record<string, unknown> }).shape ?? {});
                    for (const q of shape) if (!params.some((x) => x.in === 'query' && x.name === q)) missing.push(`${method} ${r.route}: query parameter ${q}`);
                }
                // A route that takes a body documents its schema; one that takes none says so in the route table.
                if (method === 'POST' || method === 'PUT' || method === 'PATCH') {
                    const content = op.requestBody?.content ?? {};
                    if (r.noBody) {
                        if (op.requestBody) missing.push(`${method} ${r.route}: says it takes no body but documents one`);
                    } else if (Object.keys(content).length === 0 || Object.values(content).some((c) => !c.schema || Object.keys(c.schema).length === 0)) {
                        missing.push(`${method} ${r.route}: no request body schema (declare body, rawBody or noBody)`);
                    }
                }
                if (r.access === 'anonymous' && r.tokenIfSent) {
                    // Anyone, and a bearer token when one is sent (OpenAPI's optional security: an empty requirement beside the scheme).
                    if (JSON.stringify(op.security) !== JSON.stringify([{}, { bearer: [] }])) missing.push(`${method} ${r.route}: anonymous with an optional token, not documented so`);
                } else if (r.access === 'anonymous') {
                    if (op.security.length !== 0) missing.push(`${method} ${r.route}: anonymous but secured`);
                } else if (JSON.stringify(op['x-roles']) !== JSON.stringify(r.access.roles) || op.security.length === 0) {
                    missing.push(`${method} ${r.route}: roles or security scheme`);
                }
                if (!op.responses['503']) missing.push(`${method} ${r.route}: problem responses`);
            }
        }
        expect(missing).toEqual([]);
        // Nothing the app does not serve.
        expect(operations.length).toBe(routeTable.filter((x) => x.deployments.includes(deployment)).reduce((n, r) => n + r.methods.length, 0));
    });

    it.each(['core', 'member-docs'])('%s: answers unknown routes with a problem+json 404, and a known path with another method with 405 and Allow', async (app) => {
        const origin = host.origin(app);
        for (const method of ['GET', 'POST', 'DELETE']) {
            for (const p of ['/api/no-such-route', '/api/orgs/x/no/such/thing', '/api', '/api/openapi.json/more']) {
                const res = await fetch(`${origin}${p}`, { method, ...(method === 'POST' ? { headers: { 'content-type': 'application/json' }, body: '{}' } : {}) });
                expect({ method, p, status: res.status, type: res.headers.get('content-type') }).toEqual({ method, p, status: 404, type: 'application/problem+json' });
                expect(await res.json()).toMatchObject({ status: 404, code: 'not_found', title: 'Not found' });
            }
        }
        const wrong = await fetch(`${origin}/api/openapi.json`, { method: 'DELETE' });
        expect({ status: wrong.status, type: wrong.headers.get('content-type'), allow: wrong.headers.get('allow') }).toEqual({ status: 405, type: 'application/problem+json', allow: 'GET' });
        expect(await wrong.json()).toMatchObject({ status: 405, code: 'method_not_allowed' });
        // The real routes still answer (the catch-all has the lowest precedence).
        expect((await fetch(`${origin}/api/openapi.json`)).status).toBe(200);
        expect((await fetch(`${origin}/api/docs/init.js`)).status).toBe(200);
        expect((await fetch(`${origin}/api/health`)).headers.get('content-type')).toMatch(/^application\/json/);
    });

    it('documents bodies as the validating zod schemas say: required fields, formats, limits, no extra properties', () => {
        const core = docs.get('core')!;
        const registration = core.paths['/api/registrations']!.post!.requestBody!.content['application/json']!.schema as {
            required: string[];
            additionalProperties: boolean;
            properties: { organization: { properties: { contactEmail: { format: string } } } };
        };
        expect(registration.required).toEqual(expect.arrayContaining(['organization', 'applicant']));
        expect(registration.additionalProperties).toBe(false);
        expect(registration.properties.organization.properties.contactEmail.format).toBe('email');
        const proposal = core.paths['/api/proposals']!.post!.requestBody!.content['application/json']!.schema as { properties: { parties: { minItems: number; maxItems: number } } };
        expect(proposal.properties.parties).toMatchObject({ minItems: 2, maxItems: 8 });
        const events = core.paths['/api/orgs/{orgId}/events']!.get!;
        expect(events.parameters!.find((p) => p.name === 'limit')).toMatchObject({ in: 'query', schema: { maximum: 500 } });
        expect(core.paths['/api/assets']!.post!.requestBody!.content['*/*']).toBeDefined();
        const member = docs.get('member-docs')!;
        expect(member.paths['/api/proposals/{proposalId}/signature']!.post!['x-roles']).toEqual(['Org.Trader']);
        expect(member.paths['/api/registrations']).toBeUndefined();
    });

    it('serves Swagger UI at /api/docs from the npm package, with a policy that loads nothing from elsewhere', async () => {
        const page = await fetch(`${host.origin('core')}/api/docs`);
        expect(page.status).toBe(200);
        expect(page.headers.get('content-type')).toMatch(/^text\/html/);
        expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
        const html = await page.text();
        expect(html).not.toMatch(/https?:\/\//);
        for (const src of html.match(/\/api\/docs\/[a-z0-9.-]+/g)!) {
            const asset = await fetch(`${host.origin('core')}${src}`);
            expect(asset.status).toBe(200);
            expect((await asset.arrayBuffer()).byteLength).toBeGreaterThan(0);
        }
        const bundle = await fetch(`${host.origin('member-docs')}/api/docs/swagger-ui-bundle.js`);
        expect(bundle.headers.get('content-type')).toMatch(/^text\/javascript/);
        expect(Buffer.from(await bundle.arrayBuffer()).equals(readFileSync(require.resolve('swagger-ui-dist/swagger-ui-bundle.js')))).toBe(true);
        expect((await fetch(`${host.origin('core')}/api/docs/..%2Fpackage.json`)).status).toBe(404);
    });
});
