import { createHash, createPublicKey, generateKeyPairSync, randomBytes, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/core-auth';
import { CryptographyClient, KeyClient, type KeyVaultKey } from '@azure/keyvault-keys';
import { parseKeyVaultSecretIdentifier, SecretClient } from '@azure/keyvault-secrets';
import { ethers } from 'ethers';
import pino from 'pino';
import { LocalKeyVault, type LocalKeyVaultOptions } from '../../devhost/services/keyVault';
import { removeDir, tempDir } from '../harness/devhost';

const TENANT = '11111111-2222-3333-4444-555555555555';
const CLIENT_OPTIONS = { disableChallengeResourceVerification: true, allowInsecureConnection: true };
const SECP256K1_N = BigInt('0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141');
const logger = pino({ level: 'silent' });

/** A credential that hands out a fixed token and records every getToken call. */
class FixedTokenCredential implements TokenCredential {
    readonly calls: { scopes: string[]; tenantId?: string }[] = [];
    constructor(readonly token = 'local-dev-token') {}
    async getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken> {
        this.calls.push({ scopes: Array.isArray(scopes) ? scopes : [scopes], tenantId: options?.tenantId });
        return { token: this.token, expiresOnTimestamp: Date.now() + 3600_000 };
    }
}

interface RestFailure {
    statusCode?: number;
    code?: string;
    message: string;
}

/** Runs `fn`, expects it to fail, and returns the error (for statusCode / code assertions). */
async function failure(fn: () => Promise<unknown>): Promise<RestFailure> {
    try {
        await fn();
    } catch (err) {
        return err as RestFailure;
    }
    throw new Error('expected the call to fail');
}

const b64u = (b: Uint8Array) => Buffer.from(b).toString('base64url');
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function startVault(dir: string, masterKey: Buffer, extra: Pick<LocalKeyVaultOptions, 'verifyToken' | 'rolesOf'> & { name?: string } = {}) {
    return new LocalKeyVault({ name: extra.name ?? 'flexchange-dev', dir, masterKey, tenantId: TENANT, verifyToken: extra.verifyToken, rolesOf: extra.rolesOf, logger });
}

/** The address ethers derives from a Key Vault P-256K public JWK (0x04 || x || y). */
function addressOfJwk(key: KeyVaultKey): string {
    return ethers.computeAddress(`0x04${hex(key.key!.x!)}${hex(key.key!.y!)}`);
}

/** Recovers the signer of a Key Vault ES256K signature (raw r||s) the way an Ethereum client must: low-S first, then v = 27 / 28. */
function recoverSigners(digest: Uint8Array, raw: Uint8Array): { addresses: string[]; highS: boolean } {
    const r = ethers.hexlify(raw.subarray(0, 32));
    let s = BigInt(ethers.hexlify(raw.subarray(32, 64)));
    const highS = s > SECP256K1_N / 2n;
    if (highS) s = SECP256K1_N - s;
    const addresses = [27, 28].map((v) => ethers.recoverAddress(digest, ethers.Signature.from({ r, s: ethers.toBeHex(s, 32), v })));
    return { addresses, highS };
}

describe('LocalKeyVault with the real Key Vault SDKs', () => {
    const masterKey = randomBytes(32);
    const credential = new FixedTokenCredential();
    let dir: string;
    let vault: LocalKeyVault;
    let secrets: SecretClient;
    let keys: KeyClient;

    // Folders are made in beforeAll (not at collection) so a filtered run (-t) leaves none behind.
    beforeAll(async () => {
        dir = tempDir('flexchange-kv-');
        vault = startVault(dir, masterKey);
        await vault.start(0);
        secrets = new SecretClient(vault.url, credential, CLIENT_OPTIONS);
        keys = new KeyClient(vault.url, credential, CLIENT_OPTIONS);
    });
    afterAll(async () => {
        await vault?.stop();
        if (dir) removeDir(dir);
    });

    const rest = (path: string, init: RequestInit & { token?: string | null } = {}) => {
        const headers = new Headers(init.headers);
        if (init.token !== null) headers.set('authorization', `Bearer ${init.token ?? 'local-dev-token'}`);
        if (init.body !== undefined && !headers.has('content-type')) headers.set('content-type', 'application/json');
        return fetch(`${vault.url}${path}`, { ...init, headers });
    };

    describe('authentication challenge', () => {
        it('answers a request without a token with the bearer challenge the SDK expects', async () => {
            const res = await rest('/secrets/anything?api-version=7.5', { token: null });
            expect(res.status).toBe(401);
            expect(res.headers.get('www-authenticate')).toBe(`Bearer authorization="https://login.microsoftonline.com/${TENANT}", resource="https://vault.azure.net"`);
            expect((await res.json()).error.code).toBe('Unauthorized');
            // Authentication is checked before the body: the SDK's first (challenge) request is bodiless.
            const put = await rest('/secrets/x?api-version=7.5', { method: 'PUT', token: null });
            expect(put.status).toBe(401);
            const wrongScheme = await rest('/secrets?api-version=7.5', { token: null, headers: { authorization: 'Basic Zm9vOmJhcg==' } });
            expect(wrongScheme.status).toBe(401);
        });

        it('makes the SDK ask its credential for https://vault.azure.net/.default in the challenged tenant', async () => {
            const fresh = new FixedTokenCredential();
            const client = new SecretClient(vault.url, fresh, CLIENT_OPTIONS);
            expect(fresh.calls).toHaveLength(0);
            await client.setSecret('challenge-probe', 'x');
            expect(fresh.calls.length).toBeGreaterThanOrEqual(1);
            expect(fresh.calls[0]).toEqual({ scopes: ['https://vault.azure.net/.default'], tenantId: TENANT });
        });
    });

    describe('secrets', () => {
        it('sets and gets a secret with content type, tags and Unix-second attributes', async () => {
            const expiresOn = new Date(Date.now() + 86400_000);
            const set = await secrets.setSecret('db-password', 's3cr3t', { contentType: 'text/plain', tags: { env: 'dev' }, expiresOn });
            expect(set.value).toBe('s3cr3t');
            expect(set.properties.version).toMatch(/^[0-9a-f]{32}$/);
            expect(set.properties.id).toBe(`${vault.url}/secrets/db-password/${set.properties.version}`);
            expect(set.properties.vaultUrl).toBe(vault.url);

            const got = await secrets.getSecret('db-password');
            expect(got.value).toBe('s3cr3t');
            expect(got.name).toBe('db-password');
            expect(got.properties).toMatchObject({
                version: set.properties.version,
                contentType: 'text/plain',
                tags: { env: 'dev' },
                enabled: true,
                recoveryLevel: 'Recoverable+Purgeable',
                recoverableDays: 90,
            });
            expect(got.properties.expiresOn!.getTime()).toBe(Math.floor(expiresOn.getTime() / 1000) * 1000);
            expect(got.properties.createdOn).toBeInstanceOf(Date);
            expect(Math.abs(got.properties.createdOn!.getTime() - Date.now())).toBeLessThan(10_000);

            // The wire format: times are integers (seconds), the id carries the version.
            const raw = await (await rest('/secrets/db-password/?api-version=7.5')).json();
            expect(Number.isInteger(raw.attributes.created)).toBe(true);
            expect(raw.attributes.created).toBeLessThan(1e11);
            expect(raw.id).toBe(set.properties.id);
        });

        it('keeps every version: two sets give two versions and the old one stays readable by id', async () => {
            const first = await secrets.setSecret('api-key', 'one');
            const second = await secrets.setSecret('api-key', 'two');
            expect(second.properties.version).not.toBe(first.properties.version);

            expect((await secrets.getSecret('api-key')).value).toBe('two');
            const { name, version } = parseKeyVaultSecretIdentifier(first.properties.id!);
            expect((await secrets.getSecret(name, { version })).value).toBe('one');

            const versions: string[] = [];
            for await (const p of secrets.listPropertiesOfSecretVersions('api-key')) versions.push(p.version!);
            expect(versions.sort()).toEqual([first.properties.version, second.properties.version].sort());
        });

        it('updates properties of a version, and refuses to return a disabled secret', async () => {
            const s = await secrets.setSecret('feature-flag', 'on');
            const updated = await secrets.updateSecretProperties('feature-flag', s.properties.version!, { enabled: false, tags: { owner: 'ops' } });
            expect(updated.enabled).toBe(false);
            expect(updated.tags).toEqual({ owner: 'ops' });
            const err = await failure(() => secrets.getSecret('feature-flag'));
            expect(err.statusCode).toBe(403);
            expect(err.code).toBe('Forbidden');
            await secrets.updateSecretProperties('feature-flag', s.properties.version!, { enabled: true });
            expect((await secrets.getSecret('feature-flag')).value).toBe('on');
        });

        it('throws SecretNotFound (404) for a missing secret or version', async () => {
            const err = await failure(() => secrets.getSecret('does-not-exist'));
            expect(err.statusCode).toBe(404);
            expect(err.code).toBe('SecretNotFound');
            const wrongVersion = await failure(() => secrets.getSecret('db-password', { version: '0'.repeat(32) }));
            expect(wrongVersion.statusCode).toBe(404);
            expect(wrongVersion.code).toBe('SecretNotFound');
        });

        it('soft-deletes, refuses the name while deleted, recovers, and purges', async () => {
            await secrets.setSecret('to-delete', 'v1');
            await secrets.setSecret('to-delete', 'v2');

            const poller = await secrets.beginDeleteSecret('to-delete');
            const deleted = await poller.pollUntilDone();
            expect(deleted.recoveryId).toBe(`${vault.url}/deletedsecrets/to-delete`);
            expect(deleted.properties.deletedOn).toBeInstanceOf(Date);
            expect(deleted.properties.scheduledPurgeDate!.getTime() - deleted.properties.deletedOn!.getTime()).toBe(90 * 86400_000);
            expect((await failure(() => secrets.getSecret('to-delete'))).statusCode).toBe(404);

            const reuse = await failure(() => secrets.setSecret('to-delete', 'again'));
            expect(reuse.statusCode).toBe(409);
            expect(reuse.code).toBe('Conflict');

            const fetched = await secrets.getDeletedSecret('to-delete');
            expect(fetched.name).toBe('to-delete');
            expect(fetched.value).toBeUndefined();
            const deletedNames: string[] = [];
            for await (const d of secrets.listDeletedSecrets()) deletedNames.push(d.name);
            expect(deletedNames).toContain('to-delete');

            const recovered = await (await secrets.beginRecoverDeletedSecret('to-delete')).pollUntilDone();
            expect(recovered.name).toBe('to-delete');
            expect((await secrets.getSecret('to-delete')).value).toBe('v2');
            const versions: string[] = [];
            for await (const p of secrets.listPropertiesOfSecretVersions('to-delete')) versions.push(p.version!);
            expect(versions).toHaveLength(2);

            await (await secrets.beginDeleteSecret('to-delete')).pollUntilDone();
            await secrets.purgeDeletedSecret('to-delete');
            const gone = await failure(() => secrets.getDeletedSecret('to-delete'));
            expect(gone.statusCode).toBe(404);
            expect(gone.code).toBe('SecretNotFound');
            // After the purge the name is free again, with a fresh history.
            await secrets.setSecret('to-delete', 'fresh');
            const fresh: string[] = [];
            for await (const p of secrets.listPropertiesOfSecretVersions('to-delete')) fresh.push(p.version!);
            expect(fresh).toHaveLength(1);
        });

        it('validates names, bodies, sizes and query parameters with Key Vault errors', async () => {
            const expectError = async (res: Response, status: number, code: string) => {
                expect(res.status).toBe(status);
                const body = await res.json();
                expect(body.error.code).toBe(code);
                expect(typeof body.error.message).toBe('string');
            };
            await expectError(await rest('/secrets/bad_name?api-version=7.5', { method: 'PUT', body: JSON.stringify({ value: 'x' }) }), 400, 'BadParameter');
            await expectError(await rest(`/secrets/${'a'.repeat(128)}?api-version=7.5`, { method: 'PUT', body: JSON.stringify({ value: 'x' }) }), 400, 'BadParameter');
            await expectError(await rest('/secrets/ok-name?api-version=7.5', { method: 'PUT', body: '{oops' }), 400, 'BadParameter');
            await expectError(await rest('/secrets/ok-name?api-version=7.5', { method: 'PUT', body: JSON.stringify({ notValue: 1 }) }), 400, 'BadParameter');
            await expectError(await rest('/secrets/ok-name?api-version=7.5', { method: 'PUT', body: JSON.stringify({ value: 'x', tags: { a: 1 } }) }), 400, 'BadParameter');
            await expectError(await rest('/secrets/ok-name?api-version=7.5', { method: 'PUT', body: JSON.stringify({ value: 'x', attributes: { exp: 'soon' } }) }), 400, 'BadParameter');
            await expectError(await rest('/secrets/ok-name?api-version=7.5', { method: 'PUT', body: JSON.stringify({ value: 'x'.repeat(26 * 1024) }) }), 400, 'BadParameter');
            await expectError(await rest('/secrets/ok-name?api-version=7.5', { method: 'PUT', body: JSON.stringify({ value: 'x'.repeat(300 * 1024) }) }), 413, 'BadParameter');
            await expectError(await rest('/secrets/ok-name'), 400, 'BadParameter');
            await expectError(await rest('/secrets?api-version=7.5&maxresults=26'), 400, 'BadParameter');
            await expectError(await rest('/secrets?api-version=7.5&$skiptoken=garbage'), 400, 'BadParameter');
            await expectError(await rest('/secrets/missing/versions?api-version=7.5'), 404, 'SecretNotFound');
            await expectError(await rest('/certificates?api-version=7.5'), 501, 'NotImplemented');
            // None of the rejected writes created anything.
            expect((await failure(() => secrets.getSecret('ok-name'))).statusCode).toBe(404);
        });
    });

    describe('paging', () => {
        let pagingDir: string;
        let pagingVault: LocalKeyVault;
        let client: SecretClient;

        beforeAll(async () => {
            pagingDir = tempDir('flexchange-kv-paging-');
            pagingVault = startVault(pagingDir, randomBytes(32), { name: 'paging-vault' });
            await pagingVault.start(0);
            client = new SecretClient(pagingVault.url, credential, CLIENT_OPTIONS);
            for (let i = 0; i < 7; i++) await client.setSecret(`page-${i}`, `value-${i}`);
        });
        afterAll(async () => {
            await pagingVault?.stop();
            if (pagingDir) removeDir(pagingDir);
        });

        it('pages the secret list by maxresults with nextLink', async () => {
            const pages: string[][] = [];
            for await (const page of client.listPropertiesOfSecrets().byPage({ maxPageSize: 3 })) pages.push(page.map((p) => p.name));
            expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
            expect(pages.flat()).toEqual(['page-0', 'page-1', 'page-2', 'page-3', 'page-4', 'page-5', 'page-6']);

            const all: string[] = [];
            for await (const p of client.listPropertiesOfSecrets()) all.push(p.name);
            expect(all).toHaveLength(7);

            const first = await (await fetch(`${pagingVault.url}/secrets?api-version=7.5&maxresults=3`, { headers: { authorization: 'Bearer t' } })).json();
            expect(first.value).toHaveLength(3);
            expect(first.value[0].id).toBe(`${pagingVault.url}/secrets/page-0`);
            expect(first.value[0]).not.toHaveProperty('value');
            expect(first.nextLink).toMatch(new RegExp(`^${pagingVault.url.replace(/\./g, '\\.')}/secrets\\?api-version=7\\.5&\\$skiptoken=[\\w-]+&maxresults=3$`));
            const last = await (await fetch(`${pagingVault.url}/secrets?api-version=7.5&maxresults=7`, { headers: { authorization: 'Bearer t' } })).json();
            expect(last.nextLink).toBeNull();
        });
    });

    describe('keys', () => {
        it('creates a P-256K key and signs ES256K digests that ethers recovers to the key address', async () => {
            const key = await keys.createEcKey('ledger-signer', { curve: 'P-256K' });
            expect(key.keyType).toBe('EC');
            expect(key.key!.crv).toBe('P-256K');
            expect(key.key!.x).toHaveLength(32);
            expect(key.key!.y).toHaveLength(32);
            expect(key.key!.d).toBeUndefined();
            expect(key.keyOperations).toEqual(['sign', 'verify']);
            expect(key.id).toBe(`${vault.url}/keys/ledger-signer/${key.properties.version}`);
            const address = addressOfJwk(key);

            const crypto = new CryptographyClient(key, credential, CLIENT_OPTIONS);
            for (const digest of [
                ethers.getBytes(ethers.keccak256(ethers.toUtf8Bytes('flexchange proposal 1'))),
                createHash('sha256').update('flexchange proposal 2').digest(),
            ]) {
                const signed = await crypto.sign('ES256K', digest);
                expect(signed.keyID).toBe(key.id);
                expect(signed.result).toHaveLength(64);
                expect(recoverSigners(digest, signed.result).addresses).toContain(address);
                expect((await crypto.verify('ES256K', digest, signed.result)).result).toBe(true);
                const otherDigest = createHash('sha256').update('something else').digest();
                expect((await crypto.verify('ES256K', otherDigest, signed.result)).result).toBe(false);
                const tampered = Buffer.from(signed.result);
                tampered[10] ^= 0xff;
                expect((await crypto.verify('ES256K', digest, tampered)).result).toBe(false);
            }
        });

        it('returns raw r||s without low-S normalisation, as Key Vault does (the caller normalises)', async () => {
            const key = await keys.getKey('ledger-signer');
            const crypto = new CryptographyClient(key, credential, CLIENT_OPTIONS);
            const address = addressOfJwk(key);
            let sawHighS = false;
            for (let i = 0; i < 40 && !sawHighS; i++) {
                const digest = ethers.getBytes(ethers.keccak256(ethers.toUtf8Bytes(`tx ${i}`)));
                const { result } = await crypto.sign('ES256K', digest);
                const recovered = recoverSigners(digest, result);
                expect(recovered.addresses).toContain(address);
                sawHighS ||= recovered.highS;
            }
            expect(sawHighS).toBe(true);
        });

        it('signs with an imported secp256k1 key (a known anvil account) to that account address', async () => {
            const privateKey = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
            const uncompressed = ethers.getBytes(new ethers.SigningKey(privateKey).publicKey);
            const imported = await keys.importKey('anvil-0', {
                kty: 'EC',
                crv: 'P-256K',
                d: ethers.getBytes(privateKey),
                x: uncompressed.subarray(1, 33),
                y: uncompressed.subarray(33, 65),
            });
            expect(imported.key!.d).toBeUndefined();
            expect(addressOfJwk(imported)).toBe('0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266');
            const digest = ethers.getBytes(ethers.id('hello anvil'));
            const { result } = await new CryptographyClient(imported, credential, CLIENT_OPTIONS).sign('ES256K', digest);
            expect(recoverSigners(digest, result).addresses).toContain('0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266');
        });

        it('agrees with OpenSSL on ES256 / ES256K / ES384 / ES512 in both directions', async () => {
            const cases = [
                { crv: 'P-256', alg: 'ES256', hash: 'sha256', node: 'P-256' },
                { crv: 'P-256K', alg: 'ES256K', hash: 'sha256', node: 'secp256k1' },
                { crv: 'P-384', alg: 'ES384', hash: 'sha384', node: 'P-384' },
                { crv: 'P-521', alg: 'ES512', hash: 'sha512', node: 'P-521' },
            ] as const;
            for (const c of cases) {
                const message = Buffer.from(`message for ${c.alg}`);
                const digest = createHash(c.hash).update(message).digest();

                // Vault signs, OpenSSL verifies.
                const key = await keys.createEcKey(`cross-${c.alg.toLowerCase()}`, { curve: c.crv });
                const pub = createPublicKey({ key: { kty: 'EC', crv: c.node, x: b64u(key.key!.x!), y: b64u(key.key!.y!) }, format: 'jwk' });
                const crypto = new CryptographyClient(key, credential, CLIENT_OPTIONS);
                const { result } = await crypto.sign(c.alg, digest);
                expect(nodeVerify(c.hash, message, { key: pub, dsaEncoding: 'ieee-p1363' }, result)).toBe(true);

                // OpenSSL signs, the vault verifies (the key imported into the vault).
                const local = generateKeyPairSync('ec', { namedCurve: c.node });
                const jwk = local.privateKey.export({ format: 'jwk' });
                const imported = await keys.importKey(`import-${c.alg.toLowerCase()}`, {
                    kty: 'EC',
                    crv: c.crv,
                    d: Buffer.from(jwk.d!, 'base64url'),
                    x: Buffer.from(jwk.x!, 'base64url'),
                    y: Buffer.from(jwk.y!, 'base64url'),
                });
                const signature = nodeSign(c.hash, message, { key: local.privateKey, dsaEncoding: 'ieee-p1363' });
                const verifier = new CryptographyClient(imported, credential, CLIENT_OPTIONS);
                expect((await verifier.verify(c.alg, digest, signature)).result).toBe(true);
                expect((await verifier.verify(c.alg, createHash(c.hash).update('other').digest(), signature)).result).toBe(false);
            }
        });

        it('rejects a mismatched algorithm or digest length with BadParameter', async () => {
            const key = await keys.getKey('ledger-signer');
            const crypto = new CryptographyClient(key, credential, CLIENT_OPTIONS);
            const wrongAlg = await failure(() => crypto.sign('ES256', randomBytes(32)));
            expect(wrongAlg.statusCode).toBe(400);
            expect(wrongAlg.code).toBe('BadParameter');
            const shortDigest = await failure(() => crypto.sign('ES256K', randomBytes(20)));
            expect(shortDigest.statusCode).toBe(400);
        });

        it('wraps and unwraps with RSA-OAEP and RSA-OAEP-256, and signs RS256 that OpenSSL verifies', async () => {
            const key = await keys.createRsaKey('kek', { keySize: 2048 });
            expect(key.keyType).toBe('RSA');
            expect(key.key!.n).toHaveLength(256);
            expect(Buffer.from(key.key!.e!).toString('hex')).toBe('010001');
            expect(key.key!.d).toBeUndefined();
            expect(key.keyOperations).toEqual(expect.arrayContaining(['wrapKey', 'unwrapKey', 'sign', 'verify']));
            const crypto = new CryptographyClient(key, credential, CLIENT_OPTIONS);
            const dataKey = randomBytes(32);
            for (const alg of ['RSA-OAEP', 'RSA-OAEP-256'] as const) {
                const wrapped = await crypto.wrapKey(alg, dataKey);
                expect(Buffer.from(wrapped.result).equals(dataKey)).toBe(false);
                const unwrapped = await crypto.unwrapKey(alg, wrapped.result);
                expect(Buffer.from(unwrapped.result).equals(dataKey)).toBe(true);
            }
            // The SDK wraps RSA-OAEP locally with the public key; make the vault do it too.
            const res = await rest(`/keys/kek/${key.properties.version}/wrapkey?api-version=7.5`, { method: 'POST', body: JSON.stringify({ alg: 'RSA-OAEP', value: b64u(dataKey) }) });
            expect(res.status).toBe(200);
            const wrappedByVault = await res.json();
            expect(wrappedByVault.kid).toBe(key.id);
            const unwrapped = await crypto.unwrapKey('RSA-OAEP', Buffer.from(wrappedByVault.value, 'base64url'));
            expect(Buffer.from(unwrapped.result).equals(dataKey)).toBe(true);

            const garbage = await failure(() => crypto.unwrapKey('RSA-OAEP-256', randomBytes(256)));
            expect(garbage.statusCode).toBe(400);

            const message = Buffer.from('rsa message');
            const signed = await crypto.sign('RS256', createHash('sha256').update(message).digest());
            const pub = createPublicKey({ key: { kty: 'RSA', n: b64u(key.key!.n!), e: b64u(key.key!.e!) }, format: 'jwk' });
            expect(nodeVerify('sha256', message, pub, signed.result)).toBe(true);
            expect((await crypto.verify('RS256', createHash('sha256').update(message).digest(), signed.result)).result).toBe(true);
        });

        it('refuses operations outside key_ops, and a second create adds a version', async () => {
            const key = await keys.createRsaKey('verify-only', { keySize: 2048, keyOps: ['verify'] });
            expect(key.keyOperations).toEqual(['verify']);
            const res = await rest(`/keys/verify-only/${key.properties.version}/sign?api-version=7.5`, { method: 'POST', body: JSON.stringify({ alg: 'RS256', value: b64u(randomBytes(32)) }) });
            expect(res.status).toBe(403);
            expect((await res.json()).error.code).toBe('Forbidden');

            const second = await keys.createRsaKey('verify-only', { keySize: 2048 });
            expect(second.properties.version).not.toBe(key.properties.version);
            expect((await keys.getKey('verify-only')).properties.version).toBe(second.properties.version);
            expect((await keys.getKey('verify-only', { version: key.properties.version })).keyOperations).toEqual(['verify']);
            const versions: string[] = [];
            for await (const p of keys.listPropertiesOfKeyVersions('verify-only')) versions.push(p.version!);
            expect(versions).toHaveLength(2);

            const badSize = await failure(() => keys.createRsaKey('odd-size', { keySize: 1024 }));
            expect(badSize.statusCode).toBe(400);
            expect(badSize.code).toBe('BadParameter');
        });

        it('lists keys, soft-deletes one, and never returns private material', async () => {
            const names: string[] = [];
            for await (const p of keys.listPropertiesOfKeys()) names.push(p.name);
            expect(names).toEqual(expect.arrayContaining(['ledger-signer', 'kek']));

            await keys.createEcKey('short-lived', { curve: 'P-256K' });
            const deleted = await (await keys.beginDeleteKey('short-lived')).pollUntilDone();
            expect(deleted.properties.recoveryId).toBe(`${vault.url}/deletedkeys/short-lived`);
            const fetched = await keys.getDeletedKey('short-lived');
            expect(fetched.key!.crv).toBe('P-256K');
            expect(fetched.key!.d).toBeUndefined();
            const missing = await failure(() => keys.getKey('short-lived'));
            expect(missing.statusCode).toBe(404);
            expect(missing.code).toBe('KeyNotFound');
            const reuse = await failure(() => keys.createEcKey('short-lived', { curve: 'P-256K' }));
            expect(reuse.statusCode).toBe(409);
            await keys.purgeDeletedKey('short-lived');
            expect((await failure(() => keys.getDeletedKey('short-lived'))).statusCode).toBe(404);

            const raw = await (await rest('/keys/kek?api-version=7.5')).json();
            for (const field of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) expect(raw.key).not.toHaveProperty(field);
        });
    });

    describe('persistence', () => {
        it('survives stop and start with the same master key, encrypted at rest', async () => {
            const pDir = tempDir('flexchange-kv-persist-');
            const key = randomBytes(32);
            try {
                const first = startVault(pDir, key);
                await first.start(0);
                const c1 = new SecretClient(first.url, credential, CLIENT_OPTIONS);
                const k1 = new KeyClient(first.url, credential, CLIENT_OPTIONS);
                const v1 = await c1.setSecret('persisted', 'plaintext-marker-1');
                await c1.setSecret('persisted', 'plaintext-marker-2');
                await c1.setSecret('deleted-one', 'gone');
                await (await c1.beginDeleteSecret('deleted-one')).pollUntilDone();
                const signer = await k1.createEcKey('signer', { curve: 'P-256K' });
                const address = addressOfJwk(signer);
                await first.stop();

                const onDisk = readFileSync(first.stateFile);
                expect(onDisk.includes(Buffer.from('plaintext-marker'))).toBe(false);
                expect(onDisk.includes(Buffer.from('persisted'))).toBe(false);

                const second = startVault(pDir, key);
                await second.start(0);
                try {
                    const c2 = new SecretClient(second.url, credential, CLIENT_OPTIONS);
                    const k2 = new KeyClient(second.url, credential, CLIENT_OPTIONS);
                    expect((await c2.getSecret('persisted')).value).toBe('plaintext-marker-2');
                    expect((await c2.getSecret('persisted', { version: v1.properties.version })).value).toBe('plaintext-marker-1');
                    expect((await c2.getDeletedSecret('deleted-one')).name).toBe('deleted-one');
                    expect((await failure(() => c2.getSecret('deleted-one'))).statusCode).toBe(404);
                    const reloaded = await k2.getKey('signer');
                    expect(reloaded.properties.version).toBe(signer.properties.version);
                    expect(addressOfJwk(reloaded)).toBe(address);
                    const digest = ethers.getBytes(ethers.id('after restart'));
                    const { result } = await new CryptographyClient(reloaded, credential, CLIENT_OPTIONS).sign('ES256K', digest);
                    expect(recoverSigners(digest, result).addresses).toContain(address);
                } finally {
                    await second.stop();
                }
            } finally {
                removeDir(pDir);
            }
        });

        it('refuses to start with a wrong master key and leaves the state untouched', async () => {
            const pDir = tempDir('flexchange-kv-wrongkey-');
            const key = randomBytes(32);
            try {
                const original = startVault(pDir, key);
                await original.start(0);
                await new SecretClient(original.url, credential, CLIENT_OPTIONS).setSecret('kept', 'value');
                await original.stop();
                const before = readFileSync(original.stateFile);

                const intruder = startVault(pDir, randomBytes(32));
                await expect(intruder.start(0)).rejects.toThrow(/master key/);
                expect(() => intruder.url).toThrow(/not running/);
                expect(readFileSync(original.stateFile).equals(before)).toBe(true);

                const again = startVault(pDir, key);
                await again.start(0);
                try {
                    expect((await new SecretClient(again.url, credential, CLIENT_OPTIONS).getSecret('kept')).value).toBe('value');
                } finally {
                    await again.stop();
                }
            } finally {
                removeDir(pDir);
            }
        });

        it('rejects a master key that is not 32 bytes and an invalid vault name', () => {
            expect(() => startVault(dir, randomBytes(16))).toThrow(/32 bytes/);
            expect(() => startVault(dir, randomBytes(32), { name: 'x' })).toThrow(/Invalid Key Vault name/);
        });

        it('reports a port in use clearly', async () => {
            const portDir = tempDir('flexchange-kv-port-');
            const other = startVault(portDir, randomBytes(32), { name: 'port-clash' });
            const port = Number(new URL(vault.url).port);
            try {
                await expect(other.start(port)).rejects.toThrow(`Port ${port} for the local Key Vault "port-clash" is already in use`);
            } finally {
                removeDir(portDir);
            }
        });
    });

    describe('Azure RBAC', () => {
        it('gives 403 ForbiddenByRbac to a caller without the role for secrets or keys, and changes nothing', async () => {
            const vDir = tempDir('flexchange-kv-rbac-');
            const roles: Record<string, ('Key Vault Secrets Officer' | 'Key Vault Crypto Officer')[]> = {
                owner: ['Key Vault Secrets Officer', 'Key Vault Crypto Officer'],
                secretsOnly: ['Key Vault Secrets Officer'],
            };
            const vault = startVault(vDir, randomBytes(32), {
                name: 'rbac-vault',
                verifyToken: async (token) => ({ oid: token, appId: `app-${token}` }),
                rolesOf: (caller) => roles[caller.oid] ?? [],
            });
            await vault.start(0);
            try {
                const as = (oid: string) => new SecretClient(vault.url, new FixedTokenCredential(oid), CLIENT_OPTIONS);
                await as('owner').setSecret('kept', 'v1');
                const stranger = await failure(() => as('stranger').getSecret('kept'));
                expect(stranger.statusCode).toBe(403);
                expect(stranger.code).toBe('Forbidden');
                expect(stranger.message).toMatch(/oid=stranger.*Key Vault Secrets Officer/s);
                expect((await failure(() => as('stranger').setSecret('kept', 'overwritten'))).statusCode).toBe(403);
                // The raw answer: Key Vault's error shape with the inner code.
                const raw = await fetch(`${vault.url}/secrets/kept?api-version=7.5`, { headers: { authorization: 'Bearer stranger' } });
                expect(raw.status).toBe(403);
                expect((await raw.json()).error.innererror.code).toBe('ForbiddenByRbac');
                // A role covers its half of the vault only.
                expect((await as('secretsOnly').getSecret('kept')).value).toBe('v1');
                expect((await fetch(`${vault.url}/keys?api-version=7.5`, { headers: { authorization: 'Bearer secretsOnly' } })).status).toBe(403);
                expect((await fetch(`${vault.url}/keys?api-version=7.5`, { headers: { authorization: 'Bearer owner' } })).status).toBe(200);
                // Nothing the refused writes asked for happened.
                const versions: string[] = [];
                for await (const p of as('owner').listPropertiesOfSecretVersions('kept')) versions.push(p.version!);
                expect(versions).toHaveLength(1);
                expect((await as('owner').getSecret('kept')).value).toBe('v1');
            } finally {
                await vault.stop();
                removeDir(vDir);
            }
        });
    });

    describe('token verification', () => {
        it('gives 401 for a token the verifier rejects, and serves one it accepts', async () => {
            const vDir = tempDir('flexchange-kv-verify-');
            const seen: string[] = [];
            const guarded = startVault(vDir, randomBytes(32), {
                name: 'guarded-vault',
                verifyToken: async (token) => {
                    seen.push(token);
                    return token === 'good-token' ? { oid: 'good' } : undefined;
                },
            });
            await guarded.start(0);
            try {
                const rejectedCredential = new FixedTokenCredential('bad-token');
                const rejected = await failure(() => new SecretClient(guarded.url, rejectedCredential, CLIENT_OPTIONS).setSecret('x', 'y'));
                expect(rejected.statusCode).toBe(401);
                expect(rejectedCredential.calls.length).toBeGreaterThanOrEqual(1);
                expect(seen).toContain('bad-token');

                const raw = await fetch(`${guarded.url}/secrets?api-version=7.5`, { headers: { authorization: 'Bearer bad-token' } });
                expect(raw.status).toBe(401);
                expect((await raw.json()).error.code).toBe('Unauthorized');
                expect(raw.headers.get('www-authenticate')).toContain('resource="https://vault.azure.net"');

                const client = new SecretClient(guarded.url, new FixedTokenCredential('good-token'), CLIENT_OPTIONS);
                await client.setSecret('x', 'y');
                expect((await client.getSecret('x')).value).toBe('y');
                // The rejected write did not happen before the accepted one: one version only.
                const versions: string[] = [];
                for await (const p of client.listPropertiesOfSecretVersions('x')) versions.push(p.version!);
                expect(versions).toHaveLength(1);
            } finally {
                await guarded.stop();
                removeDir(vDir);
            }
        });
    });
});
