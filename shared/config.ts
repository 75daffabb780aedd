import { z } from 'zod';

/**
 * Every setting the app reads, validated once. Settings come from the Function
 * App's application settings in Azure and from local.settings.json locally.
 */
const settingsSchema = z.object({
    FLEXCHANGE_ROLE: z.enum(['core', 'member']).default('core'),
    FLEXCHANGE_ORG_ID: z.string().min(1).optional(),
    FLEXCHANGE_HEALTH_TIMEOUT_MS: z.coerce.number().int().positive().default(2000),
});

export type Settings = z.infer<typeof settingsSchema>;

export class ConfigError extends Error {}

export function loadSettings(env: Record<string, string | undefined> = process.env): Settings {
    const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
    const parsed = settingsSchema.safeParse(present);
    if (!parsed.success) {
        const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
        throw new ConfigError(`Invalid settings: ${problems}`);
    }
    if (parsed.data.FLEXCHANGE_ROLE === 'member' && !parsed.data.FLEXCHANGE_ORG_ID) {
        throw new ConfigError('Invalid settings: FLEXCHANGE_ORG_ID is required when FLEXCHANGE_ROLE is member');
    }
    return parsed.data;
}
