/**
 * Flexchange's devhost profile: what the local host needs to know about this app and nothing
 * else does (package.json `devhost.profile` names its compiled file). The devhost loads it by
 * path; it reaches the app's own code from here, never the other way round.
 */
import { CosmosClient } from '@azure/cosmos';
import type { DevhostProfile } from '../devhost/profile';
import { EVM_VERSION } from '../contracts/evm';
import { APP_ROLES } from '../shared/auth/appRoles';
import { dataGrants } from '../shared/deployment/dataRoles';
import { memberResourceNames } from '../shared/deployment/resourceNames';
import { CosmosDirectory } from '../shared/directory/cosmosDirectory';
import { ensureDatabase } from '../shared/documents/containers';
import { ensureOperator } from './operator';


/** The core's directory (database `flexchange`), one per Cosmos endpoint the devhost runs. */
const directories = new Map<string, Promise<CosmosDirectory>>();

const isCore = (role: string | undefined) => (role ?? 'core') === 'core';

export const profile: DevhostProfile = {
    // The app roles the app registration declares in Azure (scripts/azure/appRegistration.ts).
    appRegistration: { audience: 'api://flexchange', roles: APP_ROLES.map((r) => r.value) },
    memberRoles: ['Deployment.Member'],
    // The chain runs the hardfork the contracts are built for (contracts/evm.ts), as the consortium's does.
    ledger: { hardfork: EVM_VERSION },

    // Its own task hub (the folder's settings name the core's: two apps on one hub take each other's
    // work), as infra/member.json gets it. The member's watchdog watches its own node; its transactions
    // go through that node first, the shared chain directly when the node does not answer.
    memberSettings({ orgId, node, ledgerUrl }): Record<string, string> {
        const taskHub = { FLEXCHANGE_TASK_HUB: memberResourceNames(orgId).taskHub };
        if (!node || !ledgerUrl) return taskHub;
        return {
            ...taskHub,
            FLEXCHANGE_NODES: JSON.stringify([{ nodeId: node.nodeId, rpcUrl: node.rpcUrl, enode: node.enode }]),
            FLEXCHANGE_LEDGER_RPC_URLS: `${node.rpcUrl},${ledgerUrl}`,
        };
    },

    // The deployment's table (shared/deployment/dataRoles.ts), which the templates assign in Azure.
    dataRoles({ role, orgId }) {
        return isCore(role) ? dataGrants({ role: 'core' }) : orgId ? dataGrants({ role: 'member', orgId }) : [];
    },

    async instanceStarted(instance, world) {
        if (!isCore(instance.role)) return;
        const clientId = instance.settings.FLEXCHANGE_CLIENT_ID;
        // The operator's first account: in the core's own vault, funded on the local chain.
        const operator = instance.vaultUrl && world.storage && world.identity ? await ensureOperator({ vaultUrl: instance.vaultUrl, issuer: world.identity.url, clientId, ledgerUrl: world.storage.ledger.url }) : undefined;
        // The core's app registration may call member deployments (Entra ID: an app role assignment).
        if (world.identity && clientId) world.identity.registerApp(clientId, ['Deployment.Core']);
        return operator ? { operator } : undefined;
    },

    /** Into the core's directory, as an admin adding a user would: the app takes a caller's organisation from there. */
    async enterPrincipal(principal, world) {
        const cosmos = world.storage?.cosmos;
        if (!cosmos) return;
        let directory = directories.get(cosmos.endpoint);
        if (!directory) {
            const client = new CosmosClient({ endpoint: cosmos.endpoint, key: cosmos.key, connectionPolicy: { enableEndpointDiscovery: false } });
            directory = ensureDatabase(client, 'flexchange').then((db) => new CosmosDirectory(db.container('directory'), 0));
            directories.set(cosmos.endpoint, directory);
        }
        await (await directory).register({
            id: principal.oid,
            orgId: principal.orgId,
            kind: principal.appOnly ? 'app' : 'user',
            email: principal.email?.toLowerCase(),
            name: principal.name,
            roles: principal.roles,
            createdAt: new Date().toISOString(),
            createdBy: 'devhost:/dev/token',
        });
    },
};
