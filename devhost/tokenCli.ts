#!/usr/bin/env node
/**
 * npm run token -- --role Org.Trader [--role ...] [--org <orgId>] [--email a@b] [--name N] [--app-only] [--state .flexchange]
 *
 * Prints a bearer token from the running devhost's identity issuer (via POST /dev/token).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

async function main(argv: string[]): Promise<void> {
    const body: Record<string, unknown> = { roles: [] as string[] };
    let stateDir = '.flexchange';
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
    const res = await fetch(`${consoleUrl}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const answer = (await res.json()) as { access_token?: string; detail?: string; errors?: { path: string; message: string }[] };
    if (!res.ok || !answer.access_token) {
        const details = (answer.errors ?? []).map((e) => `  ${e.path}: ${e.message}`).join('\n');
        throw new Error(`${answer.detail ?? `HTTP ${res.status}`}${details ? `\n${details}` : ''}`);
    }
    process.stdout.write(`${answer.access_token}\n`);
}

main(process.argv.slice(2)).catch((err: Error) => {
    process.stderr.write(`token: ${err.message}\n`);
    process.exit(1);
});
