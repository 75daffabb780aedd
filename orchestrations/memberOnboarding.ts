import * as df from 'durable-functions';
import type { OrchestrationContext, OrchestrationHandler } from 'durable-functions';
import { z } from 'zod';
import { getServices } from '../shared/composition';
import { activityRetry } from './retry';
import { ethAddress, parseInput } from '../shared/validation';
import { ACTIVITIES, ORCHESTRATORS } from './names';

/**
 * `memberOnboarding` (sub-orchestration of `registration`): each step an idempotent,
 * retried activity that records itself in the registration's steps, so a re-run resumes
 * after the last step done. Steps so far: the organisation record, the applicant in the
 * directory as `Org.Admin`, the member's Service Bus subscription, the member deployment
 * (`memberDeployment`), the deployment's app identity in the directory (`Deployment.Member`
 * of the organisation, for client credentials), the first account made on the member
 * deployment and funded from the treasury, `org.activated` published.
 */
const retry = activityRetry();

const onboarding: OrchestrationHandler = function* (context: OrchestrationContext) {
    const { registrationId } = context.df.getInput<{ registrationId: string }>();
    const org: { orgId: string } = yield context.df.callActivityWithRetry(ACTIVITIES.onboardingOrganization, retry, { registrationId });
    yield context.df.callActivityWithRetry(ACTIVITIES.onboardingApplicant, retry, { registrationId });
    // The subscription first: the member deployment's trigger reads it from its first start.
    yield context.df.callActivityWithRetry(ACTIVITIES.provisionMemberSubscription, retry, { orgId: org.orgId });
    yield context.df.callActivityWithRetry(ACTIVITIES.onboardingStep, retry, { registrationId, step: 'member-subscription' });
    const deployment: { url: string; principalId: string } = yield context.df.callSubOrchestrator(ORCHESTRATORS.memberDeployment, { orgId: org.orgId }, `${context.df.instanceId}:deployment`);
    yield context.df.callActivityWithRetry(ACTIVITIES.onboardingStep, retry, { registrationId, step: 'member-deployment', detail: deployment.url });
    yield context.df.callActivityWithRetry(ACTIVITIES.onboardingAppIdentity, retry, { registrationId, principalId: deployment.principalId });
    const account: { address: string } = yield context.df.callActivityWithRetry(ACTIVITIES.onboardingFirstAccount, retry, { registrationId });
    yield context.df.callActivityWithRetry(ACTIVITIES.onboardingFund, retry, { registrationId, address: account.address });
    yield context.df.callActivityWithRetry(ACTIVITIES.onboardingAnnounce, retry, { registrationId });
    yield context.df.callActivityWithRetry(ACTIVITIES.onboardingActivate, retry, { registrationId });
    return org;
};
df.app.orchestration(ORCHESTRATORS.memberOnboarding, onboarding);

const byRegistration = z.object({ registrationId: z.string().uuid() }).strict();
const registrationOf = (raw: unknown) => parseInput(byRegistration, raw).registrationId;

// The steps' logic is in shared/registration/onboarding.ts; these are their bindings.
df.app.activity(ACTIVITIES.onboardingOrganization, { handler: (raw: unknown) => getServices().onboarding().organization(registrationOf(raw)) });
df.app.activity(ACTIVITIES.onboardingApplicant, { handler: (raw: unknown) => getServices().onboarding().applicant(registrationOf(raw)) });
df.app.activity(ACTIVITIES.onboardingStep, {
    handler: (raw: unknown) => {
        const { registrationId, step, detail } = parseInput(z.object({ registrationId: z.string().uuid(), step: z.string().regex(/^[a-z-]{1,40}$/), detail: z.string().max(500).optional() }).strict(), raw);
        return getServices().onboarding().step(registrationId, step, detail);
    },
});
df.app.activity(ACTIVITIES.onboardingAppIdentity, {
    handler: (raw: unknown) => {
        const { registrationId, principalId } = parseInput(z.object({ registrationId: z.string().uuid(), principalId: z.string().min(1).max(100) }).strict(), raw);
        return getServices().onboarding().appIdentity(registrationId, principalId);
    },
});
df.app.activity(ACTIVITIES.onboardingFirstAccount, { handler: (raw: unknown) => getServices().onboarding().firstAccount(registrationOf(raw)) });
df.app.activity(ACTIVITIES.onboardingFund, {
    handler: (raw: unknown) => {
        const { registrationId, address } = parseInput(z.object({ registrationId: z.string().uuid(), address: ethAddress }).strict(), raw);
        return getServices().onboarding().fund(registrationId, address);
    },
});
df.app.activity(ACTIVITIES.onboardingAnnounce, { handler: (raw: unknown) => getServices().onboarding().announce(registrationOf(raw)) });
df.app.activity(ACTIVITIES.onboardingActivate, { handler: (raw: unknown) => getServices().onboarding().activate(registrationOf(raw)) });
