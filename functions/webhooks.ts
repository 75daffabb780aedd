import { app } from '@azure/functions';
import { z } from 'zod';
import { getServices } from '../shared/composition';
import { deliveriesOfWebhook, registerWebhook, removeWebhook } from '../shared/webhooks/orgWebhooks';
import type { Webhook } from '../shared/webhooks/webhooks';
import { actorOf, deploymentRole, httpRoute, ORG_ADMINS } from './http/route';

const webhookView = (w: Webhook) => ({ webhookId: w.id, orgId: w.orgId, url: w.url, description: w.description ?? null, createdAt: w.createdAt });

/**
 * POST /api/orgs/{orgId}/webhooks (Org.Admin): `{ url, description? }` → 201 with the signing
 * secret, shown this once (kept in the core's vault). Every event of the organisation is then
 * POSTed there, signed (`Flexchange-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`).
 */
httpRoute('orgWebhooksCreate', {
    route: 'orgs/{orgId}/webhooks',
    methods: ['POST'],
    access: ORG_ADMINS,
    body: z
        .object({
            url: z.string().min(1).max(2000).describe('https URL whose host resolves to public addresses only (checked again before every delivery)'),
            description: z.string().max(200).optional(),
        })
        .strict(),
    summary: 'Register a webhook for the organisation’s events',
    handler: async ({ params, body, caller }) => {
        const { webhook, secret } = await registerWebhook(getServices(), params.orgId, body, actorOf(caller!));
        return { status: 201, headers: { location: `/api/orgs/${params.orgId}/webhooks/${webhook.id}`, 'cache-control': 'no-store' }, jsonBody: { ...webhookView(webhook), secret } };
    },
});

/** GET /api/orgs/{orgId}/webhooks (Org.Admin): the webhooks (without secrets). */
httpRoute('orgWebhooksList', {
    route: 'orgs/{orgId}/webhooks',
    methods: ['GET'],
    access: ORG_ADMINS,
    summary: 'The organisation’s webhooks',
    handler: async ({ params }) => ({ jsonBody: { items: (await getServices().webhooks.list(params.orgId)).map(webhookView) } }),
});

/** GET /api/orgs/{orgId}/webhooks/{id}/deliveries (Org.Admin): recent deliveries with their state (pending, delivered, parked). */
httpRoute('orgWebhookDeliveries', {
    route: 'orgs/{orgId}/webhooks/{webhookId}/deliveries',
    methods: ['GET'],
    access: ORG_ADMINS,
    summary: 'A webhook’s recent deliveries',
    handler: async ({ params }) => {
        const deliveries = await deliveriesOfWebhook(getServices().webhooks, params.orgId, params.webhookId);
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
    access: ORG_ADMINS,
    summary: 'Remove a webhook',
    handler: async ({ params, caller }) => {
        await removeWebhook(getServices(), params.orgId, params.webhookId, actorOf(caller!));
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
