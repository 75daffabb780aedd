import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { Wallet } from 'ethers';
import type { MemberAccount } from '../accounts/memberAccounts';
import type { BlobStore } from '../blobs/blobStore';
import type { Repository } from '../documents/repository';
import { AppError, Conflict, NotFound } from '../errors';
import type { KeyStore, SecretStore } from '../vault/vault';

export const BACKUP_CONTAINER = 'keystore-backups';
/** The vault's RSA key that wraps each archive's data key. */
export const WRAPPING_KEY = 'keystore-backup-wrap';

/** What the manifest says of each account (addresses in the clear; keys only inside the encrypted part). */
export interface ManifestEntry {
    address: string;
    label: string;
    keyName: string;
    custody: 'keystore' | 'keyvault';
    /** Keystores are in the archive; Key Vault keys are not exportable and say how they are kept instead. */
    inArchive: boolean;
    protection?: string;
}

export interface BackupManifest {
    backupId: string;
    orgId: string;
    createdAt: string;
    accounts: ManifestEntry[];
}

/** The archive as stored (create-only) in Blob storage. */
interface Archive {
    format: 'flexchange-keystore-backup/1';
    manifest: BackupManifest;
    encryption: { alg: 'A256GCM'; iv: string; tag: string; wrappedKey: string; wrapAlg: 'RSA-OAEP-256'; wrappingKeyId: string };
    ciphertext: string;
    /** SHA-256 over the manifest, the encryption header and the ciphertext: any changed byte is found before decryption. */
    checksum: string;
}

interface SecretPayload {
    keys: { keyName: string; address: string; keystore: string; password: string }[];
}

export interface BackupSummary {
    backupId: string;
    createdAt: string;
    accounts: number;
    /** Known when the backup is made (listing reads only the blobs' metadata). */
    inArchive?: number;
    checksum: string;
    size: number;
}

export interface RestoreReport {
    backupId: string;
    dryRun: boolean;
    accounts: { address: string; keyName: string; custody: string; action: 'restored' | 'present' | 'would-restore' | 'not-in-archive'; verified: boolean }[];
}

const checksumOf = (a: Omit<Archive, 'checksum'>) => createHash('sha256').update(JSON.stringify([a.format, a.manifest, a.encryption, a.ciphertext])).digest('hex');

/**
 * Keystore backups of a member deployment: every account key exported from its vault into one
 * archive, encrypted with a fresh data key (AES-256-GCM) that is itself wrapped by an RSA key
 * that stays in the vault, written create-only to Blob storage, with retention. Restore checks
 * the checksum, decrypts, and proves every key derives the address the manifest records before
 * it writes anything.
 */
export class KeystoreBackups {
    constructor(
        private readonly deps: { orgId: string; accounts: Repository<MemberAccount>; secrets: SecretStore; keys: KeyStore; blobs: BlobStore },
        private readonly retention: { keepLast: number; keepDays: number },
    ) {}

    async backup(now = new Date()): Promise<BackupSummary> {
        const accounts = await this.#accounts();
        const backupId = `${now.toISOString().replace(/[-:.]/g, '').slice(0, 18)}-${randomBytes(4).toString('hex')}`;
        const payload: SecretPayload = { keys: [] };
        const entries: ManifestEntry[] = [];
        for (const a of accounts) {
            if (a.custody === 'keyvault') {
                entries.push({ address: a.address, label: a.label, keyName: a.id, custody: 'keyvault', inArchive: false, protection: 'Key Vault P-256K key, not exportable: kept by the vault (soft delete and purge protection; the vault backup of the key restores only into the same geography)' });
                continue;
            }
            const [keystore, password] = await Promise.all([this.deps.secrets.get(a.id), this.deps.secrets.get(`${a.id}-password`)]);
            if (!keystore || !password) throw new AppError(`The keystore of ${a.address} is missing from the vault`, 409, 'key_missing');
            payload.keys.push({ keyName: a.id, address: a.address, keystore: keystore.value, password: password.value });
            entries.push({ address: a.address, label: a.label, keyName: a.id, custody: 'keystore', inArchive: true });
        }
        const dataKey = randomBytes(32);
        const iv = randomBytes(12);
        const cipher = createCipheriv('aes-256-gcm', dataKey, iv);
        const ciphertext = Buffer.concat([cipher.update(JSON.stringify(payload), 'utf8'), cipher.final()]);
        const { wrapped, keyId } = await this.deps.keys.wrapKey(WRAPPING_KEY, dataKey);
        dataKey.fill(0);
        const unsigned: Omit<Archive, 'checksum'> = {
            format: 'flexchange-keystore-backup/1',
            manifest: { backupId, orgId: this.deps.orgId, createdAt: now.toISOString(), accounts: entries },
            encryption: { alg: 'A256GCM', iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), wrappedKey: wrapped.toString('base64'), wrapAlg: 'RSA-OAEP-256', wrappingKeyId: keyId },
            ciphertext: ciphertext.toString('base64'),
        };
        const archive: Archive = { ...unsigned, checksum: checksumOf(unsigned) };
        const stored = await this.deps.blobs.createOnly(BACKUP_CONTAINER, `${this.deps.orgId}/${backupId}.json`, Buffer.from(JSON.stringify(archive)), { contentType: 'application/json', metadata: { checksum: archive.checksum, accounts: String(entries.length) } });
        await this.applyRetention(now);
        return { backupId, createdAt: now.toISOString(), accounts: entries.length, inArchive: payload.keys.length, checksum: archive.checksum, size: stored.size };
    }

    async list(): Promise<BackupSummary[]> {
        const blobs = await this.deps.blobs.list(BACKUP_CONTAINER, `${this.deps.orgId}/`);
        return blobs
            .map((b) => {
                const backupId = b.name.slice(this.deps.orgId.length + 1).replace(/\.json$/, '');
                return { backupId, createdAt: idTime(backupId), accounts: Number(b.metadata.accounts ?? 0), checksum: b.metadata.checksum ?? '', size: b.size };
            })
            .sort((a, b) => b.backupId.localeCompare(a.backupId));
    }

    /**
     * Restores a backup into this deployment's vault: every key is decrypted and must derive the
     * address its manifest records, or nothing is written. Keys already in the vault are left as they are.
     */
    async restore(backupId: string, dryRun: boolean): Promise<RestoreReport> {
        if (!/^\d{8}T\d{9}-[0-9a-f]{8}$/.test(backupId)) throw new NotFound('No such backup');
        const blob = await this.deps.blobs.get(BACKUP_CONTAINER, `${this.deps.orgId}/${backupId}.json`);
        if (!blob) throw new NotFound('No such backup');
        const archive = this.#parse(blob.content);
        const payload = await this.#decrypt(archive);
        const byName = new Map(payload.keys.map((k) => [k.keyName, k]));
        const verified = new Map<string, boolean>();
        for (const entry of archive.manifest.accounts.filter((e) => e.inArchive)) {
            const key = byName.get(entry.keyName);
            if (!key) throw new AppError(`The archive has no key for ${entry.address}`, 422, 'backup_invalid');
            const wallet = await Wallet.fromEncryptedJson(key.keystore, key.password);
            if (wallet.address !== entry.address || key.address !== entry.address) throw new AppError(`The key for ${entry.address} derives ${wallet.address}: the backup is refused`, 422, 'backup_invalid');
            verified.set(entry.keyName, true);
        }
        const report: RestoreReport = { backupId, dryRun, accounts: [] };
        for (const entry of archive.manifest.accounts) {
            if (!entry.inArchive) {
                report.accounts.push({ address: entry.address, keyName: entry.keyName, custody: entry.custody, action: 'not-in-archive', verified: false });
                continue;
            }
            const present = await this.deps.secrets.get(entry.keyName);
            if (present) {
                const holds = JSON.parse(present.value) as { address?: string };
                if (`0x${String(holds.address ?? '').replace(/^0x/, '')}`.toLowerCase() !== entry.address.toLowerCase()) throw new Conflict(`The vault's ${entry.keyName} holds another key`, 'key_mismatch');
                report.accounts.push({ address: entry.address, keyName: entry.keyName, custody: entry.custody, action: 'present', verified: true });
                continue;
            }
            if (!dryRun) {
                const key = byName.get(entry.keyName)!;
                await this.deps.secrets.set(`${entry.keyName}-password`, key.password, { contentType: 'text/plain', tags: { address: entry.address, purpose: 'keystore-password' } });
                await this.deps.secrets.set(entry.keyName, key.keystore, { contentType: 'application/json', tags: { address: entry.address, custody: 'keystore', restoredFrom: backupId } });
                const record = await this.deps.accounts.read(entry.keyName, this.deps.orgId);
                if (!record) {
                    await this.deps.accounts.create({ id: entry.keyName, orgId: this.deps.orgId, address: entry.address, label: entry.label, custody: 'keystore', createdAt: archive.manifest.createdAt, registeredAt: archive.manifest.createdAt }).catch((err: unknown) => {
                        if (!(err instanceof Conflict)) throw err;
                    });
                }
            }
            report.accounts.push({ address: entry.address, keyName: entry.keyName, custody: entry.custody, action: dryRun ? 'would-restore' : 'restored', verified: verified.get(entry.keyName) === true });
        }
        return report;
    }

    /** Keeps the newest `keepLast` and everything younger than `keepDays`; removes the rest. */
    async applyRetention(now = new Date()): Promise<string[]> {
        const all = await this.list();
        const cutoff = now.getTime() - this.retention.keepDays * 86_400_000;
        const removed: string[] = [];
        for (const [i, b] of all.entries()) {
            if (i < this.retention.keepLast || Date.parse(b.createdAt) >= cutoff) continue;
            await this.deps.blobs.delete(BACKUP_CONTAINER, `${this.deps.orgId}/${b.backupId}.json`);
            removed.push(b.backupId);
        }
        return removed;
    }

    #parse(content: Buffer): Archive {
        let archive: Archive;
        try {
            archive = JSON.parse(content.toString('utf8')) as Archive;
        } catch {
            throw new AppError('The backup is not readable: refused', 422, 'backup_invalid');
        }
        const { checksum, ...rest } = archive;
        if (archive.format !== 'flexchange-keystore-backup/1' || checksum !== checksumOf(rest)) throw new AppError('The backup does not match its checksum: refused', 422, 'backup_invalid');
        return archive;
    }

    async #decrypt(archive: Archive): Promise<SecretPayload> {
        // The version that wrapped it: backups made before the wrapping key was rotated still restore.
        const version = /\/keys\/[^/]+\/([0-9a-zA-Z]+)$/.exec(archive.encryption.wrappingKeyId ?? '')?.[1];
        const dataKey = await this.deps.keys.unwrapKey(WRAPPING_KEY, Buffer.from(archive.encryption.wrappedKey, 'base64'), version);
        try {
            const decipher = createDecipheriv('aes-256-gcm', dataKey, Buffer.from(archive.encryption.iv, 'base64'));
            decipher.setAuthTag(Buffer.from(archive.encryption.tag, 'base64'));
            return JSON.parse(Buffer.concat([decipher.update(Buffer.from(archive.ciphertext, 'base64')), decipher.final()]).toString('utf8')) as SecretPayload;
        } catch {
            throw new AppError('The backup does not decrypt: refused', 422, 'backup_invalid');
        } finally {
            dataKey.fill(0);
        }
    }

    async #accounts(): Promise<MemberAccount[]> {
        const page = await this.deps.accounts.query({ query: 'SELECT * FROM c WHERE c.orgId = @org ORDER BY c.createdAt', parameters: [{ name: '@org', value: this.deps.orgId }] }, { partitionKey: this.deps.orgId, maxItemCount: 1000 });
        return page.items;
    }
}

/** `20261201T215900123-ab12cd34` → its ISO time. */
function idTime(backupId: string): string {
    const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})/.exec(backupId);
    return m ? `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${m[7]}Z` : new Date(0).toISOString();
}
