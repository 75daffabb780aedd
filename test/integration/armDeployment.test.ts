import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AccessToken, TokenCredential } from '@azure/core-auth';
import { ResourceManagementClient } from '@azure/arm-resources';
import { createDefaultHttpClient } from '@azure/core-rest-pipeline';
import { ArmDeploymentController } from '../../shared/deployment/armDeploymentController';

const SUB = '00000000-1111-2222-3333-444444444444';

interface Recorded {
    method: string;
    path: string;
    apiVersion: string | null;
    authorization?: string;
    body?: Record<string, unknown>;
}

/**
 * A local fake of the ARM REST API that records what the real @azure/arm-resources client
 * sends and answers as ARM does: resource group PUT, deployment PUT (201, Accepted), then
 * GETs that report Running a few times and then the outcome the test chose.
 */
class FakeArm {
    readonly requests: Recorded[] = [];
    readonly outcomes = new Map<string, { running: number; final: 'Succeeded' | 'Failed' }>();
    readonly deployments = new Map<string, { gets: number; body: Record<string, unknown> }>();
    #server?: Server;
    url = '';

    async start(): Promise<void> {
        this.#server = createServer((req, res) => void this.#handle(req, res));
        await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', () => resolve()));
        this.url = `http://127.0.0.1:${(this.#server!.address() as AddressInfo).port}`;
    }

    async stop(): Promise<void> {
        await new Promise<void>((resolve) => this.#server?.close(() => resolve()));
    }

    async #handle(req: IncomingMessage, res: import('node:http').ServerResponse): Promise<void> {
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
                return json(200, { id: url.pathname, name: dep[3], properties: { provisioningState: 'Succeeded', outputs: { functionAppHostName: { type: 'String', value: `fx-${dep[3]}.azurewebsites.net` }, principalId: { type: 'String', value: '5f0c2a7e-1111-4222-8333-944455556666' } } } });
            }
        }
        if (url.pathname.startsWith('/operations/')) return json(200, { status: 'InProgress' });
        json(404, { error: { code: 'NotFound', message: `No fake for ${req.method} ${url.pathname}` } });
    }
}

/** The Azure path of memberDeployment: the real ARM client against a local fake that checks its requests. */
describe('ARM deployment controller', () => {
    const arm = new FakeArm();
    const credential: TokenCredential = { getToken: async (): Promise<AccessToken> => ({ token: 'arm-token', expiresOnTimestamp: Date.now() + 3600_000 }) };
    const template = { $schema: 'https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#', contentVersion: '1.0.0.0', parameters: { orgId: { type: 'string' } }, resources: [] };
    let controller: ArmDeploymentController;

    beforeAll(async () => {
        await arm.start();
        // The client talks https, as to ARM (its bearer policy refuses anything else); after signing, this
        // one client's requests are sent to the fake's plain-HTTP port on loopback.
        const transport = createDefaultHttpClient();
        const client = new ResourceManagementClient(credential, SUB, {
            endpoint: arm.url.replace('http:', 'https:'),
            $host: arm.url.replace('http:', 'https:'),
            retryOptions: { maxRetries: 0 },
            httpClient: { sendRequest: (request) => transport.sendRequest(Object.assign(request, { url: request.url.replace(/^https:/, 'http:'), allowInsecureConnection: true })) },
        });
        controller = new ArmDeploymentController(client, { resourceGroupPrefix: 'rg-flexchange', location: 'uksouth', template, parameters: (orgId) => ({ orgId, namePrefix: 'fx' }) });
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
