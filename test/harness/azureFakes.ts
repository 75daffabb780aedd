import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

/**
 * Local fakes of the Azure control planes the core calls in Azure and nothing here can run: Resource Manager, a
 * Flex Consumption app's SCM site (Kudu OneDeploy) and Microsoft Graph. Each records what the real client sent and
 * answers as the service does. Plain HTTP on loopback, or https with a certificate the caller trusts (the devhost's
 * local CA: the ARM SDK sends bearer tokens over https only).
 */

export interface Recorded {
    method: string;
    path: string;
    apiVersion: string | null;
    authorization?: string;
    body?: Record<string, unknown>;
}

/** A loopback HTTP(S) server answering with `handle`, and the URL it listens on. */
export abstract class LocalFake {
    #server?: Server;
    url = '';

    constructor(private readonly tls?: { cert: string; key: string }) {}

    async start(): Promise<void> {
        const handler = (req: IncomingMessage, res: ServerResponse) =>
            void this.handle(req, res).catch((err: Error) => {
                if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
                res.end(JSON.stringify({ error: { code: 'FakeFailed', message: err.message } }));
            });
        this.#server = this.tls ? createTlsServer(this.tls, handler) : createServer(handler);
        await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', () => resolve()));
        this.url = `${this.tls ? 'https' : 'http'}://127.0.0.1:${(this.#server!.address() as AddressInfo).port}`;
    }

    /** `127.0.0.1:<port>`, as a host name output names a site. */
    get host(): string {
        return new URL(this.url).host;
    }

    async stop(): Promise<void> {
        this.#server?.closeAllConnections();
        await new Promise<void>((resolve) => this.#server?.close(() => resolve()) ?? resolve());
    }

    protected abstract handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
}

export async function readBody(req: IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
}

export function sendJson(res: ServerResponse, status: number, data: unknown, headers: Record<string, string> = {}): void {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(data));
}

/** What a member deployment reports once it succeeded (the member template's outputs the core reads). */
export interface MemberOutputs {
    vnetId: string;
    functionAppName: string;
    functionAppHostName: string;
    functionAppScmHostName: string;
    principalId: string;
}

/**
 * The ARM REST API as the real @azure/arm-resources client meets it: resource group PUT, deployment PUT (201,
 * Accepted), then GETs that report Running a few times and then the outcome the test chose, with outputs from
 * `outputsOf`; role assignment PUTs kept by id.
 */
export class FakeArm extends LocalFake {
    readonly requests: Recorded[] = [];
    readonly outcomes = new Map<string, { running: number; final: 'Succeeded' | 'Failed' }>();
    readonly deployments = new Map<string, { gets: number; body: Record<string, unknown> }>();
    /** Role assignments by id (path), as ARM keeps them; `refuse` answers the next PUTs with that error code. */
    readonly assignments = new Map<string, Record<string, unknown>>();
    refuse: string[] = [];
    /** VNet peerings by id (path). */
    readonly peerings = new Map<string, Record<string, unknown>>();
    /** The outputs of a succeeded deployment, from its name and parameters. */
    outputsOf: (deployment: string, parameters: Record<string, { value?: unknown }>) => MemberOutputs = (deployment) => ({
        vnetId: `/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-${deployment}/providers/Microsoft.Network/virtualNetworks/fx-${deployment}-vnet`,
        functionAppName: `fx-${deployment}`,
        functionAppHostName: `fx-${deployment}.azurewebsites.net`,
        functionAppScmHostName: `fx-${deployment}.scm.azurewebsites.net`,
        principalId: '5f0c2a7e-1111-4222-8333-944455556666',
    });

    protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
        const url = new URL(req.url ?? '/', this.url);
        const text = (await readBody(req)).toString('utf8');
        const body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
        this.requests.push({ method: req.method!, path: url.pathname, apiVersion: url.searchParams.get('api-version'), authorization: req.headers.authorization, body });
        const json = (status: number, data: unknown, headers: Record<string, string> = {}) => sendJson(res, status, data, headers);
        const rg = /^\/subscriptions\/([^/]+)\/resourcegroups\/([^/]+)$/i.exec(url.pathname);
        if (rg && req.method === 'PUT') return json(201, { id: url.pathname, name: rg[2], location: body?.location, properties: { provisioningState: 'Succeeded' } });
        const dep = /^\/subscriptions\/([^/]+)\/resourcegroups\/([^/]+)\/providers\/Microsoft\.Resources\/deployments\/([^/]+)$/i.exec(url.pathname);
        if (dep) {
            const key = `${dep[2]}/${dep[3]}`;
            if (req.method === 'PUT') {
                this.deployments.set(key, { gets: 0, body: body! });
                return json(201, { id: url.pathname, name: dep[3], properties: { provisioningState: 'Accepted' } }, { 'azure-asyncoperation': `${this.url.replace('http:', 'https:')}/operations/${dep[3]}?api-version=2021-04-01` });
            }
            if (req.method === 'GET') {
                const d = this.deployments.get(key);
                if (!d) return json(404, { error: { code: 'DeploymentNotFound', message: `Deployment '${dep[3]}' could not be found.` } });
                d.gets++;
                const plan = this.outcomes.get(dep[3]!) ?? { running: 1, final: 'Succeeded' as const };
                if (d.gets <= plan.running) return json(200, { id: url.pathname, name: dep[3], properties: { provisioningState: 'Running' } });
                if (plan.final === 'Failed') return json(200, { id: url.pathname, name: dep[3], properties: { provisioningState: 'Failed', error: { code: 'DeploymentFailed', message: 'The subnet is in use' } } });
                const parameters = ((d.body.properties as { parameters?: Record<string, { value?: unknown }> }).parameters ?? {}) as Record<string, { value?: unknown }>;
                const outputs = Object.fromEntries(Object.entries(this.outputsOf(dep[3]!, parameters)).map(([k, v]) => [k, { type: 'String', value: v }]));
                return json(200, { id: url.pathname, name: dep[3], properties: { provisioningState: 'Succeeded', parameters, outputs } });
            }
        }
        const ra = /\/providers\/Microsoft\.Authorization\/roleAssignments\/([^/]+)$/i.exec(url.pathname);
        if (ra && req.method === 'PUT') {
            const code = this.refuse.shift();
            if (code) return json(400, { error: { code, message: `Principal ${(body?.properties as { principalId?: string })?.principalId} does not exist in the directory.` } });
            const existed = this.assignments.has(url.pathname);
            const scope = url.pathname.slice(0, url.pathname.length - ra[0].length);
            this.assignments.set(url.pathname, { ...(body?.properties as Record<string, unknown>), scope });
            return json(existed ? 200 : 201, { id: url.pathname, name: ra[1], type: 'Microsoft.Authorization/roleAssignments', properties: { ...(body?.properties as Record<string, unknown>), scope } });
        }
        if (/\/virtualNetworkPeerings\/[^/]+$/i.test(url.pathname) && req.method === 'PUT') {
            this.peerings.set(url.pathname, body?.properties as Record<string, unknown>);
            return json(200, { id: url.pathname, name: url.pathname.split('/').at(-1), properties: { ...(body?.properties as Record<string, unknown>), peeringState: 'Initiated', provisioningState: 'Succeeded' } });
        }
        if (url.pathname.startsWith('/operations/')) return json(200, { status: 'InProgress' });
        json(404, { error: { code: 'NotFound', message: `No fake for ${req.method} ${url.pathname}` } });
    }
}

export interface Published {
    app: string;
    query: URLSearchParams;
    authorization?: string;
    contentType?: string;
    body: Buffer;
}

/**
 * A Flex Consumption app's SCM site (Kudu OneDeploy), as the Azure CLI talks to it: `POST /api/publish` takes the
 * zip and answers 202 with the deployment id; `GET /api/deployments/{id}` reports Kudu's status (0–2 going, 3
 * failed, 4 succeeded), after a number of polls the test chooses. One site per app (`appOf` the request's path),
 * or several behind one origin (`/<app>/api/…`). `deployed` is what the platform does with a published package.
 */
export class FakeScm extends LocalFake {
    readonly published: Published[] = [];
    /** Per app: polls before the outcome, the outcome, and how many publishes to answer 409 (busy) first. */
    readonly plans = new Map<string, { polls: number; final: 3 | 4; busy?: number }>();
    readonly #polls = new Map<string, number>();
    /** The one app this site serves; without it, the app is the path's first segment. */
    site?: string;
    /** Run once per accepted publish before its status reports the outcome (e.g. the package into the app's deployment container). */
    deployed?: (published: Published) => Promise<void>;
    readonly #deploying = new Map<string, Promise<void>>();

    protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
        const url = new URL(req.url ?? '/', this.url);
        const segments = url.pathname.split('/').slice(1);
        const app = this.site ?? segments.shift()!;
        const path = `/${segments.join('/')}`;
        const body = await readBody(req);
        const plan = this.plans.get(app) ?? { polls: 1, final: 4 as const };
        if (req.method === 'POST' && path === '/api/publish') {
            if (plan.busy) {
                plan.busy--;
                res.writeHead(409).end('There is a deployment currently in progress.');
                return;
            }
            const published = { app, query: url.searchParams, authorization: req.headers.authorization, contentType: req.headers['content-type'], body };
            this.published.push(published);
            const id = `dep-${app}-${this.published.length}`;
            if (this.deployed) this.#deploying.set(id, this.deployed(published));
            res.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify(id));
            return;
        }
        const dep = /^\/api\/deployments\/([^/]+)$/.exec(path);
        if (req.method === 'GET' && dep) {
            const id = dep[1]!;
            const n = (this.#polls.get(id) ?? 0) + 1;
            this.#polls.set(id, n);
            let final: number = plan.final;
            // The platform's own work (the package into the container, the app restarted) decides too.
            if (n > plan.polls && this.#deploying.has(id)) final = await this.#deploying.get(id)!.then(() => final, () => 3);
            res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id, status: n <= plan.polls ? 1 : final, complete: n > plan.polls }));
            return;
        }
        res.writeHead(404).end();
    }
}

export interface GraphAssignment {
    id: string;
    principalId: string;
    resourceId: string;
    appRoleId: string;
}

/**
 * Microsoft Graph's invitations and app role assignments on one service principal (the API's), as the directory
 * uses them: `POST /invitations` (one user id per address), `POST /servicePrincipals/{sp}/appRoleAssignedTo` (400
 * when the principal holds the role already), a principal's own assignments filtered by resource, and DELETE.
 * `extra` answers anything else first (return true when it did); `failInvitations` answers that many with 503.
 */
export class FakeGraph extends LocalFake {
    readonly requests: { method: string; path: string; auth?: string; body?: Record<string, unknown> }[] = [];
    /** By `principalId|appRoleId`. */
    readonly assignments = new Map<string, GraphAssignment>();
    readonly invited = new Map<string, string>();
    /** The tenant's applications: service principal object id by application (client) id. */
    readonly servicePrincipals = new Map<string, string>();
    /** Service principals (object ids) that are managed identities. */
    readonly managedIdentities = new Set<string>();
    failInvitations = 0;
    extra?: (req: { method: string; url: string }, json: (status: number, body: unknown) => void) => boolean;
    #n = 0;

    constructor(readonly servicePrincipalId: string) {
        super();
    }

    protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
        const text = (await readBody(req)).toString();
        const method = req.method!;
        const path = req.url!;
        this.requests.push({ method, path, auth: req.headers.authorization, body: text ? JSON.parse(text) : undefined });
        const json = (status: number, body: unknown) => sendJson(res, status, body);
        const sp = this.servicePrincipalId;
        if (this.extra?.({ method, url: path }, json)) return;
        if (method === 'POST' && path === '/v1.0/invitations') {
            if (this.failInvitations-- > 0) return json(503, { error: { code: 'ServiceUnavailable' } });
            const email = String(JSON.parse(text).invitedUserEmailAddress).toLowerCase();
            if (!this.invited.has(email)) this.invited.set(email, `user-${++this.#n}`);
            return json(201, { id: 'inv-1', invitedUser: { id: this.invited.get(email) }, inviteRedeemUrl: 'https://login.example/redeem' });
        }
        const byAppId = /^\/v1\.0\/servicePrincipals\(appId='([^']+)'\)\?\$select=id,servicePrincipalType$/.exec(path);
        if (method === 'GET' && byAppId) {
            const id = this.servicePrincipals.get(byAppId[1]!);
            return id ? json(200, { id, servicePrincipalType: this.managedIdentities.has(id) ? 'ManagedIdentity' : 'Application' }) : json(404, { error: { code: 'Request_ResourceNotFound', message: `Resource '${byAppId[1]}' does not exist` } });
        }
        if (method === 'POST' && path === `/v1.0/servicePrincipals/${sp}/appRoleAssignedTo`) {
            const { principalId, resourceId, appRoleId } = JSON.parse(text) as { principalId: string; resourceId: string; appRoleId: string };
            // As Microsoft Graph answers a role the principal already holds.
            if (this.assignments.has(`${principalId}|${appRoleId}`)) {
                return json(400, { error: { code: 'Request_BadRequest', message: 'Permission being assigned already exists on the object', innerError: { 'request-id': 'r-1', date: new Date().toISOString() } } });
            }
            const assignment = { id: `assignment-${++this.#n}`, principalId, resourceId, appRoleId };
            this.assignments.set(`${principalId}|${appRoleId}`, assignment);
            return json(201, assignment);
        }
        // A principal's own assignments, filtered by resource (what Graph supports: resourceId, not appRoleId).
        const own = /^\/v1\.0\/(users|servicePrincipals)\/([^/?]+)\/appRoleAssignments\?\$filter=resourceId(?:%20| )eq(?:%20| )([^&]+)$/.exec(path);
        if (method === 'GET' && own) {
            const [, , principalId, resourceId] = own;
            return json(200, { value: [...this.assignments.values()].filter((a) => a.principalId === decodeURIComponent(principalId!) && a.resourceId === decodeURIComponent(resourceId!)) });
        }
        if (method === 'DELETE' && path.startsWith(`/v1.0/servicePrincipals/${sp}/appRoleAssignedTo/`)) {
            const id = path.split('/').at(-1);
            for (const [key, a] of this.assignments) if (a.id === id) this.assignments.delete(key);
            res.writeHead(204).end();
            return;
        }
        json(404, { error: { code: 'Request_ResourceNotFound' } });
    }
}
