import * as df from 'durable-functions';
import type { OrchestrationContext, OrchestrationHandler } from 'durable-functions';
import { parseEther } from 'ethers';
import { z } from 'zod';
import { getServices } from '../shared/composition';
import { activityRetry } from './retry';
import { updateItem } from '../shared/documents/repository';
import { ethAddress, parseInput } from '../shared/validation';
import { Conflict } from '../shared/errors';
import type { Organization } from '../shared/registration/organizations';
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

/** The organisation record (created once; a re-run finds it). */
df.app.activity(ACTIVITIES.onboardingOrganization, {
    handler: async (raw: unknown) => {
        const { registrationId } = parseInput(byRegistration, raw);
        const services = getServices();
        const r = await services.registrations().get(registrationId);
        const now = new Date().toISOString();
        const org: Organization = {
            id: r.orgId,
            name: r.organization.name,
            legalId: r.organization.legalId,
            country: r.organization.country,
            contactEmail: r.organization.contactEmail,
            status: 'Onboarding',
            registrationId,
            createdAt: now,
            updatedAt: now,
        };
        try {
            await services.organizations.create(org);
        } catch (err) {
            if (!(err instanceof Conflict)) throw err;
        }
        await services.registrations().step(registrationId, 'organization');
        return { orgId: r.orgId };
    },
});

/** The applicant, as the organisation's administrator (adding again updates, never duplicates). */
df.app.activity(ACTIVITIES.onboardingApplicant, {
    handler: async (raw: unknown) => {
        const { registrationId } = parseInput(byRegistration, raw);
        const services = getServices();
        const r = await services.registrations().get(registrationId);
        const entry = await services.directory.addUser(r.orgId, { email: r.applicant.email, name: r.applicant.name, roles: ['Org.Admin'] }, 'registration');
        await services.registrations().step(registrationId, 'applicant', { detail: entry.id });
        return { userId: entry.id };
    },
});

df.app.activity(ACTIVITIES.onboardingStep, {
    handler: async (raw: unknown) => {
        const { registrationId, step, detail } = parseInput(z.object({ registrationId: z.string().uuid(), step: z.string().regex(/^[a-z-]{1,40}$/), detail: z.string().max(500).optional() }).strict(), raw);
        await getServices().registrations().step(registrationId, step, { detail });
        return { step };
    },
});

/** `org.activated` for the new member (on its own subscription); a fixed event id, so a retried step is dropped as a duplicate. */
df.app.activity(ACTIVITIES.onboardingAnnounce, {
    handler: async (raw: unknown) => {
        const { registrationId } = parseInput(byRegistration, raw);
        const services = getServices();
        const r = await services.registrations().get(registrationId);
        const org = await services.organizations.read(r.orgId, r.orgId);
        await services.events().publish({
            id: `org.activated:${r.orgId}`,
            type: 'org.activated',
            occurredAt: new Date().toISOString(),
            orgIds: [r.orgId],
            subject: `orgs/${r.orgId}`,
            data: { orgId: r.orgId, name: r.organization.name, memberUrl: org?.item.deployment?.url ?? null },
        });
        await services.registrations().step(registrationId, 'announced');
        return { orgId: r.orgId };
    },
});

/** The member deployment's app identity, entered in the directory for the organisation: its client-credential tokens now act for it. */
df.app.activity(ACTIVITIES.onboardingAppIdentity, {
    handler: async (raw: unknown) => {
        const { registrationId, principalId } = parseInput(z.object({ registrationId: z.string().uuid(), principalId: z.string().min(1).max(100) }).strict(), raw);
        const services = getServices();
        const r = await services.registrations().get(registrationId);
        await services.directory.register({ id: principalId, orgId: r.orgId, kind: 'app', name: `member deployment of ${r.orgId}`, roles: ['Deployment.Member'], createdAt: new Date().toISOString(), createdBy: 'onboarding' });
        await services.registrations().step(registrationId, 'app-identity', { detail: principalId });
        return { principalId };
    },
});

/**
 * The organisation's first account, made on its member deployment (the key stays in the
 * member's vault; the member registers the address with the core). The idempotency key is the
 * registration's: a retried step gets the same account back.
 */
df.app.activity(ACTIVITIES.onboardingFirstAccount, {
    handler: async (raw: unknown) => {
        const { registrationId } = parseInput(byRegistration, raw);
        const services = getServices();
        const r = await services.registrations().get(registrationId);
        const url = (await services.organizations.read(r.orgId, r.orgId))?.item.deployment?.url;
        if (!url) throw new Error(`The organisation ${r.orgId} has no member deployment yet`);
        const res = await services.deploymentClient(url).request('POST', 'accounts', { label: 'primary' }, { 'idempotency-key': `onboarding:${registrationId}` });
        if (res.status !== 200 && res.status !== 201) throw new Error(`The member deployment refused the first account (${res.status}): ${(res.body as { detail?: string } | undefined)?.detail ?? ''}`);
        const address = (res.body as { address: string }).address;
        await services.registrations().step(registrationId, 'first-account', { detail: address });
        return { address };
    },
});

/** The first account funded from the treasury (one grant per organisation, however often the step runs). */
df.app.activity(ACTIVITIES.onboardingFund, {
    handler: async (raw: unknown) => {
        const { registrationId, address } = parseInput(z.object({ registrationId: z.string().uuid(), address: ethAddress }).strict(), raw);
        const services = getServices();
        const r = await services.registrations().get(registrationId);
        if ((await services.accountRegistry.ownerOf(address)) !== r.orgId) throw new Error(`The account ${address} is not registered to ${r.orgId}`);
        const amountWei = parseEther(String(services.settings.FLEXCHANGE_TREASURY_INITIAL_GRANT_ETH));
        if (amountWei === 0n) {
            await services.registrations().step(registrationId, 'funded', { detail: 'no initial grant configured' });
            return { address };
        }
        const grant = await services.treasury().grant({ id: `onboarding:${r.orgId}`, orgId: r.orgId, address, amountWei, reason: 'onboarding' });
        if (grant.state !== 'confirmed') throw new Error(`The grant to ${address} reverted (${grant.txHash})`);
        await services.events().publish({
            id: `account.funded:${grant.id}`,
            type: 'account.funded',
            occurredAt: grant.updatedAt,
            orgIds: [r.orgId],
            subject: `orgs/${r.orgId}/accounts/${address}`,
            data: { orgId: r.orgId, address, amountWei: grant.amountWei, reason: grant.reason, txHash: grant.txHash, blockNumber: grant.blockNumber },
        });
        await services.registrations().step(registrationId, 'funded', { detail: grant.txHash });
        return { address, txHash: grant.txHash };
    },
});

/** The organisation is active once every step is done. */
df.app.activity(ACTIVITIES.onboardingActivate, {
    handler: async (raw: unknown) => {
        const { registrationId } = parseInput(byRegistration, raw);
        const services = getServices();
        const r = await services.registrations().get(registrationId);
        await updateItem(services.organizations, r.orgId, r.orgId, (current) => (current && current.status !== 'Active' ? { ...current, status: 'Active' as const, updatedAt: new Date().toISOString() } : undefined), {
            conflict: () => new Conflict(`The organisation ${r.orgId} kept changing`),
        });
        return { orgId: r.orgId };
    },
});

