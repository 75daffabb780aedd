import { randomUUID } from 'node:crypto';
import type { Repository } from '../documents/repository';

/** One thing someone did: approvals, user changes, account creation, signatures, contract deployments, treasury moves. */
export interface AuditRecord {
    id: string;
    /** The organisation concerned (`operator` for the core's own actions). */
    orgId: string;
    at: string;
    actor: { oid: string; orgId?: string; appOnly: boolean };
    action: string;
    target: string;
    details?: Record<string, unknown>;
}

/** Append-only: records are created, never replaced or deleted (the repository is only ever asked to create). */
export class AuditTrail {
    constructor(private readonly records: Repository<AuditRecord>) {}

    async record(entry: Omit<AuditRecord, 'id' | 'at'>): Promise<AuditRecord> {
        const record: AuditRecord = { id: randomUUID(), at: new Date().toISOString(), ...entry };
        return (await this.records.create(record)).item;
    }

    async list(orgId: string, continuationToken?: string) {
        return this.records.query(
            { query: 'SELECT * FROM c WHERE c.orgId = @org ORDER BY c.at DESC', parameters: [{ name: '@org', value: orgId }] },
            { partitionKey: orgId, continuationToken, maxItemCount: 100 },
        );
    }
}
