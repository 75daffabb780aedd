import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/core-auth';
import { Unavailable } from '../errors';

/**
 * Client credentials against the local identity issuer: the devhost's stand-in for
 * a managed identity. Wrap it in `CachedCredential` to reuse tokens.
 */
export class LocalIssuerCredential implements TokenCredential {
    constructor(
        private readonly issuer: string,
        private readonly clientId: string,
    ) {}

    async getToken(scopes: string | string[], _options?: GetTokenOptions): Promise<AccessToken> {
        const scope = Array.isArray(scopes) ? scopes.join(' ') : scopes;
        let res: Response;
        try {
            res = await fetch(`${this.issuer}/token`, {
                method: 'POST',
                headers: { 'content-type': 'application/x-www-form-urlencoded' },
                body: new URLSearchParams({ grant_type: 'client_credentials', client_id: this.clientId, client_secret: 'local', scope }),
                signal: AbortSignal.timeout(5000),
            });
        } catch (err) {
            throw new Unavailable('The identity issuer is unreachable', { cause: err });
        }
        if (!res.ok) throw new Unavailable(`The identity issuer refused a token (HTTP ${res.status})`);
        const body = (await res.json()) as { access_token: string; expires_in: number };
        return { token: body.access_token, expiresOnTimestamp: Date.now() + body.expires_in * 1000 };
    }
}
