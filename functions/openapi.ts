import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { HttpResponseInit } from '@azure/functions';
import { openApiDocument } from './http/openapi';
import { deploymentRole, httpRoute, routeTable } from './http/route';

let document: string | undefined;
let version: string | undefined;

/** The app's version, from the package.json beside the compiled code (dist/) or the sources. */
function appVersion(): string {
    if (version) return version;
    for (let dir = __dirname, i = 0; i < 4; i++, dir = path.dirname(dir)) {
        try {
            version = (JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version?: string }).version;
            if (version) return version;
        } catch {
            // keep looking upwards
        }
    }
    return (version = '0.0.0');
}

/** GET /api/openapi.json (anyone, core and member): this deployment's OpenAPI 3.1 document, made from the route table. */
httpRoute('openapi', {
    route: 'openapi.json',
    methods: ['GET'],
    deployments: ['core', 'member'],
    access: 'anonymous',
    summary: 'The OpenAPI 3.1 document of this deployment’s API',
    handler: async () => {
        document ??= JSON.stringify(openApiDocument(routeTable, deploymentRole(), { version: appVersion() }));
        return { headers: { 'content-type': 'application/json', 'cache-control': 'public, max-age=300' }, body: document };
    },
});

const ASSETS: Record<string, string> = {
    'swagger-ui.css': 'text/css; charset=utf-8',
    'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
    'swagger-ui-standalone-preset.js': 'text/javascript; charset=utf-8',
    'favicon-32x32.png': 'image/png',
};
const assetCache = new Map<string, Buffer>();

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Flexchange API</title>
<link rel="stylesheet" href="/api/docs/swagger-ui.css"><link rel="icon" type="image/png" href="/api/docs/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="/api/docs/swagger-ui-bundle.js"></script><script src="/api/docs/swagger-ui-standalone-preset.js"></script><script src="/api/docs/init.js"></script>
</body></html>`;
const INIT = `window.ui = SwaggerUIBundle({ url: '/api/openapi.json', dom_id: '#swagger-ui', deepLinking: true, presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: 'StandaloneLayout' });`;
// The page loads its own scripts only (no CDN, no inline script).
const CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self' data:";

/** GET /api/docs (anyone): Swagger UI over /api/openapi.json, its files served from the swagger-ui-dist package. */
httpRoute('docs', {
    route: 'docs/{file?}',
    methods: ['GET'],
    deployments: ['core', 'member'],
    access: 'anonymous',
    summary: 'Swagger UI for this deployment’s API',
    handler: async ({ params }): Promise<HttpResponseInit> => {
        const file = params.file;
        if (!file) return { headers: { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': CSP }, body: PAGE };
        if (file === 'init.js') return { headers: { 'content-type': 'text/javascript; charset=utf-8' }, body: INIT };
        const type = Object.hasOwn(ASSETS, file) ? ASSETS[file] : undefined;
        if (!type) return { status: 404, headers: { 'content-type': 'application/problem+json' }, body: JSON.stringify({ type: 'about:blank', title: 'Not found', status: 404, detail: `No file ${file} in the docs`, code: 'not_found' }) };
        let content = assetCache.get(file);
        if (!content) {
            content = readFileSync(path.join(path.dirname(require.resolve('swagger-ui-dist/package.json')), file));
            assetCache.set(file, content);
        }
        return { headers: { 'content-type': type, 'cache-control': 'public, max-age=86400' }, body: new Uint8Array(content) };
    },
});
