import type { ResourceManagementClient } from '@azure/arm-resources';
import type { BlobStore } from '../blobs/blobStore';
import type { MemberPackagePublisher } from './oneDeploy';
import { AppError, Unavailable, Upstream } from '../errors';
import { DATA_ROLE_IDS, dataGrants, roleAssignmentName } from './dataRoles';
import type { DeploymentController, DeploymentState, MemberDeploymentSpec } from './deploymentController';
import { memberResourceNames } from './resourceNames';

export interface ArmMemberDeploymentOptions {
    /** Each member gets resource group `<prefix>-<orgId>` (cut with a hash when too long: resourceNames.ts). */
    resourceGroupPrefix: string;
    /** What the globally unique names are unique within (the member subscription id). */
    scope?: string;
    /** An ARM client for an organisation's own subscription, when its spec names one (the core's identity needs rights there: infra/README.md). */
    clientFor?: (subscriptionId: string) => ResourceManagementClient;
    location: string;
    /** `infra/member.json`. */
    template: Record<string, unknown>;
    /** The template's parameters for one organisation (no secrets: the template takes none), in its own subscription when it has one. */
    parameters(orgId: string, subscriptionId?: string): Promise<Record<string, unknown>> | Record<string, unknown>;
    /**
     * The core's Service Bus namespace (resource id) and an ARM client for its subscription: a member's identity is
     * granted what the data-role table gives it there (Data Receiver on its own subscription) once its deployment
     * succeeded. The core's identity needs Role Based Access Control Administrator on the namespace (core.json).
     */
    serviceBus?: { client: ResourceManagementClient; namespaceId: string };
    /**
     * The release package (FLEXCHANGE_RELEASE_PACKAGE in the core's storage) and how it reaches the member's app: once
     * the infrastructure is deployed, the package is published into the new function app (oneDeploy.ts), and the
     * deployment is done when that publish is.
     */
    release?: { blobs: Pick<BlobStore, 'get'>; source: { container: string; name: string }; publisher: MemberPackagePublisher };
    /**
     * The core's VNet (resource id) and an ARM client for its subscription: once a member's deployment succeeded, the
     * core peers its VNet with the member's (the member template peers back), so their ledger nodes reach each other.
     * The core's identity needs Network Contributor on its VNet (core.json).
     */
    coreNetwork?: { client: ResourceManagementClient; vnetId: string };
    /** How long the workflow waits between polls of a running deployment (FLEXCHANGE_MEMBER_DEPLOYMENT_POLL_SECONDS). */
    pollSeconds?: number;
}

// Role assignments (Microsoft.Authorization), as the templates create theirs.
const ROLE_ASSIGNMENTS_API = '2022-04-01';
// Virtual network peerings (Microsoft.Network), as the templates create theirs.
const VIRTUAL_NETWORKS_API = '2023-11-01';

const FINAL_FAILURES = ['Failed', 'Canceled'];

/**
 * Azure: an ARM deployment of `infra/member.json` into the member's own resource group
 * (incremental, named after the organisation so a second start finds the first), through
 * `@azure/arm-resources`. `start` sends the PUT and returns; `memberDeployment` polls
 * `status` with durable timers until the deployment ends, and reads the Function App's
 * host name from the template's outputs. VNet integration is part of the template
 * (the site's `virtualNetworkSubnetId` on the member's function subnet). A deployment is done when its
 * app identity also holds its Service Bus roles (#grantBus), which live in the core's namespace, outside
 * the member's resource group.
 */
export class ArmDeploymentController implements DeploymentController {
    readonly kind = 'azure' as const;

    constructor(
        private readonly client: ResourceManagementClient,
        private readonly opts: ArmMemberDeploymentOptions,
    ) {}

    async start(spec: MemberDeploymentSpec): Promise<DeploymentState> {
        return this.#paced(await this.#start(spec));
    }

    /** `<resource group>/<deployment>`, then `/<publish id>` once the release package is being published into the app. */
    async status(id: string): Promise<DeploymentState> {
        return this.#paced(await this.#status(id));
    }

    #paced(state: DeploymentState): DeploymentState {
        return state.status === 'Running' && this.opts.pollSeconds !== undefined ? { ...state, pollAfterSeconds: this.opts.pollSeconds } : state;
    }

    async #start(spec: MemberDeploymentSpec): Promise<DeploymentState> {
        const own = spec.subscriptionId;
        const names = memberResourceNames(spec.orgId, { resourceGroupPrefix: this.opts.resourceGroupPrefix, scope: own ?? this.opts.scope });
        const rg = names.resourceGroup;
        const name = names.deployment;
        // In an organisation's own subscription the id says which: status polls go there too.
        const id = `${own ? `${own}:` : ''}${rg}/${name}`;
        const client = this.#client(own);
        return this.#arm(async () => {
            const existing = await client.deployments.get(rg, name).catch((err: unknown) => {
                if ((err as { statusCode?: number }).statusCode === 404) return undefined;
                throw err;
            });
            if (existing && !FINAL_FAILURES.includes(existing.properties?.provisioningState ?? '')) return this.#finished(id, existing);
            await client.resourceGroups.createOrUpdate(rg, { location: this.opts.location, tags: { 'flexchange-org': spec.orgId, 'flexchange-role': 'member' } });
            const parameters = Object.fromEntries(Object.entries(await this.opts.parameters(spec.orgId, own)).map(([k, v]) => [k, { value: v }]));
            // The PUT only: the deployment runs in Azure; the workflow polls its state with durable timers.
            await client.deployments.beginCreateOrUpdate(rg, name, { properties: { mode: 'Incremental', template: this.opts.template, parameters } });
            return { id, status: 'Running' };
        });
    }

    async #status(id: string): Promise<DeploymentState> {
        const own = /^([0-9a-f-]{36}):/.exec(id)?.[1];
        const [rg, name, publishId, ...rest] = id.slice(own ? own.length + 1 : 0).split('/');
        if (!rg || !name || rest.length > 0) throw new Upstream(`Not a deployment id: ${id}`);
        const base = `${own ? `${own}:` : ''}${rg}/${name}`;
        return this.#arm(async () => this.#finished(base, await this.#client(own).deployments.get(rg, name), publishId));
    }

    #client(subscriptionId?: string): ResourceManagementClient {
        if (!subscriptionId) return this.client;
        if (!this.opts.clientFor) throw new Unavailable(`Deploying into an organisation's own subscription (${subscriptionId}) is not configured`);
        return this.opts.clientFor(subscriptionId);
    }

    /**
     * The deployment's state. When ARM reports it succeeded: its identity gets its Service Bus roles, then the release
     * package is published into its app (the id carries the publish's id from poll to poll), and only then is it done.
     */
    async #finished(id: string, deployment: ArmDeployment, publishId?: string): Promise<DeploymentState> {
        const state = stateOf(id, deployment);
        const orgId = (deployment.properties?.parameters as Record<string, { value?: unknown }> | undefined)?.orgId?.value;
        if (state.status !== 'Succeeded' || typeof orgId !== 'string') return state;
        const outputs = (deployment.properties?.outputs ?? {}) as Record<string, { value?: unknown }>;
        // Once, before the package goes in: later polls carry the publish's id.
        if (!publishId) await this.#peerCore(orgId, outputs.vnetId?.value);
        if (!publishId && state.principalId) await this.#grantBus(orgId, state.principalId);
        const release = this.opts.release;
        if (!release) return state;
        const name = outputs.functionAppName?.value;
        const scmHost = outputs.functionAppScmHostName?.value;
        if (typeof name !== 'string' || !name || typeof scmHost !== 'string' || !scmHost) {
            return { id, status: 'Failed', error: 'The member template reported no functionAppName and functionAppScmHostName to publish the app to' };
        }
        const app = { name, scmHost };
        if (!publishId) {
            const pkg = await release.blobs.get(release.source.container, release.source.name);
            if (!pkg) return { id, status: 'Failed', error: `The release package ${release.source.container}/${release.source.name} is missing` };
            const started = await release.publisher.publish(app, pkg.content, `flexchange release for ${orgId}`);
            // Another deployment of the app is under way: publish on a later poll.
            return started === 'busy' ? { id, status: 'Running' } : { id: `${id}/${started.id}`, status: 'Running' };
        }
        const published = await release.publisher.deployment(app, publishId);
        if (published === 'Running') return { id: `${id}/${publishId}`, status: 'Running' };
        if (published === 'Failed') return { id, status: 'Failed', error: `Publishing the release package into ${name} failed (deployment ${publishId})` };
        return { ...state, id: `${id}/${publishId}` };
    }

    /** The core's side of the peering with a member's VNet (idempotent: one peering per member, named after it). */
    async #peerCore(orgId: string, memberVnetId: unknown): Promise<void> {
        const core = this.opts.coreNetwork;
        if (!core) return;
        if (typeof memberVnetId !== 'string' || !memberVnetId) throw new Upstream(`The member template reported no vnetId for ${orgId} to peer with`);
        const peering = `${core.vnetId}/virtualNetworkPeerings/member-${orgId}`;
        await core.client.resources.beginCreateOrUpdateByIdAndWait(peering.replace(/^\/+/, ''), VIRTUAL_NETWORKS_API, {
            properties: { remoteVirtualNetwork: { id: memberVnetId }, allowVirtualNetworkAccess: true, allowForwardedTraffic: false, allowGatewayTransit: false, useRemoteGateways: false },
        });
    }

    /** The member identity's rows of the data-role table on the core's namespace, as role assignments (idempotent: named after what they assign). */
    async #grantBus(orgId: string, principalId: string): Promise<void> {
        const bus = this.opts.serviceBus;
        if (!bus) return;
        const subscription = /^\/subscriptions\/([^/]+)\//i.exec(bus.namespaceId)?.[1];
        if (!subscription) throw new Upstream(`Not a Service Bus namespace resource id: ${bus.namespaceId}`);
        for (const grant of dataGrants({ role: 'member', orgId })) {
            if (grant.scope !== 'service-bus') continue;
            // `topic/Subscriptions/name` → `…/topics/topic/subscriptions/name` (ARM's path of that entity).
            const [topic, , entitySubscription] = (grant.entity ?? '').split('/');
            const scope = grant.entity ? (entitySubscription ? `${bus.namespaceId}/topics/${topic}/subscriptions/${entitySubscription}` : `${bus.namespaceId}/queues/${topic}`) : bus.namespaceId;
            const roleId = DATA_ROLE_IDS[grant.role];
            const assignment = `${scope}/providers/Microsoft.Authorization/roleAssignments/${roleAssignmentName(scope, principalId, roleId)}`;
            try {
                // The client puts the id after its own `/`: without the id's leading slash the URL has one.
                await bus.client.resources.beginCreateOrUpdateByIdAndWait(assignment.replace(/^\/+/, ''), ROLE_ASSIGNMENTS_API, {
                    properties: {
                        roleDefinitionId: `/subscriptions/${subscription}/providers/Microsoft.Authorization/roleDefinitions/${roleId}`,
                        principalId,
                        principalType: 'ServicePrincipal',
                        description: `Flexchange member ${orgId}: ${grant.role} (shared/deployment/dataRoles.ts)`,
                    },
                });
            } catch (err) {
                const code = (err as { code?: string }).code;
                // The same role for the same identity on the same scope under another name: granted already.
                if (code === 'RoleAssignmentExists') continue;
                // A new identity takes a while to replicate to Entra ID: the workflow retries.
                if (code === 'PrincipalNotFound') throw new Unavailable(`The identity of ${orgId}'s deployment is not known to Entra ID yet`, { cause: err });
                throw err;
            }
        }
    }

    async #arm<T>(fn: () => Promise<T>): Promise<T> {
        try {
            return await fn();
        } catch (err) {
            if (err instanceof AppError) throw err;
            const status = (err as { statusCode?: number }).statusCode;
            if (status === undefined || status >= 500 || status === 429) throw new Unavailable('Azure Resource Manager is unreachable or busy', { cause: err });
            throw new Upstream(`Azure Resource Manager refused the deployment: ${(err as Error).message}`, { cause: err });
        }
    }
}

type ArmDeployment = { properties?: { provisioningState?: string; outputs?: unknown; parameters?: unknown; error?: { message?: string; code?: string } } };

function stateOf(id: string, d: ArmDeployment): DeploymentState {
    const p = d.properties ?? {};
    const state = p.provisioningState ?? 'Running';
    if (state === 'Succeeded') {
        const outputs = (p.outputs ?? {}) as Record<string, { value?: unknown }>;
        const host = outputs.functionAppHostName?.value ?? outputs.functionAppDefaultHostName?.value ?? outputs.defaultHostName?.value;
        const principalId = outputs.principalId?.value;
        return { id, status: 'Succeeded', url: typeof host === 'string' ? `https://${host}/api` : undefined, principalId: typeof principalId === 'string' ? principalId : undefined };
    }
    if (FINAL_FAILURES.includes(state)) return { id, status: 'Failed', error: p.error?.message ?? `the deployment ended ${state}` };
    return { id, status: 'Running' };
}
