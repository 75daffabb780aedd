/**
 * The release package: the zip that goes to Azure (Flex Consumption's deployment container, or
 * `az functionapp deployment source config-zip`), the same for the core and every member. The
 * devhost puts it in the member's deployment container and runs members from it, as Azure does.
 *
 * It holds the compiled app (`dist/`), `host.json`, `package.json`, and the production
 * dependencies only: the packages `package-lock.json` does not mark as development or optional
 * ones, copied from `node_modules` as installed (no install, nothing downloaded, and the working
 * tree is left as it is). Of those, what `.funcignore` leaves out (the devhost, its profile, tests,
 * benches, scripts, TypeScript sources and declarations) is left out here too: the package is what
 * a Core Tools publish would take. `test/unit/releasePackage.test.ts` checks that everything the
 * app's entry files require is in it, and no development dependency.
 */
import { zipSync, type Zippable } from 'fflate';
import ignore from 'ignore';
import fg from 'fast-glob';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

interface LockEntry {
    dev?: boolean;
    optional?: boolean;
    devOptional?: boolean;
}

/** The installed packages production needs (their folders under the root), from the lockfile. */
export function productionPackages(root: string): string[] {
    const lock = JSON.parse(readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
    return Object.entries(lock.packages)
        .filter(([key, entry]) => key.startsWith('node_modules/') && !entry.dev && !entry.devOptional && !entry.optional)
        .map(([key]) => key)
        .sort();
}

/** Every file of the release package, relative to the root, in a stable order. */
export function packageFiles(root: string): string[] {
    if (!existsSync(path.join(root, 'dist'))) throw new Error('No dist/: run `npm run build` first');
    const files = (cwd: string, ignore: string[] = []) => fg.sync('**', { cwd: path.join(root, cwd), dot: true, onlyFiles: true, followSymbolicLinks: false, ignore }).map((f) => `${cwd}/${f}`);
    const app = files('dist');
    const packages = productionPackages(root);
    const modules: string[] = [];
    for (const pkg of packages) {
        if (!existsSync(path.join(root, pkg))) throw new Error(`${pkg} is in package-lock.json but not installed: run \`npm ci\``);
        // A nested node_modules belongs to the packages in it, each listed in the lockfile on its own.
        modules.push(...files(pkg, ['**/node_modules/**']));
    }
    const funcignore = ignore().add(readFileSync(path.join(root, '.funcignore'), 'utf8'));
    return [...app, 'host.json', 'package.json', ...modules].filter((f) => !funcignore.ignores(f)).sort();
}

export const DEFAULT_PACKAGE = path.join('build', 'flexchange.zip');

/** Writes the zip; resolves to its path, its number of files, its size in bytes and its SHA-256. */
export async function buildPackage(root: string, out = path.join(root, DEFAULT_PACKAGE), level: 1 | 6 = 6): Promise<{ out: string; files: number; bytes: number; sha256: string }> {
    const files = packageFiles(root);
    return writePackage(root, files, out, level, fingerprint(root, files));
}

/** Zips the files and records, next to the zip, the fingerprint of what it was made of. */
function writePackage(root: string, files: string[], out: string, level: 1 | 6, print: string): { out: string; files: number; bytes: number; sha256: string } {
    const tree: Zippable = {};
    for (const f of files) tree[f] = [readFileSync(path.join(root, f)), { mtime: statSync(path.join(root, f)).mtime }];
    // Synchronous: fflate's asynchronous zip starts a worker thread per large file (over a hundred here).
    const data = zipSync(tree, { level });
    mkdirSync(path.dirname(out), { recursive: true });
    const tmp = `${out}.${process.pid}.tmp`;
    writeFileSync(tmp, data);
    renameSync(tmp, out);
    writeFileSync(`${out}.fingerprint`, print);
    return { out, files: files.length, bytes: data.length, sha256: createHash('sha256').update(data).digest('hex') };
}

/** What the package is made of: every file's path, size and modification time. */
function fingerprint(root: string, files: string[]): string {
    const hash = createHash('sha256');
    for (const f of files) {
        const st = statSync(path.join(root, f));
        hash.update(`${f}\0${st.size}\0${st.mtimeMs}\n`);
    }
    return hash.digest('hex');
}

/**
 * The release package of the app at `root` as it is now: the one `npm run package` (or an earlier
 * call) left in build/ when nothing it is made of changed since, otherwise a new one (made fast,
 * compression level 1, as the devhost needs it at start).
 */
export async function currentPackage(root: string): Promise<{ out: string; sha256: string; built: boolean }> {
    const out = path.join(root, DEFAULT_PACKAGE);
    const files = packageFiles(root);
    const print = fingerprint(root, files);
    try {
        if (readFileSync(`${out}.fingerprint`, 'utf8') === print) {
            return { out, sha256: createHash('sha256').update(readFileSync(out)).digest('hex'), built: false };
        }
    } catch {
        // no package yet, or no fingerprint: build one
    }
    const made = writePackage(root, files, out, 1, print);
    return { out, sha256: made.sha256, built: true };
}


