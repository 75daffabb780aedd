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

    it('answers GET /api/health anonymously: every component of the local world up, the bus not configured yet', async () => {
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
                bus: { status: 'not_configured' },
            },
        });
    });

    it('refuses other methods on /api/health', async () => {
        expect((await fetch(`${host.origin('core')}/api/health`, { method: 'DELETE' })).status).toBe(405);
    });

    it('is listed on the console as the core app', async () => {
        const services = await (await fetch(`${host.consoleUrl}/dev/services`)).json();
        expect(services.apps).toEqual([{ name: 'core', role: 'core', url: `http://localhost:${host.apps.core.port}/api` }]);
        expect(Object.keys(services.services).sort()).toEqual(['blob', 'cosmos', 'issuer', 'ledger', 'mail', 'queue', 'smtp', 'table', 'vault:core']);
    });
});
