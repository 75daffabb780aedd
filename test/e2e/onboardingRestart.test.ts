import { removeDir, repoRoot, startDevhost, tempDir, waitFor } from '../harness/devhost';

interface Mail {
    subject: string;
    links: string[];
}

/** A devhost killed in the middle of onboarding: after a restart the workflow resumes and ends Active, each step once, one member instance. */
describe('onboarding across a devhost crash', () => {
    it('resumes after SIGKILL right after the approval', async () => {
        const stateDir = tempDir('flexchange-state-');
        const args = ['--app', repoRoot, '--name', 'core', '--set', 'FLEXCHANGE_APPROVERS=alice@operator.example'];
        const first = await startDevhost(args, { stateDir, storage: true });
        let registrationId = '';
        let key = '';
        try {
            const res = await fetch(`${first.origin('core')}/api/registrations`, {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body: JSON.stringify({ organization: { name: 'Crashproof Energy', legalId: 'GB-8008', country: 'GB', contactEmail: 'ops@crash.example' }, applicant: { name: 'Cora', email: 'cora@crash.example' } }),
            });
            const body = (await res.json()) as { registrationId: string; statusUrl: string };
            registrationId = body.registrationId;
            key = new URL(body.statusUrl).searchParams.get('key')!;
            const link = await waitFor(async () => ((await (await fetch(`${first.consoleUrl}/dev/mail`)).json()) as Mail[]).find((m) => m.subject.includes('Crashproof'))?.links.find((l) => l.includes('/api/approvals/')), 20_000);
            const decided = await fetch(link, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'decision=approve' });
            expect(decided.status).toBe(200);
        } finally {
            // Killed while the workflow moves on from the decision (onboarding takes a few seconds: a member app starts).
            first.child.kill('SIGKILL');
            await first.exited;
        }

        const second = await startDevhost(args, { stateDir, storage: true });
        try {
            const status = (url: string) => fetch(url).then((r) => r.json() as Promise<{ status: string; steps: { step: string }[]; orgId: string }>);
            const done = await waitFor(async () => {
                const s = await status(`${second.origin('core')}/api/registrations/${registrationId}?key=${key}`);
                return s.status === 'Active' ? s : undefined;
            }, 90_000, 250);
            const steps = done.steps.map((s) => s.step);
            expect(steps).toEqual(['submitted', 'approvers-notified', 'approved', 'organization', 'applicant', 'member-subscription', 'member-deployment', 'app-identity', 'first-account', 'funded', 'announced', 'active']);
            const services = (await (await fetch(`${second.consoleUrl}/dev/services`)).json()) as { apps: { name: string; role?: string; url: string }[] };
            const members = services.apps.filter((a) => a.role === 'member');
            expect(members.map((m) => m.name)).toEqual([`member-${done.orgId}`]);
            expect((await fetch(`${members[0].url}/health`)).status).toBe(200);
        } finally {
            await second.stop();
            removeDir(stateDir);
        }
    }, 180_000);
});
