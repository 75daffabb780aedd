import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { currentPackage } from '../../devhost/releasePackage';

/**
 * Runs once per `npm test`: type-checks everything (app, devhost, tests) and
 * compiles the app, so tests that host the real function app load exactly what
 * `npm start` and Azure load (dist/), then makes the release package members run
 * from (build/flexchange.zip), once, so that each devhost finds it ready.
 */
export default async function globalSetup(): Promise<void> {
    const root = path.resolve(__dirname, '..', '..');
    const tsc = require.resolve('typescript/bin/tsc');
    const run = (args: string[]) => execFileSync(process.execPath, [tsc, ...args], { cwd: root, stdio: 'inherit' });
    run(['-p', 'tsconfig.json', '--noEmit']);
    run(['-p', 'tsconfig.build.json']);
    await currentPackage(root);
}
