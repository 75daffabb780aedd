import { loadSettings } from '../../shared/config';
import { armDeploymentController, MEMBER_TEMPLATE, memberParameters } from '../../shared/deployment/armMember';
import type { NetworkClaim } from '../../shared/deployment/memberNetworks';
import { memberResourceNames } from '../../shared/deployment/resourceNames';
import { MemoryRepository } from './fakes/memoryStores';
import type { BlobStore } from '../../shared/blobs/blobStore';

type Param = { type: string; defaultValue?: unknown; minLength?: number; maxLength?: number; minValue?: number; maxValue?: number };

/** What the core sends with infra/member.json fits what the template declares. */
describe('member deployment parameters', () => {
    const rawSettings = {
        COSMOS_ENDPOINT: 'https://core.documents.azure.com:443/',
        AzureWebJobsStorage: 'UseDevelopmentStorage=true',
        FLEXCHANGE_KEYVAULT_URL: 'https://core.vault.azure.net',
        FLEXCHANGE_AUTH_ISSUER: 'https://login.microsoftonline.com/tenant/v2.0',
        FLEXCHANGE_AUTH_JWKS_URI: 'https://login.microsoftonline.com/tenant/discovery/v2.0/keys',
        FLEXCHANGE_LEDGER_RPC_URLS: 'http://10.0.1.4:8545',
        FLEXCHANGE_CHAIN_ID: '4242',
        FLEXCHANGE_SMTP_URL: 'smtp://localhost:25',
        FLEXCHANGE_PUBLIC_URL: 'https://core.flexchange.example/',
        FLEXCHANGE_SERVICEBUS_NAMESPACE: 'fx-core.servicebus.windows.net',
        FLEXCHANGE_SERVICEBUS_RESOURCE_ID: '/subscriptions/99999999-1111-2222-3333-444444444444/resourceGroups/rg-core/providers/Microsoft.ServiceBus/namespaces/fx-core',
        FLEXCHANGE_MEMBER_SUBSCRIPTION_ID: '00000000-1111-2222-3333-444444444444',
        FLEXCHANGE_MEMBER_GENESIS_B64: Buffer.from('{"config":{}}').toString('base64'),
        FLEXCHANGE_MEMBER_NODE_SSH_KEY: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFlexchangeTestKey ops@example',
        FLEXCHANGE_NODE_NETWORK_RANGES: '10.30.0.0/16,10.64.0.0/10',
        FLEXCHANGE_MEMBER_ADDRESS_SPACE: '10.64.0.0/10',
        FLEXCHANGE_BESU_VERSION: '25.11.0',
        FLEXCHANGE_BESU_SHA256: 'ab'.repeat(32),
        FLEXCHANGE_CORE_VNET_ID: '/subscriptions/99999999-1111-2222-3333-444444444444/resourceGroups/rg-core/providers/Microsoft.Network/virtualNetworks/fx-core-vnet',
    };
    const network = { vnetAddressPrefix: '10.64.48.0/20', functionsSubnetPrefix: '10.64.49.0/24', nodesSubnetPrefix: '10.64.50.0/24', privateEndpointsSubnetPrefix: '10.64.51.0/24', bootnodes: [`enode://${'ab'.repeat(64)}@10.30.2.4:30303`, `enode://${'cd'.repeat(64)}@10.30.2.5:30303`] };
    const settings = loadSettings(rawSettings);
    const declared = (MEMBER_TEMPLATE as { parameters: Record<string, Param> }).parameters;

    it('gives every required parameter, only declared ones, within their bounds', () => {
        for (const orgId of ['acme-energy-9248f1', 'a', 'a-very-long-organisation-name-0123456789']) {
            const params = memberParameters(settings, orgId, network);
            for (const [name, p] of Object.entries(declared)) if (p.defaultValue === undefined) expect([name, params[name]]).toEqual([name, expect.anything()]);
            for (const [name, value] of Object.entries(params)) {
                const p = declared[name];
                expect([name, p]).toEqual([name, expect.anything()]);
                if (p.type === 'array') {
                    expect(Array.isArray(value)).toBe(true);
                } else if (p.type === 'int') {
                    expect(Number.isInteger(value)).toBe(true);
                    if (p.minValue !== undefined) expect(value as number).toBeGreaterThanOrEqual(p.minValue);
                    if (p.maxValue !== undefined) expect(value as number).toBeLessThanOrEqual(p.maxValue);
                } else {
                    expect(typeof value).toBe('string');
                    if (p.minLength !== undefined) expect((value as string).length).toBeGreaterThanOrEqual(p.minLength);
                    if (p.maxLength !== undefined) expect((value as string).length).toBeLessThanOrEqual(p.maxLength);
                }
            }
            expect(params.namePrefix).toMatch(/^[a-z0-9]{3,11}$/);
            expect(params.taskHub).toBe(memberResourceNames(orgId).taskHub);
            expect(params).toMatchObject({ orgId, chainId: 4242, coreApiUrl: 'https://core.flexchange.example/api', coreServiceBusNamespace: 'fx-core.servicebus.windows.net' });
            // Its own address range, the consortium's nodes to boot from, and only the consortium's node network as p2p peers.
            expect(params).toMatchObject({ vnetAddressPrefix: '10.64.48.0/20', functionsSubnetPrefix: '10.64.49.0/24', nodesSubnetPrefix: '10.64.50.0/24', privateEndpointsSubnetPrefix: '10.64.51.0/24', bootnodes: network.bootnodes.join(','), allowedPeerAddressPrefixes: ['10.30.0.0/16', '10.64.0.0/10'] });
        }
        // The consortium's one pinned client (the core's validators' release), and the core's VNet to peer with.
        expect(memberParameters(settings, 'acme', network)).toMatchObject({
            besuVersion: '25.11.0',
            besuSha256: 'ab'.repeat(32),
            besuDownloadUrl: 'https://github.com/hyperledger/besu/releases/download/25.11.0/besu-25.11.0.tar.gz',
            coreVnetId: rawSettings.FLEXCHANGE_CORE_VNET_ID,
        });
        expect(memberParameters(loadSettings({ ...rawSettings, FLEXCHANGE_BESU_DOWNLOAD_URL: 'https://mirror.example/besu.tar.gz' }), 'acme', network).besuDownloadUrl).toBe('https://mirror.example/besu.tar.gz');
        expect(() => loadSettings({ ...rawSettings, FLEXCHANGE_BESU_SHA256: 'not-a-digest' })).toThrow(/SHA-256/);
        expect(loadSettings({ ...rawSettings, FLEXCHANGE_LEDGER_BOOTNODES: ` ${network.bootnodes[0]}, ` }).FLEXCHANGE_LEDGER_BOOTNODES).toEqual([network.bootnodes[0]]);
        expect(() => loadSettings({ ...rawSettings, FLEXCHANGE_LEDGER_BOOTNODES: 'enode://nope@10.10.3.4:30303' })).toThrow(/enode:\/\/<128 hex>/);
        // In an organisation's own subscription the globally unique names are unique there.
        const own = memberParameters(settings, 'acme', network, '0b5e0e4c-1111-4222-8333-444455556666');
        expect(own.storageAccountName).not.toBe(memberParameters(settings, 'acme', network).storageAccountName);
        expect(own.orgId).toBe('acme');
        expect(memberParameters(settings, 'acme', network).namePrefix).not.toBe(memberParameters(settings, 'globex', network).namePrefix);
        // The member accepts what the core accepts: the API's client id (Entra ID v2 tokens) as well as its identifier URI.
        expect(memberParameters(settings, 'acme', network).apiAudiences).toBe('');
        const withClientId = loadSettings({ ...rawSettings, FLEXCHANGE_AUTH_AUDIENCES: '3f1c2a9e-5b7d-4e8f-9a0b-1c2d3e4f5a6b, api://flexchange' });
        expect(memberParameters(withClientId, 'acme', network).apiAudiences).toBe('3f1c2a9e-5b7d-4e8f-9a0b-1c2d3e4f5a6b,api://flexchange');
    });

    it('refuses to deploy members without an address space, or with one outside the consortium node network', () => {
        const source = { claims: new MemoryRepository<NetworkClaim>((c) => c.id), bootnodes: async () => [] };
        const credential = { getToken: async () => ({ token: 't', expiresOnTimestamp: Date.now() + 60_000 }) };
        const release = { blobs: {} as BlobStore, source: { container: 'app-package-fx-core', name: 'released-package.zip' } };
        expect(() => armDeploymentController(settings, credential, source, release)).not.toThrow();
        // Without the release package a member's app would stay empty: no deployment is started.
        expect(() => armDeploymentController(settings, credential, source)).toThrow('FLEXCHANGE_RELEASE_PACKAGE');
        expect(() => armDeploymentController(loadSettings({ ...rawSettings, FLEXCHANGE_MEMBER_ADDRESS_SPACE: '' }), credential, source, release)).toThrow('FLEXCHANGE_MEMBER_ADDRESS_SPACE');
        expect(() => armDeploymentController(loadSettings({ ...rawSettings, FLEXCHANGE_MEMBER_ADDRESS_SPACE: '172.16.0.0/12' }), credential, source, release)).toThrow('172.16.0.0/12 is not inside FLEXCHANGE_NODE_NETWORK_RANGES (10.30.0.0/16, 10.64.0.0/10)');
        expect(() => loadSettings({ ...rawSettings, FLEXCHANGE_MEMBER_ADDRESS_SPACE: 'ten-dot-something' })).toThrow();
        // Without the namespace's resource id the core could not grant a member its subscription.
        expect(() => armDeploymentController(loadSettings({ ...rawSettings, FLEXCHANGE_SERVICEBUS_RESOURCE_ID: undefined }), credential, source, release)).toThrow('FLEXCHANGE_SERVICEBUS_RESOURCE_ID');
        expect(() => loadSettings({ ...rawSettings, FLEXCHANGE_SERVICEBUS_RESOURCE_ID: 'fx-core.servicebus.windows.net' })).toThrow(/namespace resource id/);
        // Without the pinned client the member's nodes would have nothing verified to run.
        expect(() => armDeploymentController(loadSettings({ ...rawSettings, FLEXCHANGE_BESU_SHA256: undefined }), credential, source, release)).toThrow('FLEXCHANGE_BESU_SHA256');
    });
});
