import { randomUUID } from 'node:crypto';
import type { Page, PatchOperation, Repository, Stored } from '../shared/documents/repository';
import { Conflict, NotFound } from '../shared/errors';

/**
 * A document store in memory, for benches that measure a component without the
 * devhost's Cosmos stand-in in the way. Queries understand only what the chain
 * pipeline asks: equality on `sender`, `nonce >=` and `state =` (by parameter).
 */
export class MemoryRepository<T extends { id: string }> implements Repository<T> {
    readonly #items = new Map<string, Stored<T>>();

    async create(item: T): Promise<Stored<T>> {
        await Promise.resolve();
        if (this.#items.has(item.id)) throw new Conflict(`An item with id ${item.id} exists`);
        return this.#put(item);
    }

    async createEach(items: T[]): Promise<boolean[]> {
        const out: boolean[] = [];
        for (const item of items) out.push(await this.create(item).then(() => true, (err: unknown) => (err instanceof Conflict ? false : Promise.reject(err))));
        return out;
    }
    async read(id: string): Promise<Stored<T> | undefined> {
        await Promise.resolve();
        return this.#items.get(id);
    }
    async replace(item: T, etag?: string): Promise<Stored<T>> {
        await Promise.resolve();
        const current = this.#items.get(item.id);
        if (!current) throw new NotFound(`No item ${item.id}`);
        if (etag && current.etag !== etag) throw new Conflict(`Item ${item.id} changed`);
        return this.#put(item);
    }
    async upsert(item: T): Promise<Stored<T>> {
        return this.#put(item);
    }
    async delete(id: string): Promise<boolean> {
        return this.#items.delete(id);
    }
    async query(spec: { parameters?: { name: string; value: unknown }[] }): Promise<Page<T>> {
        const p = Object.fromEntries((spec.parameters ?? []).map((x) => [x.name, x.value]));
        const items = [...this.#items.values()]
            .map((s) => s.item as T & { sender?: string; nonce?: number })
            .filter((i) => (p['@sender'] === undefined || i.sender === p['@sender']) && (p['@from'] === undefined || (i.nonce ?? 0) >= Number(p['@from'])) && (p['@mined'] === undefined || (i.nonce ?? 0) >= Number(p['@mined'])));
        return { items };
    }
    async patch(id: string, _partitionKey: string, operations: PatchOperation[], etag?: string): Promise<Stored<T>> {
        // Top-level `set` only: what the chain pipeline writes when a transaction is final.
        const current = await this.read(id);
        if (!current) throw new NotFound(`No item ${id}`);
        if (etag !== undefined && current.etag !== etag) throw new Conflict(`Item ${id} changed`);
        const next: Record<string, unknown> = { ...current.item };
        for (const o of operations) {
            if (o.op !== 'set' || !/^\/[A-Za-z0-9_]+$/.test(o.path)) throw new Error(`patch ${o.op} ${o.path} is not served here`);
            next[o.path.slice(1)] = o.value;
        }
        return this.replace(next as T, etag);
    }
    #put(item: T): Stored<T> {
        const stored = { item, etag: randomUUID() };
        this.#items.set(item.id, stored);
        return stored;
    }
}
