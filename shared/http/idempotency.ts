import { createHash } from 'node:crypto';
import type { Repository } from '../documents/repository';
import { AppError, Conflict } from '../errors';

/** A response kept for a retried request with the same `Idempotency-Key` (container `idempotency`, partition `/id`). */
export interface KeptResponse {
    id: string;
    route: string;
    /** SHA-256 of the request body: the same key with another body is refused. */
    requestSha256: string;
    status: number;
    headers: Record<string, string>;
    body: string;
    at: string;
}

/**
 * `Idempotency-Key` for the POST routes: the first successful response to a key (per caller and
 * route) is kept and returned again for a retry, whatever the handler would answer now.
 * Handlers whose writes are keyed by it too (accounts, assets, proposals) stay correct when two
 * retries race; this makes the answer the same as well.
 */
export class IdempotentResponses {
    constructor(private readonly repo: Repository<KeptResponse>) {}

    static keyOf(callerId: string, route: string, key: string): string {
        return createHash('sha256').update(`${callerId}\n${route}\n${key}`).digest('hex');
    }

    async find(id: string, requestBody: Buffer): Promise<KeptResponse | undefined> {
        const kept = (await this.repo.read(id, id))?.item;
        if (kept && kept.requestSha256 !== sha256(requestBody)) throw new AppError('The Idempotency-Key was used with a different request', 422, 'idempotency_mismatch');
        return kept;
    }

    async keep(id: string, route: string, requestBody: Buffer, response: { status: number; headers: Record<string, string>; body: string }): Promise<void> {
        try {
            await this.repo.create({ id, route, requestSha256: sha256(requestBody), ...response, at: new Date().toISOString() });
        } catch (err) {
            if (!(err instanceof Conflict)) throw err; // a racing retry kept its (equivalent) answer first
        }
    }
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
