import { app } from '@azure/functions';
import { z } from 'zod';
import { getServices } from '../shared/composition';
import { backUpKeysNow, restoreKeys } from '../shared/keystore/backupActions';
import { actorOf, deploymentRole, httpRoute } from './http/route';

const backupActionPorts = () => {
    const services = getServices();
    return { backups: services.keystoreBackups(), audit: services.audit, orgId: services.settings.FLEXCHANGE_ORG_ID! };
};

/** POST /api/keystore/backups (member, Org.Admin): back every account key up now. */
httpRoute('keystoreBackup', {
    route: 'keystore/backups',
    methods: ['POST'],
    deployments: ['member'],
    access: { roles: ['Org.Admin'] },
    noBody: true,
    summary: 'Back up this deployment’s account keys now (encrypted archive in Blob storage)',
    handler: async ({ caller }) => ({ status: 201, jsonBody: await backUpKeysNow(backupActionPorts(), actorOf(caller!)) }),
});

/** GET /api/keystore/backups (member, Org.Admin): the backups kept, newest first, with their checksums. */
httpRoute('keystoreBackups', {
    route: 'keystore/backups',
    methods: ['GET'],
    deployments: ['member'],
    access: { roles: ['Org.Admin'] },
    summary: 'The keystore backups, newest first',
    handler: async () => ({ jsonBody: { items: await getServices().keystoreBackups().list() } }),
});

/** POST /api/keystore/restore (member, Org.Admin): `{ backupId, dryRun }` → what would be or was restored, each key verified against its address. */
httpRoute('keystoreRestore', {
    route: 'keystore/restore',
    methods: ['POST'],
    deployments: ['member'],
    access: { roles: ['Org.Admin'] },
    body: z.object({ backupId: z.string().min(1).max(64), dryRun: z.boolean().default(true) }).strict(),
    summary: 'Restore account keys from a backup (verified by address; dry run by default)',
    handler: async ({ body, caller }) => ({ jsonBody: await restoreKeys(backupActionPorts(), body.backupId, body.dryRun, actorOf(caller!)) }),
});

/** The member's keystore backup timer (daily by default). */
if (deploymentRole() === 'member') {
    app.timer('keystoreBackupTimer', {
        schedule: '%FLEXCHANGE_BACKUP_SCHEDULE%',
        handler: async (_timer, context) => {
            const summary = await getServices().keystoreBackups().backup();
            context.log(`keystore backup ${JSON.stringify({ backupId: summary.backupId, accounts: summary.accounts, checksum: summary.checksum })}`);
        },
    });
}
