import { app } from '@azure/functions';
import { z } from 'zod';
import { getServices } from '../shared/composition';
import { NotFound } from '../shared/errors';
import type { Webhook } from '../shared/webhooks/webhooks';
import { actorOf, deploymentRole, httpRoute, OPERATOR_ROLE } from './http/route';

const webhookView = (w: Webhook) => ({ webhookId: w.id, orgId: w.orgId, url: w.url, description: w.description ?? null, createdAt: w.createdAt });

/**
 * POST /api/orgs/{orgId}/webhooks (Org.Admin): `{ url, description? }` → 201 with the signing
 * secret, shown this once (kept in the core's vault). Every event of the organisation is then
 * POSTed there, signed (`Flexchange-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`).
 */
httpRoute('orgWebhooksCreate', {
    route: 'orgs/{orgId}/webhooks',
    methods: ['POST'],
    access: { roles: ['Org.Admin', OPERATOR_ROLE], org: 'orgId' },
    body: z
        .object({
            url: z.string().min(1).max(2000).describe('https URL whose host resolves to public addresses only (checked again before every delivery)'),
            description: z.string().max(200).optional(),
        })
        .strict(),
    summary: 'Register a webhook for the organisation’s events',
    handler: async ({ params, body, caller }) => {
        const services = getServices();
        const { webhook, secret } = await services.webhooks.register(params.orgId, body, caller!.principal.oid);
        await services.audit.record({ orgId: params.orgId, actor: actorOf(caller!), action: 'webhook.created', target: webhook.id, details: { url: webhook.url } });
        return { status: 201, headers: { location: `/api/orgs/${params.orgId}/webhooks/${webhook.id}`, 'cache-control': 'no-store' }, jsonBody: { ...webhookView(webhook), secret } };
    },
});

/** GET /api/orgs/{orgId}/webhooks (Org.Admin): the webhooks (without secrets). */
httpRoute('orgWebhooksList', {
    route: 'orgs/{orgId}/webhooks',
    methods: ['GET'],
    access: { roles: ['Org.Admin', OPERATOR_ROLE], org: 'orgId' },
    summary: 'The organisation’s webhooks',
    handler: async ({ params }) => ({ jsonBody: { items: (await getServices().webhooks.list(params.orgId)).map(webhookView) } }),
});

/** GET /api/orgs/{orgId}/webhooks/{id}/deliveries (Org.Admin): recent deliveries with their state (pending, delivered, parked). */
httpRoute('orgWebhookDeliveries', {
    route: 'orgs/{orgId}/webhooks/{webhookId}/deliveries',
    methods: ['GET'],
    access: { roles: ['Org.Admin', OPERATOR_ROLE], org: 'orgId' },
    summary: 'A webhook’s recent deliveries',
    handler: async ({ params }) => {
        const webhooks = getServices().webhooks;
        if (!(await webhooks.list(params.orgId!)).some((w) => w.id === params.webhookId)) throw new NotFound(`The organisation has no webhook ${params.webhookId}`);
        const deliveries = await webhooks.deliveriesOf(params.orgId, params.webhookId);
        return {
            jsonBody: {
                items: deliveries.map((d) => ({ eventId: d.event.id, type: d.event.type, state: d.state, attempts: d.attempts, nextAttemptAt: d.state === 'pending' ? d.nextAttemptAt : null, deliveredAt: d.deliveredAt ?? null, lastError: d.lastError ?? null })),
            },
        };
    },
});

/** DELETE /api/orgs/{orgId}/webhooks/{id} (Org.Admin). */
httpRoute('orgWebhooksDelete', {
    route: 'orgs/{orgId}/webhooks/{webhookId}',
    methods: ['DELETE'],
    access: { roles: ['Org.Admin', OPERATOR_ROLE], org: 'orgId' },
    summary: 'Remove a webhook',
    handler: async ({ params, caller }) => {
        const services = getServices();
        await services.webhooks.remove(params.orgId, params.webhookId);
        await services.audit.record({ orgId: params.orgId, actor: actorOf(caller!), action: 'webhook.removed', target: params.webhookId });
        return { status: 204 };
    },
});

/** The core's webhook dispatcher: every 2 seconds, the deliveries that are due (never overlapping runs). */
if (deploymentRole() === 'core') {
    app.timer('webhookDispatch', {
        schedule: '*/2 * * * * *',
        handler: async (_timer, context) => {
            const tally = await getServices().webhooks.dispatch();
            if (tally.delivered + tally.retried + tally.parked > 0) context.log(`webhooks ${JSON.stringify(tally)}`);
        },
    });
}
