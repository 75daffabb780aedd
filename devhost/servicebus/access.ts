/**
 * Who may do what on the local Service Bus, as Azure decides it for a namespace with Entra ID
 * (Azure RBAC for Service Bus):
 * - a client puts a token on `$cbs` for an audience (`sb://<namespace>/<entity path>`, or the
 *   namespace) before it attaches links; a JWT must be the local issuer's, unexpired, for
 *   `https://servicebus.azure.net`, and names a principal (`oid`);
 * - attaching a link, or a `$management` operation, needs a right on the entity: Send (send,
 *   schedule), Listen (receive, peek, settle, locks, sessions), Manage (rules). The principal's
 *   roles give them: Data Owner all three, Data Sender Send, Data Receiver Listen, on the
 *   namespace or on one entity and what is under it (a topic's subscriptions, a dead-letter queue);
 * - a missing right is `amqp:unauthorized-access`, naming the right and the resource.
 * SAS tokens (connection strings) carry the namespace key and every right: the devhost's own
 * plumbing and the SDK samples use them; the key itself is not checked.
 */

export type BusRight = 'Send' | 'Listen' | 'Manage';
export type BusRole = 'Azure Service Bus Data Owner' | 'Azure Service Bus Data Sender' | 'Azure Service Bus Data Receiver';

const RIGHTS: Record<BusRole, readonly BusRight[]> = {
    'Azure Service Bus Data Owner': ['Send', 'Listen', 'Manage'],
    'Azure Service Bus Data Sender': ['Send'],
    'Azure Service Bus Data Receiver': ['Listen'],
};

/** A role on the namespace (no entity) or on one entity path (`queue`, `topic`, `topic/Subscriptions/name`). */
export interface BusGrant {
    role: BusRole;
    entity?: string;
}

export interface BusAccessPolicy {
    /** The principal a JWT names when the local issuer signed it for Service Bus and it is unexpired; undefined otherwise. */
    principal(token: string): Promise<{ oid: string; expiresAt: number } | undefined>;
    /** The roles a principal holds here (none: it may do nothing). */
    grants(oid: string): readonly BusGrant[];
}

/** The audiences Entra ID issues Service Bus tokens for (the SDK asks for `https://servicebus.azure.net//.default`). */
export const SERVICE_BUS_AUDIENCES = ['https://servicebus.azure.net', 'https://servicebus.azure.net/'];

/** An address or audience as a lower-case entity path: no scheme and host, no `$management`, no trailing slash ('' = the namespace). */
export function entityPath(address: string): string {
    return address
        .replace(/^(amqps?|sb|https?):\/\/[^/]+/i, '')
        .replace(/\/\$management$/i, '')
        .replace(/^\/+|\/+$/g, '')
        .toLowerCase();
}

/** True when a grant or token for `scope` reaches `path` (the namespace reaches everything; an entity, itself and what is under it). */
export function covers(scope: string, path: string): boolean {
    return scope === '' || path === scope || path.startsWith(`${scope}/`);
}

interface Claim {
    /** The principal of a JWT; undefined for a SAS token (the namespace key: every right). */
    oid?: string;
    expiresAt: number;
}

/** The tokens a connection has put on `$cbs`, by audience. */
export class ConnectionClaims {
    readonly #byAudience = new Map<string, Claim>();

    put(audience: string, claim: Claim): void {
        this.#byAudience.set(entityPath(audience), claim);
    }

    /** The rights the connection's unexpired tokens give on `path`. */
    rights(path: string, policy: BusAccessPolicy, now = Date.now()): Set<BusRight> {
        const out = new Set<BusRight>();
        for (const [audience, claim] of this.#byAudience) {
            if (claim.expiresAt <= now || !covers(audience, path)) continue;
            if (claim.oid === undefined) return new Set<BusRight>(['Send', 'Listen', 'Manage']);
            rightsOf(policy.grants(claim.oid), path).forEach((r) => out.add(r));
        }
        return out;
    }

    /** The principals behind the connection's tokens, for logs. */
    principals(): string[] {
        return [...new Set([...this.#byAudience.values()].map((c) => c.oid ?? 'SAS'))];
    }
}

/** The right a `$management` operation needs. */
export function managementRight(operation: string): BusRight {
    switch (operation) {
        case 'com.microsoft:schedule-message':
        case 'com.microsoft:cancel-scheduled-message':
            return 'Send';
        case 'com.microsoft:add-rule':
        case 'com.microsoft:remove-rule':
        case 'com.microsoft:enumerate-rules':
            return 'Manage';
        default:
            return 'Listen';
    }
}

/** The rights a principal's roles give on `path`, outside AMQP (the administration API's bearer tokens). */
export function rightsOf(grants: readonly BusGrant[], path: string): Set<BusRight> {
    const out = new Set<BusRight>();
    for (const g of grants) if (covers(entityPath(g.entity ?? ''), path)) RIGHTS[g.role].forEach((r) => out.add(r));
    return out;
}
