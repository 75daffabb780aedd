import { BlobServiceClient } from '@azure/storage-blob';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import path from 'node:path';
import { devCertificate } from '../../devhost/services/devCertificate';
import { stableId } from '../../devhost/services/identity';
import { memberAppName, RELEASED_PACKAGE_BLOB } from '../../shared/deployment/deploymentController';
import { DATA_ROLE_IDS } from '../../shared/deployment/dataRoles';
import { memberResourceNames } from '../../shared/deployment/resourceNames';
import { FakeArm, FakeGraph, FakeScm, LocalFake, readBody, type Published } from '../harness/azureFakes';
import { devToken, removeDir, repoRoot, startDevhost, tempDir, waitFor, type RunningDevhost } from '../harness/devhost';

const MEMBER_SUB = '0b5e0e4c-1111-4222-8333-444455556666';
// The organisation keeps its member deployment in its own subscription.
const ORG_SUB = '5ab1c0de-1111-4222-8333-444455556666';
const CORE_SUB = '9c0a1e2d-1111-4222-8333-444455556666';
const NAMESPACE_ID = `/subscriptions/${CORE_SUB}/resourceGroups/rg-flexchange-core/providers/Microsoft.ServiceBus/namespaces/fx-core`;
const CORE_VNET_ID = `/subscriptions/${CORE_SUB}/resourceGroups/rg-flexchange-core/providers/Microsoft.Network/virtualNetworks/fx-vnet`;
const BESU = { version: '25.11.0', sha256: 'ab'.repeat(32) };
// The API's service principal and its app role ids, as scripts/azure/appRegistration.ts prints them.
const API_SP = '7d3f1c2b-1111-4222-8333-444455556666';
const ROLE_IDS = {
    'Org.Admin': 'aaaaaaaa-0000-4000-8000-000000000001',
    'Org.Trader': 'aaaaaaaa-0000-4000-8000-000000000002',
    'Deployment.Member': 'aaaaaaaa-0000-4000-8000-000000000003',
    'Flexchange.Approver': 'aaaaaaaa-0000-4000-8000-000000000004',
};

/**
 * The front end of a member's function app (`https://<app>.azurewebsites.net`): TLS in front of the app, which
 * answers once a package runs in it (503 before, as an app with no content).
 */
class FrontEnd extends LocalFake {
    target?: string;
    protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
        const body = await readBody(req);
        if (!this.target) {
            res.writeHead(503).end('The app has no content yet');
            return;
        }
        const to = new URL(req.url ?? '/', this.target);
        await new Promise<void>((resolve, reject) => {
            const out = httpRequest(to, { method: req.method, headers: { ...req.headers, host: to.host } }, (answer) => {
                res.writeHead(answer.statusCode ?? 502, answer.headers);
                answer.pipe(res).on('finish', resolve).on('error', reject);
            });
            out.on('error', reject);
            out.end(body);
        });
    }
}

/**
 * Item 5 of the Azure issue: onboarding through Azure's control planes, with the real workflow on the devhost. The
 * core is configured as in Azure for members (a member subscription, the namespace's resource id, the Graph app
 * registration), and reaches local fakes of ARM, Kudu and Microsoft Graph over https with its managed identity. The
 * fake Kudu does what Flex Consumption does with a published package: it is written to the member's deployment
 * container (Azurite) and the app runs it (a member instance started from that container). Onboarding must end
 * Active, with the member running the core's release package.
 */
describe('onboarding in Azure (ARM, Kudu and Graph fakes)', () => {
    const stateDir = tempDir('flexchange-state-');
    const tls = devCertificate(path.join(stateDir, 'servicebus', 'tls'));
    const arm = new FakeArm(tls);
    const scm = new FakeScm(tls);
    const front = new FrontEnd(tls);
    const graph = new FakeGraph(API_SP);
    let host: RunningDevhost;
    const storage = () => BlobServiceClient.fromConnectionString((JSON.parse(readFileSync(path.join(stateDir, 'storage.json'), 'utf8')) as { connectionString: string }).connectionString);

    beforeAll(async () => {
        await Promise.all([arm.start(), scm.start(), front.start(), graph.start()]);
        // The member template's outputs: its app behind the front end, Kudu on its own host, the app's managed identity
        // (the devhost gives a member instance `flexchange-<app>`'s identity).
        arm.outputsOf = (_deployment, parameters) => {
            // Kudu's host is the app's own.
            scm.site = String(parameters.functionAppName?.value);
            return {
                vnetId: `/subscriptions/${ORG_SUB}/resourceGroups/rg-member/providers/Microsoft.Network/virtualNetworks/member-vnet`,
                functionAppName: scm.site,
                functionAppHostName: front.host,
                functionAppScmHostName: scm.host,
                principalId: stableId(`app:flexchange-${memberAppName(String(parameters.orgId?.value))}`),
            };
        };
        // Flex Consumption with a published package: into the app's deployment container, and the app restarts on it.
        scm.deployed = async (published: Published) => {
            const deployment = [...arm.deployments.values()].find((d) => (d.body.properties as { parameters: Record<string, { value: string }> }).parameters.functionAppName?.value === published.app);
            const orgId = (deployment!.body.properties as { parameters: Record<string, { value: string }> }).parameters.orgId!.value;
            const names = memberResourceNames(orgId);
            const container = storage().getContainerClient(names.deploymentContainer);
            await container.createIfNotExists();
            await container.getBlockBlobClient(RELEASED_PACKAGE_BLOB).uploadData(published.body, { blobHTTPHeaders: { blobContentType: 'application/zip' } });
            const res = await fetch(`${host.consoleUrl}/dev/apps/${names.app}`, {
                method: 'PUT',
                headers: { 'content-type': 'application/json' },
                body: JSON.stringify({ orgId, names: { vault: names.localVault, cosmosDatabase: names.cosmosDatabase }, package: { container: names.deploymentContainer, blob: RELEASED_PACKAGE_BLOB } }),
            });
            if (!res.ok) throw new Error(`The member app did not start: ${res.status} ${await res.text()}`);
            front.target = ((await res.json()) as { url: string }).url;
        };
        host = await startDevhost(
            [
                '--app', repoRoot, '--name', 'core',
                '--set', 'FLEXCHANGE_APPROVERS=alice@operator.example',
                '--set', 'FLEXCHANGE_PUBLIC_URL=https://core.flexchange.example',
                '--set', `FLEXCHANGE_ARM_ENDPOINT=${arm.url}`,
                '--set', `FLEXCHANGE_MEMBER_SUBSCRIPTION_ID=${MEMBER_SUB}`,
                '--set', 'FLEXCHANGE_MEMBER_DEPLOYMENT_POLL_SECONDS=2',
                '--set', `FLEXCHANGE_MEMBER_GENESIS_B64=${Buffer.from('{"config":{"chainId":31337}}').toString('base64')}`,
                '--set', 'FLEXCHANGE_MEMBER_NODE_SSH_KEY=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOnboardingTestKeyOnly operator',
                '--set', 'FLEXCHANGE_MEMBER_ADDRESS_SPACE=10.64.0.0/10',
                '--set', 'FLEXCHANGE_NODE_NETWORK_RANGES=127.0.0.0/8,::1/128,10.0.0.0/8',
                '--set', `FLEXCHANGE_SERVICEBUS_RESOURCE_ID=${NAMESPACE_ID}`,
                '--set', `FLEXCHANGE_CORE_VNET_ID=${CORE_VNET_ID}`,
                '--set', `FLEXCHANGE_BESU_VERSION=${BESU.version}`,
                '--set', `FLEXCHANGE_BESU_SHA256=${BESU.sha256}`,
                '--set', `FLEXCHANGE_GRAPH_URL=${graph.url}`,
                '--set', `FLEXCHANGE_GRAPH_SERVICE_PRINCIPAL_ID=${API_SP}`,
                '--set', `FLEXCHANGE_GRAPH_APP_ROLE_IDS=${JSON.stringify(ROLE_IDS)}`,
                '--set', 'FLEXCHANGE_INVITE_REDIRECT_URL=https://app.flexchange.example',
            ],
            { stateDir, storage: true },
        );
    }, 180_000);
    afterAll(async () => {
        await host?.stop();
        await Promise.all([arm.stop(), scm.stop(), front.stop(), graph.stop()]);
        removeDir(stateDir);
    });

    it('deploys the member through ARM into its own subscription, publishes the release package into its app, grants its roles through ARM and Graph, and ends Active', async () => {
        const core = host.origin('core');
        const applied = await fetch(`${core}/api/registrations`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ organization: { name: 'Azure Wind', legalId: 'GB-7007', country: 'GB', contactEmail: 'ops@azurewind.example', azureSubscriptionId: ORG_SUB }, applicant: { name: 'Wendy', email: 'wendy@azurewind.example' } }),
        });
        expect(applied.status).toBe(202);
        const { statusUrl } = (await applied.json()) as { statusUrl: string };
        // Mail links name the public URL (the core's in Azure); here the same path on the core's local origin.
        const local = (link: string) => {
            const u = new URL(link, core);
            return `${core}${u.pathname}${u.search}`;
        };
        const link = await waitFor(async () => {
            const mails = (await (await fetch(`${host.consoleUrl}/dev/mail`)).json()) as { subject: string; links: string[] }[];
            return mails.find((m) => m.subject.includes('Azure Wind'))?.links.find((l) => l.includes('/api/approvals/'));
        }, 20_000);
        // The approver sees where the member deployment goes.
        expect(await (await fetch(local(link))).text()).toContain(`in its own Azure subscription ${ORG_SUB}`);
        expect((await fetch(local(link), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'decision=approve' })).status).toBe(200);
        const done = await waitFor(async () => {
            const s = (await (await fetch(local(statusUrl))).json()) as { status: string; orgId: string; failure?: string; steps: { step: string; detail?: string }[] };
            if (s.status === 'Failed') throw new Error(`Onboarding failed: ${s.failure}`);
            return s.status === 'Active' ? s : undefined;
        }, 150_000, 500);
        const orgId = done.orgId;
        const names = memberResourceNames(orgId, { scope: ORG_SUB });
        const principalId = stableId(`app:flexchange-${memberAppName(orgId)}`);
        expect(done.steps.map((s) => s.step)).toEqual(['submitted', 'approvers-notified', 'approved', 'organization', 'applicant', 'member-subscription', 'member-deployment', 'app-identity', 'first-account', 'funded', 'announced', 'active']);
        expect(done.steps.find((s) => s.step === 'member-deployment')?.detail).toBe(`https://${front.host}/api`);
        expect(done.steps.find((s) => s.step === 'app-identity')?.detail).toBe(principalId);

        // ARM: the member's resource group and deployment of infra/member.json, with the core's managed identity's token for ARM.
        const put = arm.requests.find((r) => r.method === 'PUT' && r.path.endsWith(`/deployments/${names.deployment}`))!;
        expect(put.path).toBe(`/subscriptions/${ORG_SUB}/resourcegroups/${names.resourceGroup}/providers/Microsoft.Resources/deployments/${names.deployment}`);
        // Every call about the member's own resources went to its subscription, none to the operator's member subscription.
        expect(arm.requests.filter((r) => r.path.includes(names.resourceGroup)).every((r) => r.path.startsWith(`/subscriptions/${ORG_SUB}/`))).toBe(true);
        expect(arm.requests.some((r) => r.path.startsWith(`/subscriptions/${MEMBER_SUB}/`))).toBe(false);
        const parameters = (put.body!.properties as { parameters: Record<string, { value: unknown }> }).parameters;
        expect(parameters).toMatchObject({ orgId: { value: orgId }, functionAppName: { value: names.functionApp }, vnetAddressPrefix: { value: expect.stringMatching(/^10\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.\d+\.0\/20$/) } });
        // The consortium's pinned client, and the member's VNet peered with the core's both ways (the template's side, and the core's).
        expect(parameters).toMatchObject({ besuVersion: { value: BESU.version }, besuSha256: { value: BESU.sha256 }, besuDownloadUrl: { value: `https://github.com/hyperledger/besu/releases/download/${BESU.version}/besu-${BESU.version}.tar.gz` }, coreVnetId: { value: CORE_VNET_ID } });
        expect([...arm.peerings]).toEqual([[`${CORE_VNET_ID}/virtualNetworkPeerings/member-${orgId}`, expect.objectContaining({ remoteVirtualNetwork: { id: `/subscriptions/${ORG_SUB}/resourceGroups/rg-member/providers/Microsoft.Network/virtualNetworks/member-vnet` }, allowVirtualNetworkAccess: true, allowForwardedTraffic: false })]]);
        const armClaims = JSON.parse(Buffer.from(put.authorization!.split('.')[1]!, 'base64url').toString()) as { aud: string; oid: string };
        expect(armClaims.aud).toBe(arm.url);
        // The member's identity: Data Receiver on its own subscription in the core's namespace, and nothing else.
        const scope = `${NAMESPACE_ID}/topics/flexchange-events/subscriptions/member-${orgId}`;
        expect([...arm.assignments.values()]).toEqual([expect.objectContaining({ scope, principalId, principalType: 'ServicePrincipal', roleDefinitionId: `/subscriptions/${CORE_SUB}/providers/Microsoft.Authorization/roleDefinitions/${DATA_ROLE_IDS['Azure Service Bus Data Receiver']}` })]);

        // Kudu: one publish of the core's release package, with an ARM token; it is what the member's deployment container holds.
        expect(scm.published).toHaveLength(1);
        const [published] = scm.published;
        expect(published).toMatchObject({ app: names.functionApp, contentType: 'application/zip' });
        expect(JSON.parse(Buffer.from(published!.authorization!.split('.')[1]!, 'base64url').toString())).toMatchObject({ aud: arm.url, oid: armClaims.oid });
        expect(published!.query.get('RemoteBuild')).toBe('false');
        const release = (host.logs().find((l) => l.msg === 'release package ready for members') as { sha256?: string } | undefined)?.sha256;
        const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
        expect(sha256(published!.body)).toBe(release);
        const inContainer = await storage().getContainerClient(memberResourceNames(orgId).deploymentContainer).getBlockBlobClient(RELEASED_PACKAGE_BLOB).downloadToBuffer();
        expect(sha256(inContainer)).toBe(release);

        // Graph: the applicant invited and made Org.Admin; the member's app identity given Deployment.Member on the API.
        expect(graph.requests.filter((r) => r.method === 'POST' && r.path === '/v1.0/invitations').map((r) => r.body?.invitedUserEmailAddress)).toEqual(['wendy@azurewind.example']);
        expect([...graph.assignments.values()].map(({ principalId: p, appRoleId }) => ({ p, appRoleId })).sort((a, b) => a.appRoleId.localeCompare(b.appRoleId))).toEqual([
            { p: graph.invited.get('wendy@azurewind.example'), appRoleId: ROLE_IDS['Org.Admin'] },
            { p: principalId, appRoleId: ROLE_IDS['Deployment.Member'] },
        ]);

        // The member app (behind its front end) runs the package and holds the first account.
        const admin = await devToken(host, { roles: ['Org.Admin'], orgId, email: 'wendy@azurewind.example' });
        const accounts = await fetch(`${front.target}/accounts`, { headers: { authorization: `Bearer ${admin}` } });
        expect(accounts.status).toBe(200);
        expect(((await accounts.json()) as { items: { address: string }[] }).items.map((a) => a.address)).toContain(done.steps.find((s) => s.step === 'first-account')!.detail);
    }, 240_000);
});
