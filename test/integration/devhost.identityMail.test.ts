import { execFileSync } from 'node:child_process';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import { JwksClient } from 'jwks-rsa';
import nodemailer from 'nodemailer';
import { fixture, flexchangeProfile, removeDir, repoRoot, RunningDevhost, startDevhost } from '../harness/devhost';

describe('devhost identity issuer and mail sink', () => {
    let host: RunningDevhost;
    let services: Record<string, string>;

    beforeAll(async () => {
        // The issuer stands in for Flexchange's app registration (its audience and app roles), which the app's profile names.
        host = await startDevhost(['--profile', flexchangeProfile, '--app', fixture('basic-app'), '--name', 'core']);
        services = (await (await fetch(`${host.consoleUrl}/dev/services`)).json()).services;
    });
    afterAll(async () => {
        await host?.stop();
        removeDir(host?.stateDir);
    });

    const mint = (body: unknown) =>
        fetch(`${host.consoleUrl}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });

    const verify = async (token: string) => {
        const jwks = new JwksClient({ jwksUri: `${services.issuer}/jwks` });
        const { header } = jwt.decode(token, { complete: true })!;
        const key = await jwks.getSigningKey(header.kid);
        return jwt.verify(token, key.getPublicKey(), { algorithms: ['RS256'], issuer: services.issuer, audience: 'api://flexchange' }) as jwt.JwtPayload;
    };

    it('mints a user token with roles that verifies against the issuer JWKS', async () => {
        const res = await fetch(`${host.consoleUrl}/dev/token`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ roles: ['Org.Trader'], orgId: 'org-1', email: 'trader@example.com', name: 'Tess Trader' }),
        });
        expect(res.status).toBe(200);
        const body = await res.json();
        expect(body).toMatchObject({ token_type: 'Bearer', expires_in: 3600 });
        const claims = await verify(body.access_token);
        expect(claims).toMatchObject({ roles: ['Org.Trader'], email: 'trader@example.com', name: 'Tess Trader', idtyp: 'user', oid: body.oid, ver: '2.0' });
        // The same email is the same principal.
        const again = await (await mint({ roles: ['Org.Admin'], email: 'trader@example.com' })).json();
        expect(again.oid).toBe(body.oid);
    });

    it('mints app-only tokens for deployments', async () => {
        const body = await (await mint({ roles: ['Deployment.Member'], orgId: 'org-2', appOnly: true })).json();
        expect(await verify(body.access_token)).toMatchObject({ idtyp: 'app', roles: ['Deployment.Member'] });
    });

    it('refuses a bad token request with problem+json naming the field', async () => {
        const res = await mint({ roles: ['Root'], email: 'not-an-email' });
        expect(res.status).toBe(400);
        expect(res.headers.get('content-type')).toBe('application/problem+json');
        const problem = await res.json();
        expect(problem.errors.map((e: { path: string }) => e.path).sort()).toEqual(['email', 'roles.0']);
        expect((await mint('{oops')).status).toBe(400);
        const wrongType = await fetch(`${host.consoleUrl}/dev/token`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' });
        expect(wrongType.status).toBe(415);
    });

    it('serves a client-credentials token endpoint', async () => {
        const res = await fetch(`${services.issuer}/token`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'member-app', client_secret: 'x', scope: 'api://flexchange/.default' }),
        });
        expect(res.status).toBe(200);
        const claims = await verify((await res.json()).access_token);
        expect(claims).toMatchObject({ idtyp: 'app', azp: 'member-app' });
    });

    it('prints a token with npm run token', () => {
        const out = execFileSync(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'devhost', 'tokenCli.ts'), '--role', 'Flexchange.Admin', '--state', host.stateDir], { encoding: 'utf8' });
        expect(jwt.decode(out.trim())).toMatchObject({ roles: ['Flexchange.Admin'] });
    });

    it('captures mails sent over SMTP, newest first, with their links, and renders one', async () => {
        const url = new URL(services.smtp);
        const transport = nodemailer.createTransport({ host: url.hostname, port: Number(url.port), secure: false, ignoreTLS: true });
        await transport.sendMail({ from: 'noreply@flexchange.local', to: 'approver@example.com', subject: 'First', text: 'plain https://example.com/a?x=1 end' });
        await transport.sendMail({
            from: 'noreply@flexchange.local',
            to: ['approver@example.com', 'other@example.com'],
            subject: 'Approve <ACME>',
            html: '<p>Please <a href="http://localhost:7071/api/approvals/abc&amp;def">approve</a></p>',
        });
        const mails = await (await fetch(`${host.consoleUrl}/dev/mail`)).json();
        expect(mails.map((m: { subject: string }) => m.subject)).toEqual(['Approve <ACME>', 'First']);
        expect(mails[0]).toMatchObject({ to: ['approver@example.com', 'other@example.com'], from: 'noreply@flexchange.local', links: ['http://localhost:7071/api/approvals/abc&def'] });
        expect(mails[1].links).toEqual(['https://example.com/a?x=1']);
        const page = await fetch(`${host.consoleUrl}/dev/mail/${mails[0].id}`);
        expect(page.headers.get('content-type')).toContain('text/html');
        const html = await page.text();
        expect(html).toContain('Approve &lt;ACME&gt;');
        expect(html).not.toContain('<ACME>');
        expect((await fetch(`${host.consoleUrl}/dev/mail/nope`)).status).toBe(404);
    });
});
