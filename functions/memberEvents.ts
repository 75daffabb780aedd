import { app } from '@azure/functions';
import { EVENTS_TOPIC, getServices } from '../shared/composition';
import { checkEvent } from '../shared/events/events';
import { deploymentRole } from './http/route';

/**
 * A member deployment's subscription to the core's events (`member-<orgId>`, filtered on its
 * organisation): its own copy of the proposals that concern it, and mails to its traders.
 * A failing message is retried by the bus and dead-lettered after the last delivery.
 */
if (deploymentRole() === 'member') {
    app.serviceBusTopic('memberEvents', {
        connection: 'AzureWebJobsServiceBus',
        topicName: EVENTS_TOPIC,
        subscriptionName: 'member-%FLEXCHANGE_ORG_ID%',
        handler: async (message, context) => {
            const event = checkEvent(message);
            const { applied } = await getServices().memberProposals().apply(event);
            context.log(`event ${JSON.stringify({ id: event.id, type: event.type, applied, deliveryCount: context.triggerMetadata?.deliveryCount })}`);
        },
    });
}
