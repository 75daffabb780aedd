import { createPublicKey, type KeyObject } from 'node:crypto';
import jwt, { JwtHeader, JwtPayload } from 'jsonwebtoken';
import jwksRsa, { JwksClient } from 'jwks-rsa';
import { setBounded } from '../boundedMap';
import { Unauthorized } from '../errors';

/** The caller, as the token says. Its organisation comes from the directory, never from the token or the request. */
export interface Principal {
    /** Entra object id of the user or of the calling app's service principal. */
    oid: string;
    tenantId?: string;
    roles: string[];
    /** A client-credentials token: a deployment, not a person. */
    appOnly: boolean;
    clientId?: string;
    email?: string;
    name?: string;
}

export interface TokenValidatorOptions {
    issuer: string;
    /** The audience, or audiences, a token may carry (e.g. the API's identifier URI and its client id). */
    audience: string | string[];
    jwksUri: string;
    /** Seconds of clock difference tolerated on exp, nbf and iat. */
    clockToleranceSeconds?: number;
}

/** How long a token that passed is taken without checking it again. */
const VALIDATED_REUSE_MS = 5 * 60_000;
const MAX_VALIDATED = 10_000;

/**
 * Validates Entra ID (locally: the devhost issuer) bearer tokens: RS256 only,
 * signature against the issuer's JWKS (cached, with rate-limited fetches; an unknown
 * `kid` makes one fetch, then fails), issuer, audience, an expiry (required), not-before
 * and issued-at (not in the future) with a small clock tolerance. Every failure is a 401 whose detail names no key material.
 * A token that passed is taken again without a new signature check while its times admit it (`#validated`).
 */
export class TokenValidator {
    readonly #jwks: JwksClient;
    /** The issuer's public keys parsed once (jsonwebtoken would parse the PEM on every request), by PEM. */
    readonly #parsed = new Map<string, KeyObject>();
    readonly #opts: Required<TokenValidatorOptions>;
    /**
     * Tokens that passed, by their text (10,000 at most): a client sends the same token with every request for
     * up to an hour, and its signature need not be checked each time. One is taken from here only while its
     * `exp` and `nbf` (with the clock tolerance) still admit it, and for at most `VALIDATED_REUSE_MS` after its
     * check: a key the issuer withdraws stops admitting tokens here at most that long after the JWKS cache
     * (10 minutes) lets go of it.
     */
    readonly #validated = new Map<string, { principal: Principal; exp: number; nbf?: number; checkedAt: number }>();

    constructor(opts: TokenValidatorOptions) {
        this.#opts = { clockToleranceSeconds: 60, ...opts };
        this.#jwks = jwksRsa({
            jwksUri: opts.jwksUri,
            cache: true,
            cacheMaxEntries: 10,
            cacheMaxAge: 10 * 60_000,
            rateLimit: true,
            jwksRequestsPerMinute: 10,
            timeout: 5000,
        });
    }

    async validate(authorization: string | null | undefined): Promise<Principal> {
        const match = /^Bearer\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)\s*$/i.exec(authorization ?? '');
        if (!match) throw new Unauthorized('A bearer token is required');
        const token = match[1]!;
        const now = Date.now();
        const known = this.#validated.get(token);
        if (known) {
            const tolerance = this.#opts.clockToleranceSeconds * 1000;
            if (now - known.checkedAt < VALIDATED_REUSE_MS && now < known.exp * 1000 + tolerance && (known.nbf === undefined || now >= known.nbf * 1000 - tolerance)) {
                return { ...known.principal, roles: [...known.principal.roles] };
            }
            // Expired, or checked too long ago: checked in full again (an expired one gets its own answer).
            this.#validated.delete(token);
        }
        const { principal, exp, nbf } = await this.#check(token);
        setBounded(this.#validated, token, { principal, exp, nbf, checkedAt: now }, MAX_VALIDATED);
        return { ...principal, roles: [...principal.roles] };
    }

    async #check(token: string): Promise<{ principal: Principal; exp: number; nbf?: number }> {
        let decoded: ReturnType<typeof jwt.decode>;
        try {
            decoded = jwt.decode(token, { complete: true });
        } catch {
            // A header that says JWT over claims that are not JSON: jsonwebtoken's decode throws.
            throw new Unauthorized('The token is not a well-formed JWT');
        }
        const header = decoded?.header as JwtHeader | undefined;
        // Only RS256: `none`, HMAC (which a public key could forge) and everything else are refused before any key lookup.
        if (!header || header.alg !== 'RS256') throw new Unauthorized('The token must be signed with RS256');
        if (!header.kid) throw new Unauthorized('The token has no key id');
        let key: KeyObject;
        try {
            const pem = (await this.#jwks.getSigningKey(header.kid)).getPublicKey();
            const parsed = this.#parsed.get(pem);
            key = parsed ?? createPublicKey(pem);
            // As many as the JWKS cache holds: a rotated-out key is parsed again if it ever comes back.
            if (!parsed) setBounded(this.#parsed, pem, key, 10);
        } catch {
            throw new Unauthorized('The token was not signed by a known key');
        }
        let payload: JwtPayload;
        try {
            payload = jwt.verify(token, key, {
                algorithms: ['RS256'],
                issuer: this.#opts.issuer,
                audience: this.#opts.audience as string | [string, ...string[]],
                clockTolerance: this.#opts.clockToleranceSeconds,
                complete: false,
            }) as JwtPayload;
        } catch (err) {
            const name = (err as Error).name;
            const reason = name === 'TokenExpiredError' ? 'The token has expired' : name === 'NotBeforeError' ? 'The token is not valid yet' : 'The token is not valid for this API';
            throw new Unauthorized(reason);
        }
        // jsonwebtoken checks `exp` only when present and never looks at `iat`: a token that never expires,
        // or one minted with a clock ahead of ours, is refused here.
        if (typeof payload.exp !== 'number') throw new Unauthorized('The token has no expiry');
        if (typeof payload.iat === 'number' && payload.iat > Math.floor(Date.now() / 1000) + this.#opts.clockToleranceSeconds) throw new Unauthorized('The token was issued in the future');
        const oid = typeof payload.oid === 'string' ? payload.oid : undefined;
        if (!oid) throw new Unauthorized('The token names no object id');
        const roles = Array.isArray(payload.roles) ? payload.roles.filter((r): r is string => typeof r === 'string') : [];
        const principal: Principal = {
            oid,
            tenantId: typeof payload.tid === 'string' ? payload.tid : undefined,
            roles,
            appOnly: payload.idtyp === 'app',
            clientId: typeof payload.azp === 'string' ? payload.azp : typeof payload.appid === 'string' ? payload.appid : undefined,
            email: typeof payload.email === 'string' ? payload.email : typeof payload.preferred_username === 'string' ? payload.preferred_username : undefined,
            name: typeof payload.name === 'string' ? payload.name : undefined,
        };
        return { principal, exp: payload.exp, nbf: typeof payload.nbf === 'number' ? payload.nbf : undefined };
    }
}
