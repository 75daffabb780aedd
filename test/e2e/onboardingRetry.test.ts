import { removeDir, repoRoot, startDevhost, tempDir, waitFor } from '../harness/devhost';

interface Mail {
    subject: string;
    to: string[];
    links: string[];
}

/** Onboarding that fails (no member deployment possible) ends Failed with the reason; after the fix, the operator's retry resumes it. */
describe('onboarding failure and retry', () => {
    it('fails at the member deployment, then a retry after the fix resumes from there and ends Active', async () => {
        const stateDir = tempDir('flexchange-state-');
        const base = ['--app', repoRoot, '--name', 'core', '--set', 'FLEXCHANGE_APPROVERS=alice@operator.example'];
        // Member deployments go to a console that is not there: every start fails, retried after 0.25 s, 0.5, 1 and 2 (2 s, 4, 8 and 16 by default).
        const first = await startDevhost([...base, '--set', 'FLEXCHANGE_DEVHOST_CONSOLE_URL=http://127.0.0.1:9', '--set', 'FLEXCHANGE_ACTIVITY_RETRY_SECONDS=0.25'], { stateDir, storage: true });
        let registrationId = '';
        let key = '';
        const status = (origin: string) => fetch(`${origin}/api/registrations/${registrationId}?key=${key}`).then((r) => r.json() as Promise<{ status: string; failure?: string; steps: { step: string }[]; orgId: string }>);
        try {
            const res = await fetch(`${first.origin('core')}/api/registrations`, {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body: JSON.stringify({ organization: { name: 'Retry Energy', legalId: 'GB-9009', country: 'GB', contactEmail: 'ops@retry.example' }, applicant: { name: 'Rita', email: 'rita@retry.example' } }),
            });
            const body = (await res.json()) as { registrationId: string; statusUrl: string };
            registrationId = body.registrationId;
            key = new URL(body.statusUrl).searchParams.get('key')!;
            const link = await waitFor(async () => ((await (await fetch(`${first.consoleUrl}/dev/mail`)).json()) as Mail[]).find((m) => m.subject.includes('Retry Energy'))?.links.find((l) => l.includes('/api/approvals/')), 20_000);
            expect((await fetch(link, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'decision=approve' })).status).toBe(200);
            const failed = await waitFor(async () => {
                const s = await status(first.origin('core'));
                return s.status === 'Failed' ? s : undefined;
            }, 90_000, 500);
            expect(failed.failure).toMatch(/devhost console is unreachable/);
            expect(failed.steps.map((s) => s.step)).toEqual(['submitted', 'approvers-notified', 'approved', 'organization', 'applicant', 'member-subscription', 'failed']);
            await waitFor(async () => ((await (await fetch(`${first.consoleUrl}/dev/mail`)).json()) as Mail[]).some((m) => m.to.includes('rita@retry.example') && /Failed/.test(m.subject)), 20_000);
            // Only the operator retries, and only a failed onboarding.
            const trader = ((await (await fetch(`${first.consoleUrl}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ roles: ['Org.Trader'], orgId: 'x' }) })).json()) as { access_token: string }).access_token;
            expect((await fetch(`${first.origin('core')}/api/registrations/${registrationId}/retry`, { method: 'POST', headers: { authorization: `Bearer ${trader}` } })).status).toBe(403);
        } finally {
            await first.stop();
        }

        // The operator fixes the configuration and restarts, then retries.
        const second = await startDevhost(base, { stateDir, storage: true });
        try {
            const admin = ((await (await fetch(`${second.consoleUrl}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ roles: ['Flexchange.Admin'] }) })).json()) as { access_token: string }).access_token;
            const retry = await fetch(`${second.origin('core')}/api/registrations/${registrationId}/retry`, { method: 'POST', headers: { authorization: `Bearer ${admin}` } });
            expect(retry.status).toBe(202);
            const done = await waitFor(async () => {
                const s = await status(second.origin('core'));
                return s.status === 'Active' ? s : undefined;
            }, 60_000, 250);
            expect(done.steps.map((s) => s.step)).toEqual(['submitted', 'approvers-notified', 'approved', 'organization', 'applicant', 'member-subscription', 'failed', 'retry-1', 'member-deployment', 'app-identity', 'first-account', 'funded', 'announced', 'active']);
            expect(done.failure).toBeUndefined();
            // Active now: nothing to retry.
            expect((await fetch(`${second.origin('core')}/api/registrations/${registrationId}/retry`, { method: 'POST', headers: { authorization: `Bearer ${admin}` } })).status).toBe(409);
        } finally {
            await second.stop();
            removeDir(stateDir);
        }
    }, 240_000);
});
