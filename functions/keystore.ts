import { app } from '@azure/functions';
import { z } from 'zod';
import { getServices } from '../shared/composition';
import { actorOf, deploymentRole, httpRoute } from './http/route';

/** POST /api/keystore/backups (member, Org.Admin): back every account key up now. */
httpRoute('keystoreBackup', {
    route: 'keystore/backups',
    methods: ['POST'],
    deployments: ['member'],
    access: { roles: ['Org.Admin'] },
    noBody: true,
    summary: 'Back up this deployment’s account keys now (encrypted archive in Blob storage)',
    handler: async ({ caller }) => {
        const services = getServices();
        const summary = await services.keystoreBackups().backup();
        await services.audit.record({ orgId: services.settings.FLEXCHANGE_ORG_ID!, actor: actorOf(caller!), action: 'keystore.backed_up', target: summary.backupId, details: { accounts: summary.accounts, checksum: summary.checksum } });
        return { status: 201, jsonBody: summary };
    },
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
    handler: async ({ body, caller }) => {
        const services = getServices();
        const report = await services.keystoreBackups().restore(body.backupId, body.dryRun);
        if (!body.dryRun) await services.audit.record({ orgId: services.settings.FLEXCHANGE_ORG_ID!, actor: actorOf(caller!), action: 'keystore.restored', target: body.backupId, details: { restored: report.accounts.filter((a) => a.action === 'restored').length } });
        return { jsonBody: report };
    },
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
