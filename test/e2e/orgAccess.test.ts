import { devToken, removeDir, repoRoot, RunningDevhost, startDevhost } from '../harness/devhost';

/** Organisation scoping through the directory, user management, audit-backed routes and usage metering. */
describe('organisation access on the core app', () => {
    let host: RunningDevhost;
    let api: string;

    beforeAll(async () => {
        host = await startDevhost(['--app', repoRoot, '--name', 'core'], { storage: true });
        api = `${host.origin('core')}/api`;
    });
    afterAll(async () => {
        await host?.stop();
        removeDir(host?.stateDir);
    });

    const token = (body: Parameters<typeof devToken>[1]) => devToken(host, body);
    const call = (method: string, path: string, bearer?: string, body?: unknown) =>
        fetch(`${api}${path}`, {
            method,
            headers: { ...(bearer ? { authorization: `Bearer ${bearer}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
            body: body === undefined ? undefined : JSON.stringify(body),
        });

    it('lets an organisation admin manage its own users, with validation, and hides other organisations', async () => {
        const acmeAdmin = await token({ roles: ['Org.Admin'], orgId: 'acme', email: 'admin@acme.example' });
        const added = await call('POST', '/orgs/acme/users', acmeAdmin, { email: 'Trader@Acme.example', roles: ['Org.Trader'] });
        expect(added.status).toBe(201);
        const user = await added.json();
        expect(user).toMatchObject({ orgId: 'acme', email: 'trader@acme.example', roles: ['Org.Trader'] });
        expect(added.headers.get('location')).toBe(`/api/orgs/acme/users/${user.userId}`);

        const list = await (await call('GET', '/orgs/acme/users', acmeAdmin)).json();
        expect(list.items.map((u: { email: string }) => u.email)).toContain('trader@acme.example');

        // Another organisation's users: 404, whether reading, adding or removing.
        expect((await call('GET', '/orgs/globex/users', acmeAdmin)).status).toBe(404);
        expect((await call('POST', '/orgs/globex/users', acmeAdmin, { email: 'x@acme.example', roles: ['Org.Trader'] })).status).toBe(404);
        expect((await call('DELETE', `/orgs/globex/users/${user.userId}`, acmeAdmin)).status).toBe(404);

        const invalid = await call('POST', '/orgs/acme/users', acmeAdmin, { email: 'not-an-email', roles: ['Flexchange.Admin'], extra: 1 });
        expect(invalid.status).toBe(400);
        const problem = await invalid.json();
        expect(problem.errors.map((e: { path: string }) => e.path).sort()).toEqual(['', 'email', 'roles.0']);
        expect((await fetch(`${api}/orgs/acme/users`, { method: 'POST', headers: { authorization: `Bearer ${acmeAdmin}`, 'content-type': 'text/plain' }, body: 'x' })).status).toBe(415);

        // The user added by email can sign in (same object id) and is scoped to acme.
        const trader = await token({ roles: ['Org.Trader'], email: 'trader@acme.example' });
        expect((await call('GET', '/orgs/acme/users', trader)).status).toBe(403);

        expect((await call('DELETE', `/orgs/acme/users/${user.userId}`, acmeAdmin)).status).toBe(204);
        expect((await call('DELETE', `/orgs/acme/users/${user.userId}`, acmeAdmin)).status).toBe(404);
    });

    it("registers an application as an organisation's API client: its client-credential tokens act for that organisation only, until it is removed", async () => {
        // The devhost's issuer plays Entra ID's app role assignment: it grants the application its roles.
        await token({ roles: ['Org.Admin', 'Org.Trader'], appOnly: true, name: 'acme-bot' });
        const issuer = (await (await fetch(`${host.consoleUrl}/dev/services`)).json()).services.issuer;
        const clientToken = async (clientId: string) =>
            (
                await (
                    await fetch(`${issuer}/token`, {
                        method: 'POST',
                        headers: { 'content-type': 'application/x-www-form-urlencoded' },
                        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: 'x', scope: 'api://flexchange/.default' }),
                    })
                ).json()
            ).access_token as string;
        const bot = await clientToken('acme-bot');
        // Roles but no organisation yet: no organisation's data.
        expect((await call('GET', '/orgs/acme/users', bot)).status).toBe(404);

        const acmeAdmin = await token({ roles: ['Org.Admin'], orgId: 'acme', email: 'admin@acme.example' });
        const added = await call('POST', '/orgs/acme/clients', acmeAdmin, { clientId: 'acme-bot', name: 'Trading system', roles: ['Org.Trader', 'Org.Admin'] });
        expect(added.status).toBe(201);
        expect(added.headers.get('location')).toBe('/api/orgs/acme/clients/acme-bot');
        const client = await added.json();
        expect(client).toMatchObject({ clientId: 'acme-bot', orgId: 'acme', name: 'Trading system', roles: ['Org.Admin', 'Org.Trader'] });
        expect((await (await call('GET', '/orgs/acme/clients', acmeAdmin)).json()).items).toEqual([client]);
        // Not a user: the user list and its DELETE do not touch it.
        expect((await (await call('GET', '/orgs/acme/users', acmeAdmin)).json()).items.map((u: { userId: string }) => u.userId)).not.toContain(client.principalId);
        expect((await call('DELETE', `/orgs/acme/users/${client.principalId}`, acmeAdmin)).status).toBe(404);

        expect((await call('GET', '/orgs/acme/users', bot)).status).toBe(200);
        expect((await call('GET', '/orgs/globex/users', bot)).status).toBe(404);

        // Another organisation cannot claim it, nor name it with a bad id or a role beyond an organisation's.
        const globexAdmin = await token({ roles: ['Org.Admin'], orgId: 'globex', email: 'admin@globex.example' });
        const claimed = await call('POST', '/orgs/globex/clients', globexAdmin, { clientId: 'acme-bot', roles: ['Org.Trader'] });
        expect(claimed.status).toBe(409);
        expect(await claimed.json()).toMatchObject({ code: 'conflict', detail: 'The application is registered with another organisation' });
        const bad = await call('POST', '/orgs/globex/clients', globexAdmin, { clientId: '../x', roles: ['Deployment.Core'] });
        expect(bad.status).toBe(400);
        expect((await bad.json()).errors.map((e: { path: string }) => e.path).sort()).toEqual(['clientId', 'roles.0']);
        expect((await call('GET', '/orgs/acme/clients', globexAdmin)).status).toBe(404);
        expect((await call('DELETE', '/orgs/acme/clients/acme-bot', globexAdmin)).status).toBe(404);

        expect((await call('DELETE', '/orgs/acme/clients/acme-bot', acmeAdmin)).status).toBe(204);
        expect((await call('DELETE', '/orgs/acme/clients/acme-bot', acmeAdmin)).status).toBe(404);
        // Removed: its tokens act for no organisation (the removal clears the worker's cached look-up).
        expect((await call('GET', '/orgs/acme/users', await clientToken('acme-bot'))).status).toBe(404);
    });

    it('lets the operator act on any organisation, and a caller with no organisation on none', async () => {
        const operator = await token({ roles: ['Flexchange.Admin'], email: 'ops@flexchange.example' });
        expect((await call('GET', '/orgs/globex/users', operator)).status).toBe(200);
        const orphan = await token({ roles: ['Org.Admin'], email: 'nobody@nowhere.example' });
        expect((await call('GET', '/orgs/acme/users', orphan)).status).toBe(404);
    });

    it('counts calls per organisation, route and day, and shows an organisation only its own usage', async () => {
        const admin = await token({ roles: ['Org.Admin'], orgId: 'initech', email: 'admin@initech.example' });
        for (let i = 0; i < 3; i++) expect((await call('GET', '/orgs/initech/users', admin)).status).toBe(200);
        const usage = await (await call('GET', '/usage', admin)).json();
        const today = new Date().toISOString().slice(0, 10);
        expect(usage.orgId).toBe('initech');
        expect(usage.items).toContainEqual({ route: 'orgUsersList', day: today, calls: 3 });
        expect((await call('GET', '/usage?orgId=acme', admin)).status).toBe(404);
        expect((await call('GET', '/usage?from=yesterday', admin)).status).toBe(400);
        const operator = await token({ roles: ['Flexchange.Admin'], email: 'ops@flexchange.example' });
        const seen = await (await call('GET', '/usage?orgId=initech', operator)).json();
        expect(seen.items.find((r: { route: string }) => r.route === 'orgUsersList').calls).toBeGreaterThanOrEqual(3);
    });
});
