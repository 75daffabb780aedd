import type { TokenCredential } from '@azure/core-auth';
import { Unavailable, Upstream } from '../errors';

/**
 * Publishing the release package into a member's Flex Consumption app, as the Azure CLI does
 * (`az functionapp deployment source config-zip` on Flex): `POST <scm>/api/publish?RemoteBuild=false`
 * with the zip and an ARM bearer token (Flex Consumption has no basic-auth publishing), answered 202 with
 * the deployment id; the platform writes it to the app's deployment container
 * (`released-package.zip`) and restarts the app. `GET <scm>/api/deployments/<id>` then reports its
 * Kudu status: 3 failed, 4 succeeded, anything else still going. The package holds its production
 * dependencies, so no remote build.
 */
export interface MemberPackagePublisher {
    /** Starts publishing `zip` to the function app; `busy` when another deployment of the app is under way (try again). */
    publish(app: FunctionAppSite, zip: Buffer, message: string): Promise<{ id: string } | 'busy'>;
    deployment(app: FunctionAppSite, id: string): Promise<'Running' | 'Succeeded' | 'Failed'>;
}

/**
 * A function app and its SCM (Kudu) host, as the member template reports them: `<app>.scm.azurewebsites.net`, or
 * `<app>-<hash>.scm.<region>-01.azurewebsites.net` for an app with a unique default host name.
 */
export interface FunctionAppSite {
    name: string;
    scmHost: string;
}

const KUDU_FAILED = 3;
const KUDU_SUCCESS = 4;

export class OneDeployPublisher implements MemberPackagePublisher {
    constructor(
        private readonly credential: TokenCredential,
        /** Kudu takes ARM's tokens: `<ARM endpoint>/.default`. */
        private readonly armScope = 'https://management.azure.com/.default',
        /** The app's SCM site; another origin only for a local fake that serves several apps. */
        private readonly scmUrl: (app: FunctionAppSite) => string = (app) => `https://${app.scmHost}`,
    ) {}

    async publish(app: FunctionAppSite, zip: Buffer, message: string): Promise<{ id: string } | 'busy'> {
        const url = `${this.scmUrl(app)}/api/publish?RemoteBuild=false&Deployer=flexchange&message=${encodeURIComponent(message)}`;
        const res = await this.#call(url, { method: 'POST', headers: { 'content-type': 'application/zip', 'cache-control': 'no-cache' }, body: zip });
        // Kudu answers 409 while another deployment of the app runs.
        if (res.status === 409) return 'busy';
        if (res.status !== 202 && res.status !== 200) throw await this.#refused(app.name, 'publish', res);
        const id = (await res.text()).trim().replace(/^"|"$/g, '');
        if (!/^[A-Za-z0-9-]{1,100}$/.test(id)) throw new Upstream(`${app.name}'s publish endpoint answered no deployment id`);
        return { id };
    }

    async deployment(app: FunctionAppSite, id: string): Promise<'Running' | 'Succeeded' | 'Failed'> {
        const res = await this.#call(`${this.scmUrl(app)}/api/deployments/${encodeURIComponent(id)}`, { method: 'GET' });
        // Just accepted: the deployment is not listed yet.
        if (res.status === 404) return 'Running';
        if (!res.ok) throw await this.#refused(app.name, 'deployment status', res);
        const status = ((await res.json()) as { status?: unknown }).status;
        return status === KUDU_SUCCESS ? 'Succeeded' : status === KUDU_FAILED ? 'Failed' : 'Running';
    }

    async #call(url: string, init: RequestInit): Promise<Response> {
        const token = await this.credential.getToken(this.armScope);
        if (!token) throw new Unavailable('No token for Azure Resource Manager');
        try {
            return await fetch(url, { ...init, headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${token.token}` }, signal: AbortSignal.timeout(300_000) });
        } catch (err) {
            throw new Unavailable('The member app\'s deployment endpoint is unreachable', { cause: err });
        }
    }

    async #refused(functionApp: string, what: string, res: Response): Promise<Error> {
        const text = (await res.text()).slice(0, 300);
        // The SCM site of a new app, or a new role assignment, takes a while to be ready: the workflow retries.
        if (res.status >= 500 || res.status === 429 || res.status === 401 || res.status === 403) return new Unavailable(`${functionApp}'s ${what} answered ${res.status}: ${text}`);
        return new Upstream(`${functionApp}'s ${what} answered ${res.status}: ${text}`);
    }
}
