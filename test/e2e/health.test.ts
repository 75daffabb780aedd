import { removeDir, repoRoot, RunningDevhost, startDevhost } from '../harness/devhost';

describe('the Flexchange app under the devhost', () => {
    let host: RunningDevhost;

    beforeAll(async () => {
        // The compiled app (dist/, built by the global setup), as npm start runs it.
        host = await startDevhost(['--app', repoRoot, '--name', 'core'], { storage: true });
    });
    afterAll(async () => {
        await host?.stop();
        removeDir(host?.stateDir);
    });

    it('answers GET /api/health anonymously: every component of the local world up', async () => {
        const res = await fetch(`${host.origin('core')}/api/health`);
        const body = await res.json();
        expect(res.status).toBe(200);
        expect(res.headers.get('cache-control')).toBe('no-store');
        expect(body).toMatchObject({
            status: 'healthy',
            role: 'core',
            checks: {
                process: { status: 'up' },
                ledger: { status: 'up' },
                cosmos: { status: 'up', database: 'flexchange' },
                storage: { status: 'up' },
                vault: { status: 'up' },
                bus: { status: 'up', topic: 'flexchange-events' },
            },
        });
    });

    it('refuses other methods on /api/health', async () => {
        expect((await fetch(`${host.origin('core')}/api/health`, { method: 'DELETE' })).status).toBe(405);
    });

    it('tells a caller with a dev token who it is, and refuses callers without one as problem+json', async () => {
        const minted = await (
            await fetch(`${host.consoleUrl}/dev/token`, {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body: JSON.stringify({ roles: ['Org.Trader'], orgId: 'org-1', email: 'trader@example.com' }),
            })
        ).json();
        const me = await fetch(`${host.origin('core')}/api/me`, { headers: { authorization: `Bearer ${minted.access_token}` } });
        expect(me.status).toBe(200);
        expect(await me.json()).toMatchObject({ oid: minted.oid, roles: ['Org.Trader'], appOnly: false, email: 'trader@example.com' });

        const anonymous = await fetch(`${host.origin('core')}/api/me`);
        expect(anonymous.status).toBe(401);
        expect(anonymous.headers.get('content-type')).toBe('application/problem+json');
        expect(anonymous.headers.get('www-authenticate')).toBe('Bearer');
        expect(await anonymous.json()).toMatchObject({ status: 401, code: 'unauthorized', title: 'Unauthorized' });

        // A client-credentials token with no app role is authenticated but not allowed.
        const issuer = (await (await fetch(`${host.consoleUrl}/dev/services`)).json()).services.issuer;
        const cc = await (
            await fetch(`${issuer}/token`, {
                method: 'POST',
                headers: { 'content-type': 'application/x-www-form-urlencoded' },
                body: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'stranger', client_secret: 'x', scope: 'api://flexchange/.default' }),
            })
        ).json();
        const forbidden = await fetch(`${host.origin('core')}/api/me`, { headers: { authorization: `Bearer ${cc.access_token}` } });
        expect(forbidden.status).toBe(403);
        expect(await forbidden.json()).toMatchObject({ status: 403, code: 'forbidden' });
    });

    it('is listed on the console as the core app', async () => {
        const services = await (await fetch(`${host.consoleUrl}/dev/services`)).json();
        expect(services.apps).toEqual([{ name: 'core', role: 'core', url: `http://localhost:${host.apps.core.port}/api` }]);
        expect(Object.keys(services.services).sort()).toEqual(['blob', 'bus', 'busAdmin', 'cosmos', 'issuer', 'ledger', 'mail', 'queue', 'smtp', 'table', 'vault:core']);
    });
});
