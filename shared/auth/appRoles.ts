import { createHash } from 'node:crypto';

/** An app role of the API's app registration, as Entra ID (Microsoft Graph `appRole`) holds it. */
export interface AppRoleDefinition {
    value: string;
    displayName: string;
    description: string;
    /** `User`: people (and groups) are assigned it; `Application`: apps are (deployments' identities, an organisation's API clients, the operator's automation). */
    allowedMemberTypes: ('User' | 'Application')[];
}

/** The app roles of API.md ("Identity and roles"): what routes check, the devhost issues, and the app registration declares. */
export const APP_ROLES: readonly AppRoleDefinition[] = [
    { value: 'Flexchange.Admin', displayName: 'Flexchange operator', description: 'Operates the consortium: contracts, nodes, organisations.', allowedMemberTypes: ['User', 'Application'] },
    { value: 'Flexchange.Approver', displayName: 'Registration approver', description: 'Approves or rejects organisations that apply to join.', allowedMemberTypes: ['User', 'Application'] },
    { value: 'Org.Admin', displayName: 'Organisation admin', description: "Manages an organisation's users, accounts and webhooks.", allowedMemberTypes: ['User', 'Application'] },
    { value: 'Org.Trader', displayName: 'Trader', description: 'Proposes and signs energy deals for an organisation.', allowedMemberTypes: ['User', 'Application'] },
    { value: 'Deployment.Member', displayName: 'Member deployment', description: "A member organisation's deployment calling the core.", allowedMemberTypes: ['Application'] },
    { value: 'Deployment.Core', displayName: 'Core deployment', description: "The core's deployment calling a member's.", allowedMemberTypes: ['Application'] },
];

/**
 * The role's id in a new app registration: derived from its value (a name-based UUID, RFC 9562
 * version 8 layout over SHA-256), so creating the registration twice gives the same ids.
 */
export function appRoleId(value: string): string {
    const h = createHash('sha256').update(`flexchange-app-role:${value}`, 'utf8').digest();
    h[6] = (h[6] & 0x0f) | 0x80;
    h[8] = (h[8] & 0x3f) | 0x80;
    const x = h.subarray(0, 16).toString('hex');
    return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}
