/**
 * The applications `npm run demo -- --client-credentials <file>` signs in as, against a deployed core
 * (or the devhost) instead of the devhost console's `/dev/token`:
 *
 *   { "tokenUrl": "https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token",
 *     "scope": "api://flexchange/.default",
 *     "operator": { "clientId": "…", "clientSecret": "…" },      // Flexchange.Admin and Flexchange.Approver
 *     "traders": [{ "clientId": "…", "clientSecret": "…" }, { … }] }  // no roles: each becomes a new organisation's API client
 *
 * `npm run azure:app-registration -- … --demo-clients <file>` writes it for Entra ID (one-day secrets);
 * `npm run -s token -- --demo-clients <file>` for the devhost's issuer. The file holds secrets: mode 0600, never in git.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { z } from 'zod';

const client = z.object({ clientId: z.string().min(1).max(100), clientSecret: z.string().min(1).max(1000) }).strict();
export const demoClientsSchema = z
    .object({
        tokenUrl: z.string().url(),
        scope: z.string().min(1).max(300),
        operator: client,
        traders: z.array(client).length(2),
    })
    .strict();
export type DemoClients = z.infer<typeof demoClientsSchema>;
export type DemoClient = z.infer<typeof client>;

/** The display names of the demo's applications in Entra ID. */
export const DEMO_CLIENT_NAMES = { operator: 'Flexchange demo operator', traders: ['Flexchange demo trader 1', 'Flexchange demo trader 2'] } as const;

export function writeDemoClients(file: string, clients: DemoClients): void {
    writeFileSync(file, `${JSON.stringify(demoClientsSchema.parse(clients), null, 2)}\n`, { mode: 0o600 });
}

export function readDemoClients(file: string): DemoClients {
    if (process.platform !== 'win32' && (statSync(file).mode & 0o077) !== 0) throw new Error(`${file} holds client secrets: make it readable by you only (chmod 600 ${file})`);
    const parsed = demoClientsSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
    if (!parsed.success) throw new Error(`${file} is not a demo clients file: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(file)'}: ${i.message}`).join('; ')}`);
    return parsed.data;
}

/** An access token for `who` by the client credentials grant, with the roles it holds now. */
export async function clientCredentialsToken(clients: Pick<DemoClients, 'tokenUrl' | 'scope'>, who: DemoClient): Promise<{ token: string; roles: string[]; oid?: string }> {
    const res = await fetch(clients.tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: who.clientId, client_secret: who.clientSecret, scope: clients.scope }),
        signal: AbortSignal.timeout(30_000),
    });
    const body = (await res.json().catch(() => ({}))) as { access_token?: string; error?: string; error_description?: string };
    if (!res.ok || !body.access_token) throw new Error(`the token endpoint refused ${who.clientId}: ${res.status} ${body.error ?? ''} ${body.error_description?.split('\n')[0] ?? ''}`.trim());
    // Only to read the roles it was given (the API checks the signature): the payload is the token's middle part.
    const claims = JSON.parse(Buffer.from(body.access_token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { roles?: string[]; oid?: string };
    return { token: body.access_token, roles: claims.roles ?? [], oid: claims.oid };
}
