import * as df from 'durable-functions';
import type { OrchestrationContext, OrchestrationHandler, Task, TimerTask } from 'durable-functions';
import { z } from 'zod';
import { getServices } from '../shared/composition';
import { activityRetry } from './retry';
import { publicBaseUrl as publicUrl } from '../shared/http/publicUrl';
import { parseInput } from '../shared/validation';
import { Invalid } from '../shared/errors';
import { approversOf, type Decision, type RegistrationStatus } from '../shared/registration/registrations';
import { ACTIVITIES, ORCHESTRATORS } from './names';
import { APPROVAL_DECISION_EVENT, type RegistrationInput } from '../shared/registration/workflowContract';

/**
 * The `registration` workflow (instance id `registration-<id>`): approvers are mailed an
 * approval link; the workflow waits for `ApprovalDecision` (raised when an approver decides
 * through a link or the API), reminds the approvers once after the reminder time, and
 * expires the application after the expiry time. Approved → `memberOnboarding`; rejected or
 * expired → the applicant is told. Every step is an activity: idempotent, retried.
 */


const retry = activityRetry();

const registrationOrchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
    const input = context.df.getInput<RegistrationInput>();
    const id = input.registrationId;
    const start = context.df.currentUtcDateTime.getTime();
    const expiresAt = new Date(start + input.expireAfterSeconds * 1000);
    yield context.df.callActivityWithRetry(ACTIVITIES.registrationNotifyApprovers, retry, { registrationId: id, kind: 'approval', expiresAt: expiresAt.toISOString() });

    const remindAt = new Date(start + input.reminderAfterSeconds * 1000);
    let reminded = input.reminderAfterSeconds >= input.expireAfterSeconds;
    let decision: Decision;
    for (;;) {
        // Fresh tasks every turn (one event, one timer): durable-functions 3 mis-tracks tasks yielded twice.
        const decisionTask = context.df.waitForExternalEvent(APPROVAL_DECISION_EVENT);
        const timer: TimerTask = context.df.createTimer(reminded ? expiresAt : remindAt);
        const winner: Task = yield context.df.Task.any([decisionTask, timer]);
        if (winner === decisionTask) {
            timer.cancel();
            decision = decisionTask.result as Decision;
            break;
        }
        if (!reminded) {
            reminded = true;
            yield context.df.callActivityWithRetry(ACTIVITIES.registrationNotifyApprovers, retry, { registrationId: id, kind: 'reminder', expiresAt: expiresAt.toISOString() });
            continue;
        }
        yield context.df.callActivityWithRetry(ACTIVITIES.registrationConclude, retry, { registrationId: id, status: 'Expired' });
        return 'Expired';
    }
    if (decision.decision === 'reject') {
        yield context.df.callActivityWithRetry(ACTIVITIES.registrationConclude, retry, { registrationId: id, status: 'Rejected', reason: decision.reason });
        return 'Rejected';
    }
    yield context.df.callActivityWithRetry(ACTIVITIES.registrationConclude, retry, { registrationId: id, status: 'Approved' });
    try {
        yield context.df.callSubOrchestrator(ORCHESTRATORS.memberOnboarding, { registrationId: id }, `${context.df.instanceId}:onboarding`);
    } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        yield context.df.callActivityWithRetry(ACTIVITIES.registrationConclude, retry, { registrationId: id, status: 'Failed', reason });
        return 'Failed';
    }
    yield context.df.callActivityWithRetry(ACTIVITIES.registrationConclude, retry, { registrationId: id, status: 'Active' });
    return 'Active';
};
df.app.orchestration(ORCHESTRATORS.registration, registrationOrchestrator);

/**
 * `registrationResume` (instance `registration-<id>:resume-<n>`): onboarding again for an approved
 * registration that ended `Failed` (POST /registrations/{id}/retry). The steps already done are
 * found done: the run resumes from the one that failed.
 */
const resumeOrchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
    const { registrationId: id } = context.df.getInput<{ registrationId: string }>();
    yield context.df.callActivityWithRetry(ACTIVITIES.registrationConclude, retry, { registrationId: id, status: 'Approved' });
    try {
        yield context.df.callSubOrchestrator(ORCHESTRATORS.memberOnboarding, { registrationId: id }, `${context.df.instanceId}:onboarding`);
    } catch (err) {
        yield context.df.callActivityWithRetry(ACTIVITIES.registrationConclude, retry, { registrationId: id, status: 'Failed', reason: err instanceof Error ? err.message : String(err) });
        return 'Failed';
    }
    yield context.df.callActivityWithRetry(ACTIVITIES.registrationConclude, retry, { registrationId: id, status: 'Active' });
    return 'Active';
};
df.app.orchestration(ORCHESTRATORS.registrationResume, resumeOrchestrator);

const notifyInput = z.object({ registrationId: z.string().uuid(), kind: z.enum(['approval', 'reminder']), expiresAt: z.string().datetime() }).strict();

/** Mails every approver a link of their own (signed, bound to them and this registration, expiring with it). */
df.app.activity(ACTIVITIES.registrationNotifyApprovers, {
    handler: async (raw: unknown) => {
        const input = parseInput(notifyInput, raw);
        const { registrations, mail, settings } = { registrations: getServices().registrations(), mail: getServices().mail, settings: getServices().settings };
        const r = await registrations.get(input.registrationId);
        if (r.status !== 'PendingApproval') return { skipped: r.status };
        // From settings, else whoever holds the approver role in the directory.
        const approvers = await approversOf(settings.FLEXCHANGE_APPROVERS, getServices().directory);
        if (approvers.length === 0) throw new Invalid('No approvers: set FLEXCHANGE_APPROVERS or give someone the Flexchange.Approver role');
        const ttl = Date.parse(input.expiresAt) - Date.now();
        const base = publicBaseUrl();
        for (const approver of approvers) {
            const token = await registrations.approvalToken(r.id, approver, Math.max(ttl, 60_000));
            const link = `${base}/api/approvals/${token}`;
            const org = r.organization;
            await mail.send({
                to: [approver],
                subject: `${input.kind === 'reminder' ? 'Reminder: ' : ''}Approve ${org.name} joining Flexchange?`,
                text: [
                    `${org.name} (${org.country}, legal id ${org.legalId}) applied to join Flexchange.`,
                    `Applicant: ${r.applicant.name} <${r.applicant.email}>; contact ${org.contactEmail}.`,
                    '',
                    `Review and decide: ${link}`,
                    '',
                    `The link is yours alone, works once, and expires ${input.expiresAt}.`,
                ].join('\n'),
                html: `<p><b>${esc(org.name)}</b> (${esc(org.country)}, legal id ${esc(org.legalId)}) applied to join Flexchange.</p><p>Applicant: ${esc(r.applicant.name)} &lt;${esc(r.applicant.email)}&gt;</p><p><a href="${esc(link)}">Review and decide</a></p><p>The link is yours alone, works once, and expires ${esc(input.expiresAt)}.</p>`,
            });
        }
        await registrations.step(r.id, input.kind === 'reminder' ? 'reminder-sent' : 'approvers-notified', { detail: `${approvers.length} approver(s)` });
        return { notified: approvers.length };
    },
});

const concludeInput = z.object({ registrationId: z.string().uuid(), status: z.enum(['Approved', 'Rejected', 'Expired', 'Active', 'Failed']), reason: z.string().max(2000).optional() }).strict();

/** Moves the registration on and tells the applicant where it matters. */
df.app.activity(ACTIVITIES.registrationConclude, {
    handler: async (raw: unknown) => {
        const input = parseInput(concludeInput, raw);
        const { registrations, mail } = { registrations: getServices().registrations(), mail: getServices().mail };
        const status: RegistrationStatus = input.status === 'Approved' ? 'Provisioning' : input.status;
        const before = await registrations.get(input.registrationId);
        const r = await registrations.step(input.registrationId, input.status.toLowerCase(), { status, detail: input.reason, failure: input.status === 'Failed' ? input.reason : undefined });
        if (before.status === status) return { status };
        const statusUrl = `${publicBaseUrl()}/api/registrations/${r.id}?key=${await registrations.statusKey(r.id)}`;
        const memberUrl = status === 'Active' ? (await getServices().organizations.read(r.orgId, r.orgId))?.item.deployment?.url : undefined;
        const messages: Partial<Record<RegistrationStatus, string>> = {
            Rejected: `Your application for ${r.organization.name} was not approved.${input.reason ? ` Reason: ${input.reason}` : ''}`,
            Expired: `Your application for ${r.organization.name} expired before it was decided. You may apply again.`,
            Active: `${r.organization.name} is now a Flexchange member (organisation id ${r.orgId}). Sign in with ${r.applicant.email}; you are its administrator.${memberUrl ? `\nYour member deployment: ${memberUrl}` : ''}\nThe consortium's API: ${publicBaseUrl()}/api`,
            Failed: `Setting up ${r.organization.name} did not complete; the operator has been told and will resume it.`,
        };
        const text = messages[status];
        if (text) await mail.send({ to: [r.applicant.email], subject: `Flexchange application: ${status}`, text: `${text}\n\nStatus: ${statusUrl}\n` });
        return { status };
    },
});


/** Where links point (shared/http/publicUrl.ts). */
export const publicBaseUrl = (): string => publicUrl(getServices().settings);

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
