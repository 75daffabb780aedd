import type { ServiceBusClient, ServiceBusSender } from '@azure/service-bus';
import { isUnreachable, Unavailable, Upstream } from '../errors';
import { checkEvent, EventEnvelope, EventPublisher } from './events';

/**
 * Publishes events on the Service Bus topic: one message per organisation concerned,
 * with application properties `type` and `orgId` (each member's subscription filters
 * on its `orgId`), and message id `<event id>:<orgId>` so the topic's duplicate
 * detection drops a republished event.
 */
export class ServiceBusEventPublisher implements EventPublisher {
    #sender?: ServiceBusSender;

    constructor(
        private readonly client: ServiceBusClient,
        private readonly topic: string,
    ) {}

    async publish(event: EventEnvelope): Promise<void> {
        checkEvent(event);
        this.#sender ??= this.client.createSender(this.topic);
        const messages = [...new Set(event.orgIds)].map((orgId) => ({
            messageId: `${event.id}:${orgId}`,
            body: event,
            contentType: 'application/json',
            subject: event.type,
            applicationProperties: { type: event.type, orgId },
        }));
        try {
            await this.#sender.sendMessages(messages);
        } catch (err) {
            if (isUnreachable(err) || (err as { code?: string }).code === 'ServiceCommunicationProblem') throw new Unavailable('The bus is unreachable', { cause: err });
            throw new Upstream('The bus refused the event', { cause: err });
        }
    }

    async close(): Promise<void> {
        await this.#sender?.close();
    }
}
