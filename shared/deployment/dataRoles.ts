import { createHash } from 'node:crypto';
import { EVENTS_TOPIC } from '../services';
import { memberResourceNames } from './resourceNames';

/**
 * Who may use which data, as one table: the Azure built-in data-plane roles each deployment's app
 * identity holds, and on what. infra/core.json and infra/member.json assign these roles (by the
 * ids below; test/unit/infraTemplates.test.ts holds them to it), and the devhost's vault and
 * Service Bus stand-ins refuse any identity this table does not grant (devprofile), so an access
 * that would be refused in Azure is refused locally first. infra/README.md ("Identities and RBAC")
 * explains each row.
 */
export const DATA_ROLE_IDS = {
    'Key Vault Secrets Officer': 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7',
    'Key Vault Crypto Officer': '14b46e9e-c2b7-41b4-b07b-48a6ebf60603',
    'Azure Service Bus Data Owner': '090c5cfd-751d-490a-894a-3ce6f1109419',
    'Azure Service Bus Data Sender': '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39',
    'Azure Service Bus Data Receiver': '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0',
    /** A Cosmos DB SQL role (sqlRoleAssignments), not an Azure RBAC role. */
    'Cosmos DB Built-in Data Contributor': '00000000-0000-0000-0000-000000000002',
} as const;

export type DataRole = keyof typeof DATA_ROLE_IDS;
export type VaultRole = Extract<DataRole, `Key Vault ${string}`>;
export type BusRole = Extract<DataRole, `Azure Service Bus ${string}`>;
export type CosmosRole = Extract<DataRole, `Cosmos DB ${string}`>;

export type DataGrant =
    /** On the deployment's own Key Vault (each deployment has one; no identity is granted another's). */
    | { role: VaultRole; scope: 'own-vault' }
    /** On the core's Service Bus namespace (no entity) or one entity of it (`<topic>/Subscriptions/<name>`, a queue, a topic). */
    | { role: BusRole; scope: 'service-bus'; entity?: string }
    /** On the deployment's own document database (in Azure its own Cosmos DB account; locally its database on the shared server). */
    | { role: CosmosRole; scope: 'own-database' };

/**
 * A role assignment's name (a GUID, as ARM requires) derived from what it assigns, as the templates'
 * `guid(scope, principal, role)`: assigning again finds the same assignment instead of a duplicate.
 */
export function roleAssignmentName(scope: string, principalId: string, roleId: string): string {
    const h = createHash('sha256').update(`${scope.toLowerCase()}|${principalId.toLowerCase()}|${roleId.toLowerCase()}`).digest('hex');
    // RFC 4122 layout, version 5 and variant bits set: a well-formed GUID.
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16], 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The Service Bus entity path of an organisation's subscription on the events topic. */
export function memberSubscriptionPath(orgId: string): string {
    return `${EVENTS_TOPIC}/Subscriptions/${memberResourceNames(orgId).serviceBusSubscription}`;
}

/**
 * The data roles of a deployment's app identity: officer of its own vault's secrets and keys and
 * data contributor of its own document database; the
 * core owns the Service Bus namespace (it publishes events and creates members' subscriptions); a
 * member only receives from its own subscription.
 */
export function dataGrants(deployment: { role: 'core' } | { role: 'member'; orgId: string }): DataGrant[] {
    const vault: DataGrant[] = [
        { role: 'Key Vault Secrets Officer', scope: 'own-vault' },
        { role: 'Key Vault Crypto Officer', scope: 'own-vault' },
        { role: 'Cosmos DB Built-in Data Contributor', scope: 'own-database' },
    ];
    if (deployment.role === 'core') return [...vault, { role: 'Azure Service Bus Data Owner', scope: 'service-bus' }];
    return [...vault, { role: 'Azure Service Bus Data Receiver', scope: 'service-bus', entity: memberSubscriptionPath(deployment.orgId) }];
}
