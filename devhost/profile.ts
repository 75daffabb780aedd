import path from 'node:path';
import type { BusRole } from './servicebus/access';
import type { VaultDataRole } from './services/keyVault';

/**
 * What an app tells the devhost about itself: the few things the local world needs done for
 * it that only the app knows (who may hold a token for it, who its users are, what account
 * an instance needs on the ledger, how a member instance reaches its own node). The app
 * supplies it as a module that exports `profile` (or a default export), named in its
 * package.json (`"devhost": { "profile": "<file>" }`) or by `--profile <file>`; the devhost
 * loads it by path and knows nothing else of the app. Without one, apps run with the
 * devhost's services and nothing more.
 */
export interface DevhostProfile {
    /**
     * The app registration the issuer stands in for (Entra ID: the API's app ID URI and its app roles).
     * Default: audience {@link DEFAULT_AUDIENCE}, any role.
     */
    readonly appRegistration?: AppRegistration;
    /** The app roles a member instance's own identity is granted (Entra ID: an app role assignment). */
    readonly memberRoles?: readonly string[];
    /** The local chain: the EVM hardfork it runs (anvil `--hardfork`), the one the app's contracts are built for. Default: anvil's newest. */
    readonly ledger?: { readonly hardfork?: string };
    /**
     * Settings of a member instance: for one started at run time (with its own node), under `--member-set`
     * and the request's own; for one named on the command line (no node), under its `--set` values.
     */
    memberSettings?(member: MemberInstance): Record<string, string>;
    /** Work the local world needs done once an instance answers; what it returns is shown with the instance (label → value). */
    instanceStarted?(instance: StartedInstance, world: LocalWorld): Promise<Record<string, string> | void>;
    /** A principal minted with an organisation (`POST /dev/token`): entered where the app looks its callers up. */
    enterPrincipal?(principal: DevPrincipal, world: LocalWorld): Promise<void>;
    /**
     * The data roles an instance's managed identity holds (the deployment's table, as Azure RBAC has it): the
     * devhost's vault and Service Bus then refuse what they do not grant. With this, instances reach the bus by
     * namespace with their identity, as in Azure. Without it, an instance is officer of its own vault and uses
     * the bus with a connection string.
     */
    dataRoles?(instance: { name: string; role?: string; orgId?: string }): readonly LocalDataGrant[];
}

/** A data role on the instance's own vault, its own database (COSMOS_DATABASE), or the Service Bus namespace or one of its entities (`topic/Subscriptions/name`). */
export type LocalDataGrant =
    | { role: VaultDataRole; scope: 'own-vault' }
    | { role: BusRole; scope: 'service-bus'; entity?: string }
    | { role: 'Cosmos DB Built-in Data Contributor'; scope: 'own-database' };

export interface AppRegistration {
    audience: string;
    roles: readonly string[];
}

/** The audience of tokens when the profile names none. */
export const DEFAULT_AUDIENCE = 'api://devhost';

/** The devhost's services a profile may use, where they run. */
export interface LocalWorld {
    /** Azurite, the Cosmos server and the ledger (absent with `--no-storage`). */
    storage?: {
        connectionString: string;
        cosmos: { endpoint: string; key: string };
        ledger: { url: string; chainId: number };
    };
    /** The identity issuer: its URL, and app role assignments for an app identity. */
    identity?: {
        url: string;
        registerApp(clientId: string, roles: readonly string[], orgId?: string): { clientId: string; principalId: string };
    };
}

/** An app instance that has just started. */
export interface StartedInstance {
    name: string;
    role?: string;
    orgId?: string;
    url: string;
    /** Its settings, as its worker got them. */
    settings: Readonly<Record<string, string>>;
    /** Its own vault, when the devhost runs one for it. */
    vaultUrl?: string;
}

/** A member instance about to be started (`PUT /dev/apps/{name}`), with its own ledger node when the ledger runs. */
export interface MemberInstance {
    name: string;
    orgId: string;
    node?: { nodeId: string; rpcUrl: string; enode: string };
    /** The shared chain, when the ledger runs. */
    ledgerUrl?: string;
}

export interface DevPrincipal {
    oid: string;
    orgId: string;
    roles: string[];
    appOnly: boolean;
    email?: string;
    name?: string;
}

export class ProfileError extends Error {}

/** Loads the profile module at `file` (absolute, or relative to the current folder). */
export function loadProfile(file: string): DevhostProfile {
    const resolved = path.resolve(file);
    let mod: { profile?: unknown; default?: unknown };
    try {
        mod = require(resolved) as typeof mod;
    } catch (err) {
        throw new ProfileError(`Cannot load the devhost profile ${resolved}: ${(err as Error).message}`);
    }
    const profile = mod.profile ?? mod.default;
    if (!profile || typeof profile !== 'object') throw new ProfileError(`${resolved} exports no devhost profile (export \`profile\` or a default object)`);
    return profile as DevhostProfile;
}
