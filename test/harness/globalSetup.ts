import { execFileSync } from 'node:child_process';
import path from 'node:path';

/**
 * Runs once per `npm test`: compiles the app, so tests that host the real
 * function app load exactly what `npm start` and Azure load (dist/).
 */
export default function globalSetup(): void {
    const root = path.resolve(__dirname, '..', '..');
    execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
        cwd: root,
        stdio: 'inherit',
    });
}
