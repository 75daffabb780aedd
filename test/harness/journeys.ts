import { randomBytes } from 'node:crypto';
import { devToken, RunningDevhost, waitFor } from './devhost';

/** A member organisation as a test or bench uses it: its member deployment, first account and a trader's token. */
export interface OnboardedOrg {
    orgId: string;
    memberUrl: string;
    account: string;
    trader: string;
}

/**
 * User journey 1 through the public API: apply, approve from the mail the approver got,
 * wait for onboarding to end `Active`; then a token for a trader of the new organisation.
 * The core must run with an approver (FLEXCHANGE_APPROVERS).
 */
export async function onboard(host: RunningDevhost, name: string, email: string): Promise<OnboardedOrg> {
    const core = `${host.origin('core')}/api`;
    const res = await fetch(`${core}/registrations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ organization: { name, legalId: `GB-${randomBytes(4).toString('hex')}`, country: 'GB', contactEmail: email }, applicant: { name, email } }) });
    if (res.status !== 202) throw new Error(`registration answered ${res.status}: ${await res.text()}`);
    const { statusUrl } = (await res.json()) as { statusUrl: string };
    const link = await waitFor(async () => {
        const mails = (await (await fetch(`${host.consoleUrl}/dev/mail`)).json()) as { subject: string; links: string[] }[];
        return mails.find((m) => m.subject.includes(name))?.links.find((l) => l.includes('/api/approvals/'));
    }, 20_000);
    await fetch(link, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'decision=approve' });
    const done = await waitFor(async () => {
        const s = (await (await fetch(statusUrl.startsWith('http') ? statusUrl : `${host.origin('core')}${statusUrl}`)).json()) as { status: string; orgId: string; steps: { step: string; detail?: string }[] };
        return s.status === 'Active' ? s : undefined;
    }, 60_000);
    const trader = await devToken(host, { roles: ['Org.Trader'], orgId: done.orgId, email: `trader@${done.orgId}.example` });
    return { orgId: done.orgId, memberUrl: done.steps.find((s) => s.step === 'member-deployment')!.detail!, account: done.steps.find((s) => s.step === 'first-account')!.detail!, trader };
}
