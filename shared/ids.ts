import { createHash } from 'node:crypto';

/** A UUID (version 8, name-based on SHA-256): the same name (e.g. an org and its idempotency key) always gives the same id. */
export function uuidFromName(name: string): string {
    const h = createHash('sha256').update(name).digest();
    h[6] = (h[6]! & 0x0f) | 0x80;
    h[8] = (h[8]! & 0x3f) | 0x80;
    const x = h.subarray(0, 16).toString('hex');
    return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}
