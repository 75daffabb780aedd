import type { ResourceManagementClient } from '@azure/arm-resources';
import { Unavailable, Upstream } from '../errors';
import type { DeploymentController, DeploymentState, MemberDeploymentSpec } from './deploymentController';
import { memberResourceNames } from './resourceNames';

export interface ArmMemberDeploymentOptions {
    /** Each member gets resource group `<prefix>-<orgId>` (cut with a hash when too long: resourceNames.ts). */
    resourceGroupPrefix: string;
    /** What the globally unique names are unique within (the member subscription id). */
    scope?: string;
    location: string;
    /** `infra/member.json`. */
    template: Record<string, unknown>;
    /** The template's parameters for one organisation (no secrets: the template takes none). */
    parameters(orgId: string): Promise<Record<string, unknown>> | Record<string, unknown>;
}

const FINAL_FAILURES = ['Failed', 'Canceled'];

/**
 * Azure: an ARM deployment of `infra/member.json` into the member's own resource group
 * (incremental, named after the organisation so a second start finds the first), through
 * `@azure/arm-resources`. `start` sends the PUT and returns; `memberDeployment` polls
 * `status` with durable timers until the deployment ends, and reads the Function App's
 * host name from the template's outputs. VNet integration is part of the template
 * (the site's `virtualNetworkSubnetId` on the member's function subnet).
 */
export class ArmDeploymentController implements DeploymentController {
    readonly kind = 'azure' as const;

    constructor(
        private readonly client: ResourceManagementClient,
        private readonly opts: ArmMemberDeploymentOptions,
    ) {}

    async start(spec: MemberDeploymentSpec): Promise<DeploymentState> {
        const names = memberResourceNames(spec.orgId, { resourceGroupPrefix: this.opts.resourceGroupPrefix, scope: this.opts.scope });
        const rg = names.resourceGroup;
        const name = names.deployment;
        const id = `${rg}/${name}`;
        return this.#arm(async () => {
            const existing = await this.client.deployments.get(rg, name).catch((err: unknown) => {
                if ((err as { statusCode?: number }).statusCode === 404) return undefined;
                throw err;
            });
            if (existing && !FINAL_FAILURES.includes(existing.properties?.provisioningState ?? '')) return stateOf(id, existing);
            await this.client.resourceGroups.createOrUpdate(rg, { location: this.opts.location, tags: { 'flexchange-org': spec.orgId, 'flexchange-role': 'member' } });
            const parameters = Object.fromEntries(Object.entries(await this.opts.parameters(spec.orgId)).map(([k, v]) => [k, { value: v }]));
            // The PUT only: the deployment runs in Azure; the workflow polls its state with durable timers.
            await this.client.deployments.beginCreateOrUpdate(rg, name, { properties: { mode: 'Incremental', template: this.opts.template, parameters } });
            return { id, status: 'Running' };
        });
    }

    async status(id: string): Promise<DeploymentState> {
        const [rg, name] = id.split('/');
        if (!rg || !name) throw new Upstream(`Not a deployment id: ${id}`);
        return this.#arm(async () => stateOf(id, await this.client.deployments.get(rg, name)));
    }

    async #arm<T>(fn: () => Promise<T>): Promise<T> {
        try {
            return await fn();
        } catch (err) {
            const status = (err as { statusCode?: number }).statusCode;
            if (status === undefined || status >= 500 || status === 429) throw new Unavailable('Azure Resource Manager is unreachable or busy', { cause: err });
            throw new Upstream(`Azure Resource Manager refused the deployment: ${(err as Error).message}`, { cause: err });
        }
    }
}

function stateOf(id: string, d: { properties?: { provisioningState?: string; outputs?: unknown; error?: { message?: string; code?: string } } }): DeploymentState {
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
