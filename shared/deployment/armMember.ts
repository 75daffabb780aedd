import { ResourceManagementClient } from '@azure/arm-resources';
import type { TokenCredential } from '@azure/core-auth';
import memberTemplate from '../../infra/member.json';
import type { Settings } from '../config';
import { Unavailable } from '../errors';
import { ArmDeploymentController } from './armDeploymentController';
import { memberResourceNames } from './resourceNames';

/** The Azure deployment controller from settings: infra/member.json with the parameters it needs (none secret). */
export function armDeploymentController(settings: Settings, credential: TokenCredential): ArmDeploymentController {
    const subscription = settings.FLEXCHANGE_MEMBER_SUBSCRIPTION_ID;
    const genesis = settings.FLEXCHANGE_MEMBER_GENESIS_B64;
    const sshKey = settings.FLEXCHANGE_MEMBER_NODE_SSH_KEY;
    if (!subscription || !genesis || !sshKey || !settings.FLEXCHANGE_PUBLIC_URL || !settings.FLEXCHANGE_SERVICEBUS_NAMESPACE) {
        throw new Unavailable('Member deployments need FLEXCHANGE_MEMBER_SUBSCRIPTION_ID, FLEXCHANGE_MEMBER_GENESIS_B64, FLEXCHANGE_MEMBER_NODE_SSH_KEY, FLEXCHANGE_PUBLIC_URL and FLEXCHANGE_SERVICEBUS_NAMESPACE');
    }
    return new ArmDeploymentController(new ResourceManagementClient(credential, subscription), {
        resourceGroupPrefix: settings.FLEXCHANGE_MEMBER_RESOURCE_GROUP_PREFIX,
        scope: subscription,
        location: settings.FLEXCHANGE_MEMBER_LOCATION,
        template: MEMBER_TEMPLATE,
        parameters: (orgId) => memberParameters(settings, orgId),
    });
}

export const MEMBER_TEMPLATE = memberTemplate as Record<string, unknown>;

/** The parameters of infra/member.json for one organisation. */
export function memberParameters(settings: Settings, orgId: string): Record<string, unknown> {
    // Every name from one place (resourceNames.ts); the globally unique ones within the member subscription.
    const names = memberResourceNames(orgId, { resourceGroupPrefix: settings.FLEXCHANGE_MEMBER_RESOURCE_GROUP_PREFIX, scope: settings.FLEXCHANGE_MEMBER_SUBSCRIPTION_ID });
    return {
        namePrefix: names.namePrefix,
        vaultName: names.keyVault,
        storageAccountName: names.storageAccount,
        cosmosAccountName: names.cosmosAccount,
        functionAppName: names.functionApp,
        scaleSetName: names.scaleSet,
        taskHub: names.taskHub,
        orgId,
        chainId: settings.FLEXCHANGE_CHAIN_ID,
        genesisJsonBase64: settings.FLEXCHANGE_MEMBER_GENESIS_B64,
        adminPublicKey: settings.FLEXCHANGE_MEMBER_NODE_SSH_KEY,
        coreApiUrl: `${(settings.FLEXCHANGE_PUBLIC_URL ?? '').replace(/\/$/, '')}/api`,
        coreServiceBusNamespace: settings.FLEXCHANGE_SERVICEBUS_NAMESPACE ?? '',
        authIssuer: settings.FLEXCHANGE_AUTH_ISSUER,
        authJwksUri: settings.FLEXCHANGE_AUTH_JWKS_URI,
        apiAudience: settings.FLEXCHANGE_AUTH_AUDIENCE,
        // The member accepts the core's tokens as the core does (a v2 token names the API by its client id).
        apiAudiences: (settings.FLEXCHANGE_AUTH_AUDIENCES ?? []).join(','),
        chainConfirmations: settings.FLEXCHANGE_CHAIN_CONFIRMATIONS,
    };
}
