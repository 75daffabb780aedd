import { appObjectId, userObjectId } from './objectIds';
import type { Container } from '@azure/cosmos';
import { CosmosRepository } from '../documents/cosmosRepository';
import { Directory, DirectoryEntry, userEntry } from './directory';

/**
 * The directory in Cosmos DB (container `directory`, partitioned by `/orgId`).
 * Look-ups by object id cross partitions, so answers are cached for a short while
 * (a removed user keeps access for at most that long).
 */
export class CosmosDirectory implements Directory {
    readonly #repo: CosmosRepository<DirectoryEntry>;
    readonly #cache = new Map<string, { entry?: DirectoryEntry; until: number }>();

    constructor(
        container: Container,
        private readonly cacheMs = 30_000,
    ) {
        this.#repo = new CosmosRepository<DirectoryEntry>(container, (e) => e.orgId);
    }

    async resolve(objectId: string, opts: { fresh?: boolean } = {}): Promise<DirectoryEntry | undefined> {
        const cached = this.#cache.get(objectId);
        if (!opts.fresh && cached && cached.until > Date.now()) return cached.entry;
        const page = await this.#repo.query({ query: 'SELECT * FROM c WHERE c.id = @id', parameters: [{ name: '@id', value: objectId }] }, { maxItemCount: 2 });
        const entry = page.items[0];
        this.#cache.set(objectId, { entry, until: Date.now() + this.cacheMs });
        return entry;
    }

    listUsers(orgId: string): Promise<DirectoryEntry[]> {
        return this.#list(orgId, 'user');
    }

    async listClients(orgId: string): Promise<DirectoryEntry[]> {
        return (await this.#list(orgId, 'app')).filter((e) => e.clientId);
    }

    async #list(orgId: string, kind: DirectoryEntry['kind']): Promise<DirectoryEntry[]> {
        const out: DirectoryEntry[] = [];
        let token: string | undefined;
        do {
            const page = await this.#repo.query(
                { query: 'SELECT * FROM c WHERE c.orgId = @org AND c.kind = @kind ORDER BY c.createdAt', parameters: [{ name: '@org', value: orgId }, { name: '@kind', value: kind }] },
                { partitionKey: orgId, continuationToken: token },
            );
            out.push(...page.items);
            token = page.continuationToken;
        } while (token);
        return out;
    }

    /** Without Entra ID (the devhost), an application's object id is derived from its client id, as the local issuer derives it. */
    async clientPrincipal(clientId: string): Promise<{ id: string; roles: string[] }> {
        return { id: appObjectId(clientId), roles: [] };
    }

    async addUser(orgId: string, user: { email: string; name?: string; roles: string[] }, by: string): Promise<DirectoryEntry> {
        // Until the user signs in through Entra ID, the directory keys the user by a stable id of the email.
        return this.register(userEntry(userObjectId(user.email), orgId, user, by));
    }

    async removeUser(orgId: string, userId: string): Promise<boolean> {
        const removed = await this.#repo.delete(userId, orgId);
        this.#cache.delete(userId);
        return removed;
    }

    async holders(role: string): Promise<{ id: string; email?: string }[]> {
        const out: { id: string; email?: string }[] = [];
        let token: string | undefined;
        do {
            const page = await this.#repo.query(
                { query: 'SELECT * FROM c WHERE c.kind = "user" AND ARRAY_CONTAINS(c.roles, @role) ORDER BY c.createdAt', parameters: [{ name: '@role', value: role }] },
                { continuationToken: token },
            );
            out.push(...page.items.map((e) => ({ id: e.id, email: e.email })));
            token = page.continuationToken;
        } while (token);
        return out;
    }

    async register(entry: DirectoryEntry): Promise<DirectoryEntry> {
        const stored = await this.#repo.upsert(entry);
        this.#cache.delete(entry.id);
        return stored.item;
    }
}
