import type { TokenCredential } from '@azure/core-auth';
import { isUnreachable, Unavailable, Upstream } from '../errors';

/**
 * Calls another Flexchange deployment (core ↔ member) with a client-credentials
 * token for that deployment's API (scope `<audience>/.default`). Tokens come from
 * the credential, which the composition root wraps in a cache.
 */
export class DeploymentClient {
    constructor(
        private readonly baseUrl: string,
        private readonly credential: TokenCredential,
        private readonly audience: string,
        private readonly timeoutMs = 10_000,
    ) {}

    async request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: unknown }> {
        const token = await this.credential.getToken(`${this.audience}/.default`);
        if (!token) throw new Unavailable('No token for the deployment API');
        let res: Response | undefined;
        // A read is tried once more when the connection failed (a kept-alive socket closed under it).
        for (let attempt = 0; !res; attempt++) {
            try {
                res = await fetch(new URL(path.replace(/^\//, ''), this.baseUrl.endsWith('/') ? this.baseUrl : `${this.baseUrl}/`), {
                    method,
                    headers: { ...headers, authorization: `Bearer ${token.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
                    body: body === undefined ? undefined : JSON.stringify(body),
                    signal: AbortSignal.timeout(this.timeoutMs),
                });
            } catch (err) {
                if (isUnreachable(err) && method === 'GET' && attempt === 0) continue;
                if (isUnreachable(err)) throw new Unavailable(`The deployment at ${this.baseUrl} is unreachable`, { cause: err });
                throw new Upstream(`The call to ${this.baseUrl} failed (${causeOf(err)})`, { cause: err });
            }
        }
        const text = await res.text();
        let parsed: unknown = text;
        try {
            parsed = text ? JSON.parse(text) : undefined;
        } catch {
            // not JSON: keep the text
        }
        if (res.status >= 500) throw new Upstream(`The deployment at ${this.baseUrl} answered ${res.status}`);
        return { status: res.status, body: parsed };
    }
}

/** The innermost error's code or name, to tell a reset from a refusal in the problem's detail (never its stack). */
function causeOf(err: unknown): string {
    let e = err as { code?: unknown; name?: unknown; cause?: unknown } | undefined;
    let last = 'unknown';
    for (let depth = 0; e && depth < 4; depth++) {
        last = typeof e.code === 'string' ? e.code : typeof e.name === 'string' ? e.name : last;
        e = e.cause as typeof e;
    }
    return last;
}
