import { Readable } from 'node:stream';
import { getServices } from '../shared/composition';
import { Invalid, TooLarge } from '../shared/errors';
import { httpRoute, idempotencyKeyOf, OPERATOR_ROLE } from './http/route';


const assetView = (a: { id: string; sha256: string; algorithm: string; location: string; size: number; contentType: string; createdAt: string }) => ({
    assetId: a.id,
    sha256: a.sha256,
    algorithm: a.algorithm,
    location: a.location,
    size: a.size,
    contentType: a.contentType,
    createdAt: a.createdAt,
});

/**
 * POST /api/assets (core, Org.Trader): the raw body, with its content type, streamed into Blob
 * storage while its SHA-256 is computed → 201 { assetId, sha256, algorithm, location, size }.
 * Too large → 413, a type not allowed → 415; `Idempotency-Key` makes a retry answer the first upload.
 */
httpRoute('assetsUpload', {
    route: 'assets',
    methods: ['POST'],
    access: { roles: ['Org.Trader'] },
    rawBody: { contentTypes: ['*/*'], description: 'The document itself, with its content type (types and size limited by settings); streamed and hashed with SHA-256' },
    summary: 'Upload a document (raw body) and get its hash and location',
    handler: async ({ request, caller }) => {
        const services = getServices();
        const key = idempotencyKeyOf(request);
        if (!caller!.orgId) throw new Invalid('Your account belongs to no organisation');
        const max = services.settings.FLEXCHANGE_ASSET_MAX_BYTES;
        const declared = Number(request.headers.get('content-length') ?? NaN);
        if (declared > max) throw new TooLarge(`Documents are limited to ${max} bytes`);
        if (declared === 0 || !request.body) throw new Invalid('The body is empty: send the document as the raw body');
        const { asset, created } = await services.assets.upload({
            orgId: caller!.orgId,
            by: caller!.principal.oid,
            contentType: request.headers.get('content-type'),
            body: Readable.fromWeb(request.body as import('node:stream/web').ReadableStream),
            idempotencyKey: key,
        });
        return { status: created ? 201 : 200, headers: { location: `/api/assets/${asset.id}` }, jsonBody: assetView(asset) };
    },
});

/** GET /api/assets/{assetId} (core): the document, to its uploader's organisation and the parties of proposals that use it. */
httpRoute('assetsGet', {
    route: 'assets/{assetId}',
    methods: ['GET'],
    access: { roles: ['Org.Admin', 'Org.Trader', OPERATOR_ROLE] },
    summary: 'Download a document',
    handler: async ({ params, caller }) => {
        const assets = getServices().assets;
        const asset = await assets.get(params.assetId, caller!.orgId, { operator: caller!.isOperator });
        const content = await assets.content(asset);
        return {
            status: 200,
            headers: {
                'content-type': asset.contentType,
                'content-length': String(content.length),
                'repr-digest': `sha-256=:${Buffer.from(asset.sha256, 'hex').toString('base64')}:`,
                'x-flexchange-sha256': asset.sha256,
                'cache-control': 'private, no-store',
                'x-content-type-options': 'nosniff',
                'content-disposition': 'attachment',
            },
            body: content,
        };
    },
});
