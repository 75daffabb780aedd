import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/core-auth';

/** Caches another credential's tokens per scope until `marginMs` before they expire; concurrent callers share one request. */
export class CachedCredential implements TokenCredential {
    readonly #cache = new Map<string, AccessToken>();
    readonly #pending = new Map<string, Promise<AccessToken | null>>();

    constructor(
        private readonly inner: TokenCredential,
        private readonly marginMs = 5 * 60_000,
    ) {}

    async getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken | null> {
        const key = Array.isArray(scopes) ? scopes.join(' ') : scopes;
        const cached = this.#cache.get(key);
        if (cached && cached.expiresOnTimestamp - Date.now() > this.marginMs) return cached;
        let pending = this.#pending.get(key);
        if (!pending) {
            pending = this.inner.getToken(scopes, options).then(
                (token) => {
                    if (token) this.#cache.set(key, token);
                    this.#pending.delete(key);
                    return token;
                },
                (err: unknown) => {
                    this.#pending.delete(key);
                    throw err;
                },
            );
            this.#pending.set(key, pending);
        }
        return pending;
    }
}
