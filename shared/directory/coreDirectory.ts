import type { DeploymentClient } from '../auth/deploymentClient';
import { Forbidden, Upstream } from '../errors';
import type { Directory, DirectoryEntry } from './directory';

/**
 * The directory as a member deployment sees it: the core keeps it (ARCHITECTURE.md), so a
 * caller's organisation is asked of the core (`GET /orgs/{orgId}/principals/{id}`, with the
 * member's client-credential token) and cached for a short while. Only principals of the
 * member's own organisation are ever returned; users are managed on the core.
 */
export class CoreDirectory implements Directory {
    readonly #cache = new Map<string, { entry?: DirectoryEntry; until: number }>();
    #users?: { list: Promise<DirectoryEntry[]>; until: number };

    constructor(
        private readonly core: DeploymentClient,
        private readonly orgId: string,
        private readonly cacheMs = 30_000,
    ) {}

    async resolve(objectId: string): Promise<DirectoryEntry | undefined> {
        const cached = this.#cache.get(objectId);
        if (cached && cached.until > Date.now()) return cached.entry;
        const res = await this.core.request('GET', `orgs/${encodeURIComponent(this.orgId)}/principals/${encodeURIComponent(objectId)}`);
        let entry: DirectoryEntry | undefined;
        if (res.status === 200) {
            const body = res.body as DirectoryEntry;
            entry = body.orgId === this.orgId ? body : undefined;
        } else if (res.status !== 404) {
            throw new Upstream(`The core refused the directory look-up (${res.status})`);
        }
        this.#cache.set(objectId, { entry, until: Date.now() + this.cacheMs });
        return entry;
    }

    /**
     * The organisation's users as the core lists them (read-only here: users are managed on the core),
     * kept as long as a caller's entry is: mails about a burst of proposals ask once, not once each.
     */
    async listUsers(orgId: string): Promise<DirectoryEntry[]> {
        if (orgId !== this.orgId) return [];
        if (this.#users && this.#users.until > Date.now()) return this.#users.list;
        const list = this.#fetchUsers();
        this.#users = { list, until: Date.now() + this.cacheMs };
        list.catch(() => (this.#users = undefined));
        return list;
    }

    async #fetchUsers(): Promise<DirectoryEntry[]> {
        const res = await this.core.request('GET', `orgs/${encodeURIComponent(this.orgId)}/users`);
        if (res.status !== 200) throw new Upstream(`The core refused the user list (${res.status})`);
        const items = (res.body as { items: { userId: string; orgId: string; email?: string; name?: string; roles: string[]; createdAt: string }[] }).items;
        return items.filter((u) => u.orgId === this.orgId).map((u) => ({ id: u.userId, orgId: u.orgId, kind: 'user' as const, email: u.email, name: u.name, roles: u.roles, createdAt: u.createdAt }));
    }

    async addUser(): Promise<DirectoryEntry> {
        throw new Forbidden('Users are managed on the core deployment');
    }

    async removeUser(): Promise<boolean> {
        throw new Forbidden('Users are managed on the core deployment');
    }

    async clientPrincipal(): Promise<undefined> {
        throw new Forbidden('API clients are managed on the core deployment');
    }

    async listClients(): Promise<DirectoryEntry[]> {
        throw new Forbidden('API clients are managed on the core deployment');
    }

    async holders(): Promise<{ id: string; email?: string }[]> {
        throw new Forbidden('Role holders are listed on the core deployment');
    }

    async register(): Promise<DirectoryEntry> {
        throw new Forbidden('Principals are registered on the core deployment');
    }
}
