import fg from 'fast-glob';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** What the devhost needs to know about a v4 function app folder, read the way the Functions host reads it. */
export interface AppFolder {
    dir: string;
    /** The `main` entry of package.json: a file or a glob, relative to the folder. */
    main: string;
    /** Absolute paths of the files `main` matches, in a stable order. */
    entryFiles: string[];
    /** host.json `extensions.http.routePrefix`, default "api"; "" means no prefix. */
    routePrefix: string;
    hostJson: HostJson;
    /** `Values` of local.settings.json (or of local.settings.sample.json when there is no local.settings.json). */
    settings: Record<string, string>;
    settingsFile?: string;
    /** `Host.LocalHttpPort` of local.settings.json, if set. */
    localHttpPort?: number;
    /** The app's devhost profile module (package.json `devhost.profile`), absolute. */
    profile?: string;
}

export interface HostJson {
    version?: string;
    functionTimeout?: string;
    extensions?: { http?: { routePrefix?: string; maxRequestBodySize?: number } } & Record<string, unknown>;
    [key: string]: unknown;
}

export class AppFolderError extends Error {}

function readJson(file: string): unknown {
    try {
        return JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
        throw new AppFolderError(`Cannot read ${file}: ${(err as Error).message}`);
    }
}

export function readAppFolder(folder: string): AppFolder {
    const dir = path.resolve(folder);
    const pkgFile = path.join(dir, 'package.json');
    if (!existsSync(pkgFile)) {
        throw new AppFolderError(`${dir} is not a function app: it has no package.json`);
    }
    const pkg = readJson(pkgFile) as { main?: unknown; devhost?: { profile?: unknown } };
    if (typeof pkg.main !== 'string' || pkg.main.trim() === '') {
        throw new AppFolderError(`${pkgFile} has no "main": the v4 programming model loads the files it names`);
    }
    const main = pkg.main;
    const entryFiles = fg
        .sync(main, { cwd: dir, absolute: true, onlyFiles: true, dot: false })
        .sort((a, b) => a.localeCompare(b));
    if (entryFiles.length === 0) {
        throw new AppFolderError(`"main" (${main}) in ${pkgFile} matches no files. Is the app built?`);
    }

    const hostFile = path.join(dir, 'host.json');
    const hostJson = (existsSync(hostFile) ? readJson(hostFile) : {}) as HostJson;
    const prefix = hostJson.extensions?.http?.routePrefix;
    const routePrefix = typeof prefix === 'string' ? prefix.replace(/^\/+|\/+$/g, '') : 'api';

    let settingsFile: string | undefined;
    for (const name of ['local.settings.json', 'local.settings.sample.json']) {
        const candidate = path.join(dir, name);
        if (existsSync(candidate)) {
            settingsFile = candidate;
            break;
        }
    }
    const settings: Record<string, string> = {};
    let localHttpPort: number | undefined;
    if (settingsFile) {
        const local = readJson(settingsFile) as { Values?: Record<string, unknown>; Host?: { LocalHttpPort?: unknown } };
        for (const [key, value] of Object.entries(local.Values ?? {})) {
            if (value === null || value === undefined) continue;
            if (typeof value === 'object') {
                throw new AppFolderError(`${settingsFile}: Values.${key} must be a string, number or boolean`);
            }
            settings[key] = String(value);
        }
        const port = Number(local.Host?.LocalHttpPort);
        if (Number.isInteger(port) && port > 0) localHttpPort = port;
    }

    const profileField = pkg.devhost?.profile;
    if (profileField !== undefined && (typeof profileField !== 'string' || profileField.trim() === '')) {
        throw new AppFolderError(`${pkgFile}: "devhost.profile" must name the app's devhost profile module`);
    }
    const profile = profileField ? path.resolve(dir, profileField) : undefined;

    return { dir, main, entryFiles, routePrefix, hostJson, settings, settingsFile, localHttpPort, profile };
}

/** Parses a host.json TimeSpan ("hh:mm:ss" or "d.hh:mm:ss") into milliseconds. */
/** `%SETTING%` references in a binding or host.json value, resolved from the app's settings; a missing one throws. */
export function resolveSettingReferences(value: string, settings: Record<string, string | undefined>): string {
    return value.replace(/%([^%]+)%/g, (_m, key: string) => {
        const v = settings[key];
        if (v === undefined) throw new Error(`App setting "${key}" referenced as %${key}% is not set`);
        return v;
    });
}

export function parseTimeSpan(value: string | undefined): number | undefined {
    if (!value) return undefined;
    const m = /^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?$/.exec(value.trim());
    if (!m) return undefined;
    const [, d, h, min, s, frac] = m;
    const ms = frac ? Number(`0.${frac}`) * 1000 : 0;
    return ((Number(d ?? 0) * 24 + Number(h)) * 3600 + Number(min) * 60 + Number(s)) * 1000 + ms;
}
