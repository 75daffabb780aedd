import { chromium, type Browser } from 'playwright-core';
import { removeDir, repoRoot, RunningDevhost, startDevhost, waitFor } from '../harness/devhost';

interface Mail {
    to: string[];
    subject: string;
    links: string[];
}

/** The approval page in a real headless Chromium: clicked with scripts on, and submitted as a plain form with scripts off. */
describe('approval page in a browser', () => {
    let host: RunningDevhost;
    let browser: Browser;

    beforeAll(async () => {
        host = await startDevhost(['--app', repoRoot, '--name', 'core', '--set', 'FLEXCHANGE_APPROVERS=alice@operator.example'], { storage: true });
        browser = await chromium.launch({
            executablePath: '/usr/bin/chromium',
            args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
        });
    });
    afterAll(async () => {
        await browser?.close();
        await host?.stop();
        removeDir(host?.stateDir);
    });

    const apply = async (name: string, legalId: string, email: string) => {
        const res = await fetch(`${host.origin('core')}/api/registrations`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ organization: { name, legalId, country: 'GB', contactEmail: `ops@${email.split('@')[1]}` }, applicant: { name: 'Applicant', email } }),
        });
        return (await res.json()) as { statusUrl: string };
    };
    const linkFor = (org: string) =>
        waitFor(async () => {
            const mails = (await (await fetch(`${host.consoleUrl}/dev/mail`)).json()) as Mail[];
            return mails.find((m) => m.subject.includes(org))?.links.find((l) => l.includes('/api/approvals/'));
        }, 20_000);
    const statusOf = async (statusUrl: string) => ((await (await fetch(statusUrl)).json()) as { status: string }).status;

    for (const javaScriptEnabled of [true, false]) {
        it(`approves by clicking Approve (scripts ${javaScriptEnabled ? 'on' : 'off'})`, async () => {
            const org = javaScriptEnabled ? 'Browser Power' : 'Plain Form Grid';
            const { statusUrl } = await apply(org, javaScriptEnabled ? 'GB-7001' : 'GB-7002', javaScriptEnabled ? 'b@browser.example' : 'p@plain.example');
            const link = await linkFor(org);
            const context = await browser.newContext({ javaScriptEnabled });
            const page = await context.newPage();
            await page.goto(link);
            expect(await page.title()).toContain(org);
            expect(await page.locator('dd').first().textContent()).toBe(org);
            // Opening the page decided nothing.
            expect(await statusOf(statusUrl)).toBe('PendingApproval');
            await Promise.all([page.waitForURL(link), page.getByRole('button', { name: 'Approve' }).click()]);
            expect(await page.locator('h1').textContent()).toBe('Approved');
            await waitFor(async () => ['Provisioning', 'Active'].includes(await statusOf(statusUrl)), 20_000);
            // Back and click again: already decided, and by whom.
            await page.goto(link);
            expect(await page.locator('h1').textContent()).toBe('Already decided');
            expect(await page.locator('p').first().textContent()).toContain('by alice@operator.example');
            await context.close();
        }, 60_000);
    }
});
