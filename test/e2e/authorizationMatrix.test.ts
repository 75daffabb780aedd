import { readFileSync } from 'node:fs';
import path from 'node:path';
import { CATCH_ALL_FUNCTION } from '../../functions/notFound';
import { EVENTS_TOPIC } from '../../shared/services';
import { serviceBusAdministrationClient, ServiceBusMemberSubscriptions } from '../../shared/events/memberSubscriptions';
import { removeDir, repoRoot, RunningDevhost, startDevhost } from '../harness/devhost';

const ADMIN = 'Flexchange.Admin';
const APPROVER = 'Flexchange.Approver';
const ORG_ADMIN = 'Org.Admin';
const TRADER = 'Org.Trader';
const MEMBER = 'Deployment.Member';
const CORE = 'Deployment.Core';
const ROLES = [ADMIN, APPROVER, ORG_ADMIN, TRADER, MEMBER, CORE];
const EVERY_ROLE = ROLES;
const OWN = 'matrix-own';
const OTHER = 'matrix-other';

/**
 * Who may call what: the specification this test holds the running app to, written here (API.md, "Identity
 * and roles" and the route tables), not read from the route declarations under test. `anyone`: no token
 * needed; otherwise the app roles allowed, and `org` when the route names an organisation (`{orgId}`) that
 * must be the caller's own (the operator's admins excepted): another organisation's answers 404.
 * Keys are `METHOD route` as the app registers them (under `/api`).
 */
type Rule = 'anyone' | { roles: readonly string[]; org?: true };

const CORE_SPEC: Record<string, Rule> = {
    'GET health': 'anyone',
    'GET openapi.json': 'anyone',
    'GET docs/{file?}': 'anyone',
    'GET me': { roles: EVERY_ROLE },

    'POST registrations': 'anyone',
    'GET registrations/{id}': 'anyone', // the status link's key, or an approver's or the operator's token, checked by the handler
    'POST registrations/{id}/decision': { roles: [APPROVER] },
    'POST registrations/{id}/retry': { roles: [ADMIN] },
    'GET approvals/{token}': 'anyone', // the signed link is the credential
    'POST approvals/{token}': 'anyone',

    'GET orgs': { roles: [ADMIN] },
    'GET orgs/{orgId}': { roles: [ADMIN, ORG_ADMIN, TRADER, MEMBER], org: true },
    'POST orgs/{orgId}/users': { roles: [ORG_ADMIN, ADMIN], org: true },
    'GET orgs/{orgId}/users': { roles: [ORG_ADMIN, MEMBER, ADMIN], org: true },
    'DELETE orgs/{orgId}/users/{userId}': { roles: [ORG_ADMIN, ADMIN], org: true },
    'POST orgs/{orgId}/clients': { roles: [ORG_ADMIN, ADMIN], org: true },
    'GET orgs/{orgId}/clients': { roles: [ORG_ADMIN, ADMIN], org: true },
    'DELETE orgs/{orgId}/clients/{clientId}': { roles: [ORG_ADMIN, ADMIN], org: true },
    'GET orgs/{orgId}/principals/{principalId}': { roles: [MEMBER], org: true },
    'POST orgs/{orgId}/accounts': { roles: [MEMBER], org: true },
    'GET orgs/{orgId}/accounts': { roles: [ORG_ADMIN, TRADER, MEMBER, ADMIN], org: true },
    'POST orgs/{orgId}/accounts/{address}/topup': { roles: [ORG_ADMIN, TRADER, MEMBER, ADMIN], org: true },
    'GET orgs/{orgId}/events': { roles: [ORG_ADMIN, TRADER, MEMBER, ADMIN], org: true },
    'POST orgs/{orgId}/webhooks': { roles: [ORG_ADMIN, ADMIN], org: true },
    'GET orgs/{orgId}/webhooks': { roles: [ORG_ADMIN, ADMIN], org: true },
    'DELETE orgs/{orgId}/webhooks/{webhookId}': { roles: [ORG_ADMIN, ADMIN], org: true },
    'GET orgs/{orgId}/webhooks/{webhookId}/deliveries': { roles: [ORG_ADMIN, ADMIN], org: true },

    'GET contracts': { roles: EVERY_ROLE },
    'GET contracts/{version}': { roles: EVERY_ROLE },
    'POST contracts': { roles: [ADMIN] },
    'PATCH contracts/{version}': { roles: [ADMIN] },

    'POST assets': { roles: [TRADER] },
    'GET assets/{assetId}': { roles: [ORG_ADMIN, TRADER, ADMIN] },
    'POST proposals': { roles: [TRADER] },
    'GET proposals': { roles: [ORG_ADMIN, TRADER, MEMBER, ADMIN] },
    'GET proposals/{proposalId}': { roles: [ORG_ADMIN, TRADER, MEMBER, ADMIN] },
    'POST proposals/{proposalId}/rejection': { roles: [TRADER] },
    'POST proposals/{proposalId}/verify': { roles: [ORG_ADMIN, TRADER, MEMBER, ADMIN] },

    'GET chain/nodes': { roles: [ADMIN] },
    'POST chain/nodes': { roles: [MEMBER] },
    'POST chain/nodes/{nodeId}/transitions': { roles: [MEMBER] },
    'GET chain/static-nodes': { roles: [MEMBER] }, // and from allow-listed addresses (the test's host is one)
    'GET treasury': { roles: [ADMIN] },
    'GET usage': { roles: [ADMIN, ORG_ADMIN, TRADER] }, // an organisation its own: the handler's check on the query
};

/** A member deployment: the roles, then its own organisation's callers only (and the core's app identity). */
const MEMBER_SPEC: Record<string, Rule> = {
    'GET health': 'anyone',
    'GET openapi.json': 'anyone',
    'GET docs/{file?}': 'anyone',
    'GET me': { roles: EVERY_ROLE },
    'POST accounts': { roles: [ORG_ADMIN, CORE] },
    'GET accounts': { roles: [ORG_ADMIN, TRADER, CORE] },
    'GET proposals': { roles: [ORG_ADMIN, TRADER] },
    'GET proposals/{proposalId}': { roles: [ORG_ADMIN, TRADER] },
    'POST proposals/{proposalId}/signature': { roles: [TRADER] },
    'POST keystore/backups': { roles: [ORG_ADMIN] },
    'GET keystore/backups': { roles: [ORG_ADMIN] },
    'POST keystore/restore': { roles: [ORG_ADMIN] },
    'GET chain/nodes': { roles: [ORG_ADMIN] },
};

type Expected = 401 | 403 | 404 | 'allowed';

/** On the core: no token 401, a role not listed 403, another organisation's route 404 (admins excepted). */
function expectedOnCore(rule: Rule, role: string | undefined, routeOrg: string): Expected {
    if (rule === 'anyone') return 'allowed';
    if (!role) return 401;
    if (!rule.roles.includes(role)) return 403;
    if (rule.org && routeOrg !== OWN && role !== ADMIN) return 404;
    return 'allowed';
}

/** On the member deployment of OWN: no token 401, a role not listed 403, a caller of another organisation 403 (the core excepted). */
function expectedOnMember(rule: Rule, role: string | undefined, callerOrg: string): Expected {
    if (rule === 'anyone') return 'allowed';
    if (!role) return 401;
    if (!rule.roles.includes(role)) return 403;
    if (callerOrg !== OWN && role !== CORE) return 403;
    return 'allowed';
}

/** The spec's rows, one per method and route. */
const rows = (spec: Record<string, Rule>) =>
    Object.entries(spec).map(([key, rule]) => {
        const [method, route] = key.split(' ') as [string, string];
        return { method, route, rule };
    });

/** What the caller's answer says: refused (401, 403, 404 from the organisation check) or let through; a 5xx is never an answer. */
function outcome(status: number, body: string): Expected | '5xx' {
    if (status >= 500) return '5xx';
    if (status === 401 || status === 403) return status;
    // A 404 from the organisation check says so; a handler's own 404 (an unknown user, say) is an allowed call.
    if (status === 404 && body.includes('No such organisation')) return 404;
    return 'allowed';
}

/**
 * Every route × every role × own or other organisation × user or app-only token, against the table above;
 * every HTTP function each deployment registers must have its row, and every row its function.
 */
describe('authorization matrix', () => {
    let host: RunningDevhost;
    const tokens = new Map<string, string>();

    beforeAll(async () => {
        // The core and a member deployment of the OWN organisation (its app identity entered in the core's directory, as onboarding does).
        host = await startDevhost(['--app', repoRoot, '--name', 'core', '--set', 'FLEXCHANGE_STATIC_NODES_ALLOWED_ADDRESSES=127.0.0.1', '--app', repoRoot, '--name', 'member-matrix', '--set', 'FLEXCHANGE_ROLE=member', '--set', `FLEXCHANGE_ORG_ID=${OWN}`], { storage: true });
        const mint = async (body: Record<string, unknown>) =>
            (await (await fetch(`${host.consoleUrl}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).json()).access_token as string;
        await mint({ roles: [MEMBER], orgId: OWN, appOnly: true, name: 'flexchange-member-matrix' });
        // ...and its Service Bus subscription, as onboarding makes it (its health check receives from it).
        const services = (await (await fetch(`${host.consoleUrl}/dev/services`)).json()).services as Record<string, string>;
        await new ServiceBusMemberSubscriptions(serviceBusAdministrationClient({ connectionString: services.busConnection, adminUrl: services.busAdmin }), EVENTS_TOPIC).ensure(OWN);
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

    /** The HTTP functions an app instance registered, as `METHOD route`, from the devhost's runtime file (the catch-all of functions/notFound.ts answers unknown routes for anyone; it is no route). */
    const registered = (app: string): string[] => {
        const runtime = JSON.parse(readFileSync(path.join(host.stateDir, 'devhost.json'), 'utf8')) as { apps: { name: string; functions: { name: string; trigger: string; detail: string }[] }[] };
        const fns = runtime.apps.find((a) => a.name === app)!.functions.filter((f) => f.trigger === 'httpTrigger' && f.name !== CATCH_ALL_FUNCTION);
        return fns
            .flatMap((f) => {
                const m = /^([A-Z,]+) https?:\/\/[^/]+\/api\/(.*)$/.exec(f.detail);
                if (!m) throw new Error(`cannot read the route of ${f.name}: ${f.detail}`);
                return m[1]!.split(',').map((method) => `${method} ${m[2]}`);
            })
            .sort();
    };

    it('has a row for every HTTP function each deployment registers, and no row without one', () => {
        for (const [app, spec] of [['core', CORE_SPEC], ['member-matrix', MEMBER_SPEC]] as const) {
            const served = registered(app);
            expect({ app, missingFromTheTable: served.filter((k) => !(k in spec)) }).toEqual({ app, missingFromTheTable: [] });
            expect({ app, notServed: Object.keys(spec).filter((k) => !served.includes(k)) }).toEqual({ app, notServed: [] });
        }
    });

    const call = async (url: string, method: string, bearer?: string) => {
        const res = await fetch(url, {
            method,
            headers: { ...(bearer ? { authorization: `Bearer ${bearer}` } : {}), ...(method === 'GET' || method === 'DELETE' ? {} : { 'content-type': 'application/json' }) },
            body: method === 'GET' || method === 'DELETE' ? undefined : '{}',
        });
        return { status: res.status, body: await res.text() };
    };

    it('answers every combination on the core as the table says, and never with a 5xx', async () => {
        const mismatches: string[] = [];
        let checked = 0;
        for (const { method, route, rule } of rows(CORE_SPEC)) {
            for (const org of [OWN, OTHER]) {
                const url = `${host.origin('core')}/api/${route.replace('{orgId}', org).replace(/\{(\w+)\??(:[^}]*)?\}/g, 'x')}`;
                const cases: { role?: string; appOnly: boolean }[] = [{ appOnly: false }, ...ROLES.flatMap((role) => [{ role, appOnly: false }, { role, appOnly: true }])];
                for (const c of cases) {
                    const res = await call(url, method, c.role ? tokens.get(`${c.role}|${c.appOnly}`) : undefined);
                    const want = expectedOnCore(rule, c.role, org);
                    const got = outcome(res.status, res.body);
                    if (got !== want) mismatches.push(`${method} ${route} org=${org === OWN ? 'own' : 'other'} role=${c.role ?? 'none'} appOnly=${c.appOnly}: expected ${want}, got ${res.status}${got === '5xx' ? ` ${res.body.slice(0, 200)}` : ''}`);
                    checked++;
                }
            }
        }
        expect(mismatches).toEqual([]);
        expect(checked).toBe(Object.keys(CORE_SPEC).length * 2 * (1 + ROLES.length * 2));
    });

    it('answers every combination on the member deployment as the table says: its own organisation and the core only, never a 5xx', async () => {
        const mismatches: string[] = [];
        let checked = 0;
        for (const { method, route, rule } of rows(MEMBER_SPEC)) {
            const url = `${host.origin('member-matrix')}/api/${route.replace(/\{(\w+)\??(:[^}]*)?\}/g, 'x')}`;
            const cases: { role?: string; appOnly: boolean; org: string }[] = [{ appOnly: false, org: OWN }, ...ROLES.flatMap((role) => [OWN, OTHER].flatMap((org) => [{ role, appOnly: false, org }, { role, appOnly: true, org }]))];
            for (const c of cases) {
                const res = await call(url, method, c.role ? tokens.get(`${c.role}|${c.appOnly}${c.org === OTHER ? '|other' : ''}`) : undefined);
                const want = expectedOnMember(rule, c.role, c.org);
                // The member has no organisation check of its own: a 404 there is a handler's (unknown proposal), an allowed call.
                const got = outcome(res.status, '');
                if (got !== want) mismatches.push(`${method} ${route} role=${c.role ?? 'none'} appOnly=${c.appOnly} callerOrg=${c.org === OWN ? 'own' : 'other'}: expected ${want}, got ${res.status}${got === '5xx' ? ` ${res.body.slice(0, 200)}` : ''}`);
                checked++;
            }
        }
        expect(mismatches).toEqual([]);
        expect(checked).toBe(Object.keys(MEMBER_SPEC).length * (1 + ROLES.length * 4));
    });
});
