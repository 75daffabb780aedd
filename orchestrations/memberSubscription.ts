import * as df from 'durable-functions';
import { getServices } from '../shared/composition';
import { provisionMemberSubscription } from '../shared/events/memberSubscriptions';
import { ACTIVITIES } from './names';

/**
 * The member's subscription on the events topic (filter on its `orgId`), as a step of
 * `memberOnboarding`. Idempotent: a retried or repeated activity leaves one subscription
 * with exactly the one rule.
 */
df.app.activity(ACTIVITIES.provisionMemberSubscription, {
    handler: async (input: unknown, context) => {
        const result = await provisionMemberSubscription(input, getServices().memberSubscriptions());
        context.log('member subscription', { orgId: result.orgId, subscription: result.subscription, changes: result.changes });
        return result;
    },
});
