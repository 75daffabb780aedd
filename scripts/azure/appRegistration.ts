/**
 * The API's app registration in Entra ID, made or brought up to date through Microsoft Graph, and
 * the core's managed identity given what onboarding needs; prints the app settings to paste into
 * the core. Idempotent: a second run finds everything in place and changes nothing.
 *
 *   az login   # an account that may create app registrations and grant admin consent
 *   npm run azure:app-registration -- --core-principal-id <core.json output principalId> \
 *       [--identifier-uri api://flexchange] [--display-name "Flexchange API"] [--invite-redirect-url https://…]
 *       [--parameters-out <file>] [--demo-clients <file>]
 *
 * What it does:
 * - the application with identifier URI `--identifier-uri`: created if missing, with the app roles
 *   of `shared/auth/appRoles.ts` (missing ones added, existing ids kept) and v2 access tokens
 *   (`api.requestedAccessTokenVersion: 2`: the issuer the templates configure is the v2.0 endpoint);
 * - its service principal (the enterprise application roles are assigned on), created if missing;
 * - the core's managed identity: the Microsoft Graph application permissions the directory uses
 *   (`GRAPH_PERMISSIONS`) and the API's `Deployment.Core` role (it calls members' APIs);
 * - with `--demo-clients`: the applications `npm run demo -- --client-credentials` signs in as (`ensureDemoClients`).
 */
import type { TokenCredential } from '@azure/core-auth';
import { APP_ROLES, appRoleId } from '../../shared/auth/appRoles';
import { armParameterFile } from '../../shared/deployment/armParameterFile';
import { DEMO_CLIENT_NAMES, writeDemoClients, type DemoClient, type DemoClients } from '../demoClients';

/** Microsoft Graph's own application id (the same in every tenant). */
export const MICROSOFT_GRAPH_APP_ID = '00000003-0000-0000-c000-000000000000';

/**
 * Graph application permissions of the core's identity, each for what `GraphDirectory` does:
 * assigning and removing app roles of the API (members' identities, users), reading service
 * principals and users (a user's mail), and inviting users.
 */
export const GRAPH_PERMISSIONS = ['AppRoleAssignment.ReadWrite.All', 'Application.Read.All', 'User.Read.All', 'User.Invite.All'] as const;

export interface AppRegistrationOptions {
    identifierUri: string;
    displayName: string;
    /** The object id of the core's managed identity (infra/core.json output `principalId`). */
    corePrincipalId: string;
    inviteRedirectUrl?: string;
    graphUrl?: string;
    log?: (line: string) => void;
}

interface GraphAppRole {
    id: string;
    value: string;
    displayName: string;
    description: string;
    allowedMemberTypes: string[];
    isEnabled: boolean;
}
interface GraphApplication {
    id: string;
    appId: string;
    api?: Record<string, unknown> & { requestedAccessTokenVersion?: number | null };
    appRoles?: GraphAppRole[];
}
interface GraphServicePrincipal {
    id: string;
    appId: string;
    appRoles?: { id: string; value: string; allowedMemberTypes?: string[] }[];
}

/** What the core is configured with once the registration is in place. */
export interface AppRegistrationResult {
    appId: string;
    servicePrincipalId: string;
    settings: Record<string, string>;
    /** Writes made (none on a second run). */
    changes: string[];
}

/** Microsoft Graph at `base` with the signed-in account's token; an error answer throws with Graph's words. */
function graphCaller(credential: TokenCredential, base: string) {
    return async <T>(method: string, path: string, body?: unknown): Promise<T> => {
        const token = await credential.getToken(`${base}/.default`);
        if (!token) throw new Error('No token for Microsoft Graph (az login?)');
        const res = await fetch(`${base}${path}`, {
            method,
            headers: { authorization: `Bearer ${token.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
            body: body === undefined ? undefined : JSON.stringify(body),
            signal: AbortSignal.timeout(30_000),
        });
        const text = await res.text();
        if (!res.ok) throw new Error(`Microsoft Graph ${method} ${path.split('?')[0]} answered ${res.status}: ${text.slice(0, 500)}`);
        return (text ? JSON.parse(text) : undefined) as T;
    };
}

const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;

type Graph = ReturnType<typeof graphCaller>;

/** The service principal of the application `appId` in this tenant, if it has one. */
async function findServicePrincipal(graph: Graph, appId: string, select = 'id,appId'): Promise<GraphServicePrincipal | undefined> {
    return (await graph<{ value: GraphServicePrincipal[] }>('GET', `/v1.0/servicePrincipals?$filter=${encodeURIComponent(`appId eq ${quote(appId)}`)}&$select=${select}`)).value[0];
}

/** The application's service principal, made when it has none (`created` says so). */
async function ensureServicePrincipal(graph: Graph, appId: string): Promise<{ sp: GraphServicePrincipal; created: boolean }> {
    const found = await findServicePrincipal(graph, appId);
    return found ? { sp: found, created: false } : { sp: await graph<GraphServicePrincipal>('POST', '/v1.0/servicePrincipals', { appId }), created: true };
}

/** Assigns the principal each app role of `grants` it does not hold yet; answers what was assigned (`what` of each). */
async function grantMissing(graph: Graph, principalId: string, grants: { resourceId: string; appRoleId: string; what: string }[]): Promise<string[]> {
    const held = await graph<{ value: { resourceId: string; appRoleId: string }[] }>('GET', `/v1.0/servicePrincipals/${principalId}/appRoleAssignments`);
    const granted: string[] = [];
    for (const g of grants) {
        if (held.value.some((h) => h.resourceId === g.resourceId && h.appRoleId === g.appRoleId)) continue;
        await graph('POST', `/v1.0/servicePrincipals/${principalId}/appRoleAssignments`, { principalId, resourceId: g.resourceId, appRoleId: g.appRoleId });
        granted.push(g.what);
    }
    return granted;
}

/** Makes the app registration, its service principal and the core identity's grants hold; see the file's comment. */
export async function ensureAppRegistration(credential: TokenCredential, opts: AppRegistrationOptions): Promise<AppRegistrationResult> {
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(opts.corePrincipalId)) throw new Error('--core-principal-id must be the object id (GUID) of the core app\'s managed identity');
    const base = (opts.graphUrl ?? 'https://graph.microsoft.com').replace(/\/$/, '');
    const log = opts.log ?? (() => undefined);
    const changes: string[] = [];
    const graph = graphCaller(credential, base);
    const changed = (what: string) => {
        changes.push(what);
        log(`changed: ${what}`);
    };
    // The application, by its identifier URI.
    const wanted = APP_ROLES.map((r) => ({ ...r, allowedMemberTypes: [...r.allowedMemberTypes] }));
    const found = await graph<{ value: GraphApplication[] }>('GET', `/v1.0/applications?$filter=${encodeURIComponent(`identifierUris/any(u:u eq ${quote(opts.identifierUri)})`)}&$select=id,appId,api,appRoles`);
    if (found.value.length > 1) throw new Error(`More than one application has the identifier URI ${opts.identifierUri}`);
    let app = found.value[0];
    if (!app) {
        app = await graph<GraphApplication>('POST', '/v1.0/applications', {
            displayName: opts.displayName,
            signInAudience: 'AzureADMyOrg',
            identifierUris: [opts.identifierUri],
            api: { requestedAccessTokenVersion: 2 },
            appRoles: wanted.map((r) => ({ id: appRoleId(r.value), isEnabled: true, ...r })),
        });
        changed(`created the application ${opts.identifierUri} (${app.appId})`);
    } else {
        const roles = app.appRoles ?? [];
        const missing = wanted.filter((r) => !roles.some((x) => x.value === r.value));
        // A role that may now be given to apps too (an organisation's API client, the operator's automation): its member types widen, its id stays.
        const widened = roles.filter((x) => wanted.some((r) => r.value === x.value && r.allowedMemberTypes.some((t) => !x.allowedMemberTypes.includes(t))));
        const widen = (x: GraphAppRole) => ({ ...x, allowedMemberTypes: [...new Set([...x.allowedMemberTypes, ...(wanted.find((r) => r.value === x.value)?.allowedMemberTypes ?? [])])] });
        const patch: Record<string, unknown> = {};
        // Collections and complex properties are replaced whole by a PATCH: the existing roles (and their ids) go with it.
        if (missing.length || widened.length) patch.appRoles = [...roles.map(widen), ...missing.map((r) => ({ id: appRoleId(r.value), isEnabled: true, ...r }))];
        if (app.api?.requestedAccessTokenVersion !== 2) patch.api = { ...(app.api ?? {}), requestedAccessTokenVersion: 2 };
        if (Object.keys(patch).length) {
            await graph('PATCH', `/v1.0/applications/${app.id}`, patch);
            if (patch.appRoles) app.appRoles = patch.appRoles as GraphAppRole[];
            changed(`updated the application ${opts.identifierUri}: ${[missing.length ? `roles ${missing.map((r) => r.value).join(', ')} added` : '', widened.length ? `roles ${widened.map((r) => r.value).join(', ')} also for applications` : '', patch.api ? 'v2 access tokens' : ''].filter(Boolean).join('; ')}`);
        }
    }
    const roleIds = Object.fromEntries(wanted.map((r) => [r.value, (app.appRoles ?? []).find((x) => x.value === r.value)?.id ?? appRoleId(r.value)]));

    // Its service principal.
    const { sp: apiSp, created } = await ensureServicePrincipal(graph, app.appId);
    if (created) changed(`created the service principal of ${app.appId}`);

    // The core identity's grants: Graph application permissions, and Deployment.Core on the API.
    const graphSp = await findServicePrincipal(graph, MICROSOFT_GRAPH_APP_ID, 'id,appId,appRoles');
    if (!graphSp) throw new Error('Microsoft Graph has no service principal in this tenant');
    const grants: { resourceId: string; appRoleId: string; what: string }[] = [];
    for (const permission of GRAPH_PERMISSIONS) {
        const role = graphSp.appRoles?.find((r) => r.value === permission);
        if (!role) throw new Error(`Microsoft Graph offers no application permission ${permission}`);
        grants.push({ resourceId: graphSp.id, appRoleId: role.id, what: `Microsoft Graph ${permission}` });
    }
    grants.push({ resourceId: apiSp.id, appRoleId: roleIds['Deployment.Core'], what: `${opts.identifierUri} Deployment.Core` });
    for (const what of await grantMissing(graph, opts.corePrincipalId, grants)) changed(`granted the core's identity ${what}`);

    const settings: Record<string, string> = {
        FLEXCHANGE_AUTH_AUDIENCE: opts.identifierUri,
        // v2 access tokens carry the application (client) id as their audience.
        FLEXCHANGE_AUTH_AUDIENCES: app.appId,
        FLEXCHANGE_GRAPH_SERVICE_PRINCIPAL_ID: apiSp.id,
        FLEXCHANGE_GRAPH_APP_ROLE_IDS: JSON.stringify(roleIds),
        ...(opts.inviteRedirectUrl ? { FLEXCHANGE_INVITE_REDIRECT_URL: opts.inviteRedirectUrl } : {}),
    };
    return { appId: app.appId, servicePrincipalId: apiSp.id, settings, changes };
}

/**
 * The applications `npm run demo -- --client-credentials` signs in as (scripts/demoClients.ts): an operator
 * client holding Flexchange.Admin and Flexchange.Approver, and two trader clients with no role (the demo registers
 * each as a new organisation's API client, which assigns its roles). Each is created once (found by display name);
 * every run adds each a new secret valid for a day, returned here and in no log.
 */
export async function ensureDemoClients(credential: TokenCredential, registration: Pick<AppRegistrationResult, 'servicePrincipalId' | 'settings'>, opts: { graphUrl?: string; loginUrl?: string; log?: (line: string) => void } = {}): Promise<DemoClients> {
    const base = (opts.graphUrl ?? 'https://graph.microsoft.com').replace(/\/$/, '');
    const graph = graphCaller(credential, base);
    const log = opts.log ?? (() => undefined);
    const tenant = (await graph<{ value: { id: string }[] }>('GET', '/v1.0/organization?$select=id')).value[0]?.id;
    if (!tenant) throw new Error('Microsoft Graph names no tenant for this account');
    const roleIds = JSON.parse(registration.settings.FLEXCHANGE_GRAPH_APP_ROLE_IDS ?? '{}') as Record<string, string>;
    const until = new Date(Date.now() + 24 * 3600_000).toISOString();
    // Found by display name, which anyone in the tenant may give an app: only one the signed-in account owns is used (and granted roles).
    const me = (await graph<{ id: string }>('GET', '/v1.0/me?$select=id')).id;
    const owns = async (app: GraphApplication) => (await graph<{ value: { id: string }[] }>('GET', `/v1.0/applications/${app.id}/owners?$select=id`)).value.some((o) => o.id === me);
    const client = async (displayName: string, roles: string[]): Promise<DemoClient> => {
        const found = await graph<{ value: GraphApplication[] }>('GET', `/v1.0/applications?$filter=${encodeURIComponent(`displayName eq ${quote(displayName)}`)}&$select=id,appId`);
        if (found.value.length > 1) throw new Error(`More than one application is named ${displayName}`);
        let app = found.value[0];
        if (app && !(await owns(app))) throw new Error(`The application ${displayName} (${app.appId}) is not yours (you are not among its owners): delete or rename it, or sign in as its owner`);
        if (!app) {
            app = await graph<GraphApplication>('POST', '/v1.0/applications', { displayName, signInAudience: 'AzureADMyOrg' });
            log(`changed: created the application ${displayName} (${app.appId})`);
            if (!(await owns(app))) await graph('POST', `/v1.0/applications/${app.id}/owners/$ref`, { '@odata.id': `${base}/v1.0/directoryObjects/${me}` });
        }
        const { sp, created } = await ensureServicePrincipal(graph, app.appId);
        if (created) log(`changed: created the service principal of ${displayName}`);
        const grants = roles.map((role) => {
            const appRoleId = roleIds[role];
            if (!appRoleId) throw new Error(`The app registration has no role ${role}`);
            return { resourceId: registration.servicePrincipalId, appRoleId, what: role };
        });
        for (const role of await grantMissing(graph, sp.id, grants)) log(`changed: granted ${displayName} ${role}`);
        const secret = await graph<{ secretText: string }>('POST', `/v1.0/applications/${app.id}/addPassword`, { passwordCredential: { displayName: 'npm run demo', endDateTime: until } });
        return { clientId: app.appId, clientSecret: secret.secretText };
    };
    const operator = await client(DEMO_CLIENT_NAMES.operator, ['Flexchange.Admin', 'Flexchange.Approver']);
    const traders = [await client(DEMO_CLIENT_NAMES.traders[0], []), await client(DEMO_CLIENT_NAMES.traders[1], [])];
    const audience = registration.settings.FLEXCHANGE_AUTH_AUDIENCE ?? 'api://flexchange';
    return { tokenUrl: `${(opts.loginUrl ?? 'https://login.microsoftonline.com').replace(/\/$/, '')}/${tenant}/oauth2/v2.0/token`, scope: `${audience}/.default`, operator, traders };
}

/** core.json's parameters for these settings, as an ARM parameter file (nothing secret: ids and URLs). */
export function coreRegistrationParameters(settings: Record<string, string>): Record<string, unknown> {
    const values = {
        apiAudience: settings.FLEXCHANGE_AUTH_AUDIENCE,
        apiAudiences: settings.FLEXCHANGE_AUTH_AUDIENCES,
        graphServicePrincipalId: settings.FLEXCHANGE_GRAPH_SERVICE_PRINCIPAL_ID,
        graphAppRoleIds: settings.FLEXCHANGE_GRAPH_APP_ROLE_IDS,
        inviteRedirectUrl: settings.FLEXCHANGE_INVITE_REDIRECT_URL,
    };
    // A setting not given leaves the template's default.
    return armParameterFile(Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)));
}

async function main(): Promise<void> {
    const arg = (name: string) => {
        const i = process.argv.indexOf(`--${name}`);
        return i >= 0 ? process.argv[i + 1] : undefined;
    };
    const corePrincipalId = arg('core-principal-id');
    if (!corePrincipalId) {
        console.error('usage: npm run azure:app-registration -- --core-principal-id <object id> [--identifier-uri api://flexchange] [--display-name "Flexchange API"] [--invite-redirect-url <url>] [--parameters-out <file>] [--demo-clients <file>]');
        process.exit(2);
    }
    const { AzureCliCredential } = await import('@azure/identity');
    const result = await ensureAppRegistration(new AzureCliCredential(), {
        corePrincipalId,
        identifierUri: arg('identifier-uri') ?? 'api://flexchange',
        displayName: arg('display-name') ?? 'Flexchange API',
        inviteRedirectUrl: arg('invite-redirect-url'),
        log: (line) => console.error(line),
    });
    console.error(result.changes.length ? `${result.changes.length} change(s) made.` : 'Everything was in place; nothing changed.');
    console.error('App settings of the core (and the member template parameter apiAudiences):');
    for (const [k, v] of Object.entries(result.settings)) console.log(`${k}=${v}`);
    // For scripts/azure/deploy.sh: the same as core.json parameters.
    const out = arg('parameters-out');
    if (out) {
        const { writeFileSync } = await import('node:fs');
        writeFileSync(out, `${JSON.stringify(coreRegistrationParameters(result.settings), null, 2)}\n`);
        console.error(`${out}: core.json's apiAudience, apiAudiences, graphServicePrincipalId, graphAppRoleIds${result.settings.FLEXCHANGE_INVITE_REDIRECT_URL ? ', inviteRedirectUrl' : ''}`);
    }
    // For `npm run demo -- --core https://<core>/api --client-credentials <file>`.
    const demo = arg('demo-clients');
    if (demo) {
        writeDemoClients(demo, await ensureDemoClients(new AzureCliCredential(), result, { log: (line) => console.error(line) }));
        console.error(`${demo}: the demo's operator and trader clients with secrets valid for a day (mode 0600; keep it out of git)`);
    }
}

if (require.main === module) {
    main().catch((err: unknown) => {
        console.error((err as Error).message);
        process.exit(1);
    });
}
