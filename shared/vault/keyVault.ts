import type { TokenCredential } from '@azure/core-auth';
import { CryptographyClient, KeyClient } from '@azure/keyvault-keys';
import { SecretClient } from '@azure/keyvault-secrets';
import { isUnreachable, statusOf, Unavailable, Upstream } from '../errors';
import type { KeyStore, SecretStore } from './vault';

/** Local vaults speak plain http and answer the challenge with their own resource: relax only those two checks. */
export function vaultClientOptions(url: string) {
    const local = url.startsWith('http://');
    return local ? { disableChallengeResourceVerification: true, allowInsecureConnection: true } : {};
}

function mapVaultError(what: string, err: unknown): Error {
    if (isUnreachable(err) || statusOf(err) === 503) return new Unavailable(`The vault is unreachable (${what})`, { cause: err });
    return new Upstream(`The vault failed (${what})`, { cause: err });
}

/** Secrets on Azure Key Vault (`@azure/keyvault-secrets`); the devhost's vault stand-in locally. */
export class KeyVaultSecretStore implements SecretStore {
    readonly client: SecretClient;

    constructor(url: string, credential: TokenCredential) {
        this.client = new SecretClient(url, credential, vaultClientOptions(url));
    }

    async get(name: string, version?: string): Promise<{ value: string; version: string } | undefined> {
        try {
            const s = await this.client.getSecret(name, version ? { version } : undefined);
            return { value: s.value ?? '', version: s.properties.version ?? '' };
        } catch (err) {
            if (statusOf(err) === 404) return undefined;
            throw mapVaultError('get secret', err);
        }
    }

    async set(name: string, value: string, options?: { contentType?: string; tags?: Record<string, string> }): Promise<{ version: string }> {
        try {
            const s = await this.client.setSecret(name, value, options);
            return { version: s.properties.version ?? '' };
        } catch (err) {
            throw mapVaultError('set secret', err);
        }
    }

    async delete(name: string): Promise<boolean> {
        try {
            const poller = await this.client.beginDeleteSecret(name);
            await poller.pollUntilDone();
            return true;
        } catch (err) {
            if (statusOf(err) === 404) return false;
            throw mapVaultError('delete secret', err);
        }
    }

    async list(): Promise<string[]> {
        const names: string[] = [];
        try {
            for await (const p of this.client.listPropertiesOfSecrets()) names.push(p.name);
        } catch (err) {
            throw mapVaultError('list secrets', err);
        }
        return names;
    }
}

function fromBase64Url(v: Uint8Array | string | undefined): Buffer {
    if (!v) return Buffer.alloc(0);
    return typeof v === 'string' ? Buffer.from(v, 'base64url') : Buffer.from(v);
}

/** secp256k1 keys on Azure Key Vault (`P-256K`, `ES256K`); signing happens in the vault. */
export class KeyVaultKeyStore implements KeyStore {
    readonly client: KeyClient;
    readonly #credential: TokenCredential;
    readonly #url: string;

    constructor(url: string, credential: TokenCredential) {
        this.#url = url;
        this.#credential = credential;
        this.client = new KeyClient(url, credential, vaultClientOptions(url));
    }

    async createSecp256k1Key(name: string): Promise<{ name: string; version: string; publicKey: Buffer }> {
        try {
            const key = await this.client.createEcKey(name, { curve: 'P-256K', keyOps: ['sign', 'verify'] });
            return { name, version: key.properties.version ?? '', publicKey: Buffer.concat([Buffer.from([4]), fromBase64Url(key.key?.x), fromBase64Url(key.key?.y)]) };
        } catch (err) {
            throw mapVaultError('create key', err);
        }
    }

    async publicKey(name: string): Promise<Buffer | undefined> {
        try {
            const key = await this.client.getKey(name);
            return Buffer.concat([Buffer.from([4]), fromBase64Url(key.key?.x), fromBase64Url(key.key?.y)]);
        } catch (err) {
            if (statusOf(err) === 404) return undefined;
            throw mapVaultError('get key', err);
        }
    }

    async signDigest(name: string, digest: Buffer): Promise<{ r: Buffer; s: Buffer }> {
        try {
            const key = await this.client.getKey(name);
            const crypto = new CryptographyClient(key, this.#credential, vaultClientOptions(this.#url));
            const res = await crypto.sign('ES256K', digest);
            const sig = Buffer.from(res.result);
            return { r: sig.subarray(0, 32), s: sig.subarray(32, 64) };
        } catch (err) {
            throw mapVaultError('sign', err);
        }
    }

    async wrapKey(name: string, dataKey: Buffer): Promise<{ wrapped: Buffer; keyId: string }> {
        try {
            let key;
            try {
                key = await this.client.getKey(name);
            } catch (err) {
                if (statusOf(err) !== 404) throw err;
                key = await this.client.createRsaKey(name, { keySize: 3072, keyOps: ['wrapKey', 'unwrapKey'] });
            }
            const crypto = new CryptographyClient(key, this.#credential, vaultClientOptions(this.#url));
            const res = await crypto.wrapKey('RSA-OAEP-256', dataKey);
            return { wrapped: Buffer.from(res.result), keyId: key.id ?? name };
        } catch (err) {
            throw mapVaultError('wrap key', err);
        }
    }

    async unwrapKey(name: string, wrapped: Buffer, version?: string): Promise<Buffer> {
        try {
            const key = await this.client.getKey(name, version ? { version } : {});
            const crypto = new CryptographyClient(key, this.#credential, vaultClientOptions(this.#url));
            return Buffer.from((await crypto.unwrapKey('RSA-OAEP-256', wrapped)).result);
        } catch (err) {
            throw mapVaultError('unwrap key', err);
        }
    }
}
