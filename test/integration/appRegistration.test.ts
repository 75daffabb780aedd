import type { AccessToken, TokenCredential } from '@azure/core-auth';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { APP_ROLES, appRoleId } from '../../shared/auth/appRoles';
import { coreRegistrationParameters, ensureAppRegistration, ensureDemoClients, GRAPH_PERMISSIONS, MICROSOFT_GRAPH_APP_ID } from '../../scripts/azure/appRegistration';
import { demoClientsSchema } from '../../scripts/demoClients';
import { readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * The app registration script against a local Microsoft Graph fake (Graph cannot run here): it
 * checks each request's token, path and body, and keeps applications, service principals and app
 * role assignments in memory as Graph would.
 */
describe('scripts/azure/appRegistration.ts (Microsoft Graph fake)', () => {
    const CORE_MI = 'c0c0c0c0-1111-2222-3333-444444444444';
    type App = { id: string; appId: string; displayName: string; identifierUris: string[]; api: Record<string, unknown>; appRoles: { id: string; value: string; allowedMemberTypes?: string[] }[]; passwords?: { displayName: string; endDateTime: string }[] };
    const TENANT = 'eeeeeeee-1111-2222-3333-444444444444';
    /** The signed-in account, and each application's owners (Graph adds none by itself here). */
    const ME = 'dddddddd-1111-2222-3333-444444444444';
    const owners = new Map<string, string[]>();
    type Sp = { id: string; appId: string; appRoles: { id: string; value: string; allowedMemberTypes: string[] }[] };
    const apps = new Map<string, App>();
    const sps = new Map<string, Sp>();
    const assignments: { id: string; principalId: string; resourceId: string; appRoleId: string }[] = [];
    const writes: string[] = [];
    const bad: string[] = [];
    let server: http.Server;
    let graphUrl: string;

    const graphSp: Sp = {
        id: randomUUID(),
        appId: MICROSOFT_GRAPH_APP_ID,
        appRoles: ['AppRoleAssignment.ReadWrite.All', 'Application.Read.All', 'User.Read.All', 'User.Invite.All', 'Directory.ReadWrite.All'].map((value) => ({ id: randomUUID(), value, allowedMemberTypes: ['Application'] })),
    };

    beforeAll(async () => {
        sps.set(graphSp.id, graphSp);
        server = http.createServer((req, res) => {
            let text = '';
            req.on('data', (c) => (text += c));
            req.on('end', () => {
                const url = new URL(req.url!, 'http://graph');
                const body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
                const send = (status: number, value?: unknown) => {
                    res.writeHead(status, { 'content-type': 'application/json' });
                    res.end(value === undefined ? '' : JSON.stringify(value));
                };
                if (req.headers.authorization !== 'Bearer graph-token') return send(401, { error: { code: 'InvalidAuthenticationToken' } });
                if (req.method !== 'GET') writes.push(`${req.method} ${url.pathname}`);
                const filter = url.searchParams.get('$filter') ?? '';
                let m: RegExpExecArray | null;
                if (req.method === 'GET' && url.pathname === '/v1.0/organization') return send(200, { value: [{ id: TENANT }] });
                if (req.method === 'GET' && url.pathname === '/v1.0/me') return send(200, { id: ME });
                if ((m = /^\/v1\.0\/applications\/([^/]+)\/owners(\/\$ref)?$/.exec(url.pathname))) {
                    if (!apps.has(m[1]!)) return send(404, { error: { code: 'Request_ResourceNotFound' } });
                    if (req.method === 'GET') return send(200, { value: (owners.get(m[1]!) ?? []).map((id) => ({ id })) });
                    const ref = /\/directoryObjects\/([^/]+)$/.exec(String(body?.['@odata.id']))?.[1];
                    if (!ref) bad.push(`owner ${JSON.stringify(body)}`);
                    owners.set(m[1]!, [...(owners.get(m[1]!) ?? []), ref!]);
                    return send(204);
                }
                if (req.method === 'GET' && url.pathname === '/v1.0/applications') {
                    const byName = /^displayName eq '(.+)'$/.exec(filter);
                    if (byName) return send(200, { value: [...apps.values()].filter((a) => a.displayName === byName[1]) });
                    m = /^identifierUris\/any\(u:u eq '(.+)'\)$/.exec(filter);
                    if (!m) bad.push(`applications filter ${filter}`);
                    return send(200, { value: [...apps.values()].filter((a) => a.identifierUris?.includes(m?.[1] ?? '')) });
                }
                if (req.method === 'POST' && (m = /^\/v1\.0\/applications\/([^/]+)\/addPassword$/.exec(url.pathname))) {
                    const app = apps.get(m[1]!);
                    if (!app) return send(404, { error: { code: 'Request_ResourceNotFound' } });
                    (app.passwords ??= []).push(body?.passwordCredential as { displayName: string; endDateTime: string });
                    return send(200, { keyId: randomUUID(), secretText: `secret-${app.displayName}-${app.passwords.length}` });
                }
                if (req.method === 'POST' && url.pathname === '/v1.0/applications') {
                    const app = { ...{ identifierUris: [], appRoles: [], api: {} }, ...(body as Partial<App>), id: randomUUID(), appId: randomUUID() } as App;
                    if (app.identifierUris.length && (app.api as { requestedAccessTokenVersion?: number }).requestedAccessTokenVersion !== 2) bad.push('application without v2 tokens');
                    apps.set(app.id, app);
                    return send(201, app);
                }
                if (req.method === 'PATCH' && (m = /^\/v1\.0\/applications\/([^/]+)$/.exec(url.pathname))) {
                    const app = apps.get(m[1]!);
                    if (!app) return send(404, { error: { code: 'Request_ResourceNotFound' } });
                    Object.assign(app, body);
                    return send(204);
                }
                if (req.method === 'GET' && url.pathname === '/v1.0/servicePrincipals') {
                    m = /^appId eq '(.+)'$/.exec(filter);
                    if (!m) bad.push(`servicePrincipals filter ${filter}`);
                    return send(200, { value: [...sps.values()].filter((s) => s.appId === m?.[1]) });
                }
                if (req.method === 'POST' && url.pathname === '/v1.0/servicePrincipals') {
                    const app = [...apps.values()].find((a) => a.appId === body?.appId);
                    if (!app) return send(400, { error: { code: 'Request_BadRequest' } });
                    const sp = { id: randomUUID(), appId: app.appId, appRoles: app.appRoles.map((r) => ({ ...r, allowedMemberTypes: [] })) };
                    sps.set(sp.id, sp);
                    return send(201, sp);
                }
                if ((m = /^\/v1\.0\/servicePrincipals\/([^/]+)\/appRoleAssignments$/.exec(url.pathname))) {
                    const principalId = m[1]!;
                    if (req.method === 'GET') return send(200, { value: assignments.filter((a) => a.principalId === principalId) });
                    if (body?.principalId !== principalId || !sps.has(String(body.resourceId))) bad.push(`assignment ${JSON.stringify(body)}`);
                    const resource = sps.get(String(body?.resourceId));
                    if (!resource?.appRoles.some((r) => r.id === body?.appRoleId)) return send(400, { error: { code: 'Request_BadRequest', message: 'unknown appRoleId' } });
                    if (assignments.some((a) => a.principalId === principalId && a.resourceId === body?.resourceId && a.appRoleId === body?.appRoleId)) return send(409, { error: { code: 'Request_BadRequest', message: 'Permission being assigned already exists' } });
                    const a = { id: randomUUID(), principalId, resourceId: String(body?.resourceId), appRoleId: String(body?.appRoleId) };
                    assignments.push(a);
                    return send(201, a);
                }
                bad.push(`${req.method} ${url.pathname}`);
                send(404, { error: { code: 'NotFound' } });
            });
        });
        await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
        graphUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));
    beforeEach(() => {
        writes.length = 0;
    });

    const credential: TokenCredential = { getToken: async (): Promise<AccessToken> => ({ token: 'graph-token', expiresOnTimestamp: Date.now() + 3_600_000 }) };
    const run = (identifierUri = 'api://flexchange') => ensureAppRegistration(credential, { identifierUri, displayName: 'Flexchange API', corePrincipalId: CORE_MI, graphUrl, inviteRedirectUrl: 'https://flexchange.example/welcome' });

    it('creates the registration, its roles, v2 tokens, its service principal and the core identity\'s grants, and prints the settings', async () => {
        const result = await run();
        expect(bad).toEqual([]);
        expect(writes).toEqual(['POST /v1.0/applications', 'POST /v1.0/servicePrincipals', ...Array(GRAPH_PERMISSIONS.length + 1).fill(`POST /v1.0/servicePrincipals/${CORE_MI}/appRoleAssignments`)]);
        const app = [...apps.values()][0]!;
        expect(app.appRoles.map((r) => r.value)).toEqual(APP_ROLES.map((r) => r.value));
        expect(app.appRoles.map((r) => r.id)).toEqual(APP_ROLES.map((r) => appRoleId(r.value)));
        const held = assignments.filter((a) => a.principalId === CORE_MI);
        expect(held.filter((a) => a.resourceId === graphSp.id).map((a) => graphSp.appRoles.find((r) => r.id === a.appRoleId)!.value).sort()).toEqual([...GRAPH_PERMISSIONS].sort());
        expect(held.filter((a) => a.resourceId === result.servicePrincipalId).map((a) => a.appRoleId)).toEqual([appRoleId('Deployment.Core')]);
        expect(result.settings).toEqual({
            FLEXCHANGE_AUTH_AUDIENCE: 'api://flexchange',
            FLEXCHANGE_AUTH_AUDIENCES: app.appId,
            FLEXCHANGE_GRAPH_SERVICE_PRINCIPAL_ID: result.servicePrincipalId,
            FLEXCHANGE_GRAPH_APP_ROLE_IDS: JSON.stringify(Object.fromEntries(APP_ROLES.map((r) => [r.value, appRoleId(r.value)]))),
            FLEXCHANGE_INVITE_REDIRECT_URL: 'https://flexchange.example/welcome',
        });
    });

    it("gives the settings as core.json's parameters (deploy.sh deploys the core with them), each one it declares", async () => {
        const { settings } = await run();
        const file = coreRegistrationParameters(settings) as { parameters: Record<string, { value: string }> };
        expect(file.parameters).toEqual({
            apiAudience: { value: 'api://flexchange' },
            apiAudiences: { value: settings.FLEXCHANGE_AUTH_AUDIENCES },
            graphServicePrincipalId: { value: settings.FLEXCHANGE_GRAPH_SERVICE_PRINCIPAL_ID },
            graphAppRoleIds: { value: settings.FLEXCHANGE_GRAPH_APP_ROLE_IDS },
            inviteRedirectUrl: { value: 'https://flexchange.example/welcome' },
        });
        const core = JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'infra', 'core.json'), 'utf8')) as { parameters: Record<string, unknown> };
        for (const name of Object.keys(file.parameters)) expect([name, core.parameters[name]]).toEqual([name, expect.anything()]);
        // Without an invitation URL, no empty parameter overrides the template's.
        const { FLEXCHANGE_INVITE_REDIRECT_URL: _none, ...without } = settings;
        expect(Object.keys((coreRegistrationParameters(without) as { parameters: object }).parameters)).not.toContain('inviteRedirectUrl');
    });

    it('changes nothing on a second run and prints the same settings', async () => {
        const before = await run();
        writes.length = 0;
        const again = await run();
        expect(writes).toEqual([]);
        expect(again.changes).toEqual([]);
        expect(again.settings).toEqual(before.settings);
    });

    it('adds the roles an existing registration lacks, lets apps hold the org and operator roles, and asks for v2 tokens, keeping the ids it has', async () => {
        const id = randomUUID();
        const kept = { id: randomUUID(), value: 'Org.Trader', displayName: 'Trader', description: 'x', allowedMemberTypes: ['User'], isEnabled: true };
        apps.set(id, { id, appId: randomUUID(), displayName: 'Old', identifierUris: ['api://older'], api: { requestedAccessTokenVersion: null, oauth2PermissionScopes: [] }, appRoles: [kept] });
        const result = await run('api://older');
        expect(bad).toEqual([]);
        expect(writes[0]).toBe(`PATCH /v1.0/applications/${id}`);
        const app = apps.get(id)!;
        expect(app.api).toEqual({ requestedAccessTokenVersion: 2, oauth2PermissionScopes: [] });
        expect(app.appRoles.find((r) => r.value === 'Org.Trader')).toMatchObject({ id: kept.id, allowedMemberTypes: ['User', 'Application'] });
        expect(app.appRoles.map((r) => r.value).sort()).toEqual(APP_ROLES.map((r) => r.value).sort());
        expect(JSON.parse(result.settings.FLEXCHANGE_GRAPH_APP_ROLE_IDS!)['Org.Trader']).toBe(kept.id);
        writes.length = 0;
        expect((await run('api://older')).changes).toEqual([]);
        expect(writes).toEqual([]);
    });

    it('makes the demo\'s operator and trader clients once, grants the operator its roles, and gives each a new one-day secret per run', async () => {
        const registration = await run();
        writes.length = 0;
        const clients = demoClientsSchema.parse(await ensureDemoClients(credential, registration, { graphUrl }));
        expect(bad).toEqual([]);
        expect(clients.tokenUrl).toBe(`https://login.microsoftonline.com/${TENANT}/oauth2/v2.0/token`);
        expect(clients.scope).toBe('api://flexchange/.default');
        const byName = (name: string) => [...apps.values()].find((a) => a.displayName === name)!;
        const operatorApp = byName('Flexchange demo operator');
        expect(clients.operator).toEqual({ clientId: operatorApp.appId, clientSecret: 'secret-Flexchange demo operator-1' });
        expect(clients.traders.map((t) => t.clientId)).toEqual([byName('Flexchange demo trader 1').appId, byName('Flexchange demo trader 2').appId]);
        const spOf = (appId: string) => [...sps.values()].find((x) => x.appId === appId)!.id;
        const rolesOf = (appId: string) => assignments.filter((a) => a.principalId === spOf(appId) && a.resourceId === registration.servicePrincipalId).map((a) => a.appRoleId).sort();
        expect(rolesOf(operatorApp.appId)).toEqual([appRoleId('Flexchange.Admin'), appRoleId('Flexchange.Approver')].sort());
        expect(rolesOf(clients.traders[0]!.clientId)).toEqual([]);
        const expiry = Date.parse(operatorApp.passwords![0]!.endDateTime) - Date.now();
        expect(expiry).toBeGreaterThan(23 * 3600_000);
        expect(expiry).toBeLessThanOrEqual(24 * 3600_000);

        // Again: the same applications and grants, only new secrets.
        writes.length = 0;
        expect(owners.get(operatorApp.id)).toEqual([ME]);
        const again = await ensureDemoClients(credential, registration, { graphUrl });
        expect(again.operator).toEqual({ clientId: operatorApp.appId, clientSecret: 'secret-Flexchange demo operator-2' });
        expect(writes).toEqual([`POST /v1.0/applications/${operatorApp.id}/addPassword`, `POST /v1.0/applications/${byName('Flexchange demo trader 1').id}/addPassword`, `POST /v1.0/applications/${byName('Flexchange demo trader 2').id}/addPassword`]);
    });

    it("refuses a demo application of that name someone else owns, and grants it nothing", async () => {
        const registration = await run();
        for (const a of [...apps.values()].filter((x) => x.displayName.startsWith('Flexchange demo'))) apps.delete(a.id);
        const id = randomUUID();
        apps.set(id, { id, appId: randomUUID(), displayName: 'Flexchange demo operator', identifierUris: [], api: {}, appRoles: [] });
        owners.set(id, ['someone-else']);
        writes.length = 0;
        await expect(ensureDemoClients(credential, registration, { graphUrl })).rejects.toThrow(/is not yours/);
        expect(writes).toEqual([]);
        apps.delete(id);
    });

    it('refuses a core principal id that is not an object id, before calling Graph', async () => {
        await expect(ensureAppRegistration(credential, { identifierUri: 'api://flexchange', displayName: 'x', corePrincipalId: 'core', graphUrl })).rejects.toThrow('--core-principal-id');
        expect(writes).toEqual([]);
    });
});
