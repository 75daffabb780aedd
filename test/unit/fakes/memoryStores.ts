import { Conflict, NotFound } from '../../../shared/errors';
import type { Page, Repository, Stored } from '../../../shared/documents/repository';
import type { SecretStore } from '../../../shared/vault/vault';

/**
 * The document store port in memory, for use cases tested without a database: create-only creates,
 * ETag-guarded replaces and deletes, as the Cosmos adapter does. Queries are not served (a use case
 * that queries is tested against the local Cosmos server instead).
 */
export class MemoryRepository<T extends { id: string }> implements Repository<T> {
    readonly #items = new Map<string, Stored<T>>();
    #version = 0;

    constructor(private readonly partitionKeyOf: (item: T) => string) {}

    #key = (id: string, partitionKey: string) => `${partitionKey}\u0000${id}`;
    #store(item: T): Stored<T> {
        const stored = { item: structuredClone(item), etag: `"${++this.#version}"` };
        this.#items.set(this.#key(item.id, this.partitionKeyOf(item)), stored);
        return structuredClone(stored);
    }

    async create(item: T): Promise<Stored<T>> {
        if (this.#items.has(this.#key(item.id, this.partitionKeyOf(item)))) throw new Conflict(`${item.id} exists`);
        return this.#store(item);
    }

    async createEach(items: T[]): Promise<boolean[]> {
        const out: boolean[] = [];
        for (const item of items) out.push(await this.create(item).then(() => true, (err: unknown) => (err instanceof Conflict ? false : Promise.reject(err))));
        return out;
    }

    async read(id: string, partitionKey: string): Promise<Stored<T> | undefined> {
        const found = this.#items.get(this.#key(id, partitionKey));
        return found && structuredClone(found);
    }

    async replace(item: T, etag?: string): Promise<Stored<T>> {
        const current = this.#items.get(this.#key(item.id, this.partitionKeyOf(item)));
        if (!current) throw new NotFound(`${item.id} is gone`);
        if (etag !== undefined && etag !== current.etag) throw new Conflict(`${item.id} changed`);
        return this.#store(item);
    }

    async upsert(item: T): Promise<Stored<T>> {
        return this.#store(item);
    }

    async delete(id: string, partitionKey: string, etag?: string): Promise<boolean> {
        const current = this.#items.get(this.#key(id, partitionKey));
        if (!current) return false;
        if (etag !== undefined && etag !== current.etag) throw new Conflict(`${id} changed`);
        return this.#items.delete(this.#key(id, partitionKey));
    }

    async query(): Promise<Page<T>> {
        throw new Error('MemoryRepository serves no queries');
    }

    async patch(): Promise<Stored<T>> {
        throw new Error('MemoryRepository serves no patches');
    }
}

/** The secret store port in memory. */
export class MemorySecrets implements SecretStore {
    readonly #secrets = new Map<string, string>();

    async get(name: string) {
        const value = this.#secrets.get(name);
        return value === undefined ? undefined : { value, version: '1' };
    }

    async set(name: string, value: string) {
        this.#secrets.set(name, value);
        return { version: '1' };
    }

    async delete(name: string) {
        return this.#secrets.delete(name);
    }

    async list() {
        return [...this.#secrets.keys()];
    }
}
