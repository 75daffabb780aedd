import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { routeTable } from '../../functions/http/route';
import { CATCH_ALL_FUNCTION } from '../../functions/notFound';
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
        // The core and a member deployment of the OWN organisation (its app identity entered in the core's directory, as onboarding does).
        host = await startDevhost(['--app', repoRoot, '--name', 'core', '--set', 'FLEXCHANGE_STATIC_NODES_ALLOWED_ADDRESSES=127.0.0.1', '--app', repoRoot, '--name', 'member-matrix', '--set', 'FLEXCHANGE_ROLE=member', '--set', `FLEXCHANGE_ORG_ID=${OWN}`], { storage: true });
        const mint = async (body: Record<string, unknown>) =>
            (await (await fetch(`${host.consoleUrl}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).json()).access_token as string;
        await mint({ roles: ['Deployment.Member'], orgId: OWN, appOnly: true, name: 'flexchange-member-matrix' });
        for (const role of ROLES) {
            for (const appOnly of [false, true]) {
                tokens.set(`${role}|${appOnly}`, await mint({ roles: [role], orgId: OWN, appOnly, ...(appOnly ? { name: `matrix-${role}` } : { email: `${role.toLowerCase()}@matrix.example` }) }));
                tokens.set(`${role}|${appOnly}|other`, await mint({ roles: [role], orgId: OTHER, appOnly, ...(appOnly ? { name: `matrix-other-${role}` } : { email: `${role.toLowerCase()}@other.example` }) }));
            }
        }
    });
    afterAll(async () => {
        await host?.stop();
        removeDir(host?.stateDir);
    });

    const served = (deployment: 'core' | 'member') => routeTable.filter((r) => r.deployments.includes(deployment));

    it('covers every HTTP function each deployment registers (a route without an access rule fails here)', () => {
        const runtime = JSON.parse(readFileSync(path.join(host.stateDir, 'devhost.json'), 'utf8')) as { apps: { name: string; functions: { name: string; trigger: string }[] }[] };
        for (const [app, deployment] of [['core', 'core'], ['member-matrix', 'member']] as const) {
            // The catch-all (functions/notFound.ts) answers unknown routes for anyone; it is no route of the table.
            const registered = runtime.apps.find((a) => a.name === app)!.functions.filter((f) => f.trigger === 'httpTrigger' && f.name !== CATCH_ALL_FUNCTION).map((f) => f.name).sort();
            expect(registered).toEqual(served(deployment).map((r) => r.name).sort());
        }
        expect(served('member').length).toBeGreaterThan(2);
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
        for (const route of served('core')) {
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

    /** On a member deployment: the route's roles, then its own organisation only (the core's app identity excepted). */
    const expectedOnMember = (access: (typeof routeTable)[number]['access'], role: string | undefined, callerOrg: string): Expected => {
        if (access === 'anonymous') return 'allowed';
        if (!role) return 401;
        if (!access.roles.includes(role)) return 403;
        if (callerOrg !== OWN && role !== 'Deployment.Core') return 403;
        return 'allowed';
    };

    it('answers every combination on the member deployment: its own organisation and the core only', async () => {
        const mismatches: string[] = [];
        let checked = 0;
        for (const route of served('member')) {
            for (const method of route.methods) {
                const url = `${host.origin('member-matrix')}/api/${route.route.replace(/\{(\w+)\??(:[^}]*)?\}/g, 'x')}`;
                const cases: { role?: string; appOnly: boolean; org: string }[] = [{ appOnly: false, org: OWN }, ...ROLES.flatMap((role) => [OWN, OTHER].flatMap((org) => [{ role, appOnly: false, org }, { role, appOnly: true, org }]))];
                for (const c of cases) {
                    const bearer = c.role ? tokens.get(`${c.role}|${c.appOnly}${c.org === OTHER ? '|other' : ''}`) : undefined;
                    const res = await fetch(url, {
                        method,
                        headers: { ...(bearer ? { authorization: `Bearer ${bearer}` } : {}), ...(method === 'GET' || method === 'DELETE' ? {} : { 'content-type': 'application/json' }) },
                        body: method === 'GET' || method === 'DELETE' ? undefined : '{}',
                    });
                    await res.text();
                    const want = expectedOnMember(route.access, c.role, c.org);
                    const got = res.status === 401 || res.status === 403 ? res.status : 'allowed';
                    if (got !== want) mismatches.push(`${method} ${route.route} role=${c.role ?? 'none'} appOnly=${c.appOnly} callerOrg=${c.org === OWN ? 'own' : 'other'}: expected ${want}, got ${res.status}`);
                    checked++;
                }
            }
        }
        expect(mismatches).toEqual([]);
        expect(checked).toBeGreaterThan(50);
    });
});
