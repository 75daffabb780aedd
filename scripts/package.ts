/**
 * `npm run package` → build/flexchange.zip (after `npm run build`): the release package, see
 * devhost/releasePackage.ts for what it holds.
 */
import path from 'node:path';
import { buildPackage } from '../devhost/releasePackage';

if (require.main === module) {
    const root = path.resolve(__dirname, '..');
    buildPackage(root, process.argv[2] ? path.resolve(process.argv[2]) : undefined)
        .then(({ out, files, bytes }) => console.log(`${path.relative(root, out)}: ${files} files, ${(bytes / 1e6).toFixed(1)} MB (the compiled app, host.json, package.json, production dependencies)`))
        .catch((err: Error) => {
            console.error(`package: ${err.message}`);
            process.exit(1);
        });
}
