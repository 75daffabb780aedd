import { CosmosClient } from '@azure/cosmos';
import { computeAddress, getAddress, keccak256, recoverAddress, Signature, toUtf8Bytes, Wallet } from 'ethers';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { AzureBlobStore } from '../../shared/blobs/azureBlobStore';
import { ensureDatabase } from '../../shared/documents/containers';
import { CosmosRepository } from '../../shared/documents/cosmosRepository';
import { LocalIssuerCredential } from '../../shared/vault/credential';
import { KeyVaultKeyStore, KeyVaultSecretStore } from '../../shared/vault/keyVault';
import { EVM_VERSION } from '../../contracts/evm';
import { jsonRpc } from '../../shared/ledger/jsonRpc';
import { fixture, flexchangeProfile, removeDir, RunningDevhost, startDevhost, tempDir } from '../harness/devhost';

interface Doc {
    id: string;
    orgId: string;
    note: string;
}

const SECP256K1_N = BigInt('0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141');

/** An Ethereum address from a vault signature: low-S normalised, recovery id found by trying both. */
function recover(digest: string, r: Buffer, s: Buffer, expected: string): string {
    let sValue = BigInt(`0x${s.toString('hex')}`);
    if (sValue > SECP256K1_N / 2n) sValue = SECP256K1_N - sValue;
    const sHex = `0x${sValue.toString(16).padStart(64, '0')}`;
    for (const v of [27, 28]) {
        const address = recoverAddress(digest, Signature.from({ r: `0x${r.toString('hex')}`, s: sHex, v }));
        if (address === expected) return address;
    }
    return 'no match';
}

describe('local services keep everything across a clean restart', () => {
    it('reads back documents, blobs, secret versions, vault keys, ledger state and the operator account', async () => {
        const stateDir = tempDir('flexchange-state-');
        // Flexchange's profile: the core's operator account is made and funded at start.
        const args = ['--profile', flexchangeProfile, '--app', fixture('basic-app'), '--name', 'core'];
        const connect = async (host: RunningDevhost) => {
            const info = JSON.parse(readFileSync(path.join(host.stateDir, 'storage.json'), 'utf8'));
            const services = (await (await fetch(`${host.consoleUrl}/dev/services`)).json()).services as Record<string, string>;
            const cosmos = new CosmosClient({ endpoint: info.cosmos.endpoint, key: info.cosmos.key, connectionPolicy: { enableEndpointDiscovery: false } });
            const db = await ensureDatabase(cosmos, 'restart');
            const credential = new LocalIssuerCredential(services.issuer, 'flexchange-core');
            return {
                info,
                services,
                docs: new CosmosRepository<Doc>(db.container('accounts'), (d) => d.orgId),
                blobs: AzureBlobStore.fromConnectionString(info.connectionString),
                secrets: new KeyVaultSecretStore(services['vault:core'], credential),
                keys: new KeyVaultKeyStore(services['vault:core'], credential),
            };
        };

        const first = await startDevhost(args, { stateDir, storage: true });
        const a = await connect(first);
        await a.docs.create({ id: 'd1', orgId: 'org-1', note: 'kept' });
        const blob = await a.blobs.createOnly('restart', 'org-1/contract.pdf', Buffer.from('%PDF-1.7 pretend'), { contentType: 'application/pdf' });
        const v1 = await a.secrets.set('api-secret', 'first');
        const v2 = await a.secrets.set('api-secret', 'second');
        const key = await a.keys.createSecp256k1Key('trader-key');
        const keyAddress = computeAddress(`0x${key.publicKey.toString('hex')}`);
        const probe = '0x00000000000000000000000000000000000f1e00';
        // The chain runs the hardfork the contracts are built for (the profile's), not anvil's newest.
        expect((await jsonRpc<{ hardFork: string }>(a.info.ledger.url, 'anvil_nodeInfo')).hardFork.toLowerCase()).toBe(EVM_VERSION);
        await jsonRpc(a.info.ledger.url, 'anvil_setBalance', [probe, '0x1234']);
        const heightBefore = Number(BigInt(await jsonRpc<string>(a.info.ledger.url, 'eth_blockNumber')));
        // The operator's key is an encrypted keystore in the vault, its password a separate secret.
        const operatorKey = (await a.secrets.get('ledger-operator'))!.value;
        const operator = getAddress(`0x${(JSON.parse(operatorKey) as { address: string }).address}`);
        expect((await Wallet.fromEncryptedJson(operatorKey, (await a.secrets.get('ledger-operator-password'))!.value)).address).toBe(operator);
        expect(BigInt(await jsonRpc<string>(a.info.ledger.url, 'eth_getBalance', [operator, 'latest']))).toBe(10n ** 24n);
        expect(await first.stop()).toBe(0);

        const second = await startDevhost(args, { stateDir, storage: true });
        try {
            const b = await connect(second);
            expect((await b.docs.read('d1', 'org-1'))?.item).toEqual({ id: 'd1', orgId: 'org-1', note: 'kept' });
            const got = await b.blobs.get('restart', 'org-1/contract.pdf');
            expect(got?.content.toString()).toBe('%PDF-1.7 pretend');
            expect(got?.blob.sha256).toBe(blob.sha256);
            expect(await b.secrets.get('api-secret')).toEqual({ value: 'second', version: v2.version });
            expect(await b.secrets.get('api-secret', v1.version)).toEqual({ value: 'first', version: v1.version });
            expect((await b.keys.publicKey('trader-key'))?.equals(key.publicKey)).toBe(true);
            const digest = keccak256(toUtf8Bytes('sign after restart'));
            const { r, s } = await b.keys.signDigest('trader-key', Buffer.from(digest.slice(2), 'hex'));
            expect(recover(digest, r, s, keyAddress)).toBe(keyAddress);
            expect(await jsonRpc<string>(b.info.ledger.url, 'eth_getBalance', [probe, 'latest'])).toBe('0x1234');
            expect(Number(BigInt(await jsonRpc<string>(b.info.ledger.url, 'eth_blockNumber')))).toBeGreaterThanOrEqual(heightBefore);
            // Same operator, still funded, key still only in the vault.
            expect((await b.secrets.get('ledger-operator'))!.value).toBe(operatorKey);
            expect(BigInt(await jsonRpc<string>(b.info.ledger.url, 'eth_getBalance', [operator, 'latest']))).toBe(10n ** 24n);
        } finally {
            await second.stop();
        }
        removeDir(stateDir);
    });
});
