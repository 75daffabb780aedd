import { readFileSync } from 'node:fs';
import path from 'node:path';
import { KeyClient } from '@azure/keyvault-keys';
import { SecretClient } from '@azure/keyvault-secrets';
import { BlobServiceClient } from '@azure/storage-blob';
import { LocalIssuerCredential } from '../../shared/vault/credential';
import { devToken, removeDir, repoRoot, RunningDevhost, startDevhost } from '../harness/devhost';
import { onboard, type OnboardedOrg } from '../harness/journeys';

interface Backup {
    backupId: string;
    accounts: number;
    inArchive?: number;
    checksum: string;
}

/** Keystore backups on a member deployment: an encrypted archive per backup, restore verified by address, tampering refused, retention. */
describe('keystore backup and restore', () => {
    let host: RunningDevhost;
    let org: OnboardedOrg;
    let admin: string;

    beforeAll(async () => {
        // Retention for every instance (member deployments take the devhost's environment, not the core's --set).
        host = await startDevhost(['--app', repoRoot, '--name', 'core', '--set', 'FLEXCHANGE_APPROVERS=approver@operator.example'], { storage: true, env: { FLEXCHANGE_BACKUP_KEEP_LAST: '2', FLEXCHANGE_BACKUP_KEEP_DAYS: '0' } });
        org = await onboard(host, 'Keep Safe', 'kim@keepsafe.example');
        admin = await devToken(host, { roles: ['Org.Admin'], email: 'kim@keepsafe.example' });
    }, 120_000);
    afterAll(async () => {
        await host?.stop();
        removeDir(host?.stateDir);
    });

    const member = (p: string, body?: unknown) =>
        fetch(`${org.memberUrl}/${p}`, { method: body === undefined ? 'GET' : 'POST', headers: { authorization: `Bearer ${admin}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) });
    /** The member's own vault, with the member app's identity (as the app itself reaches it). */
    const memberVault = async () => {
        const services = (await (await fetch(`${host.consoleUrl}/dev/services`)).json()) as { services: Record<string, string> };
        const url = services.services[`vault:member-${org.orgId}`]!;
        return new SecretClient(url, new LocalIssuerCredential(services.services.issuer!, `flexchange-member-${org.orgId}`), { disableChallengeResourceVerification: true, allowInsecureConnection: true } as never);
    };
    const blobs = () => BlobServiceClient.fromConnectionString((JSON.parse(readFileSync(path.join(host.stateDir, 'storage.json'), 'utf8')) as { connectionString: string }).connectionString).getContainerClient('keystore-backups');

    it('backs up every key, restores them into an emptied vault with every address verified, refuses a tampered archive, and keeps what retention says', async () => {
        expect((await member('accounts', { label: 'second desk' })).status).toBe(201);
        const accounts = ((await (await member('accounts')).json()) as { items: { address: string }[] }).items.map((a) => a.address).sort();
        expect(accounts).toHaveLength(2);

        const made = await member('keystore/backups', {});
        expect(made.status).toBe(201);
        const backup = (await made.json()) as Backup;
        expect(backup).toMatchObject({ accounts: 2, inArchive: 2, checksum: expect.stringMatching(/^[0-9a-f]{64}$/) });
        const listed = ((await (await member('keystore/backups')).json()) as { items: Backup[] }).items;
        expect(listed.map((b) => [b.backupId, b.checksum])).toContainEqual([backup.backupId, backup.checksum]);
        // The archive holds no key in the clear.
        const raw = (await blobs().getBlobClient(`${org.orgId}/${backup.backupId}.json`).downloadToBuffer()).toString();
        expect(raw).not.toMatch(/"crypto"|"ciphertext":"[^"]*"address"/);
        for (const a of accounts) expect(raw).toContain(a);

        // Everything present: a dry run says so.
        const present = (await (await member('keystore/restore', { backupId: backup.backupId, dryRun: true })).json()) as { accounts: { address: string; action: string; verified: boolean }[] };
        expect(present.accounts.map((a) => a.action)).toEqual(['present', 'present']);

        // The keys are lost from the vault (deleted and purged)...
        const vault = await memberVault();
        const names: string[] = [];
        for await (const p of vault.listPropertiesOfSecrets()) if (/^acct-/.test(p.name)) names.push(p.name);
        expect(names).toHaveLength(4); // two keystores and their passwords
        for (const name of names) {
            await (await vault.beginDeleteSecret(name)).pollUntilDone();
            await vault.purgeDeletedSecret(name);
        }
        const dry = (await (await member('keystore/restore', { backupId: backup.backupId, dryRun: true })).json()) as { dryRun: boolean; accounts: { address: string; action: string; verified: boolean }[] };
        expect(dry.accounts.map((a) => [a.action, a.verified])).toEqual([['would-restore', true], ['would-restore', true]]);
        const none: string[] = [];
        for await (const p of vault.listPropertiesOfSecrets()) if (/^acct-/.test(p.name)) none.push(p.name);
        expect(none).toEqual([]);
        // ...and restored: every key derives the address its manifest records.
        const restored = (await (await member('keystore/restore', { backupId: backup.backupId, dryRun: false })).json()) as { accounts: { address: string; action: string; verified: boolean }[] };
        expect(restored.accounts.map((a) => a.address).sort()).toEqual(accounts);
        expect(restored.accounts.every((a) => a.action === 'restored' && a.verified)).toBe(true);
        const back: string[] = [];
        for await (const p of vault.listPropertiesOfSecrets()) if (/^acct-/.test(p.name)) back.push(p.name);
        expect(back.sort()).toEqual(names.sort());

        // A byte flipped in the archive: refused before anything is written.
        const tampered = Buffer.from(raw);
        const at = tampered.indexOf('"ciphertext":"') + 20;
        tampered[at] = tampered[at] === 0x41 ? 0x42 : 0x41;
        const second = (await (await member('keystore/backups', {})).json()) as Backup;
        await blobs().getBlockBlobClient(`${org.orgId}/${second.backupId}.json`).upload(tampered, tampered.length);
        const refused = await member('keystore/restore', { backupId: second.backupId, dryRun: true });
        expect(refused.status).toBe(422);
        expect(((await refused.json()) as { detail: string }).detail).toMatch(/refused/);
        expect((await member('keystore/restore', { backupId: '20200101T000000000-deadbeef', dryRun: true })).status).toBe(404);

        // The wrapping key rotated (a new version): the backup made before still restores, a new one uses the new version.
        const services = (await (await fetch(`${host.consoleUrl}/dev/services`)).json()) as { services: Record<string, string> };
        const keys = new KeyClient(services.services[`vault:member-${org.orgId}`]!, new LocalIssuerCredential(services.services.issuer!, `flexchange-member-${org.orgId}`), { disableChallengeResourceVerification: true, allowInsecureConnection: true } as never);
        const rotated = await keys.createRsaKey('keystore-backup-wrap', { keySize: 3072, keyOps: ['wrapKey', 'unwrapKey'] });
        const oldOne = (await (await member('keystore/restore', { backupId: backup.backupId, dryRun: true })).json()) as { accounts: { action: string; verified: boolean }[] };
        expect(oldOne.accounts.map((a) => [a.action, a.verified])).toEqual([['present', true], ['present', true]]);
        const afterRotation = (await (await member('keystore/backups', {})).json()) as Backup;
        const newRaw = JSON.parse((await blobs().getBlobClient(`${org.orgId}/${afterRotation.backupId}.json`).downloadToBuffer()).toString()) as { encryption: { wrappingKeyId: string } };
        expect(newRaw.encryption.wrappingKeyId).toBe(rotated.id);

        // Retention (keep the newest 2, nothing by age): a fourth backup leaves exactly the last two.
        const fourth = (await (await member('keystore/backups', {})).json()) as Backup;
        const kept = ((await (await member('keystore/backups')).json()) as { items: Backup[] }).items.map((b) => b.backupId);
        expect(kept).toEqual([fourth.backupId, afterRotation.backupId]);
        // Another organisation's admin cannot reach any of it.
        const outsider = await devToken(host, { roles: ['Org.Admin'], orgId: 'other-org', email: 'x@other.example' });
        expect((await fetch(`${org.memberUrl}/keystore/backups`, { headers: { authorization: `Bearer ${outsider}` } })).status).toBe(403);
    }, 120_000);
});
