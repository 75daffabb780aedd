#!/usr/bin/env node
/**
 * npm run token -- --role Org.Trader [--role ...] [--org <orgId>] [--email a@b] [--name N] [--app-only] [--state .flexchange]
 * npm run token -- --demo-clients <file> [--state .flexchange]
 *
 * Prints a bearer token from the running devhost's identity issuer (via POST /dev/token).
 * With --demo-clients: grants the demo's applications their roles at the issuer (the devhost's
 * Entra ID) and writes the file `npm run demo -- --client-credentials <file>` signs in with.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { writeDemoClients } from '../scripts/demoClients';

/**
 * The demo's applications at the local issuer, with the roles it grants them. In Entra ID the traders get
 * theirs from the core when the demo registers them as organisations' clients; the local issuer has no
 * Graph to be told, so it grants them here (which organisation they act for still comes from the core).
 */
const DEMO_CLIENTS: Record<string, string[]> = {
    'flexchange-demo-operator': ['Flexchange.Admin', 'Flexchange.Approver'],
    'flexchange-demo-trader-1': ['Org.Admin', 'Org.Trader'],
    'flexchange-demo-trader-2': ['Org.Admin', 'Org.Trader'],
};

async function devToken(consoleUrl: string, body: Record<string, unknown>): Promise<string> {
    const res = await fetch(`${consoleUrl}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const answer = (await res.json()) as { access_token?: string; detail?: string; errors?: { path: string; message: string }[] };
    if (!res.ok || !answer.access_token) {
        const details = (answer.errors ?? []).map((e) => `  ${e.path}: ${e.message}`).join('\n');
        throw new Error(`${answer.detail ?? `HTTP ${res.status}`}${details ? `\n${details}` : ''}`);
    }
    return answer.access_token;
}

async function main(argv: string[]): Promise<void> {
    const body: Record<string, unknown> = { roles: [] as string[] };
    let stateDir = '.flexchange';
    let demoClients: string | undefined;
    for (let i = 0; i < argv.length; i++) {
        const flag = argv[i];
        const value = () => {
            const v = argv[++i];
            if (v === undefined) throw new Error(`${flag} needs a value`);
            return v;
        };
        switch (flag) {
            case '--role':
                (body.roles as string[]).push(value());
                break;
            case '--org':
                body.orgId = value();
                break;
            case '--email':
                body.email = value();
                break;
            case '--name':
                body.name = value();
                break;
            case '--app-only':
                body.appOnly = true;
                break;
            case '--state':
                stateDir = value();
                break;
            case '--demo-clients':
                demoClients = value();
                break;
            default:
                throw new Error(`unknown option ${flag}`);
        }
    }
    let consoleUrl: string;
    try {
        consoleUrl = (JSON.parse(readFileSync(path.join(stateDir, 'devhost.json'), 'utf8')) as { console: string }).console;
    } catch {
        throw new Error(`No running devhost found in ${stateDir} (start it with npm start)`);
    }
    if (!demoClients) {
        process.stdout.write(`${await devToken(consoleUrl, body)}\n`);
        return;
    }
    for (const [clientId, roles] of Object.entries(DEMO_CLIENTS)) await devToken(consoleUrl, { roles, appOnly: true, name: clientId });
    const { issuer } = ((await (await fetch(`${consoleUrl}/dev/services`)).json()) as { services: { issuer: string } }).services;
    // The local issuer takes any secret; the file has the shape Entra ID's needs.
    const client = (clientId: string) => ({ clientId, clientSecret: randomBytes(24).toString('base64url') });
    writeDemoClients(demoClients, {
        tokenUrl: `${issuer}/token`,
        scope: 'api://flexchange/.default',
        operator: client('flexchange-demo-operator'),
        traders: [client('flexchange-demo-trader-1'), client('flexchange-demo-trader-2')],
    });
    process.stderr.write(`${demoClients}: the demo's operator and trader clients at ${issuer} (npm run demo -- --client-credentials ${demoClients})\n`);
}

main(process.argv.slice(2)).catch((err: Error) => {
    process.stderr.write(`token: ${err.message}\n`);
    process.exit(1);
});
