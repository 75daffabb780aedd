import { z } from 'zod';
import { Invalid } from './errors';

/** Checks an activity's or event's input against its schema: a clear `Invalid` naming each field, never a half-read value. */
export function parseInput<T>(schema: z.ZodType<T>, raw: unknown, what = 'The input'): T {
    const parsed = schema.safeParse(raw);
    if (!parsed.success) throw new Invalid(`${what} is not valid`, parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })));
    return parsed.data;
}

/** An Ethereum address as requests and inputs carry it (checksum is checked where it matters: `checksumAddress`). */
export const ethAddress = z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'must be a 0x-prefixed 20-byte hex address');
