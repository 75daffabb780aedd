import { devToken, removeDir, repoRoot, RunningDevhost, startDevhost, waitFor } from '../harness/devhost';
import { FaultProxy, freePort } from '../harness/faultProxy';

interface Health {
    status: string;
    role: string;
    checkedAt: string;
    checks: Record<string, { status: string; [detail: string]: unknown }>;
    checksRun?: { shared: number; operator: number };
    maxAgeSeconds?: number;
}

describe('the Flexchange app under the devhost', () => {
    let host: RunningDevhost;
    let ledger: FaultProxy;
    let operator: string;
    const health = async (token?: string) => {
        const res = await fetch(`${host.origin('core')}/api/health`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
        return { status: res.status, headers: res.headers, body: (await res.json()) as Health };
    };

    beforeAll(async () => {
        // The compiled app (dist/, built by the global setup), as npm start runs it; the ledger behind a proxy
        // the test can take down, and anonymous answers at most a second old.
        const ledgerPort = await freePort();
        ledger = new FaultProxy({ host: '127.0.0.1', port: ledgerPort });
        await ledger.up();
        host = await startDevhost(
            ['--ledger-port', String(ledgerPort), '--app', repoRoot, '--name', 'core', '--set', `FLEXCHANGE_LEDGER_RPC_URLS=${ledger.url}`, '--set', 'FLEXCHANGE_HEALTH_CACHE_SECONDS=1', '--set', 'FLEXCHANGE_HEALTH_TIMEOUT_MS=1000'],
            { storage: true },
        );
        operator = await devToken(host, { roles: ['Flexchange.Admin'], email: 'ops@health.example' });
    });
    afterAll(async () => {
        await ledger?.up();
        await host?.stop();
        await ledger?.down();
        removeDir(host?.stateDir);
    });

    it('answers GET /api/health anonymously: each component of the local world up, and no details', async () => {
        const res = await health();
        expect(res.status).toBe(200);
        expect(res.headers.get('cache-control')).toBe('no-store');
        expect(res.body).toEqual({
            status: 'healthy',
            role: 'core',
            checkedAt: expect.any(String),
            checks: { process: { status: 'up' }, ledger: { status: 'up' }, cosmos: { status: 'up' }, storage: { status: 'up' }, vault: { status: 'up' }, bus: { status: 'up' } },
        });
    });

    it('gives the operator a fresh check with every detail and the count of checks run', async () => {
        const first = await health(operator);
        expect(first.status).toBe(200);
        expect(first.body).toMatchObject({
            status: 'healthy',
            role: 'core',
            checks: {
                process: { status: 'up', node: expect.any(String), heapUsedMb: expect.any(Number) },
                ledger: { status: 'up', blockNumber: expect.any(Number) },
                cosmos: { status: 'up', database: 'flexchange' },
                storage: { status: 'up' },
                vault: { status: 'up' },
                bus: { status: 'up', topic: 'flexchange-events' },
            },
            maxAgeSeconds: 1,
        });
        const second = await health(operator);
        // Each operator call is a check of its own.
        expect(second.body.checksRun!.operator).toBe(first.body.checksRun!.operator + 1);
        expect(second.body.checkedAt >= first.body.checkedAt).toBe(true);

        // Any other caller, signed in or not, gets the summary; a token that does not hold is refused.
        const trader = await devToken(host, { roles: ['Org.Trader'], orgId: 'org-health', email: 'trader@health.example' });
        expect(Object.keys((await health(trader)).body).sort()).toEqual(['checkedAt', 'checks', 'role', 'status']);
        const forged = await fetch(`${host.origin('core')}/api/health`, { headers: { authorization: 'Bearer not-a-token' } });
        expect(forged.status).toBe(401);
        expect(forged.headers.get('content-type')).toBe('application/problem+json');
    });

    it('answers anonymous callers from the latest check until it is older than the max age, then from a new one', async () => {
        const fresh = await health(operator);
        // The operator's check serves the anonymous callers after it, while it is young enough.
        const later = await waitFor(async () => {
            const anonymous = await health();
            return anonymous.body.checkedAt !== fresh.body.checkedAt ? anonymous : undefined;
        }, 30_000, 100);
        expect(later.status).toBe(200);
        expect(later.body.checkedAt > fresh.body.checkedAt).toBe(true);
        const after = await health(operator);
        expect(after.body.checksRun!.shared).toBeGreaterThan(fresh.body.checksRun!.shared);
    });

    it('answers 503 from the checked result while the ledger is down, and 200 again once a check sees it back', async () => {
        await ledger.down();
        try {
            const down = await waitFor(async () => {
                const res = await health();
                return res.status === 503 ? res : undefined;
            }, 30_000, 200);
            expect(down.body).toMatchObject({ status: 'unhealthy', checks: { ledger: { status: 'down' }, cosmos: { status: 'up' } } });
            expect(down.body.checks.ledger).toEqual({ status: 'down' });
            const full = await health(operator);
            expect(full.status).toBe(503);
            expect(full.body.checks.ledger).toMatchObject({ status: 'down', detail: 'no node answered' });
        } finally {
            await ledger.up();
        }
        const back = await waitFor(async () => {
            const res = await health();
            return res.status === 200 ? res : undefined;
        }, 30_000, 200);
        expect(back.body.checks.ledger).toEqual({ status: 'up' });
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
        expect(Object.keys(services.services).sort()).toEqual(['blob', 'bus', 'busAdmin', 'busConnection', 'busHttps', 'cosmos', 'cosmosEntra', 'issuer', 'ledger', 'mail', 'queue', 'smtp', 'table', 'vault:core']);
        // What a script needs for the Service Bus: the connection string, and the CA of the https administration API on the broker's port.
        expect(services.services.busConnection).toMatch(/^Endpoint=sb:\/\/127\.0\.0\.1:\d+;SharedAccessKeyName=[^;]+;SharedAccessKey=[^;]+;UseDevelopmentEmulator=true$/);
        expect(services.services.busHttps).toMatch(/^https:\/\/127\.0\.0\.1:\d+ \(trust .*servicebus\/tls\/ca\.pem\)$/);
    });

    it('counts what the core did (GET /dev/counts) on the whole local world, its calls named after the services they went to', async () => {
        await fetch(`${host.origin('core')}/api/health`);
        const res = await fetch(`${host.consoleUrl}/dev/counts`);
        expect(res.status).toBe(200);
        const counts = (await res.json()) as { apps: Record<string, { served: number; calls: Record<string, { reads: number; writes: number }> }> };
        expect(counts.apps.core!.served).toBeGreaterThan(0);
        // By the devhost's names: the document store (by container), the task hub's storage, the vault, and the
        // console (the instance's managed identity tokens); by address only this test's ledger proxy, not the devhost's.
        const calls = counts.apps.core!.calls;
        expect(Object.keys(calls)).toEqual(expect.arrayContaining(['console', 'cosmosEntra/proposals', 'queue', 'table', 'blob', 'vault:core']));
        expect(Object.keys(calls).filter((d) => /^(localhost|127\.0\.0\.1):\d+$/.test(d))).toEqual([new URL(ledger.url).host]);
    });
});
