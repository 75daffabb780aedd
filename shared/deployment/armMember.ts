import { ResourceManagementClient } from '@azure/arm-resources';
import type { TokenCredential } from '@azure/core-auth';
import memberTemplate from '../../infra/member.json';
import type { Settings } from '../config';
import { Unavailable } from '../errors';
import { contains } from '../net/addresses';
import { ArmDeploymentController } from './armDeploymentController';
import type { ReleasePackage } from './deploymentController';
import { OneDeployPublisher } from './oneDeploy';
import type { Repository } from '../documents/repository';
import { MemberNetworks, type MemberNetwork, type NetworkClaim } from './memberNetworks';
import { memberResourceNames } from './resourceNames';

/** Where a member's network comes from: the claims its address range is allocated under, and the consortium's nodes to boot from. */
export interface MemberNetworkSource {
    claims: Repository<NetworkClaim>;
    /** enode URLs of the consortium's registered nodes. */
    bootnodes(): Promise<string[]>;
}

/** The Azure deployment controller from settings: infra/member.json with the parameters it needs (none secret). */
export function armDeploymentController(settings: Settings, credential: TokenCredential, network: MemberNetworkSource, release?: ReleasePackage): ArmDeploymentController {
    const subscription = settings.FLEXCHANGE_MEMBER_SUBSCRIPTION_ID;
    const genesis = settings.FLEXCHANGE_MEMBER_GENESIS_B64;
    const sshKey = settings.FLEXCHANGE_MEMBER_NODE_SSH_KEY;
    const space = settings.FLEXCHANGE_MEMBER_ADDRESS_SPACE;
    const namespaceId = settings.FLEXCHANGE_SERVICEBUS_RESOURCE_ID;
    const besu = settings.FLEXCHANGE_BESU_VERSION && settings.FLEXCHANGE_BESU_SHA256;
    if (!subscription || !genesis || !sshKey || !settings.FLEXCHANGE_PUBLIC_URL || !settings.FLEXCHANGE_SERVICEBUS_NAMESPACE || !namespaceId || !space || !release || !besu) {
        throw new Unavailable(
            'Member deployments need FLEXCHANGE_MEMBER_SUBSCRIPTION_ID, FLEXCHANGE_MEMBER_GENESIS_B64, FLEXCHANGE_MEMBER_NODE_SSH_KEY, FLEXCHANGE_PUBLIC_URL, FLEXCHANGE_SERVICEBUS_NAMESPACE, FLEXCHANGE_SERVICEBUS_RESOURCE_ID, FLEXCHANGE_MEMBER_ADDRESS_SPACE, FLEXCHANGE_RELEASE_PACKAGE, FLEXCHANGE_BESU_VERSION and FLEXCHANGE_BESU_SHA256',
        );
    }
    // Members' nodes live in their VNets: the core accepts and probes nodes only inside the consortium's node network.
    if (!settings.FLEXCHANGE_NODE_NETWORK_RANGES.some((r) => contains(r, space))) {
        throw new Unavailable(`FLEXCHANGE_MEMBER_ADDRESS_SPACE ${space.text} is not inside FLEXCHANGE_NODE_NETWORK_RANGES (${settings.FLEXCHANGE_NODE_NETWORK_RANGES.map((r) => r.text).join(', ') || 'none'}): members' nodes there could not be registered`);
    }
    const networks = new MemberNetworks(network.claims, space);
    // Another cloud's ARM (or a local fake of it): its tokens are for `<endpoint>/.default`, which the client asks for itself.
    const endpoint = settings.FLEXCHANGE_ARM_ENDPOINT;
    const arm = (sub: string) => new ResourceManagementClient(credential, sub, { endpoint, $host: endpoint });
    return new ArmDeploymentController(arm(subscription), {
        resourceGroupPrefix: settings.FLEXCHANGE_MEMBER_RESOURCE_GROUP_PREFIX,
        scope: subscription,
        location: settings.FLEXCHANGE_MEMBER_LOCATION,
        template: MEMBER_TEMPLATE,
        parameters: async (orgId, own) => memberParameters(settings, orgId, { ...(await networks.allocate(orgId)), bootnodes: await network.bootnodes() }, own),
        // Organisations that keep their own subscription give the core's identity its roles there (infra/README.md).
        clientFor: arm,
        // The namespace may sit in another subscription than the members (the core's).
        serviceBus: { client: arm(namespaceId.split('/')[2]!), namespaceId },
        ...(settings.FLEXCHANGE_CORE_VNET_ID ? { coreNetwork: { client: arm(settings.FLEXCHANGE_CORE_VNET_ID.split('/')[2]!), vnetId: settings.FLEXCHANGE_CORE_VNET_ID } } : {}),
        // The package the core runs (its own deployment container, core.json) goes into each member's app.
        release: { ...release, publisher: new OneDeployPublisher(credential, `${endpoint}/.default`) },
        pollSeconds: settings.FLEXCHANGE_MEMBER_DEPLOYMENT_POLL_SECONDS,
    });
}

export const MEMBER_TEMPLATE = memberTemplate as Record<string, unknown>;

/**
 * The parameters of infra/member.json for one organisation: its names, the consortium's chain and
 * identity settings, and its network: its own address range, the consortium's nodes to boot from, and
 * the consortium's node network as the only peers allowed to its nodes' p2p port.
 */
export function memberParameters(settings: Settings, orgId: string, network: MemberNetwork & { bootnodes: string[] }, subscriptionId?: string): Record<string, unknown> {
    // Every name from one place (resourceNames.ts); the globally unique ones within the subscription it goes into.
    const names = memberResourceNames(orgId, { resourceGroupPrefix: settings.FLEXCHANGE_MEMBER_RESOURCE_GROUP_PREFIX, scope: subscriptionId ?? settings.FLEXCHANGE_MEMBER_SUBSCRIPTION_ID });
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
        vnetAddressPrefix: network.vnetAddressPrefix,
        functionsSubnetPrefix: network.functionsSubnetPrefix,
        nodesSubnetPrefix: network.nodesSubnetPrefix,
        privateEndpointsSubnetPrefix: network.privateEndpointsSubnetPrefix,
        bootnodes: network.bootnodes.join(','),
        allowedPeerAddressPrefixes: settings.FLEXCHANGE_NODE_NETWORK_RANGES.map((r) => r.text),
        // The consortium's one pinned client: the release the core's validators run.
        besuVersion: settings.FLEXCHANGE_BESU_VERSION ?? '',
        besuSha256: settings.FLEXCHANGE_BESU_SHA256 ?? '',
        besuDownloadUrl: settings.FLEXCHANGE_BESU_DOWNLOAD_URL ?? besuReleaseUrl(settings.FLEXCHANGE_BESU_VERSION ?? ''),
        coreVnetId: settings.FLEXCHANGE_CORE_VNET_ID ?? '',
    };
}

/** Where a Besu release's archive is published (core.json's default of besuDownloadUrl). */
export const besuReleaseUrl = (version: string) => `https://github.com/hyperledger/besu/releases/download/${version}/besu-${version}.tar.gz`;
