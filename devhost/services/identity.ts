import jwt from 'jsonwebtoken';
import { createHash, createPublicKey, JsonWebKey, KeyObject, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { writeFileAtomic } from '../files';
import path from 'node:path';
import type { Logger } from 'pino';
import { DEFAULT_AUDIENCE, type AppRegistration } from '../profile';

export interface TokenRequest {
    roles: string[];
    orgId?: string;
    email?: string;
    name?: string;
    /** An app-only (client credentials) token, as a deployment gets. */
    appOnly?: boolean;
    audience?: string;
    expiresInSeconds?: number;
}

export interface DirectoryEntry {
    oid: string;
    orgId?: string;
    email?: string;
    name?: string;
    roles: string[];
    appOnly: boolean;
}

interface IdentityState {
    tenantId: string;
    keys: Record<string, unknown>[];
}

// oauth2-mock-server is an ES module; Node 22 loads it from CommonJS through import().
const importModule = new Function('specifier', 'return import(specifier)') as (s: string) => Promise<typeof import('oauth2-mock-server')>;

/**
 * The object id the issuer gives a principal (`user:<email>`, `app:<client id>`): a UUID-shaped hash of its
 * name, so the same email or app always gets the same id (an app's local directory may key users the same way).
 */
export function stableId(name: string): string {
    const h = createHash('sha256').update(name).digest('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/**
 * The local identity issuer standing in for Entra ID: oauth2-mock-server with a
 * signing key generated on first start and kept in the state folder, OpenID
 * discovery, JWKS, a client-credentials endpoint, and tokens shaped like Entra ID
 * v2 access tokens (iss, aud, tid, oid, roles, idtyp).
 *
 * Its client-credentials endpoint takes no client secret: any local process can get
 * a token for any client id there (tests and tools act as an instance that way). The
 * managed-identity endpoint (managedIdentityToken) is the one that checks who asks.
 * What the vault, bus and Cosmos stand-ins check is therefore which identity a token
 * names and what that identity may do, not that a secret was kept.
 */
export class LocalIdentity {
    url = '';
    tenantId = '';
    /** The app registration tokens are minted for: their default audience, and the roles a console token may carry (none named: any). */
    readonly audience: string;
    readonly roles?: readonly string[];
    readonly #stateDir: string;
    readonly #log: Logger;
    #server?: import('oauth2-mock-server').OAuth2Server;
    /** App Service managed-identity header secrets, to the client id of the app instance holding each (one per client id). */
    readonly #managed = new Map<string, string>();
    readonly #directory = new Map<string, DirectoryEntry>();
    readonly #publicKeys = new Map<string, KeyObject>();
    /** Tokens whose signature, issuer and audience were checked, with their claims, by audience and token (1,000 at most). */
    readonly #verified = new Map<string, Record<string, unknown>>();

    constructor(stateDir: string, logger: Logger, registration?: AppRegistration) {
        this.audience = registration?.audience ?? DEFAULT_AUDIENCE;
        this.roles = registration?.roles;
        this.#stateDir = path.join(stateDir, 'identity');
        this.#log = logger;
    }

    get jwksUri(): string {
        return `${this.url}/jwks`;
    }

    async start(port: number): Promise<void> {
        const { OAuth2Server } = await importModule('oauth2-mock-server');
        const server = new OAuth2Server();
        mkdirSync(this.#stateDir, { recursive: true });
        const stateFile = path.join(this.#stateDir, 'issuer.json');
        let state: IdentityState;
        if (existsSync(stateFile)) {
            state = JSON.parse(readFileSync(stateFile, 'utf8')) as IdentityState;
            for (const key of state.keys) await server.issuer.keys.add(key);
        } else {
            await server.issuer.keys.generate('RS256');
            state = { tenantId: randomUUID(), keys: server.issuer.keys.toJSON(true) as unknown as Record<string, unknown>[] };
            writeFileSync(stateFile, JSON.stringify(state), { mode: 0o600 });
        }
        this.tenantId = state.tenantId;
        const directoryFile = path.join(this.#stateDir, 'directory.json');
        if (existsSync(directoryFile)) {
            for (const e of JSON.parse(readFileSync(directoryFile, 'utf8')) as DirectoryEntry[]) this.#directory.set(e.oid, e);
        }
        try {
            await server.start(port, '127.0.0.1');
        } catch (err) {
            const e = err as NodeJS.ErrnoException;
            throw new Error(e.code === 'EADDRINUSE' ? `Port ${port} for the identity issuer is already in use` : e.message);
        }
        const address = server.address();
        this.url = `http://localhost:${address.port}`;
        server.issuer.url = this.url;
        // Client credentials: the token a deployment gets for its app id, with the roles it was granted.
        server.service.on('beforeTokenSigning', (token: { payload: Record<string, unknown> }, req: { body?: Record<string, string> }) => {
            const clientId = req.body?.client_id ?? String(token.payload.client_id ?? 'unknown-client');
            Object.assign(token.payload, this.#appClaims(clientId, req.body?.scope?.replace(/\/\.default$/, '') || this.audience));
        });
        this.#server = server;
    }

    async stop(): Promise<void> {
        await this.#server?.stop();
    }

    /** The claims of `token` when this issuer signed it, it is unexpired and meant for (one of) `audience`; else undefined. */
    async claimsOf(token: string, audience: string | string[]): Promise<Record<string, unknown> | undefined> {
        const server = this.#server;
        if (!server) return undefined;
        // The stand-ins see the same token on every request of a client for up to an hour: its signature is checked once.
        const cacheKey = `${[audience].flat().join(' ')}\n${token}`;
        const known = this.#verified.get(cacheKey);
        if (known) {
            if (typeof known.exp === 'number' && known.exp * 1000 > Date.now()) return known;
            this.#verified.delete(cacheKey);
        }
        const claims = this.#verify(server, token, audience);
        if (claims) {
            if (this.#verified.size >= 1000) this.#verified.delete(this.#verified.keys().next().value!);
            this.#verified.set(cacheKey, claims);
        }
        return claims;
    }

    #verify(server: import('oauth2-mock-server').OAuth2Server, token: string, audience: string | string[]): Record<string, unknown> | undefined {
        const decoded = jwt.decode(token, { complete: true });
        const kid = decoded && typeof decoded === 'object' ? decoded.header.kid : undefined;
        const key = kid ? this.#publicKey(server, kid) : undefined;
        if (!key) return undefined;
        try {
            const claims = jwt.verify(token, key, { algorithms: ['RS256'], audience: Array.isArray(audience) ? (audience as [string, ...string[]]) : audience, issuer: this.url });
            return typeof claims === 'object' ? (claims as Record<string, unknown>) : undefined;
        } catch (err) {
            this.#log.debug({ err: { message: (err as Error).message } }, 'identity: token rejected');
            return undefined;
        }
    }

    /** The issuer's public key `kid`, parsed once: the vault, bus and Cosmos stand-ins check a token on every request. */
    #publicKey(server: import('oauth2-mock-server').OAuth2Server, kid: string): KeyObject | undefined {
        let key = this.#publicKeys.get(kid);
        if (!key) {
            const jwk = server.issuer.keys.toJSON(false).find((k) => (k as { kid?: string }).kid === kid);
            if (!jwk) return undefined;
            key = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
            this.#publicKeys.set(kid, key);
        }
        return key;
    }

    /** The object id of an app identity's tokens (its service principal), by client id. */
    principalOf(clientId: string): string {
        return stableId(`app:${clientId}`);
    }

    /** Mints a token for `POST /dev/token` and `npm run token`, and records the principal in the local directory seed. */
    async mint(req: TokenRequest): Promise<{ access_token: string; token_type: 'Bearer'; expires_in: number; oid: string }> {
        const server = this.#server;
        if (!server) throw new Error('The identity issuer is not running');
        const appOnly = req.appOnly === true;
        const principal = appOnly ? `app:${req.name ?? req.orgId ?? 'deployment'}` : `user:${(req.email ?? req.name ?? randomUUID()).toLowerCase()}`;
        const oid = stableId(principal);
        const expiresIn = req.expiresInSeconds ?? 3600;
        const claims = this.#claims({ oid, appOnly, roles: req.roles, audience: req.audience ?? this.audience, clientId: appOnly ? oid : 'flexchange-dev-console', email: req.email, name: req.name });
        const token = await server.issuer.buildToken({
            expiresIn,
            scopesOrTransform: (_header: unknown, payload: Record<string, unknown>) => {
                delete payload.scope;
                Object.assign(payload, claims);
            },
        });
        this.#remember({ oid, orgId: req.orgId, email: req.email, name: req.name, roles: req.roles, appOnly });
        return { access_token: token, token_type: 'Bearer', expires_in: expiresIn, oid };
    }

    /** What a deployment's app identity's token says: its object id, the roles it was granted, the audience asked for. */
    #appClaims(clientId: string, audience: string): Record<string, unknown> {
        const oid = this.principalOf(clientId);
        return this.#claims({ oid, appOnly: true, roles: this.#directory.get(oid)?.roles ?? [], audience, clientId });
    }

    /**
     * The App Service managed-identity endpoint for one app instance (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`):
     * returns the secret header value its requests must carry. `@azure/identity` (through MSAL's App Service
     * source) then gets the app's tokens there unmodified, as in Azure.
     */
    managedIdentity(clientId: string): string {
        // An instance started again (a crashed worker) keeps its identity's header.
        for (const [header, holder] of this.#managed) if (holder === clientId) return header;
        const header = randomBytes(24).toString('hex');
        this.#managed.set(header, clientId);
        return header;
    }

    /** `GET <IDENTITY_ENDPOINT>?resource=…&api-version=2019-08-01` with `X-IDENTITY-HEADER`, as App Service answers it. */
    async managedIdentityToken(header: string | undefined, query: URLSearchParams): Promise<{ status: number; body: Record<string, unknown> }> {
        const server = this.#server;
        if (!server) throw new Error('The identity issuer is not running');
        const refuse = (status: number, error: string, description: string) => ({ status, body: { error, error_description: description } });
        if (!header) return refuse(401, 'unauthorized', 'The X-IDENTITY-HEADER header is required');
        const clientId = this.#managed.get(header);
        if (!clientId) return refuse(403, 'forbidden', 'The X-IDENTITY-HEADER does not belong to an app instance of this devhost');
        if (query.get('api-version') !== '2019-08-01') return refuse(400, 'invalid_request', 'api-version must be 2019-08-01');
        const resource = query.get('resource');
        if (!resource) return refuse(400, 'invalid_request', 'resource is required');
        const other = query.get('client_id') ?? query.get('principal_id') ?? query.get('mi_res_id') ?? query.get('object_id');
        if (other && other !== clientId) return refuse(400, 'invalid_request', `Only the app's system-assigned identity (${clientId}) is available here; user-assigned identities are not`);
        const expiresIn = 3600;
        const token = await server.issuer.buildToken({
            expiresIn,
            scopesOrTransform: (_header: unknown, payload: Record<string, unknown>) => {
                delete payload.scope;
                Object.assign(payload, this.#appClaims(clientId, resource.replace(/\/\.default$/, '')));
            },
        });
        return { status: 200, body: { access_token: token, expires_on: String(Math.floor(Date.now() / 1000) + expiresIn), resource, token_type: 'Bearer', client_id: clientId } };
    }

    #claims(p: { oid: string; appOnly: boolean; roles: readonly string[]; audience: string; clientId: string; email?: string; name?: string }): Record<string, unknown> {
        return {
            aud: p.audience,
            tid: this.tenantId,
            oid: p.oid,
            sub: p.oid,
            azp: p.clientId,
            roles: [...p.roles],
            ver: '2.0',
            ...(p.appOnly ? { idtyp: 'app' } : { idtyp: 'user', ...(p.email ? { email: p.email, preferred_username: p.email } : {}), ...(p.name ? { name: p.name } : {}) }),
        };
    }

    /**
     * An app registration's role assignment, as Entra ID has it for a deployment's identity:
     * client-credential tokens for `clientId` carry `roles` from then on. Returns the
     * object id its tokens name (`oid`).
     */
    registerApp(clientId: string, roles: readonly string[], orgId?: string): { clientId: string; principalId: string } {
        const oid = this.principalOf(clientId);
        const known = this.#directory.get(oid);
        if (!known || known.roles.join() !== [...roles].sort().join() || known.orgId !== orgId) {
            this.#remember({ oid, orgId, name: clientId, roles: [...roles].sort(), appOnly: true });
        }
        return { clientId, principalId: oid };
    }

    #remember(entry: DirectoryEntry): void {
        this.#directory.set(entry.oid, entry);
        writeFileAtomic(path.join(this.#stateDir, 'directory.json'), JSON.stringify([...this.#directory.values()], null, 2));
        this.#log.debug({ oid: entry.oid, orgId: entry.orgId, roles: entry.roles }, 'identity: principal recorded in the local directory seed');
    }
}
