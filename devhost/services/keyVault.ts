import {
    constants as cryptoConstants,
    createCipheriv,
    createDecipheriv,
    createHash,
    createPrivateKey,
    createPublicKey,
    generateKeyPair,
    KeyObject,
    privateDecrypt,
    privateEncrypt,
    publicDecrypt,
    publicEncrypt,
    randomBytes,
    randomUUID,
    timingSafeEqual,
} from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { writeFileAtomic } from '../files';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'pino';

/**
 * A local stand-in for ONE Azure Key Vault (secrets and keys), speaking the Key
 * Vault REST API over plain http on 127.0.0.1 so that the unmodified
 * `@azure/keyvault-secrets` and `@azure/keyvault-keys` clients work against it
 * (with `disableChallengeResourceVerification: true` and
 * `allowInsecureConnection: true`). No Key Vault emulator exists; see
 * shared/DEVHOST.md ("Key Vault").
 *
 * What it keeps faithful because application code depends on it:
 * - the bearer challenge (401 + WWW-Authenticate naming the tenant and
 *   `https://vault.azure.net`), so the SDK's credential flow runs as in Azure;
 * - ids `<url>/secrets/<name>/<32-hex version>`, Unix-second attributes,
 *   soft delete with `Recoverable+Purgeable` (90 days), the 409 on reusing a
 *   deleted-but-not-purged name, errors `{ error: { code, message } }`;
 * - keys whose private half never leaves the vault: only public JWKs are
 *   returned, and sign / unwrap / decrypt run here.
 *
 * ECDSA signatures (ES256, ES256K, ES384, ES512) are computed here over the
 * digest exactly as given (Node's crypto always hashes its input, so it cannot
 * sign a pre-hashed digest), returned as raw r||s like Key Vault. Like Key
 * Vault, s is NOT normalised to the lower half of the curve order: a caller
 * that needs low-S (Ethereum, EIP-2) must flip s itself, as it must against
 * Azure. This arithmetic is not constant-time; it is a development stand-in.
 *
 * Everything is kept in one file under `dir`, AES-256-GCM encrypted with the
 * master key, replaced atomically (temp + fsync + rename) after every change
 * and before the response is sent.
 */

/**
 * The vault name of an app instance the devhost names itself (member deployments bring the name the
 * app derived): `fx-<app name>` when that is a valid vault name, else the name cut to leave room for
 * a hash of the whole app name, so names that share a prefix get vaults of their own.
 */
export function localVaultName(appName: string): string {
    const whole = `fx-${appName}`;
    if (VAULT_NAME_RE.test(whole)) return whole;
    const hash = createHash('sha256').update(appName, 'utf8').digest('hex').slice(0, 8);
    const head = appName
        .toLowerCase()
        .replace(/[^a-z0-9]+/g, '-')
        .replace(/^-+/, '')
        .slice(0, 24 - 'fx-'.length - hash.length - 1)
        .replace(/-+$/, '');
    return head ? `fx-${head}-${hash}` : `fx-${hash}`;
}

export interface LocalKeyVaultOptions {
    /** The vault name (3-24 characters, as in Azure); also names the state file. */
    name: string;
    /** Folder for the encrypted state file. */
    dir: string;
    /** 32 bytes: the AES-256-GCM key the state file is encrypted with. */
    masterKey: Buffer;
    /** Tenant named in the bearer challenge (`https://login.microsoftonline.com/<tenantId>`). */
    tenantId: string;
    /**
     * Decides whether a bearer token is accepted: the caller it names (Entra ID's `oid`, and `azp` / `appid`),
     * or undefined to refuse it with 401. Without it every bearer token is accepted, for everything.
     */
    verifyToken?: (bearer: string) => Promise<VaultCaller | undefined>;
    /**
     * Azure RBAC on this vault: the data roles a caller holds here. Without a role that covers the request
     * the caller gets 403 `ForbiddenByRbac`, as from Key Vault. Without it every accepted caller may do anything.
     */
    rolesOf?: (caller: VaultCaller) => readonly VaultDataRole[];
    logger: Logger;
}

/** Who a bearer token names. */
export interface VaultCaller {
    oid: string;
    appId?: string;
}

/** The Key Vault data roles the stand-in knows: each covers every operation on its half of the vault. */
export type VaultDataRole = 'Key Vault Secrets Officer' | 'Key Vault Crypto Officer';
const ROLE_FOR: Record<'secrets' | 'keys', VaultDataRole> = { secrets: 'Key Vault Secrets Officer', keys: 'Key Vault Crypto Officer' };

const RESOURCE = 'https://vault.azure.net';
const RECOVERY_LEVEL = 'Recoverable+Purgeable';
const RECOVERABLE_DAYS = 90;
const SERVICE_VERSION = '1.9.0.0-local';
const MAX_BODY_BYTES = 256 * 1024;
// Key Vault's own limit on a secret value.
const MAX_SECRET_VALUE_BYTES = 25 * 1024;
const MAX_PAGE_SIZE = 25;
const MAX_TAGS = 15;
const NAME_RE = /^[0-9a-zA-Z-]{1,127}$/;
const VERSION_RE = /^[0-9a-fA-F]{32}$/;
/** Key Vault's name rule: 3-24 letters, digits and single hyphens, starting with a letter, not ending with a hyphen. */
export const VAULT_NAME_RE = /^(?!.*--)[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$/;
const API_VERSION_RE = /^(\d+\.\d+|\d{4}-\d{2}-\d{2})(-preview(\.\d+)?)?$/;
const BASE64URL_RE = /^[A-Za-z0-9_-]*={0,2}$/;
// State file layout: MAGIC | iv (12) | tag (16) | AES-256-GCM(JSON). MAGIC is also the AAD.
const FILE_MAGIC = Buffer.from('FXKVLT01', 'ascii');
const IV_BYTES = 12;
const TAG_BYTES = 16;

const generateKeyPairAsync = promisify(generateKeyPair);

// ---------------------------------------------------------------------------
// State

interface Attributes {
    enabled: boolean;
    nbf?: number;
    exp?: number;
    created: number;
    updated: number;
}

interface SecretVersion {
    version: string;
    value: string;
    contentType?: string;
    tags?: Record<string, string>;
    attributes: Attributes;
}

type Kty = 'EC' | 'EC-HSM' | 'RSA' | 'RSA-HSM';

interface KeyVersion {
    version: string;
    kty: Kty;
    crv?: CurveName;
    keyOps: string[];
    /** PKCS#8 DER, base64. Only ever inside the (encrypted) state file and this process. */
    pkcs8: string;
    tags?: Record<string, string>;
    attributes: Attributes;
}

interface Entry<V> {
    /** The name as first created (lookups are case-insensitive, as in Key Vault). */
    name: string;
    /** Oldest first; versions are only ever appended. */
    versions: V[];
    deleted?: { deletedDate: number; scheduledPurgeDate: number };
}

interface VaultFile {
    format: 1;
    vault: string;
    secrets: Entry<SecretVersion>[];
    keys: Entry<KeyVersion>[];
}

class VaultError extends Error {
    constructor(
        readonly status: number,
        readonly code: string,
        message: string,
        readonly innerCode?: string,
    ) {
        super(message);
    }
}

const badParameter = (message: string) => new VaultError(400, 'BadParameter', message);
const notImplemented = (what: string) => new VaultError(501, 'NotImplemented', `${what} is not implemented by the local Key Vault stand-in`);
const secretNotFound = (id: string) =>
    new VaultError(404, 'SecretNotFound', `A secret with (name/id) ${id} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command.`);
const keyNotFound = (id: string) =>
    new VaultError(404, 'KeyNotFound', `A key with (name/id) ${id} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command.`);

const nowSeconds = () => Math.floor(Date.now() / 1000);
const newVersion = () => randomBytes(16).toString('hex');

// ---------------------------------------------------------------------------
// Elliptic curves and ECDSA over a given digest

type CurveName = 'P-256' | 'P-256K' | 'P-384' | 'P-521';
type EcAlg = 'ES256' | 'ES256K' | 'ES384' | 'ES512';

interface Curve {
    name: CurveName;
    /** The name Node's generateKeyPair and JWK import/export use. */
    node: string;
    alg: EcAlg;
    digestBytes: number;
    p: bigint;
    a: bigint;
    n: bigint;
    gx: bigint;
    gy: bigint;
    /** Byte length of r and s in the raw signature (= coordinate length). */
    size: number;
}

function curve(name: CurveName, node: string, alg: EcAlg, digestBytes: number, p: string, a: bigint | 'p-3', n: string, gx: string, gy: string): Curve {
    const P = BigInt(p);
    const N = BigInt(n);
    return { name, node, alg, digestBytes, p: P, a: a === 'p-3' ? P - 3n : a, n: N, gx: BigInt(gx), gy: BigInt(gy), size: Math.ceil(N.toString(2).length / 8) };
}

// Domain parameters from SEC 2 / FIPS 186-4.
const CURVES: Record<CurveName, Curve> = {
    'P-256': curve(
        'P-256', 'P-256', 'ES256', 32,
        '0xffffffff00000001000000000000000000000000ffffffffffffffffffffffff', 'p-3',
        '0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551',
        '0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296',
        '0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5',
    ),
    'P-256K': curve(
        'P-256K', 'secp256k1', 'ES256K', 32,
        '0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f', 0n,
        '0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141',
        '0x79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798',
        '0x483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8',
    ),
    'P-384': curve(
        'P-384', 'P-384', 'ES384', 48,
        '0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff', 'p-3',
        '0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973',
        '0xaa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7',
        '0x3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f',
    ),
    'P-521': curve(
        'P-521', 'P-521', 'ES512', 64,
        '0x1ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff', 'p-3',
        '0x1fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409',
        '0x00c6858e06b70404e9cd9e3ecb662395b4429c648139053fb521f828af606b4d3dbaa14b5e77efe75928fe1dc127a2ffa8de3348b3c1856a429bf97e7e31c2e5bd66',
        '0x011839296a789a3bc0045c8a5fb42c7d1bd998f54449579b446817afbd17273e662c97ee72995ef42640c550b9013fad0761353c7086a272c24088be94769fd16650',
    ),
};

/** Jacobian coordinates; z = 0 is the point at infinity. */
interface Jacobian {
    x: bigint;
    y: bigint;
    z: bigint;
}

const INFINITY: Jacobian = { x: 0n, y: 1n, z: 0n };

function mod(a: bigint, m: bigint): bigint {
    const r = a % m;
    return r < 0n ? r + m : r;
}

function modPow(base: bigint, exp: bigint, m: bigint): bigint {
    let result = 1n;
    let b = mod(base, m);
    let e = exp;
    while (e > 0n) {
        if (e & 1n) result = (result * b) % m;
        b = (b * b) % m;
        e >>= 1n;
    }
    return result;
}

// Every modulus used here (field prime, group order) is prime, so Fermat's little theorem gives the inverse.
const modInv = (a: bigint, m: bigint) => modPow(a, m - 2n, m);

function pointDouble(c: Curve, P: Jacobian): Jacobian {
    if (P.z === 0n || P.y === 0n) return INFINITY;
    const { p } = c;
    const XX = (P.x * P.x) % p;
    const YY = (P.y * P.y) % p;
    const YYYY = (YY * YY) % p;
    const ZZ = (P.z * P.z) % p;
    const S = (4n * P.x * YY) % p;
    const M = mod(3n * XX + ((c.a * ZZ) % p) * ZZ, p);
    const x = mod(M * M - 2n * S, p);
    const y = mod(M * (S - x) - 8n * YYYY, p);
    const z = (2n * P.y * P.z) % p;
    return { x, y, z };
}

function pointAdd(c: Curve, P: Jacobian, Q: Jacobian): Jacobian {
    if (P.z === 0n) return Q;
    if (Q.z === 0n) return P;
    const { p } = c;
    const Z1Z1 = (P.z * P.z) % p;
    const Z2Z2 = (Q.z * Q.z) % p;
    const U1 = (P.x * Z2Z2) % p;
    const U2 = (Q.x * Z1Z1) % p;
    const S1 = (((P.y * Q.z) % p) * Z2Z2) % p;
    const S2 = (((Q.y * P.z) % p) * Z1Z1) % p;
    if (U1 === U2) return S1 === S2 ? pointDouble(c, P) : INFINITY;
    const H = mod(U2 - U1, p);
    const R = mod(S2 - S1, p);
    const HH = (H * H) % p;
    const HHH = (H * HH) % p;
    const V = (U1 * HH) % p;
    const x = mod(R * R - HHH - 2n * V, p);
    const y = mod(R * (V - x) - S1 * HHH, p);
    const z = (((P.z * Q.z) % p) * H) % p;
    return { x, y, z };
}

function pointMul(c: Curve, k: bigint, P: Jacobian): Jacobian {
    let R = INFINITY;
    for (let i = k.toString(2).length - 1; i >= 0; i--) {
        R = pointDouble(c, R);
        if ((k >> BigInt(i)) & 1n) R = pointAdd(c, R, P);
    }
    return R;
}

function affineX(c: Curve, P: Jacobian): bigint {
    const zi = modInv(P.z, c.p);
    return (P.x * ((zi * zi) % c.p)) % c.p;
}

const toBigInt = (b: Buffer) => (b.length === 0 ? 0n : BigInt(`0x${b.toString('hex')}`));
const toFixedBytes = (v: bigint, size: number) => Buffer.from(v.toString(16).padStart(size * 2, '0'), 'hex');

/** The digest as an integer, keeping its leftmost bits when it is longer than the group order (SEC 1, 4.1.3). */
function digestToInt(c: Curve, digest: Buffer): bigint {
    const excess = digest.length * 8 - c.n.toString(2).length;
    const z = toBigInt(digest);
    return excess > 0 ? z >> BigInt(excess) : z;
}

function randomScalar(c: Curve): bigint {
    const bits = c.n.toString(2).length;
    const bytes = Math.ceil(bits / 8);
    const mask = (1n << BigInt(bits)) - 1n;
    for (;;) {
        // Rejection sampling keeps k uniform in [1, n-1].
        const k = toBigInt(randomBytes(bytes)) & mask;
        if (k > 0n && k < c.n) return k;
    }
}

function ecdsaSign(c: Curve, d: bigint, digest: Buffer): Buffer {
    const z = digestToInt(c, digest);
    const G: Jacobian = { x: c.gx, y: c.gy, z: 1n };
    for (;;) {
        const k = randomScalar(c);
        const r = mod(affineX(c, pointMul(c, k, G)), c.n);
        if (r === 0n) continue;
        const s = mod(modInv(k, c.n) * (z + r * d), c.n);
        if (s === 0n) continue;
        return Buffer.concat([toFixedBytes(r, c.size), toFixedBytes(s, c.size)]);
    }
}

function ecdsaVerify(c: Curve, qx: bigint, qy: bigint, digest: Buffer, signature: Buffer): boolean {
    if (signature.length !== 2 * c.size) return false;
    const r = toBigInt(signature.subarray(0, c.size));
    const s = toBigInt(signature.subarray(c.size));
    if (r <= 0n || r >= c.n || s <= 0n || s >= c.n) return false;
    const z = digestToInt(c, digest);
    const w = modInv(s, c.n);
    const u1 = mod(z * w, c.n);
    const u2 = mod(r * w, c.n);
    const X = pointAdd(c, pointMul(c, u1, { x: c.gx, y: c.gy, z: 1n }), pointMul(c, u2, { x: qx, y: qy, z: 1n }));
    if (X.z === 0n) return false;
    return mod(affineX(c, X), c.n) === r;
}

// ---------------------------------------------------------------------------
// RSA

const RSA_SIGN_ALGS: Record<string, { digestInfo: Buffer; digestBytes: number }> = {
    // DER DigestInfo prefixes of RFC 8017, 9.2 (PKCS #1 v1.5 signatures over a given digest).
    RS256: { digestInfo: Buffer.from('3031300d060960864801650304020105000420', 'hex'), digestBytes: 32 },
    RS384: { digestInfo: Buffer.from('3041300d060960864801650304020205000430', 'hex'), digestBytes: 48 },
    RS512: { digestInfo: Buffer.from('3051300d060960864801650304020305000440', 'hex'), digestBytes: 64 },
};
const RSA_OAEP_HASH: Record<string, string> = { 'RSA-OAEP': 'sha1', 'RSA-OAEP-256': 'sha256' };
const RSA_KEY_SIZES = [2048, 3072, 4096];
const EC_KEY_OPS = ['sign', 'verify'];
const RSA_KEY_OPS = ['encrypt', 'decrypt', 'sign', 'verify', 'wrapKey', 'unwrapKey'];
/** REST operation path segment -> key_ops entry. */
const KEY_OPERATIONS: Record<string, string> = { sign: 'sign', verify: 'verify', wrapkey: 'wrapKey', unwrapkey: 'unwrapKey', encrypt: 'encrypt', decrypt: 'decrypt' };
// Key Vault lets these run outside a key's nbf/exp window (to use up old material); the others are refused.
const OPS_ALLOWED_OUTSIDE_WINDOW = new Set(['verify', 'unwrapKey', 'decrypt']);

interface LoadedKey {
    privateKey: KeyObject;
    publicKey: KeyObject;
    publicJwk: Record<string, string>;
    curve?: Curve;
    d?: bigint;
    qx?: bigint;
    qy?: bigint;
}

// ---------------------------------------------------------------------------
// Request helpers

interface Ctx {
    method: string;
    apiVersion: string;
    query: URLSearchParams;
    body: Buffer;
    contentType?: string;
}

interface Reply {
    status: number;
    body?: unknown;
}

const ok = (body: unknown): Reply => ({ status: 200, body });

function readBody(req: http.IncomingMessage): Promise<Buffer> {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY_BYTES) return Promise.reject(tooLarge());
    return new Promise((resolve, reject) => {
        const chunks: Buffer[] = [];
        let size = 0;
        let exceeded = false;
        req.on('data', (chunk: Buffer) => {
            if (exceeded) return;
            size += chunk.length;
            if (size > MAX_BODY_BYTES) {
                // Keep draining (and dropping) so the client can read the error instead of a reset.
                exceeded = true;
                chunks.length = 0;
                return;
            }
            chunks.push(chunk);
        });
        req.on('end', () => (exceeded ? reject(tooLarge()) : resolve(Buffer.concat(chunks))));
        req.on('error', reject);
    });
}

const tooLarge = () => new VaultError(413, 'BadParameter', `The request body is larger than ${MAX_BODY_BYTES} bytes`);

function jsonBody(ctx: Ctx): Record<string, unknown> {
    if (ctx.contentType && !/^application\/json\b/i.test(ctx.contentType)) throw badParameter('The request body must be application/json');
    if (ctx.body.length === 0) throw badParameter('The request body is missing');
    let parsed: unknown;
    try {
        parsed = JSON.parse(ctx.body.toString('utf8'));
    } catch {
        throw badParameter('The request body is not valid JSON');
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw badParameter('The request body must be a JSON object');
    return parsed as Record<string, unknown>;
}

function optionalString(body: Record<string, unknown>, field: string, maxLength: number): string | undefined {
    const v = body[field];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') throw badParameter(`'${field}' must be a string`);
    if (v.length > maxLength) throw badParameter(`'${field}' is longer than ${maxLength} characters`);
    return v;
}

function parseTags(raw: unknown): Record<string, string> | undefined {
    if (raw === undefined || raw === null) return undefined;
    if (typeof raw !== 'object' || Array.isArray(raw)) throw badParameter("'tags' must be an object of strings");
    const entries = Object.entries(raw as Record<string, unknown>);
    if (entries.length > MAX_TAGS) throw badParameter(`At most ${MAX_TAGS} tags are allowed`);
    const tags: Record<string, string> = {};
    for (const [k, v] of entries) {
        if (typeof v !== 'string') throw badParameter(`Tag '${k}' must have a string value`);
        if (k.length === 0 || k.length > 512 || v.length > 256) throw badParameter(`Tag '${k}' is too long (names up to 512, values up to 256 characters)`);
        tags[k] = v;
    }
    return tags;
}

interface AttributeInput {
    enabled?: boolean;
    nbf?: number | null;
    exp?: number | null;
}

function parseAttributes(raw: unknown): AttributeInput {
    if (raw === undefined || raw === null) return {};
    if (typeof raw !== 'object' || Array.isArray(raw)) throw badParameter("'attributes' must be an object");
    const a = raw as Record<string, unknown>;
    const out: AttributeInput = {};
    if (a.enabled !== undefined && a.enabled !== null) {
        if (typeof a.enabled !== 'boolean') throw badParameter("'attributes.enabled' must be a boolean");
        out.enabled = a.enabled;
    }
    for (const field of ['nbf', 'exp'] as const) {
        const v = a[field];
        if (v === undefined) continue;
        if (v !== null && (typeof v !== 'number' || !Number.isInteger(v) || v < 0)) throw badParameter(`'attributes.${field}' must be a Unix time in seconds`);
        out[field] = v as number | null;
    }
    if (a.exportable === true) throw badParameter('Exportable keys need a release policy, which the local Key Vault stand-in does not implement');
    return out;
}

function applyAttributes(target: Attributes, input: AttributeInput): void {
    if (input.enabled !== undefined) target.enabled = input.enabled;
    for (const field of ['nbf', 'exp'] as const) {
        const v = input[field];
        if (v === null) delete target[field];
        else if (v !== undefined) target[field] = v;
    }
    if (target.nbf !== undefined && target.exp !== undefined && target.nbf > target.exp) throw badParameter("'nbf' must not be later than 'exp'");
}

function base64urlField(body: Record<string, unknown>, field: string): Buffer {
    const v = body[field];
    if (typeof v !== 'string' || !BASE64URL_RE.test(v)) throw badParameter(`'${field}' must be a base64url string`);
    return Buffer.from(v, 'base64url');
}

function algField(body: Record<string, unknown>): string {
    const alg = body.alg;
    if (typeof alg !== 'string' || alg.length === 0) throw badParameter("'alg' is required");
    return alg;
}

// ---------------------------------------------------------------------------

export class LocalKeyVault {
    readonly name: string;
    readonly #dir: string;
    readonly #file: string;
    readonly #masterKey: Buffer;
    readonly #tenantId: string;
    readonly #verifyToken?: (bearer: string) => Promise<VaultCaller | undefined>;
    readonly #rolesOf?: (caller: VaultCaller) => readonly VaultDataRole[];
    readonly #log: Logger;
    #server?: http.Server;
    #port = 0;
    #secrets = new Map<string, Entry<SecretVersion>>();
    #keys = new Map<string, Entry<KeyVersion>>();
    /** Parsed key material by version (versions are unique and immutable). */
    readonly #loaded = new Map<string, LoadedKey>();

    constructor(opts: LocalKeyVaultOptions) {
        if (!VAULT_NAME_RE.test(opts.name)) {
            throw new Error(`Invalid Key Vault name "${opts.name}": 3-24 characters, letters, digits and single hyphens, starting with a letter and not ending with a hyphen`);
        }
        if (!Buffer.isBuffer(opts.masterKey) || opts.masterKey.length !== 32) {
            throw new Error(`The master key of the local Key Vault "${opts.name}" must be 32 bytes (AES-256); got ${Buffer.isBuffer(opts.masterKey) ? opts.masterKey.length : typeof opts.masterKey}`);
        }
        if (!opts.tenantId || /[\s"/]/.test(opts.tenantId)) throw new Error(`Invalid tenant id "${opts.tenantId}" for the local Key Vault "${opts.name}"`);
        this.name = opts.name;
        this.#dir = opts.dir;
        this.#file = path.join(opts.dir, `${opts.name}.keyvault`);
        // A copy, so a caller that later zeroes or reuses its buffer does not change the key under us.
        this.#masterKey = Buffer.from(opts.masterKey);
        this.#tenantId = opts.tenantId;
        this.#verifyToken = opts.verifyToken;
        this.#rolesOf = opts.rolesOf;
        this.#log = opts.logger.child({ keyVault: opts.name });
    }

    /** `http://127.0.0.1:<port>`, the vault URL to give SecretClient / KeyClient. */
    get url(): string {
        if (!this.#server) throw new Error(`The local Key Vault "${this.name}" is not running`);
        return `http://127.0.0.1:${this.#port}`;
    }

    /** The encrypted state file. */
    get stateFile(): string {
        return this.#file;
    }

    async start(port: number): Promise<void> {
        if (this.#server) throw new Error(`The local Key Vault "${this.name}" is already running`);
        // Load first: a wrong master key must stop the start before anything listens or writes.
        this.#load();
        const server = http.createServer((req, res) => void this.#handle(req, res));
        await new Promise<void>((resolve, reject) => {
            server.once('error', (err: NodeJS.ErrnoException) =>
                reject(new Error(err.code === 'EADDRINUSE' ? `Port ${port} for the local Key Vault "${this.name}" is already in use` : err.message)),
            );
            server.listen(port, '127.0.0.1', () => resolve());
        });
        this.#port = (server.address() as AddressInfo).port;
        this.#server = server;
        this.#log.info({ url: this.url, secrets: this.#secrets.size, keys: this.#keys.size }, 'key vault: listening');
    }

    async stop(): Promise<void> {
        const server = this.#server;
        if (!server) return;
        this.#server = undefined;
        await new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
        });
        // Drop decrypted material; a later start reloads it from the file.
        this.#secrets = new Map();
        this.#keys = new Map();
        this.#loaded.clear();
    }

    // -- persistence --------------------------------------------------------

    #load(): void {
        mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
        // A temp file left by a crash never replaced the state file, so the state file is the last complete state.
        rmSync(`${this.#file}.tmp`, { force: true });
        if (!existsSync(this.#file)) {
            this.#secrets = new Map();
            this.#keys = new Map();
            // Written at once so that even an empty vault refuses a different master key later.
            this.#write();
            return;
        }
        const data = readFileSync(this.#file);
        const header = FILE_MAGIC.length + IV_BYTES + TAG_BYTES;
        if (data.length < header || !data.subarray(0, FILE_MAGIC.length).equals(FILE_MAGIC)) {
            throw new Error(`${this.#file} is not a local Key Vault state file; refusing to start the vault "${this.name}" over it`);
        }
        let plain: Buffer;
        try {
            const decipher = createDecipheriv('aes-256-gcm', this.#masterKey, data.subarray(FILE_MAGIC.length, FILE_MAGIC.length + IV_BYTES));
            decipher.setAAD(FILE_MAGIC);
            decipher.setAuthTag(data.subarray(FILE_MAGIC.length + IV_BYTES, header));
            plain = Buffer.concat([decipher.update(data.subarray(header)), decipher.final()]);
        } catch {
            throw new Error(
                `Cannot open the local Key Vault "${this.name}" (${this.#file}): the master key is not the one its state was encrypted with, or the file was altered. ` +
                    'The file was left untouched; start with the original master key, or move the file away to begin with an empty vault.',
            );
        }
        const state = JSON.parse(plain.toString('utf8')) as VaultFile;
        if (state.format !== 1 || state.vault !== this.name) {
            throw new Error(`${this.#file} holds the state of vault "${state.vault}" (format ${state.format}), not of "${this.name}"`);
        }
        this.#secrets = new Map(state.secrets.map((e) => [e.name.toLowerCase(), e]));
        this.#keys = new Map(state.keys.map((e) => [e.name.toLowerCase(), e]));
        this.#loaded.clear();
    }

    #serialize(): string {
        const state: VaultFile = { format: 1, vault: this.name, secrets: [...this.#secrets.values()], keys: [...this.#keys.values()] };
        return JSON.stringify(state);
    }

    #write(): void {
        const iv = randomBytes(IV_BYTES);
        const cipher = createCipheriv('aes-256-gcm', this.#masterKey, iv);
        cipher.setAAD(FILE_MAGIC);
        const ciphertext = Buffer.concat([cipher.update(this.#serialize(), 'utf8'), cipher.final()]);
        const data = Buffer.concat([FILE_MAGIC, iv, cipher.getAuthTag(), ciphertext]);
        writeFileAtomic(this.#file, data, 0o600, true);
        try {
            // Make the rename itself durable; not every platform lets a directory be fsynced.
            const dirFd = openSync(this.#dir, 'r');
            try {
                fsyncSync(dirFd);
            } finally {
                closeSync(dirFd);
            }
        } catch {
            // best effort
        }
    }

    /**
     * Applies a change and persists it before returning; if the change or the
     * write fails, the in-memory state is rolled back so memory never gets
     * ahead of the file.
     */
    #commit<T>(change: () => T): T {
        const before = this.#serialize();
        try {
            const result = change();
            this.#write();
            return result;
        } catch (err) {
            const state = JSON.parse(before) as VaultFile;
            this.#secrets = new Map(state.secrets.map((e) => [e.name.toLowerCase(), e]));
            this.#keys = new Map(state.keys.map((e) => [e.name.toLowerCase(), e]));
            throw err;
        }
    }

    /** Purges soft-deleted items whose retention has run out, as Key Vault does on its own. */
    #sweep(): void {
        const now = nowSeconds();
        const expired = (m: Map<string, Entry<unknown>>) => [...m.entries()].filter(([, e]) => e.deleted && e.deleted.scheduledPurgeDate <= now).map(([k]) => k);
        const secrets = expired(this.#secrets);
        const keys = expired(this.#keys);
        if (secrets.length === 0 && keys.length === 0) return;
        this.#commit(() => {
            for (const k of secrets) this.#secrets.delete(k);
            for (const k of keys) this.#forgetKey(k);
        });
    }

    #forgetKey(lowerName: string): void {
        for (const v of this.#keys.get(lowerName)?.versions ?? []) this.#loaded.delete(v.version);
        this.#keys.delete(lowerName);
    }

    // -- HTTP ---------------------------------------------------------------

    async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
        const started = Date.now();
        const requestId = randomUUID();
        const url = new URL(req.url ?? '/', 'http://127.0.0.1');
        let status = 500;
        try {
            res.setHeader('x-ms-request-id', requestId);
            res.setHeader('x-ms-keyvault-service-version', SERVICE_VERSION);
            const clientRequestId = req.headers['x-ms-client-request-id'];
            if (typeof clientRequestId === 'string') res.setHeader('x-ms-client-request-id', clientRequestId);
            // Authentication comes first: the SDK's first request is deliberately bodiless and without a token, to learn the challenge.
            const caller = await this.#authenticate(req);
            this.#authorize(caller, req.method ?? 'GET', url.pathname);
            const body = await readBody(req);
            const apiVersion = url.searchParams.get('api-version');
            if (!apiVersion) throw badParameter("The 'api-version' query parameter is missing");
            if (!API_VERSION_RE.test(apiVersion)) throw badParameter(`The request URI contains an invalid API version: ${apiVersion}`);
            this.#sweep();
            const segments = url.pathname.split('/').slice(1);
            // `/secrets/<name>/` (the SDK's "latest version") is the same as `/secrets/<name>`.
            if (segments.length > 1 && segments[segments.length - 1] === '') segments.pop();
            const ctx: Ctx = { method: req.method ?? 'GET', apiVersion, query: url.searchParams, body, contentType: req.headers['content-type'] };
            const reply = await this.#route(segments, ctx);
            status = reply.status;
            send(res, reply.status, reply.body);
        } catch (err) {
            if (err instanceof VaultError) {
                status = err.status;
                if (err.status === 401) res.setHeader('www-authenticate', this.#challenge());
                send(res, err.status, { error: { code: err.code, message: err.message, ...(err.innerCode ? { innererror: { code: err.innerCode } } : {}) } });
            } else {
                const e = err as Error;
                this.#log.error({ err: { message: e.message, stack: e.stack }, method: req.method, path: url.pathname }, 'key vault: request failed');
                status = 500;
                if (!res.headersSent) send(res, 500, { error: { code: 'InternalServerError', message: 'The local Key Vault failed to answer; see the devhost log' } });
                else res.end();
            }
        }
        this.#log.debug({ method: req.method, path: url.pathname, status, ms: Date.now() - started, requestId }, 'key vault: request');
    }

    #challenge(): string {
        return `Bearer authorization="https://login.microsoftonline.com/${this.#tenantId}", resource="${RESOURCE}"`;
    }

    async #authenticate(req: http.IncomingMessage): Promise<VaultCaller | undefined> {
        const header = req.headers.authorization;
        const bearer = header ? /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] : undefined;
        if (!bearer) throw new VaultError(401, 'Unauthorized', 'AKV10000: Request is missing a Bearer or PoP token.');
        if (!this.#verifyToken) return undefined;
        let caller: VaultCaller | undefined;
        try {
            caller = await this.#verifyToken(bearer);
        } catch (err) {
            this.#log.warn({ err: { message: (err as Error).message } }, 'key vault: token verifier failed; rejecting the token');
        }
        if (!caller) {
            this.#log.warn({ method: req.method, path: req.url?.split('?')[0] }, 'key vault: bearer token rejected');
            throw new VaultError(401, 'Unauthorized', 'AKV10022: The access token was rejected (invalid signature, issuer, audience or lifetime).');
        }
        return caller;
    }

    /** Azure RBAC: the caller needs the officer role of the half of the vault (secrets or keys) the request is for. */
    #authorize(caller: VaultCaller | undefined, method: string, pathname: string): void {
        if (!caller || !this.#rolesOf) return;
        const collection = pathname.split('/')[1] ?? '';
        const half = /secrets$/.test(collection) ? 'secrets' : /keys$/.test(collection) ? 'keys' : undefined;
        if (!half) return;
        const role = ROLE_FOR[half];
        if (this.#rolesOf(caller).includes(role)) return;
        this.#log.warn({ oid: caller.oid, appId: caller.appId, method, path: pathname, needs: role }, 'key vault: caller has no role for this request (403)');
        throw new VaultError(
            403,
            'Forbidden',
            `Caller is not authorized to perform action on resource.\r\nCaller: appid=${caller.appId ?? ''};oid=${caller.oid}\r\nAction: '${method} /${collection}' needs the role '${role}'\r\nResource: 'vault ${this.name}'\r\nAssignment: (not found)\r\nDecisionReason: 'DeniedWithNoValidRBAC'\r\nVault: ${this.name}\r\n`,
            'ForbiddenByRbac',
        );
    }

    async #route(seg: string[], ctx: Ctx): Promise<Reply> {
        const [collection, ...rest] = seg;
        switch (collection) {
            case 'secrets':
                return this.#secretsRoute(rest, ctx);
            case 'deletedsecrets':
                return this.#deletedRoute(rest, ctx, 'secret');
            case 'keys':
                return this.#keysRoute(rest, ctx);
            case 'deletedkeys':
                return this.#deletedRoute(rest, ctx, 'key');
            case 'certificates':
            case 'deletedcertificates':
                throw notImplemented('Certificates');
            case 'rng':
                throw notImplemented('Random bytes (rng)');
            default:
                throw new VaultError(404, 'NotFound', `No Key Vault operation at /${seg.join('/')}`);
        }
    }

    #secretsRoute(rest: string[], ctx: Ctx): Reply {
        const m = ctx.method;
        if (rest.length === 0) return allow(m, 'GET') && this.#listSecrets(ctx);
        if (rest.length === 1 && rest[0] === 'restore' && m === 'POST') throw notImplemented('Secret backup and restore');
        const name = checkName(rest[0]);
        if (rest.length === 1) {
            if (m === 'PUT') return this.#setSecret(name, ctx);
            if (m === 'GET') return this.#getSecret(name, '');
            if (m === 'PATCH') return this.#updateSecret(name, '', ctx);
            if (m === 'DELETE') return this.#deleteItem('secret', name);
            return methodNotAllowed(m);
        }
        if (rest.length === 2) {
            if (rest[1] === 'versions' && m === 'GET') return this.#listSecretVersions(name, ctx);
            if (rest[1] === 'backup' && m === 'POST') throw notImplemented('Secret backup and restore');
            if (m === 'GET') return this.#getSecret(name, rest[1]);
            if (m === 'PATCH') return this.#updateSecret(name, rest[1], ctx);
            return methodNotAllowed(m);
        }
        throw new VaultError(404, 'NotFound', `No Key Vault operation at /secrets/${rest.join('/')}`);
    }

    async #keysRoute(rest: string[], ctx: Ctx): Promise<Reply> {
        const m = ctx.method;
        if (rest.length === 0) return allow(m, 'GET') && this.#listKeys(ctx);
        if (rest.length === 1 && rest[0] === 'restore' && m === 'POST') throw notImplemented('Key backup and restore');
        const name = checkName(rest[0]);
        if (rest.length === 1) {
            if (m === 'PUT') return this.#importKey(name, ctx);
            if (m === 'GET') return this.#getKey(name, '');
            if (m === 'PATCH') return this.#updateKey(name, '', ctx);
            if (m === 'DELETE') return this.#deleteItem('key', name);
            return methodNotAllowed(m);
        }
        if (rest.length === 2) {
            const sub = rest[1];
            if (sub === 'create') return allow(m, 'POST') && this.#createKey(name, ctx);
            if (sub === 'versions' && m === 'GET') return this.#listKeyVersions(name, ctx);
            if (sub === 'rotate' || sub === 'rotationpolicy') throw notImplemented('Key rotation');
            if (sub === 'backup' && m === 'POST') throw notImplemented('Key backup and restore');
            if (sub === 'release' || sub === 'attestation') throw notImplemented(`Key ${sub}`);
            if (m === 'GET') return this.#getKey(name, sub);
            if (m === 'PATCH') return this.#updateKey(name, sub, ctx);
            return methodNotAllowed(m);
        }
        if (rest.length === 3) {
            const op = rest[2];
            if (op === 'release' || op === 'attestation') throw notImplemented(`Key ${op}`);
            if (KEY_OPERATIONS[op]) return allow(m, 'POST') && this.#keyOperation(name, rest[1], op, ctx);
        }
        throw new VaultError(404, 'NotFound', `No Key Vault operation at /keys/${rest.join('/')}`);
    }

    #deletedRoute(rest: string[], ctx: Ctx, kind: 'secret' | 'key'): Reply {
        const m = ctx.method;
        if (rest.length === 0) return allow(m, 'GET') && this.#listDeleted(kind, ctx);
        const name = checkName(rest[0]);
        if (rest.length === 1) {
            if (m === 'GET') return ok(this.#deletedBundle(kind, this.#deletedEntry(kind, name)));
            if (m === 'DELETE') return this.#purge(kind, name);
            return methodNotAllowed(m);
        }
        if (rest.length === 2 && rest[1] === 'recover') return allow(m, 'POST') && this.#recover(kind, name);
        throw new VaultError(404, 'NotFound', `No Key Vault operation at /deleted${kind}s/${rest.join('/')}`);
    }

    // -- shared entry helpers -------------------------------------------------

    #map(kind: 'secret' | 'key'): Map<string, Entry<SecretVersion | KeyVersion>> {
        return kind === 'secret' ? this.#secrets : this.#keys;
    }

    /** A live (not deleted) entry, or the kind's 404. */
    #liveEntry<V>(map: Map<string, Entry<V>>, kind: 'secret' | 'key', name: string): Entry<V> {
        const entry = map.get(name.toLowerCase());
        if (!entry || entry.deleted) throw kind === 'secret' ? secretNotFound(name) : keyNotFound(name);
        return entry;
    }

    #version<V extends { version: string }>(entry: Entry<V>, kind: 'secret' | 'key', version: string): V {
        if (version === '') return entry.versions[entry.versions.length - 1];
        const found = VERSION_RE.test(version) ? entry.versions.find((v) => v.version === version.toLowerCase()) : undefined;
        if (!found) throw kind === 'secret' ? secretNotFound(`${entry.name}/${version}`) : keyNotFound(`${entry.name}/${version}`);
        return found;
    }

    #deletedEntry(kind: 'secret' | 'key', name: string): Entry<SecretVersion | KeyVersion> {
        const entry = this.#map(kind).get(name.toLowerCase());
        if (!entry?.deleted) {
            throw kind === 'secret' ? new VaultError(404, 'SecretNotFound', `Deleted Secret not found: ${name}`) : new VaultError(404, 'KeyNotFound', `Deleted Key not found: ${name}`);
        }
        return entry;
    }

    /** The 409 Key Vault answers when a deleted-but-not-purged name is reused. */
    #refuseIfDeleted(kind: 'secret' | 'key', name: string): void {
        const entry = this.#map(kind).get(name.toLowerCase());
        if (entry?.deleted) {
            const Kind = kind === 'secret' ? 'Secret' : 'Key';
            throw new VaultError(
                409,
                'Conflict',
                `${Kind} ${entry.name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the ${kind} can only be recovered or purged.`,
                'ObjectIsDeletedButRecoverable',
            );
        }
    }

    #attributesOut(a: Attributes): Record<string, unknown> {
        return {
            enabled: a.enabled,
            ...(a.nbf !== undefined ? { nbf: a.nbf } : {}),
            ...(a.exp !== undefined ? { exp: a.exp } : {}),
            created: a.created,
            updated: a.updated,
            recoveryLevel: RECOVERY_LEVEL,
            recoverableDays: RECOVERABLE_DAYS,
        };
    }

    #deletedFields(kind: 'secret' | 'key', entry: Entry<unknown>): Record<string, unknown> {
        return { recoveryId: `${this.url}/deleted${kind}s/${entry.name}`, deletedDate: entry.deleted!.deletedDate, scheduledPurgeDate: entry.deleted!.scheduledPurgeDate };
    }

    #deletedBundle(kind: 'secret' | 'key', entry: Entry<SecretVersion | KeyVersion>): Record<string, unknown> {
        const latest = entry.versions[entry.versions.length - 1];
        const bundle = kind === 'secret' ? this.#secretBundle(entry as Entry<SecretVersion>, latest as SecretVersion, false) : this.#keyBundle(entry as Entry<KeyVersion>, latest as KeyVersion);
        return { ...bundle, ...this.#deletedFields(kind, entry) };
    }

    #deleteItem(kind: 'secret' | 'key', name: string): Reply {
        const entry = this.#liveEntry(this.#map(kind), kind, name);
        const deletedDate = nowSeconds();
        this.#commit(() => {
            entry.deleted = { deletedDate, scheduledPurgeDate: deletedDate + RECOVERABLE_DAYS * 86400 };
        });
        this.#log.info({ [kind]: entry.name }, `key vault: ${kind} deleted (recoverable for ${RECOVERABLE_DAYS} days)`);
        return ok(this.#deletedBundle(kind, entry));
    }

    #purge(kind: 'secret' | 'key', name: string): Reply {
        const entry = this.#deletedEntry(kind, name);
        this.#commit(() => (kind === 'secret' ? this.#secrets.delete(name.toLowerCase()) : this.#forgetKey(name.toLowerCase())));
        this.#log.info({ [kind]: entry.name }, `key vault: deleted ${kind} purged`);
        return { status: 204 };
    }

    #recover(kind: 'secret' | 'key', name: string): Reply {
        const entry = this.#deletedEntry(kind, name);
        this.#commit(() => {
            delete entry.deleted;
        });
        this.#log.info({ [kind]: entry.name }, `key vault: deleted ${kind} recovered`);
        const latest = entry.versions[entry.versions.length - 1];
        return ok(kind === 'secret' ? this.#secretBundle(entry as Entry<SecretVersion>, latest as SecretVersion, false) : this.#keyBundle(entry as Entry<KeyVersion>, latest as KeyVersion));
    }

    #listDeleted(kind: 'secret' | 'key', ctx: Ctx): Reply {
        const items = [...this.#map(kind).values()]
            .filter((e) => e.deleted)
            .map((e) => {
                const latest = e.versions[e.versions.length - 1];
                const idField = kind === 'secret' ? { id: `${this.url}/secrets/${e.name}` } : { kid: `${this.url}/keys/${e.name}` };
                const extra = kind === 'secret' && (latest as SecretVersion).contentType ? { contentType: (latest as SecretVersion).contentType } : {};
                return {
                    sortKey: e.name.toLowerCase(),
                    item: { ...idField, attributes: this.#attributesOut(latest.attributes), ...(latest.tags ? { tags: latest.tags } : {}), ...extra, ...this.#deletedFields(kind, e) },
                };
            });
        return ok(this.#page(items, ctx, `/deleted${kind}s`));
    }

    /** One page of a list, with Key Vault's `nextLink` (`$skiptoken` + `maxresults`) when more remain. */
    #page(items: { sortKey: string; item: unknown }[], ctx: Ctx, basePath: string): { value: unknown[]; nextLink: string | null } {
        const rawMax = ctx.query.get('maxresults');
        let max = MAX_PAGE_SIZE;
        if (rawMax !== null) {
            max = Number(rawMax);
            if (!/^\d+$/.test(rawMax) || max < 1 || max > MAX_PAGE_SIZE) throw badParameter(`'maxresults' must be an integer from 1 to ${MAX_PAGE_SIZE}`);
        }
        let after: string | undefined;
        const token = ctx.query.get('$skiptoken');
        if (token !== null) {
            try {
                after = (JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { after: string }).after;
            } catch {
                after = undefined;
            }
            if (typeof after !== 'string') throw badParameter('Invalid $skiptoken');
        }
        const sorted = items.sort((a, b) => (a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0));
        const remaining = after === undefined ? sorted : sorted.filter((i) => i.sortKey > after!);
        const page = remaining.slice(0, max);
        let nextLink: string | null = null;
        if (remaining.length > max) {
            const skip = Buffer.from(JSON.stringify({ after: page[page.length - 1].sortKey })).toString('base64url');
            nextLink = `${this.url}${basePath}?api-version=${encodeURIComponent(ctx.apiVersion)}&$skiptoken=${skip}&maxresults=${max}`;
        }
        return { value: page.map((i) => i.item), nextLink };
    }

    // -- secrets --------------------------------------------------------------

    #secretBundle(entry: Entry<SecretVersion>, v: SecretVersion, withValue: boolean): Record<string, unknown> {
        return {
            ...(withValue ? { value: v.value } : {}),
            id: `${this.url}/secrets/${entry.name}/${v.version}`,
            ...(v.contentType !== undefined ? { contentType: v.contentType } : {}),
            attributes: this.#attributesOut(v.attributes),
            ...(v.tags ? { tags: v.tags } : {}),
        };
    }

    #setSecret(name: string, ctx: Ctx): Reply {
        const body = jsonBody(ctx);
        if (typeof body.value !== 'string') throw badParameter("'value' is required and must be a string");
        if (Buffer.byteLength(body.value, 'utf8') > MAX_SECRET_VALUE_BYTES) throw badParameter(`The secret value is larger than ${MAX_SECRET_VALUE_BYTES} bytes`);
        const contentType = optionalString(body, 'contentType', 255);
        const tags = parseTags(body.tags);
        const attrs = parseAttributes(body.attributes);
        this.#refuseIfDeleted('secret', name);
        const now = nowSeconds();
        const attributes: Attributes = { enabled: true, created: now, updated: now };
        applyAttributes(attributes, attrs);
        const version: SecretVersion = { version: newVersion(), value: body.value, ...(contentType !== undefined ? { contentType } : {}), ...(tags ? { tags } : {}), attributes };
        const entry = this.#commit(() => {
            let e = this.#secrets.get(name.toLowerCase());
            if (!e) {
                e = { name, versions: [] };
                this.#secrets.set(name.toLowerCase(), e);
            }
            e.versions.push(version);
            return e;
        });
        this.#log.info({ secret: entry.name, version: version.version }, 'key vault: secret set');
        return ok(this.#secretBundle(entry, version, true));
    }

    #getSecret(name: string, version: string): Reply {
        const entry = this.#liveEntry(this.#secrets, 'secret', name);
        const v = this.#version(entry, 'secret', version);
        if (!v.attributes.enabled) throw new VaultError(403, 'Forbidden', 'Operation get is not allowed on a disabled secret.', 'SecretDisabled');
        // Key Vault returns secrets outside their nbf/exp window (for tests and recovery), so this does too.
        return ok(this.#secretBundle(entry, v, true));
    }

    #updateSecret(name: string, version: string, ctx: Ctx): Reply {
        const body = jsonBody(ctx);
        const contentType = optionalString(body, 'contentType', 255);
        const tags = parseTags(body.tags);
        const attrs = parseAttributes(body.attributes);
        const entry = this.#liveEntry(this.#secrets, 'secret', name);
        const v = this.#version(entry, 'secret', version);
        this.#commit(() => {
            applyAttributes(v.attributes, attrs);
            if (contentType !== undefined) v.contentType = contentType;
            if (tags !== undefined) v.tags = tags;
            v.attributes.updated = nowSeconds();
        });
        return ok(this.#secretBundle(entry, v, false));
    }

    #listSecrets(ctx: Ctx): Reply {
        const items = [...this.#secrets.values()]
            .filter((e) => !e.deleted)
            .map((e) => {
                const latest = e.versions[e.versions.length - 1];
                return {
                    sortKey: e.name.toLowerCase(),
                    item: {
                        id: `${this.url}/secrets/${e.name}`,
                        attributes: this.#attributesOut(latest.attributes),
                        ...(latest.tags ? { tags: latest.tags } : {}),
                        ...(latest.contentType !== undefined ? { contentType: latest.contentType } : {}),
                    },
                };
            });
        return ok(this.#page(items, ctx, '/secrets'));
    }

    #listSecretVersions(name: string, ctx: Ctx): Reply {
        const entry = this.#liveEntry(this.#secrets, 'secret', name);
        const items = entry.versions.map((v, i) => ({
            sortKey: String(i).padStart(8, '0'),
            item: {
                id: `${this.url}/secrets/${entry.name}/${v.version}`,
                attributes: this.#attributesOut(v.attributes),
                ...(v.tags ? { tags: v.tags } : {}),
                ...(v.contentType !== undefined ? { contentType: v.contentType } : {}),
            },
        }));
        return ok(this.#page(items, ctx, `/secrets/${entry.name}/versions`));
    }

    // -- keys -----------------------------------------------------------------

    #material(v: KeyVersion): LoadedKey {
        const cached = this.#loaded.get(v.version);
        if (cached) return cached;
        const privateKey = createPrivateKey({ key: Buffer.from(v.pkcs8, 'base64'), format: 'der', type: 'pkcs8' });
        const publicKey = createPublicKey(privateKey);
        const jwk = publicKey.export({ format: 'jwk' }) as Record<string, string>;
        let loaded: LoadedKey;
        if (v.crv) {
            const c = CURVES[v.crv];
            const d = toBigInt(Buffer.from((privateKey.export({ format: 'jwk' }) as { d: string }).d, 'base64url'));
            loaded = {
                privateKey,
                publicKey,
                curve: c,
                d,
                qx: toBigInt(Buffer.from(jwk.x, 'base64url')),
                qy: toBigInt(Buffer.from(jwk.y, 'base64url')),
                publicJwk: { crv: c.name, x: jwk.x, y: jwk.y },
            };
        } else {
            loaded = { privateKey, publicKey, publicJwk: { n: jwk.n, e: jwk.e } };
        }
        this.#loaded.set(v.version, loaded);
        return loaded;
    }

    #keyBundle(entry: Entry<KeyVersion>, v: KeyVersion): Record<string, unknown> {
        // Only the public half: the private key never leaves the vault.
        const m = this.#material(v);
        return {
            key: { kid: `${this.url}/keys/${entry.name}/${v.version}`, kty: v.kty, key_ops: v.keyOps, ...m.publicJwk },
            attributes: { ...this.#attributesOut(v.attributes), exportable: false },
            ...(v.tags ? { tags: v.tags } : {}),
        };
    }

    #keyOps(raw: unknown, kty: Kty): string[] {
        const allowed = kty.startsWith('EC') ? EC_KEY_OPS : RSA_KEY_OPS;
        if (raw === undefined || raw === null) return [...allowed];
        if (!Array.isArray(raw) || raw.some((o) => typeof o !== 'string')) throw badParameter("'key_ops' must be an array of strings");
        for (const op of raw as string[]) if (!allowed.includes(op)) throw badParameter(`Key operation '${op}' is not valid for a ${kty} key (allowed: ${allowed.join(', ')})`);
        return [...new Set(raw as string[])];
    }

    #parseKty(raw: unknown): Kty {
        if (raw === 'EC' || raw === 'EC-HSM' || raw === 'RSA' || raw === 'RSA-HSM') return raw;
        if (raw === 'oct' || raw === 'oct-HSM') throw badParameter(`Key type '${raw}' is only available on Managed HSM`);
        throw badParameter(`'kty' must be one of EC, EC-HSM, RSA, RSA-HSM`);
    }

    async #createKey(name: string, ctx: Ctx): Promise<Reply> {
        const body = jsonBody(ctx);
        const kty = this.#parseKty(body.kty);
        const keyOps = this.#keyOps(body.key_ops, kty);
        const tags = parseTags(body.tags);
        const attrs = parseAttributes(body.attributes);
        if (body.release_policy !== undefined && body.release_policy !== null) throw notImplemented('Key release policies');
        this.#refuseIfDeleted('key', name);
        let privateKey: KeyObject;
        let crv: CurveName | undefined;
        if (kty.startsWith('EC')) {
            const requested = body.crv ?? 'P-256';
            if (typeof requested !== 'string' || !(requested in CURVES)) throw badParameter(`'crv' must be one of ${Object.keys(CURVES).join(', ')}`);
            crv = requested as CurveName;
            ({ privateKey } = await generateKeyPairAsync('ec', { namedCurve: CURVES[crv].node }));
        } else {
            const size = body.key_size ?? 2048;
            if (typeof size !== 'number' || !RSA_KEY_SIZES.includes(size)) throw badParameter(`'key_size' must be one of ${RSA_KEY_SIZES.join(', ')}`);
            const exponent = body.public_exponent ?? 65537;
            if (exponent !== 65537) throw badParameter("'public_exponent' must be 65537");
            ({ privateKey } = await generateKeyPairAsync('rsa', { modulusLength: size, publicExponent: 65537 }));
        }
        return this.#addKeyVersion(name, kty, crv, privateKey, keyOps, tags, attrs, 'created');
    }

    #importKey(name: string, ctx: Ctx): Reply {
        const body = jsonBody(ctx);
        const jwk = body.key;
        if (!jwk || typeof jwk !== 'object' || Array.isArray(jwk)) throw badParameter("'key' (a JSON Web Key with its private part) is required");
        const k = jwk as Record<string, unknown>;
        let kty = this.#parseKty(k.kty);
        if (body.Hsm === true && !kty.endsWith('-HSM')) kty = `${kty}-HSM` as Kty;
        const keyOps = this.#keyOps(k.key_ops, kty);
        const tags = parseTags(body.tags);
        const attrs = parseAttributes(body.attributes);
        if (body.release_policy !== undefined && body.release_policy !== null) throw notImplemented('Key release policies');
        this.#refuseIfDeleted('key', name);
        const fields = kty.startsWith('EC') ? ['x', 'y', 'd'] : ['n', 'e', 'd', 'p', 'q', 'dp', 'dq', 'qi'];
        for (const f of fields) if (typeof k[f] !== 'string' || !BASE64URL_RE.test(k[f] as string)) throw badParameter(`The imported key needs '${f}' (base64url)`);
        let privateKey: KeyObject;
        let crv: CurveName | undefined;
        try {
            if (kty.startsWith('EC')) {
                if (typeof k.crv !== 'string' || !(k.crv in CURVES)) throw badParameter(`'crv' must be one of ${Object.keys(CURVES).join(', ')}`);
                crv = k.crv as CurveName;
                privateKey = createPrivateKey({ key: { kty: 'EC', crv: CURVES[crv].node, x: k.x, y: k.y, d: k.d } as import('node:crypto').JsonWebKey, format: 'jwk' });
            } else {
                const rsa = Object.fromEntries(fields.map((f) => [f, k[f]]));
                privateKey = createPrivateKey({ key: { kty: 'RSA', ...rsa } as import('node:crypto').JsonWebKey, format: 'jwk' });
                const bits = privateKey.asymmetricKeyDetails?.modulusLength ?? 0;
                if (!RSA_KEY_SIZES.includes(bits)) throw badParameter(`RSA keys must be ${RSA_KEY_SIZES.join(', ')} bits; this one is ${bits}`);
            }
        } catch (err) {
            if (err instanceof VaultError) throw err;
            throw badParameter(`The imported key is not valid: ${(err as Error).message}`);
        }
        return this.#addKeyVersion(name, kty, crv, privateKey, keyOps, tags, attrs, 'imported');
    }

    #addKeyVersion(name: string, kty: Kty, crv: CurveName | undefined, privateKey: KeyObject, keyOps: string[], tags: Record<string, string> | undefined, attrs: AttributeInput, how: string): Reply {
        const now = nowSeconds();
        const attributes: Attributes = { enabled: true, created: now, updated: now };
        applyAttributes(attributes, attrs);
        const version: KeyVersion = {
            version: newVersion(),
            kty,
            ...(crv ? { crv } : {}),
            keyOps,
            pkcs8: (privateKey.export({ format: 'der', type: 'pkcs8' }) as Buffer).toString('base64'),
            ...(tags ? { tags } : {}),
            attributes,
        };
        const entry = this.#commit(() => {
            // Checked again here: the name may have been deleted while an RSA key was being generated.
            this.#refuseIfDeleted('key', name);
            let e = this.#keys.get(name.toLowerCase());
            if (!e) {
                e = { name, versions: [] };
                this.#keys.set(name.toLowerCase(), e);
            }
            e.versions.push(version);
            return e;
        });
        this.#log.info({ key: entry.name, version: version.version, kty, crv }, `key vault: key ${how}`);
        return ok(this.#keyBundle(entry, version));
    }

    #getKey(name: string, version: string): Reply {
        const entry = this.#liveEntry(this.#keys, 'key', name);
        return ok(this.#keyBundle(entry, this.#version(entry, 'key', version)));
    }

    #updateKey(name: string, version: string, ctx: Ctx): Reply {
        const body = jsonBody(ctx);
        const entry = this.#liveEntry(this.#keys, 'key', name);
        const v = this.#version(entry, 'key', version);
        const keyOps = body.key_ops === undefined ? undefined : this.#keyOps(body.key_ops, v.kty);
        const tags = parseTags(body.tags);
        const attrs = parseAttributes(body.attributes);
        if (body.release_policy !== undefined && body.release_policy !== null) throw notImplemented('Key release policies');
        this.#commit(() => {
            applyAttributes(v.attributes, attrs);
            if (keyOps) v.keyOps = keyOps;
            if (tags !== undefined) v.tags = tags;
            v.attributes.updated = nowSeconds();
        });
        return ok(this.#keyBundle(entry, v));
    }

    #listKeys(ctx: Ctx): Reply {
        const items = [...this.#keys.values()]
            .filter((e) => !e.deleted)
            .map((e) => {
                const latest = e.versions[e.versions.length - 1];
                return {
                    sortKey: e.name.toLowerCase(),
                    item: { kid: `${this.url}/keys/${e.name}`, attributes: { ...this.#attributesOut(latest.attributes), exportable: false }, ...(latest.tags ? { tags: latest.tags } : {}) },
                };
            });
        return ok(this.#page(items, ctx, '/keys'));
    }

    #listKeyVersions(name: string, ctx: Ctx): Reply {
        const entry = this.#liveEntry(this.#keys, 'key', name);
        const items = entry.versions.map((v, i) => ({
            sortKey: String(i).padStart(8, '0'),
            item: { kid: `${this.url}/keys/${entry.name}/${v.version}`, attributes: { ...this.#attributesOut(v.attributes), exportable: false }, ...(v.tags ? { tags: v.tags } : {}) },
        }));
        return ok(this.#page(items, ctx, `/keys/${entry.name}/versions`));
    }

    #keyOperation(name: string, version: string, op: string, ctx: Ctx): Reply {
        const body = jsonBody(ctx);
        const alg = algField(body);
        const entry = this.#liveEntry(this.#keys, 'key', name);
        const v = this.#version(entry, 'key', version);
        const keyOp = KEY_OPERATIONS[op];
        if (!v.attributes.enabled) throw new VaultError(403, 'Forbidden', `Operation ${keyOp} is not allowed on a disabled key.`, 'KeyDisabled');
        if (!v.keyOps.includes(keyOp)) throw new VaultError(403, 'Forbidden', `Operation ${keyOp} is not permitted by the key_ops of this key (${v.keyOps.join(', ')}).`);
        const now = nowSeconds();
        if (!OPS_ALLOWED_OUTSIDE_WINDOW.has(keyOp)) {
            if (v.attributes.nbf !== undefined && now < v.attributes.nbf) throw new VaultError(403, 'Forbidden', `Operation ${keyOp} is not allowed on a key that is not yet valid.`);
            if (v.attributes.exp !== undefined && now > v.attributes.exp) throw new VaultError(403, 'Forbidden', `Operation ${keyOp} is not allowed on an expired key.`);
        }
        const kid = `${this.url}/keys/${entry.name}/${v.version}`;
        const m = this.#material(v);
        switch (op) {
            case 'sign': {
                const digest = base64urlField(body, 'value');
                return ok({ kid, value: this.#sign(m, alg, digest).toString('base64url') });
            }
            case 'verify': {
                const digest = base64urlField(body, 'digest');
                const signature = base64urlField(body, 'value');
                return ok({ value: this.#verify(m, alg, digest, signature) });
            }
            case 'encrypt':
            case 'wrapkey': {
                const oaepHash = this.#oaepHash(m, alg);
                const plaintext = base64urlField(body, 'value');
                try {
                    return ok({ kid, value: publicEncrypt({ key: m.publicKey, padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING, oaepHash }, plaintext).toString('base64url') });
                } catch {
                    throw badParameter(`The value is too long for ${alg} with this key`);
                }
            }
            default: {
                // decrypt / unwrapkey
                const oaepHash = this.#oaepHash(m, alg);
                const ciphertext = base64urlField(body, 'value');
                try {
                    return ok({ kid, value: privateDecrypt({ key: m.privateKey, padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING, oaepHash }, ciphertext).toString('base64url') });
                } catch {
                    throw badParameter(`The value could not be decrypted with ${alg} and this key`);
                }
            }
        }
    }

    #oaepHash(m: LoadedKey, alg: string): string {
        if (m.curve) throw badParameter(`Algorithm ${alg} is not valid for an EC key`);
        const hash = RSA_OAEP_HASH[alg];
        if (!hash) {
            throw badParameter(alg === 'RSA1_5' ? 'RSA1_5 is not supported by the local Key Vault stand-in (use RSA-OAEP or RSA-OAEP-256)' : `Algorithm ${alg} is not valid for an RSA key`);
        }
        return hash;
    }

    #sign(m: LoadedKey, alg: string, digest: Buffer): Buffer {
        if (m.curve) {
            const c = m.curve;
            if (alg !== c.alg) throw badParameter(`Algorithm ${alg} is not valid for a key on curve ${c.name} (use ${c.alg})`);
            if (digest.length !== c.digestBytes) throw badParameter(`Invalid digest length ${digest.length} for ${alg}; expected ${c.digestBytes} bytes`);
            return ecdsaSign(c, m.d!, digest);
        }
        const spec = RSA_SIGN_ALGS[alg];
        if (!spec) throw badParameter(alg.startsWith('PS') ? `${alg} is not supported by the local Key Vault stand-in (use RS256, RS384 or RS512)` : `Algorithm ${alg} is not valid for an RSA key`);
        if (digest.length !== spec.digestBytes) throw badParameter(`Invalid digest length ${digest.length} for ${alg}; expected ${spec.digestBytes} bytes`);
        return privateEncrypt({ key: m.privateKey, padding: cryptoConstants.RSA_PKCS1_PADDING }, Buffer.concat([spec.digestInfo, digest]));
    }

    #verify(m: LoadedKey, alg: string, digest: Buffer, signature: Buffer): boolean {
        if (m.curve) {
            const c = m.curve;
            if (alg !== c.alg) throw badParameter(`Algorithm ${alg} is not valid for a key on curve ${c.name} (use ${c.alg})`);
            if (digest.length !== c.digestBytes) throw badParameter(`Invalid digest length ${digest.length} for ${alg}; expected ${c.digestBytes} bytes`);
            return ecdsaVerify(c, m.qx!, m.qy!, digest, signature);
        }
        const spec = RSA_SIGN_ALGS[alg];
        if (!spec) throw badParameter(alg.startsWith('PS') ? `${alg} is not supported by the local Key Vault stand-in (use RS256, RS384 or RS512)` : `Algorithm ${alg} is not valid for an RSA key`);
        if (digest.length !== spec.digestBytes) throw badParameter(`Invalid digest length ${digest.length} for ${alg}; expected ${spec.digestBytes} bytes`);
        const expected = Buffer.concat([spec.digestInfo, digest]);
        try {
            const recovered = publicDecrypt({ key: m.publicKey, padding: cryptoConstants.RSA_PKCS1_PADDING }, signature);
            return recovered.length === expected.length && timingSafeEqual(recovered, expected);
        } catch {
            return false;
        }
    }
}

// ---------------------------------------------------------------------------

function checkName(raw: string): string {
    if (!NAME_RE.test(raw)) throw badParameter(`Invalid name "${decodeSafe(raw)}": use 1-127 characters from 0-9, a-z, A-Z and -`);
    return raw;
}

function decodeSafe(raw: string): string {
    try {
        return decodeURIComponent(raw).slice(0, 200);
    } catch {
        return raw.slice(0, 200);
    }
}

/** True when the method matches; otherwise throws the 405 (so `allow(m, 'GET') && handler()` reads as a guard). */
function allow(method: string, expected: string): true {
    if (method !== expected) methodNotAllowed(method);
    return true;
}

function methodNotAllowed(method: string): never {
    throw new VaultError(405, 'MethodNotAllowed', `The method ${method} is not allowed on this resource`);
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
    if (body === undefined) {
        res.writeHead(status);
        res.end();
        return;
    }
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
    res.end(text);
}
