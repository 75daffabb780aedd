import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { routeTable } from '../../functions/http/route';
import { removeDir, repoRoot, RunningDevhost, startDevhost } from '../harness/devhost';

// Loading every function file fills the route table (outside a host the library only warns that it is in test mode).
const functionsDir = path.join(repoRoot, 'functions');
const quiet = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
for (const f of readdirSync(functionsDir).filter((n) => n.endsWith('.ts'))) require(path.join(functionsDir, f));
quiet.mockRestore();

const ROLES = ['Flexchange.Admin', 'Flexchange.Approver', 'Org.Admin', 'Org.Trader', 'Deployment.Member', 'Deployment.Core'];
const OWN = 'matrix-own';
const OTHER = 'matrix-other';

type Expected = 401 | 403 | 404 | 'allowed';

/**
 * Every route × every role × own or other organisation × user or app-only token,
 * generated from the route table: the expected outcome follows from the access each
 * route declares, and the running app must agree.
 */
describe('authorization matrix', () => {
    let host: RunningDevhost;
    const tokens = new Map<string, string>();

    beforeAll(async () => {
        host = await startDevhost(['--app', repoRoot, '--name', 'core'], { storage: true });
        for (const role of ROLES) {
            for (const appOnly of [false, true]) {
                const body = { roles: [role], orgId: OWN, appOnly, ...(appOnly ? { name: `matrix-${role}` } : { email: `${role.toLowerCase()}@matrix.example` }) };
                const res = await fetch(`${host.consoleUrl}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
                tokens.set(`${role}|${appOnly}`, (await res.json()).access_token);
            }
        }
    });
    afterAll(async () => {
        await host?.stop();
        removeDir(host?.stateDir);
    });

    it('covers every HTTP function the app registers (a route without an access rule fails here)', () => {
        const runtime = JSON.parse(readFileSync(path.join(host.stateDir, 'devhost.json'), 'utf8'));
        const registered = runtime.apps[0].functions.filter((f: { trigger: string }) => f.trigger === 'httpTrigger').map((f: { name: string }) => f.name).sort();
        expect(registered).toEqual(routeTable.map((r) => r.name).sort());
    });

    const expected = (access: (typeof routeTable)[number]['access'], role: string | undefined, org: string): Expected => {
        if (access === 'anonymous') return 'allowed';
        if (!role) return 401;
        if (!access.roles.includes(role)) return 403;
        if (access.org && org !== OWN && role !== 'Flexchange.Admin') return 404;
        return 'allowed';
    };

    it('answers every combination as the route declares', async () => {
        const mismatches: string[] = [];
        let checked = 0;
        for (const route of routeTable) {
            for (const method of route.methods) {
                for (const org of [OWN, OTHER]) {
                    const url = `${host.origin('core')}/api/${route.route.replace('{orgId}', org).replace(/\{(\w+)\??(:[^}]*)?\}/g, 'x')}`;
                    const cases: { role?: string; appOnly: boolean }[] = [{ appOnly: false }, ...ROLES.flatMap((role) => [{ role, appOnly: false }, { role, appOnly: true }])];
                    for (const c of cases) {
                        const bearer = c.role ? tokens.get(`${c.role}|${c.appOnly}`) : undefined;
                        const res = await fetch(url, {
                            method,
                            headers: { ...(bearer ? { authorization: `Bearer ${bearer}` } : {}), ...(method === 'GET' || method === 'DELETE' ? {} : { 'content-type': 'application/json' }) },
                            body: method === 'GET' || method === 'DELETE' ? undefined : '{}',
                        });
                        const body = await res.text();
                        const want = expected(route.access, c.role, org);
                        // A 404 from the organisation check says so; a handler's own 404 (unknown user) is an allowed call.
                        const scopeDenied = res.status === 404 && body.includes('No such organisation');
                        const got = res.status === 401 || res.status === 403 ? res.status : scopeDenied ? 404 : 'allowed';
                        if (got !== want) mismatches.push(`${method} ${route.route} org=${org === OWN ? 'own' : 'other'} role=${c.role ?? 'none'} appOnly=${c.appOnly}: expected ${want}, got ${res.status}`);
                        checked++;
                    }
                }
            }
        }
        expect(mismatches).toEqual([]);
        expect(checked).toBeGreaterThan(100);
    });
});
