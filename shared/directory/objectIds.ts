import { createHash } from 'node:crypto';

/**
 * A stable UUID-shaped id derived from a name. The local identity issuer gives each
 * email and app this id as its object id, and the directory keys users added by email
 * the same way, so dev tokens and directory entries agree. In Azure, Entra ID assigns
 * object ids and the directory stores those.
 */
export function stableObjectId(name: string): string {
    const h = createHash('sha256').update(name).digest('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export const userObjectId = (email: string) => stableObjectId(`user:${email.toLowerCase()}`);
export const appObjectId = (clientId: string) => stableObjectId(`app:${clientId}`);
