import * as df from 'durable-functions';
import type { OrchestrationContext, OrchestrationHandler } from 'durable-functions';
import { z } from 'zod';
import { getServices } from '../shared/composition';
import { activityRetry } from './retry';
import type { DeploymentState } from '../shared/deployment/deploymentController';
import { updateItem } from '../shared/documents/repository';
import { Conflict } from '../shared/errors';
import { parseInput } from '../shared/validation';
import { ACTIVITIES, ORCHESTRATORS } from './names';

/**
 * `memberDeployment` (sub-orchestration of `memberOnboarding`): starts the organisation's
 * member deployment through the DeploymentController port and polls it with durable timers
 * (monitor pattern) until it ends, then records where it answers. The same code for Azure
 * (an ARM deployment) and the devhost (a member app instance).
 */
const retry = activityRetry();
const POLL_SECONDS = 15;
const GIVE_UP_AFTER_SECONDS = 2 * 3600;

const memberDeployment: OrchestrationHandler = function* (context: OrchestrationContext) {
    const { orgId } = context.df.getInput<{ orgId: string }>();
    const started = context.df.currentUtcDateTime.getTime();
    let state: DeploymentState = yield context.df.callActivityWithRetry(ACTIVITIES.deploymentStart, retry, { orgId });
    while (state.status === 'Running') {
        if (context.df.currentUtcDateTime.getTime() - started > GIVE_UP_AFTER_SECONDS * 1000) throw new Error(`The deployment of ${orgId} did not end within ${GIVE_UP_AFTER_SECONDS / 3600} h`);
        // The controller may say when (it came from the activity's recorded output: the same on every replay).
        yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + (state.pollAfterSeconds ?? POLL_SECONDS) * 1000));
        state = yield context.df.callActivityWithRetry(ACTIVITIES.deploymentStatus, retry, { id: state.id });
    }
    if (state.status === 'Failed') throw new Error(`The deployment of ${orgId} failed: ${state.error ?? 'no reason given'}`);
    if (!state.principalId) throw new Error(`The deployment of ${orgId} reported no app identity (principalId)`);
    yield context.df.callActivityWithRetry(ACTIVITIES.deploymentRecord, retry, { orgId, url: state.url, principalId: state.principalId });
    return state;
};
df.app.orchestration(ORCHESTRATORS.memberDeployment, memberDeployment);

const orgInput = z.object({ orgId: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/) }).strict();

df.app.activity(ACTIVITIES.deploymentStart, {
    handler: async (raw: unknown) => {
        const { orgId } = parseInput(orgInput, raw);
        const services = getServices();
        // An organisation that keeps its own subscription gets its deployment there.
        const subscriptionId = (await services.organizations.read(orgId, orgId))?.item.azureSubscriptionId;
        return services.deployments().start({ orgId, ...(subscriptionId ? { subscriptionId } : {}) });
    },
});

df.app.activity(ACTIVITIES.deploymentStatus, { handler: async (raw: unknown) => getServices().deployments().status(parseInput(z.object({ id: z.string().min(1).max(300) }).strict(), raw).id) });

/** The organisation record learns where its member deployment answers. */
df.app.activity(ACTIVITIES.deploymentRecord, {
    handler: async (raw: unknown) => {
        const { orgId, url, principalId } = parseInput(z.object({ orgId: z.string().min(1), url: z.string().url(), principalId: z.string().min(1).max(100) }).strict(), raw);
        const services = getServices();
        await updateItem(
            services.organizations,
            orgId,
            orgId,
            (current) => {
                if (!current) throw new Error(`No organisation ${orgId}`);
                if (current.deployment?.url === url && current.deployment.principalId === principalId) return undefined;
                return { ...current, deployment: { url, principalId, kind: services.deployments().kind }, updatedAt: new Date().toISOString() };
            },
            { conflict: () => new Conflict(`The organisation ${orgId} kept changing`) },
        );
        return { orgId, url };
    },
});
