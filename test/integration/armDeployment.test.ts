import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AccessToken, TokenCredential } from '@azure/core-auth';
import { ResourceManagementClient } from '@azure/arm-resources';
import { createDefaultHttpClient } from '@azure/core-rest-pipeline';
import { ArmDeploymentController } from '../../shared/deployment/armDeploymentController';
import { Unavailable } from '../../shared/errors';
import { OneDeployPublisher } from '../../shared/deployment/oneDeploy';

const SUB = '00000000-1111-2222-3333-444444444444';
// The core's subscription, where its Service Bus namespace is.
const CORE_SUB = '99999999-1111-2222-3333-444444444444';
const NAMESPACE_ID = `/subscriptions/${CORE_SUB}/resourceGroups/rg-core/providers/Microsoft.ServiceBus/namespaces/fx-core`;

interface Recorded {
    method: string;
    path: string;
    apiVersion: string | null;
    authorization?: string;
    body?: Record<string, unknown>;
}

/** A loopback HTTP server answering with `handle`, and the URL it listens on. */
abstract class LocalFake {
    #server?: Server;
    url = '';

    async start(): Promise<void> {
        this.#server = createServer((req, res) => void this.handle(req, res));
        await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', () => resolve()));
        this.url = `http://127.0.0.1:${(this.#server!.address() as AddressInfo).port}`;
    }

    async stop(): Promise<void> {
        await new Promise<void>((resolve) => this.#server?.close(() => resolve()));
    }

    protected abstract handle(req: IncomingMessage, res: import('node:http').ServerResponse): Promise<void>;
}

/**
 * A local fake of the ARM REST API that records what the real @azure/arm-resources client
 * sends and answers as ARM does: resource group PUT, deployment PUT (201, Accepted), then
 * GETs that report Running a few times and then the outcome the test chose.
 */
class FakeArm extends LocalFake {
    readonly requests: Recorded[] = [];
    readonly outcomes = new Map<string, { running: number; final: 'Succeeded' | 'Failed' }>();
    readonly deployments = new Map<string, { gets: number; body: Record<string, unknown> }>();
    /** Role assignments by id (path), as ARM keeps them; `refuse` answers the next PUTs with that error code. */
    readonly assignments = new Map<string, Record<string, unknown>>();
    refuse: string[] = [];
    protected async handle(req: IncomingMessage, res: import('node:http').ServerResponse): Promise<void> {
        const url = new URL(req.url ?? '/', this.url);
        const chunks: Buffer[] = [];
        for await (const c of req) chunks.push(c as Buffer);
        const text = Buffer.concat(chunks).toString('utf8');
        const body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
        this.requests.push({ method: req.method!, path: url.pathname, apiVersion: url.searchParams.get('api-version'), authorization: req.headers.authorization, body });
        const json = (status: number, data: unknown, headers: Record<string, string> = {}) => {
            res.writeHead(status, { 'content-type': 'application/json', ...headers });
            res.end(JSON.stringify(data));
        };
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
                const plan = this.outcomes.get(dep[3]) ?? { running: 1, final: 'Succeeded' as const };
                if (d.gets <= plan.running) return json(200, { id: url.pathname, name: dep[3], properties: { provisioningState: 'Running' } });
                if (plan.final === 'Failed') return json(200, { id: url.pathname, name: dep[3], properties: { provisioningState: 'Failed', error: { code: 'DeploymentFailed', message: 'The subnet is in use' } } });
                return json(200, { id: url.pathname, name: dep[3], properties: { provisioningState: 'Succeeded', parameters: (d.body.properties as { parameters?: unknown }).parameters, outputs: { functionAppName: { type: 'String', value: `fx-${dep[3]}` }, functionAppHostName: { type: 'String', value: `fx-${dep[3]}.azurewebsites.net` }, principalId: { type: 'String', value: '5f0c2a7e-1111-4222-8333-944455556666' } } } });
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
        if (url.pathname.startsWith('/operations/')) return json(200, { status: 'InProgress' });
        json(404, { error: { code: 'NotFound', message: `No fake for ${req.method} ${url.pathname}` } });
    }
}

/**
 * The real ARM client for `subscription`, talking https as to ARM (its bearer policy refuses anything else); after
 * signing, its requests go to the fake's plain-HTTP port on loopback.
 */
function armClient(arm: LocalFake, credential: TokenCredential, subscription: string): ResourceManagementClient {
    const transport = createDefaultHttpClient();
    return new ResourceManagementClient(credential, subscription, {
        endpoint: arm.url.replace('http:', 'https:'),
        $host: arm.url.replace('http:', 'https:'),
        retryOptions: { maxRetries: 0 },
        httpClient: { sendRequest: (request) => transport.sendRequest(Object.assign(request, { url: request.url.replace(/^https:/, 'http:'), allowInsecureConnection: true })) },
    });
}

/** The Azure path of memberDeployment: the real ARM client against a local fake that checks its requests. */
describe('ARM deployment controller', () => {
    const arm = new FakeArm();
    const credential: TokenCredential = { getToken: async (): Promise<AccessToken> => ({ token: 'arm-token', expiresOnTimestamp: Date.now() + 3600_000 }) };
    const template = { $schema: 'https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#', contentVersion: '1.0.0.0', parameters: { orgId: { type: 'string' } }, resources: [] };
    let controller: ArmDeploymentController;

    beforeAll(async () => {
        await arm.start();
        controller = new ArmDeploymentController(armClient(arm, credential, SUB), {
            resourceGroupPrefix: 'rg-flexchange',
            location: 'uksouth',
            template,
            parameters: (orgId) => ({ orgId, namePrefix: 'fx' }),
            serviceBus: { client: armClient(arm, credential, CORE_SUB), namespaceId: NAMESPACE_ID },
        });
    });
    afterAll(() => arm.stop());

    it('PUTs the template and parameters into the member’s resource group, and polling ends on Succeeded with the app’s URL', async () => {
        arm.outcomes.set('flexchange-member-acme', { running: 2, final: 'Succeeded' });
        const started = await controller.start({ orgId: 'acme' });
        expect(started).toEqual({ id: 'rg-flexchange-acme/flexchange-member-acme', status: 'Running' });
        const rgPut = arm.requests.find((r) => r.method === 'PUT' && /resourcegroups\/rg-flexchange-acme$/i.test(r.path))!;
        expect(rgPut).toMatchObject({ authorization: 'Bearer arm-token', body: { location: 'uksouth', tags: { 'flexchange-org': 'acme' } } });
        const put = arm.requests.find((r) => r.method === 'PUT' && r.path.endsWith('/deployments/flexchange-member-acme'))!;
        expect(put.path).toBe(`/subscriptions/${SUB}/resourcegroups/rg-flexchange-acme/providers/Microsoft.Resources/deployments/flexchange-member-acme`);
        expect(put.apiVersion).toMatch(/^\d{4}-\d{2}-\d{2}$/);
        expect(put.body).toEqual({ properties: { mode: 'Incremental', template, parameters: { orgId: { value: 'acme' }, namePrefix: { value: 'fx' } } } });

        const seen: string[] = [];
        let state = started;
        while (state.status === 'Running') {
            state = await controller.status(state.id);
            seen.push(state.status);
        }
        expect(seen).toEqual(['Running', 'Running', 'Succeeded']);
        expect(state.url).toBe('https://fx-flexchange-member-acme.azurewebsites.net/api');
        // The Function App's managed identity: onboarding grants it Deployment.Member for the organisation.
        expect(state.principalId).toBe('5f0c2a7e-1111-4222-8333-944455556666');
        // Starting again finds the deployment: no second PUT.
        await expect(controller.start({ orgId: 'acme' })).resolves.toMatchObject({ status: 'Succeeded' });
        expect(arm.requests.filter((r) => r.method === 'PUT' && r.path.endsWith('/deployments/flexchange-member-acme'))).toHaveLength(1);
    });

    it('grants the member\'s identity Data Receiver on its own subscription in the core\'s namespace, once, whatever the retries', async () => {
        const scope = `${NAMESPACE_ID}/topics/flexchange-events/subscriptions/member-acme`;
        const assignments = [...arm.assignments].filter(([id]) => id.startsWith(`${scope}/providers/`));
        // One assignment, however many times the deployment was read as Succeeded (status, then start again).
        expect(assignments).toHaveLength(1);
        const [id, props] = assignments[0]!;
        expect(id).toMatch(/\/roleAssignments\/[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        expect(props).toEqual({
            scope,
            roleDefinitionId: `/subscriptions/${CORE_SUB}/providers/Microsoft.Authorization/roleDefinitions/4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0`,
            principalId: '5f0c2a7e-1111-4222-8333-944455556666',
            principalType: 'ServicePrincipal',
            description: 'Flexchange member acme: Azure Service Bus Data Receiver (shared/deployment/dataRoles.ts)',
        });
        const puts = arm.requests.filter((r) => r.method === 'PUT' && r.path.includes('/roleAssignments/'));
        expect(puts.every((r) => r.path === id && r.apiVersion === '2022-04-01' && r.authorization === 'Bearer arm-token')).toBe(true);
        // Nothing on the namespace itself, the topic, or another member's subscription.
        expect([...arm.assignments.keys()].every((k) => k.startsWith(`${NAMESPACE_ID}/topics/flexchange-events/subscriptions/member-`))).toBe(true);
    });

    it('reports a deployment whose identity Entra ID does not know yet as unavailable (retried), then grants it', async () => {
        arm.outcomes.set('flexchange-member-initech', { running: 0, final: 'Succeeded' });
        const started = await controller.start({ orgId: 'initech' });
        arm.refuse.push('PrincipalNotFound');
        await expect(controller.status(started.id)).rejects.toBeInstanceOf(Unavailable);
        await expect(controller.status(started.id)).resolves.toMatchObject({ status: 'Succeeded', principalId: '5f0c2a7e-1111-4222-8333-944455556666' });
        expect([...arm.assignments.keys()].filter((k) => k.includes('/subscriptions/member-initech/'))).toHaveLength(1);
    });

    it('ends on Failed with ARM’s reason, and a later start deploys again', async () => {
        arm.outcomes.set('flexchange-member-globex', { running: 1, final: 'Failed' });
        let state = await controller.start({ orgId: 'globex' });
        while (state.status === 'Running') state = await controller.status(state.id);
        expect(state).toEqual({ id: 'rg-flexchange-globex/flexchange-member-globex', status: 'Failed', error: 'The subnet is in use' });
        // Starting again (a retried onboarding) finds the failed deployment and deploys again.
        await expect(controller.start({ orgId: 'globex' })).resolves.toMatchObject({ status: 'Running' });
        expect(arm.requests.filter((r) => r.method === 'PUT' && r.path.endsWith('/deployments/flexchange-member-globex'))).toHaveLength(2);
    });
});

/**
 * A local fake of a Flex Consumption app's SCM site (Kudu OneDeploy), as the Azure CLI talks to it: `POST
 * /api/publish` takes the zip and answers 202 with the deployment id; `GET /api/deployments/{id}` reports Kudu's
 * status (0–2 going, 3 failed, 4 succeeded), here after a number of polls the test chooses.
 */
class FakeScm extends LocalFake {
    readonly published: { app: string; query: URLSearchParams; authorization?: string; contentType?: string; body: Buffer }[] = [];
    /** Per app: polls before the outcome, the outcome, and how many publishes to answer 409 (busy) first. */
    readonly plans = new Map<string, { polls: number; final: 3 | 4; busy?: number }>();
    readonly #polls = new Map<string, number>();
    protected async handle(req: IncomingMessage, res: import('node:http').ServerResponse): Promise<void> {
        const url = new URL(req.url ?? '/', this.url);
        const [, app, ...rest] = url.pathname.split('/');
        const path = `/${rest.join('/')}`;
        const chunks: Buffer[] = [];
        for await (const c of req) chunks.push(c as Buffer);
        const plan = this.plans.get(app!) ?? { polls: 1, final: 4 as const };
        if (req.method === 'POST' && path === '/api/publish') {
            if (plan.busy) {
                plan.busy--;
                res.writeHead(409).end('There is a deployment currently in progress.');
                return;
            }
            this.published.push({ app: app!, query: url.searchParams, authorization: req.headers.authorization, contentType: req.headers['content-type'], body: Buffer.concat(chunks) });
            res.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify(`dep-${app}-${this.published.length}`));
            return;
        }
        const dep = /^\/api\/deployments\/([^/]+)$/.exec(path);
        if (req.method === 'GET' && dep) {
            const n = (this.#polls.get(dep[1]!) ?? 0) + 1;
            this.#polls.set(dep[1]!, n);
            res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: dep[1], status: n <= plan.polls ? 1 : plan.final, complete: n > plan.polls }));
            return;
        }
        res.writeHead(404).end();
    }
}

/** With the release package: a member's deployment is done when its app runs the package the core runs. */
describe('ARM deployment controller publishing the release package', () => {
    const arm = new FakeArm();
    const scm = new FakeScm();
    const credential: TokenCredential = { getToken: async (scope): Promise<AccessToken> => ({ token: `token-for ${String(scope)}`, expiresOnTimestamp: Date.now() + 3600_000 }) };
    const template = { $schema: 'https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#', contentVersion: '1.0.0.0', parameters: { orgId: { type: 'string' } }, resources: [] };
    const zip = Buffer.from('PK\u0003\u0004 the release package');
    const blobs = { get: async (container: string, name: string) => (container === 'app-package-core' && name === 'released-package.zip' ? { blob: { container, name } as never, content: zip } : undefined) };
    let controller: ArmDeploymentController;

    beforeAll(async () => {
        await Promise.all([arm.start(), scm.start()]);
        controller = new ArmDeploymentController(armClient(arm, credential, SUB), {
            resourceGroupPrefix: 'rg-flexchange',
            location: 'uksouth',
            template,
            parameters: (orgId) => ({ orgId }),
            release: { blobs, source: { container: 'app-package-core', name: 'released-package.zip' }, publisher: new OneDeployPublisher(credential, (app) => `${scm.url}/${app}`) },
        });
    });
    afterAll(() => Promise.all([arm.stop(), scm.stop()]));

    const run = async (orgId: string) => {
        const ids: string[] = [];
        let state = await controller.start({ orgId });
        while (state.status === 'Running') {
            ids.push(state.id);
            state = await controller.status(state.id);
        }
        return { state, ids };
    };

    it('publishes the package into the new app once ARM is done, and is done when the publish is', async () => {
        arm.outcomes.set('flexchange-member-acme', { running: 1, final: 'Succeeded' });
        scm.plans.set('fx-flexchange-member-acme', { polls: 2, final: 4 });
        const { state, ids } = await run('acme');
        expect(state).toMatchObject({ status: 'Succeeded', url: 'https://fx-flexchange-member-acme.azurewebsites.net/api', principalId: '5f0c2a7e-1111-4222-8333-944455556666' });
        // Started, ARM running, ARM done → publish started, then the publish reported going twice: the id carries the publish from poll to poll.
        const publishing = 'rg-flexchange-acme/flexchange-member-acme/dep-fx-flexchange-member-acme-1';
        expect(ids).toEqual(['rg-flexchange-acme/flexchange-member-acme', 'rg-flexchange-acme/flexchange-member-acme', publishing, publishing, publishing]);
        const [pub] = scm.published;
        expect(pub).toMatchObject({ app: 'fx-flexchange-member-acme', authorization: 'Bearer token-for https://management.azure.com/.default', contentType: 'application/zip' });
        expect(pub!.body.equals(zip)).toBe(true);
        expect(pub!.query.get('RemoteBuild')).toBe('false');
        expect(scm.published).toHaveLength(1);
    });

    it('waits while another deployment of the app runs, and fails with the reason when the publish fails', async () => {
        arm.outcomes.set('flexchange-member-globex', { running: 0, final: 'Succeeded' });
        scm.plans.set('fx-flexchange-member-globex', { polls: 1, final: 3, busy: 1 });
        const { state, ids } = await run('globex');
        expect(ids[0]).toBe('rg-flexchange-globex/flexchange-member-globex');
        // The first publish was answered busy: the next poll publishes.
        expect(ids[1]).toBe('rg-flexchange-globex/flexchange-member-globex');
        expect(state).toEqual({ id: 'rg-flexchange-globex/flexchange-member-globex', status: 'Failed', error: 'Publishing the release package into fx-flexchange-member-globex failed (deployment dep-fx-flexchange-member-globex-2)' });
        // A retried onboarding starts again: the infrastructure is there, the package is published anew.
        scm.plans.set('fx-flexchange-member-globex', { polls: 0, final: 4 });
        await expect(run('globex')).resolves.toMatchObject({ state: { status: 'Succeeded' } });
        expect(scm.published.filter((p) => p.app === 'fx-flexchange-member-globex')).toHaveLength(2);
    });
});
