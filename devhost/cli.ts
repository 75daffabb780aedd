#!/usr/bin/env node
/**
 * flexchange-devhost: the local Functions host.
 *
 *   flexchange-devhost start [--port 7071] [--console-port 7070] [--state .flexchange]
 *                            --app <folder> [--name <n>] [--app-port <p>] [--set KEY=VALUE]...
 *                            [--app <folder> ...] [--member-set KEY=VALUE]... (settings of members made at run time)
 *                            [--profile <module>] (the app's devhost profile; default: the one the first app's package.json names)
 *
 * Options after an --app apply to that app instance. With no --app, the current folder is the app.
 */
import path from 'node:path';
import { AppInstanceConfig, DevHost } from './devHost';
import { createLogger } from './log';
import { DEFAULT_STORAGE_PORTS, StoragePorts } from './services/storage';

export interface StartArgs {
    apps: AppInstanceConfig[];
    basePort: number;
    consolePort: number;
    stateDir: string;
    storage: StoragePorts | false;
    identityPort: number;
    smtpPort: number;
    serviceBus: { port: number; adminPort?: number; entitiesFile?: string } | false;
    /** Settings for the member instances started at run time (over the app folder's own). */
    memberSettings: Record<string, string>;
    /** The app's devhost profile module. */
    profile?: string;
}

export class UsageError extends Error {}

const USAGE = `usage: flexchange-devhost start [--port 7071] [--console-port 7070] [--state .flexchange]
         [--storage-ports 10000,10001,10002] [--cosmos-port 8081] [--ledger-port 8545] [--no-storage] [--identity-port 7080] [--smtp-port 2525]
         [--servicebus-port 5672] [--servicebus-admin-port 5300] [--servicebus-entities <file>]
         [--member-set KEY=VALUE]... [--profile <module>] [--app <folder> [--name <name>] [--app-port <port>] [--set KEY=VALUE]...]...`;

function intArg(flag: string, value: string | undefined): number {
    const n = Number(value);
    if (value === undefined || !Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`${flag} needs a port number`);
    return n;
}

export function parseStartArgs(argv: string[]): StartArgs {
    const out: StartArgs = { apps: [], basePort: 7071, consolePort: 7070, stateDir: '.flexchange', storage: DEFAULT_STORAGE_PORTS, identityPort: 7080, smtpPort: 2525, serviceBus: { port: 5672 }, memberSettings: {} };
    let current: AppInstanceConfig | undefined;
    const needApp = (flag: string) => {
        if (!current) throw new UsageError(`${flag} must follow an --app`);
        return current;
    };
    for (let i = 0; i < argv.length; i++) {
        const flag = argv[i];
        const value = () => {
            const v = argv[++i];
            if (v === undefined) throw new UsageError(`${flag} needs a value`);
            return v;
        };
        switch (flag) {
            case '--app':
                current = { name: '', folder: value() };
                out.apps.push(current);
                break;
            case '--name':
                needApp(flag).name = value();
                break;
            case '--app-port':
                needApp(flag).port = intArg(flag, value());
                break;
            case '--set':
            case '--member-set': {
                const kv = value();
                const eq = kv.indexOf('=');
                if (eq <= 0) throw new UsageError(`${flag} needs KEY=VALUE, got "${kv}"`);
                if (flag === '--member-set') {
                    out.memberSettings[kv.slice(0, eq)] = kv.slice(eq + 1);
                    break;
                }
                const app = needApp(flag);
                app.settings = { ...app.settings, [kv.slice(0, eq)]: kv.slice(eq + 1) };
                break;
            }
            case '--port':
                out.basePort = intArg(flag, value());
                break;
            case '--console-port':
                out.consolePort = intArg(flag, value());
                break;
            case '--state':
                out.stateDir = value();
                break;
            case '--storage-ports': {
                const ports = value().split(',').map((p) => intArg(flag, p));
                if (ports.length === 1) ports.push(ports[0] === 0 ? 0 : ports[0] + 1, ports[0] === 0 ? 0 : ports[0] + 2);
                if (ports.length !== 3) throw new UsageError('--storage-ports takes BLOB,QUEUE,TABLE or one port (0: any free ports)');
                const base = out.storage === false ? DEFAULT_STORAGE_PORTS : out.storage;
                out.storage = { ...base, blob: ports[0], queue: ports[1], table: ports[2] };
                break;
            }
            case '--cosmos-port':
                out.storage = { ...(out.storage === false ? DEFAULT_STORAGE_PORTS : out.storage), cosmos: intArg(flag, value()) };
                break;
            case '--ledger-port':
                out.storage = { ...(out.storage === false ? DEFAULT_STORAGE_PORTS : out.storage), ledger: intArg(flag, value()) };
                break;
            case '--identity-port':
                out.identityPort = intArg(flag, value());
                break;
            case '--smtp-port':
                out.smtpPort = intArg(flag, value());
                break;
            case '--servicebus-port':
                out.serviceBus = { ...(out.serviceBus || {}), port: intArg(flag, value()) };
                break;
            case '--servicebus-admin-port':
                out.serviceBus = { port: 5672, ...(out.serviceBus || {}), adminPort: intArg(flag, value()) };
                break;
            case '--servicebus-entities':
                out.serviceBus = { port: 5672, ...(out.serviceBus || {}), entitiesFile: path.resolve(value()) };
                break;
            case '--profile':
                out.profile = path.resolve(value());
                break;
            case '--no-storage':
                out.storage = false;
                break;
            default:
                throw new UsageError(`unknown option ${flag}`);
        }
    }
    if (out.apps.length === 0) out.apps.push({ name: '', folder: '.' });
    const names = new Set<string>();
    out.apps.forEach((app, i) => {
        if (!app.name) app.name = i === 0 ? (out.apps.length === 1 ? 'core' : 'app1') : `app${i + 1}`;
        if (names.has(app.name)) throw new UsageError(`two app instances are named "${app.name}"`);
        names.add(app.name);
        app.folder = path.resolve(app.folder);
    });
    return out;
}

function printTable(host: DevHost): void {
    const lines = ['', 'Flexchange devhost', `  console   ${host.consoleUrl}`, `  state     ${host.stateDir}`];
    for (const [name, url] of Object.entries(host.services)) lines.push(`  ${name.padEnd(13)} ${url}`);
    const access = host.accessStatement();
    if (access) {
        lines.push('', '  Managed identities are checked by:', ...access.checked.map((c) => `    ${c}`));
        if (access.keyed.length) lines.push('  and cannot be checked by (apps use keys there):', ...access.keyed.map((k) => `    ${k}`));
    }
    for (const app of host.apps) {
        lines.push('', `  app ${app.name}${app.role ? ` (${app.role})` : ''}  ${app.url}${Object.entries(app.notes ?? {}).map(([label, value]) => `  ${label} ${value}`).join('')}`);
        for (const fn of app.functions) lines.push(`    ${fn.name.padEnd(28)} ${fn.detail}`);
    }
    lines.push('', 'Ctrl+C stops everything gracefully.', '');
    process.stderr.write(lines.join('\n'));
}

async function start(argv: string[]): Promise<void> {
    const args = parseStartArgs(argv);
    const logger = createLogger({ app: 'devhost' });
    const host = new DevHost({ ...args, logger });

    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
        signals++;
        if (signals > 1) {
            logger.warn({ signal }, 'second signal: exiting now');
            process.exit(1);
        }
        logger.info({ signal }, 'stopping: waiting for invocations under way');
        host.stop().then(
            () => process.exit(0),
            (err: Error) => {
                logger.error({ err: { message: err.message } }, 'error while stopping');
                process.exit(1);
            },
        );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);

    try {
        await host.start();
    } catch (err) {
        process.stderr.write(`\nflexchange-devhost: ${(err as Error).message}\n`);
        process.exit(1);
    }
    printTable(host);
}

async function main(argv: string[]): Promise<void> {
    const [command, ...rest] = argv;
    try {
        switch (command) {
            case 'start':
                await start(rest);
                return;
            case '--help':
            case '-h':
            case 'help':
                process.stdout.write(`${USAGE}\n`);
                return;
            default:
                throw new UsageError(command ? `unknown command ${command}` : 'no command');
        }
    } catch (err) {
        if (err instanceof UsageError) {
            process.stderr.write(`flexchange-devhost: ${err.message}\n${USAGE}\n`);
            process.exit(2);
        }
        throw err;
    }
}

if (require.main === module) {
    void main(process.argv.slice(2));
}
