import type { AuditRecord, AuditTrail } from '../audit/auditTrail';
import { NotFound } from '../errors';
import type { Delivery, Webhook, Webhooks } from './webhooks';

interface OrgWebhookPorts {
    webhooks: Pick<Webhooks, 'register' | 'remove'>;
    audit: Pick<AuditTrail, 'record'>;
}

/** An organisation's admin registers a webhook (its signing secret is returned this once), recorded in the audit trail. */
export async function registerWebhook(ports: OrgWebhookPorts, orgId: string, input: { url: string; description?: string }, actor: AuditRecord['actor']): Promise<{ webhook: Webhook; secret: string }> {
    const registered = await ports.webhooks.register(orgId, input, actor.oid);
    await ports.audit.record({ orgId, actor, action: 'webhook.created', target: registered.webhook.id, details: { url: registered.webhook.url } });
    return registered;
}

/** Removes one of the organisation's webhooks (404 when it has no such webhook), recorded in the audit trail. */
export async function removeWebhook(ports: OrgWebhookPorts, orgId: string, webhookId: string, actor: AuditRecord['actor']): Promise<void> {
    await ports.webhooks.remove(orgId, webhookId);
    await ports.audit.record({ orgId, actor, action: 'webhook.removed', target: webhookId });
}

/** The recent deliveries of one of the organisation's webhooks (404 when the organisation has no such webhook). */
export async function deliveriesOfWebhook(webhooks: Pick<Webhooks, 'list' | 'deliveriesOf'>, orgId: string, webhookId: string): Promise<Delivery[]> {
    if (!(await webhooks.list(orgId)).some((w) => w.id === webhookId)) throw new NotFound(`The organisation has no webhook ${webhookId}`);
    return webhooks.deliveriesOf(orgId, webhookId);
}
