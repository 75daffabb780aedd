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
 * `npm run demo:clients -- <file>` for the devhost's issuer. The file holds secrets: mode 0600, never in git.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
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
    // `mode` applies to a new file only: one that was there keeps its own, so it is set again.
    chmodSync(file, 0o600);
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

/**
 * The devhost's issuer plays Entra ID: the demo's applications, with the roles it grants them. In Entra ID the
 * traders get theirs from the core when the demo registers them as organisations' clients; the local issuer has
 * no Graph to be told, so they are granted here (which organisation they act for still comes from the core).
 */
const DEVHOST_DEMO_CLIENTS: Record<string, string[]> = {
    'flexchange-demo-operator': ['Flexchange.Admin', 'Flexchange.Approver'],
    'flexchange-demo-trader-1': ['Org.Admin', 'Org.Trader'],
    'flexchange-demo-trader-2': ['Org.Admin', 'Org.Trader'],
};

/** npm run demo:clients -- <file> [--state .flexchange]: the file for the running devhost's issuer. */
async function main(argv: string[]): Promise<void> {
    const stateAt = argv.indexOf('--state');
    const stateDir = stateAt >= 0 ? argv[stateAt + 1] : '.flexchange';
    const file = argv.find((a, i) => !a.startsWith('--') && argv[i - 1] !== '--state');
    if (!file || !stateDir) throw new Error('usage: npm run demo:clients -- <file> [--state .flexchange]');
    let consoleUrl: string;
    try {
        consoleUrl = (JSON.parse(readFileSync(`${stateDir}/devhost.json`, 'utf8')) as { console: string }).console;
    } catch {
        throw new Error(`No running devhost found in ${stateDir} (start it with npm start)`);
    }
    // An app-only token minted for a client id records the roles the issuer's client-credential tokens for it carry.
    for (const [clientId, roles] of Object.entries(DEVHOST_DEMO_CLIENTS)) {
        const res = await fetch(`${consoleUrl}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ roles, appOnly: true, name: clientId }) });
        if (!res.ok) throw new Error(`POST /dev/token for ${clientId} answered ${res.status}: ${await res.text()}`);
    }
    const { issuer } = ((await (await fetch(`${consoleUrl}/dev/services`)).json()) as { services: { issuer: string } }).services;
    // The local issuer takes any secret; the file has the shape Entra ID's needs.
    const client = (clientId: string) => ({ clientId, clientSecret: randomBytes(24).toString('base64url') });
    writeDemoClients(file, {
        tokenUrl: `${issuer}/token`,
        scope: 'api://flexchange/.default',
        operator: client('flexchange-demo-operator'),
        traders: [client('flexchange-demo-trader-1'), client('flexchange-demo-trader-2')],
    });
    console.error(`${file}: the demo's operator and trader clients at ${issuer}; next: npm run demo -- --client-credentials ${file}`);
}

if (require.main === module) {
    main(process.argv.slice(2)).catch((err: Error) => {
        console.error(err.message);
        process.exit(1);
    });
}
