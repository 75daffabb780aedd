import type { BlobStore } from '../blobs/blobStore';
import { Unavailable, Upstream } from '../errors';
import { memberResourceNames } from './resourceNames';

/** The release package onboarding hands a member (FLEXCHANGE_RELEASE_PACKAGE), and the store it is copied in. */
export interface ReleasePackage {
    blobs: BlobStore;
    source: { container: string; name: string };
}

/** The blob a member's app runs from, in its deployment container (the name Flex Consumption deployments use). */
export const RELEASED_PACKAGE_BLOB = 'released-package.zip';

/** What `memberDeployment` asks for: one member deployment per organisation, named after it. */
export interface MemberDeploymentSpec {
    orgId: string;
    /** Azure: the organisation's own subscription (the core's identity has rights there: infra/README.md); absent, the operator's member subscription. The devhost has none. */
    subscriptionId?: string;
}

export interface DeploymentState {
    /** Stable for the organisation: starting again finds the same deployment. */
    id: string;
    status: 'Running' | 'Succeeded' | 'Failed';
    /** Where the member's API answers, once it does. */
    url?: string;
    /** The deployment's app identity (object id of its service principal): onboarding grants it `Deployment.Member` for the organisation. */
    principalId?: string;
    error?: string;
    /** While Running: when to look again (the workflow's durable timer; default 15 s). */
    pollAfterSeconds?: number;
}

/**
 * The port behind `memberDeployment`: the same workflow drives an ARM deployment in Azure
 * and a member app instance in the devhost. `start` is idempotent; `status` is polled
 * with durable timers until the deployment ends.
 */
export interface DeploymentController {
    readonly kind: 'devhost' | 'azure';
    start(spec: MemberDeploymentSpec): Promise<DeploymentState>;
    status(id: string): Promise<DeploymentState>;
}

export const memberAppName = (orgId: string) => memberResourceNames(orgId).app;

/**
 * The devhost: a member instance of the same app on the next port (console `PUT /dev/apps/{name}`). With a
 * release package, the controller first places it in the member's deployment container (Azurite), and the
 * devhost runs the member from it, as Azure runs a Flex Consumption app from its deployment container.
 */
export class DevhostDeploymentController implements DeploymentController {
    readonly kind = 'devhost' as const;

    constructor(
        private readonly consoleUrl: string,
        private readonly release?: ReleasePackage,
    ) {
        const u = new URL(consoleUrl);
        if (u.protocol !== 'http:' || !['localhost', '127.0.0.1', '[::1]'].includes(u.hostname)) throw new Error('The devhost console must be http on loopback');
    }

    async start(spec: MemberDeploymentSpec): Promise<DeploymentState> {
        // The devhost takes the names the app derives (one naming rule, resourceNames.ts) rather than making its own.
        const names = memberResourceNames(spec.orgId);
        const name = names.app;
        let pkg: { container: string; blob: string } | undefined;
        if (this.release) {
            // Replacing the blob with the same release again is harmless: a repeated start places it once more.
            const placed = await this.release.blobs.copy(this.release.source, { container: names.deploymentContainer, name: RELEASED_PACKAGE_BLOB });
            pkg = { container: placed.container, blob: placed.name };
        }
        const res = await this.#call('PUT', name, { orgId: spec.orgId, names: { vault: names.localVault, cosmosDatabase: names.cosmosDatabase }, ...(pkg ? { package: pkg } : {}) });
        if (!res.ok) return { id: name, status: 'Failed', error: await this.#problem(res) };
        const app = (await res.json()) as { url: string; identity?: { principalId: string } };
        return { id: name, status: 'Succeeded', url: app.url, principalId: app.identity?.principalId };
    }

    async status(id: string): Promise<DeploymentState> {
        const res = await this.#call('GET', id);
        if (res.status === 404) return { id, status: 'Failed', error: 'the member app is not running' };
        if (!res.ok) throw new Upstream(`The devhost answered ${res.status}: ${await this.#problem(res)}`);
        const app = (await res.json()) as { url: string; identity?: { principalId: string } };
        return { id, status: 'Succeeded', url: app.url, principalId: app.identity?.principalId };
    }

    async #call(method: string, name: string, body?: unknown): Promise<Response> {
        try {
            return await fetch(`${this.consoleUrl}/dev/apps/${name}`, {
                method,
                headers: body ? { 'content-type': 'application/json' } : {},
                body: body ? JSON.stringify(body) : undefined,
                signal: AbortSignal.timeout(120_000),
            });
        } catch (err) {
            throw new Unavailable('The devhost console is unreachable', { cause: err });
        }
    }

    async #problem(res: Response): Promise<string> {
        const text = await res.text();
        try {
            return (JSON.parse(text) as { detail?: string }).detail ?? text;
        } catch {
            return text;
        }
    }
}
