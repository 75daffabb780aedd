/**
 * The release package: the zip that goes to Azure (Flex Consumption's deployment container, or
 * `az functionapp deployment source config-zip`), the same for the core and every member.
 *
 *   npm run package            → build/flexchange.zip (after `npm run build`)
 *
 * It holds the compiled app (`dist/`), `host.json`, `package.json`, and the production
 * dependencies only: the packages `package-lock.json` does not mark as development or optional
 * ones, copied from `node_modules` as installed (no install, nothing downloaded, and the working
 * tree is left as it is). Of those, what `.funcignore` leaves out (the devhost, its profile, tests,
 * benches, scripts, TypeScript sources and declarations) is left out here too: the package is what
 * a Core Tools publish would take. `test/unit/releasePackage.test.ts` checks that everything the
 * app's entry files require is in it, and no development dependency.
 */
import { zip, type Zippable } from 'fflate';
import ignore from 'ignore';
import fg from 'fast-glob';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
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

/** Writes the zip; resolves to its path, its number of files and its size in bytes. */
export async function buildPackage(root: string, out = path.join(root, 'build', 'flexchange.zip')): Promise<{ out: string; files: number; bytes: number }> {
    const files = packageFiles(root);
    const tree: Zippable = {};
    for (const f of files) tree[f] = [readFileSync(path.join(root, f)), { mtime: statSync(path.join(root, f)).mtime }];
    const data = await new Promise<Uint8Array>((resolve, reject) => zip(tree, { level: 6 }, (err, zipped) => (err ? reject(err) : resolve(zipped))));
    mkdirSync(path.dirname(out), { recursive: true });
    writeFileSync(out, data);
    return { out, files: files.length, bytes: data.length };
}

if (require.main === module) {
    const root = path.resolve(__dirname, '..');
    buildPackage(root, process.argv[2] ? path.resolve(process.argv[2]) : undefined)
        .then(({ out, files, bytes }) => console.log(`${path.relative(root, out)}: ${files} files, ${(bytes / 1e6).toFixed(1)} MB (the compiled app, host.json, package.json, production dependencies)`))
        .catch((err: Error) => {
            console.error(`package: ${err.message}`);
            process.exit(1);
        });
}
