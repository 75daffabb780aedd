import type { AuditRecord, AuditTrail } from '../audit/auditTrail';
import type { BackupSummary, KeystoreBackups, RestoreReport } from './keystoreBackups';

interface BackupActionPorts {
    backups: Pick<KeystoreBackups, 'backup' | 'restore'>;
    audit: Pick<AuditTrail, 'record'>;
    /** The member deployment's organisation, whose audit trail records the action. */
    orgId: string;
}

/** An admin backs every account key up now; recorded in the audit trail with the backup's checksum. */
export async function backUpKeysNow(ports: BackupActionPorts, actor: AuditRecord['actor']): Promise<BackupSummary> {
    const summary = await ports.backups.backup();
    await ports.audit.record({ orgId: ports.orgId, actor, action: 'keystore.backed_up', target: summary.backupId, details: { accounts: summary.accounts, checksum: summary.checksum } });
    return summary;
}

/** An admin restores keys from a backup (a dry run only reports, and is not recorded); each key verified against its address. */
export async function restoreKeys(ports: BackupActionPorts, backupId: string, dryRun: boolean, actor: AuditRecord['actor']): Promise<RestoreReport> {
    const report = await ports.backups.restore(backupId, dryRun);
    if (!dryRun) await ports.audit.record({ orgId: ports.orgId, actor, action: 'keystore.restored', target: backupId, details: { restored: report.accounts.filter((a) => a.action === 'restored').length } });
    return report;
}
