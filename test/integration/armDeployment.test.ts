import type { AccessToken, TokenCredential } from '@azure/core-auth';
import { ResourceManagementClient } from '@azure/arm-resources';
import { createDefaultHttpClient } from '@azure/core-rest-pipeline';
import { ArmDeploymentController } from '../../shared/deployment/armDeploymentController';
import { Unavailable } from '../../shared/errors';
import { OneDeployPublisher } from '../../shared/deployment/oneDeploy';
import { FakeArm, FakeScm, type LocalFake } from '../harness/azureFakes';

const SUB = '00000000-1111-2222-3333-444444444444';
// The core's subscription, where its Service Bus namespace is.
const CORE_SUB = '99999999-1111-2222-3333-444444444444';
const NAMESPACE_ID = `/subscriptions/${CORE_SUB}/resourceGroups/rg-core/providers/Microsoft.ServiceBus/namespaces/fx-core`;
const CORE_VNET_ID = `/subscriptions/${CORE_SUB}/resourceGroups/rg-core/providers/Microsoft.Network/virtualNetworks/fx-core-vnet`;

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
            parameters: (orgId, own) => ({ orgId, namePrefix: 'fx', ...(own ? { names: `unique within ${own}` } : {}) }),
            clientFor: (own) => armClient(arm, credential, own),
            serviceBus: { client: armClient(arm, credential, CORE_SUB), namespaceId: NAMESPACE_ID },
            coreNetwork: { client: armClient(arm, credential, CORE_SUB), vnetId: CORE_VNET_ID },
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

    it("peers the core's VNet with the member's (the template peers back), idempotently (the same peering, whatever the retries)", async () => {
        const id = `${CORE_VNET_ID}/virtualNetworkPeerings/member-acme`;
        expect([...arm.peerings.keys()]).toEqual([id]);
        expect(arm.peerings.get(id)).toEqual({
            remoteVirtualNetwork: { id: `/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-flexchange-member-acme/providers/Microsoft.Network/virtualNetworks/fx-flexchange-member-acme-vnet` },
            allowVirtualNetworkAccess: true,
            allowForwardedTraffic: false,
            allowGatewayTransit: false,
            useRemoteGateways: false,
        });
        const puts = arm.requests.filter((r) => r.method === 'PUT' && r.path === id);
        expect(puts.every((r) => r.apiVersion === '2023-11-01' && r.authorization === 'Bearer arm-token')).toBe(true);
    });

    it("deploys an organisation that keeps its own subscription there, and polls it there", async () => {
        const OWN = '0b5e0e4c-1111-4222-8333-444455556666';
        arm.outcomes.set('flexchange-member-umbrella', { running: 1, final: 'Succeeded' });
        let state = await controller.start({ orgId: 'umbrella', subscriptionId: OWN });
        expect(state).toEqual({ id: `${OWN}:rg-flexchange-umbrella/flexchange-member-umbrella`, status: 'Running' });
        while (state.status === 'Running') state = await controller.status(state.id);
        expect(state).toMatchObject({ id: `${OWN}:rg-flexchange-umbrella/flexchange-member-umbrella`, status: 'Succeeded' });
        // Its resource group and deployment, and every look at it, in its subscription; its parameters made for it.
        const own = arm.requests.filter((r) => r.path.includes('rg-flexchange-umbrella') && !r.path.includes('/Microsoft.Network/'));
        expect(own.map((r) => `${r.method} ${r.path.split('/')[2]}`)).toEqual([`GET ${OWN}`, `PUT ${OWN}`, `PUT ${OWN}`, `GET ${OWN}`, `GET ${OWN}`]);
        const put = own.find((r) => r.method === 'PUT' && r.path.endsWith('/deployments/flexchange-member-umbrella'))!;
        expect((put.body!.properties as { parameters: unknown }).parameters).toMatchObject({ orgId: { value: 'umbrella' }, names: { value: `unique within ${OWN}` } });
        // What the core grants stays in its own subscription: the member's role on the bus, and the core's side of the peering.
        expect([...arm.assignments.keys()].filter((k) => k.includes('member-umbrella'))).toEqual([expect.stringMatching(new RegExp(`^/subscriptions/${CORE_SUB}/`))]);
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
            release: { blobs, source: { container: 'app-package-core', name: 'released-package.zip' }, publisher: new OneDeployPublisher(credential, undefined, (app) => `${scm.url}/${app.name}`) },
            pollSeconds: 5,
        });
    });
    afterAll(() => Promise.all([arm.stop(), scm.stop()]));

    const run = async (orgId: string) => {
        const ids: string[] = [];
        let state = await controller.start({ orgId });
        while (state.status === 'Running') {
            // The workflow's next look, as the controller paces it.
            expect(state.pollAfterSeconds).toBe(5);
            ids.push(state.id);
            state = await controller.status(state.id);
        }
        expect(state.pollAfterSeconds).toBeUndefined();
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
