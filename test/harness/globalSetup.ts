import { execFileSync } from 'node:child_process';
import path from 'node:path';

/**
 * Runs once per `npm test`: type-checks everything (app, devhost, tests) and
 * compiles the app, so tests that host the real function app load exactly what
 * `npm start` and Azure load (dist/).
 */
export default function globalSetup(): void {
    const root = path.resolve(__dirname, '..', '..');
    const tsc = require.resolve('typescript/bin/tsc');
    const run = (args: string[]) => execFileSync(process.execPath, [tsc, ...args], { cwd: root, stdio: 'inherit' });
    run(['-p', 'tsconfig.json', '--noEmit']);
    run(['-p', 'tsconfig.build.json']);
}
