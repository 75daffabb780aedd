import { fixture, flexchangeProfile, removeDir, RunningDevhost, startDevhost } from '../harness/devhost';

/**
 * Each app instance has its own managed identity, served as App Service serves one
 * (IDENTITY_ENDPOINT + IDENTITY_HEADER), so `@azure/identity` runs unmodified in the
 * app (test/fixtures/identity-app) and gets tokens that name that instance.
 */
describe('devhost managed identity', () => {
    let host: RunningDevhost;
    let issuer: string;

    beforeAll(async () => {
        host = await startDevhost(['--profile', flexchangeProfile, '--app', fixture('identity-app'), '--name', 'alpha', '--app', fixture('identity-app'), '--name', 'beta']);
        issuer = (await (await fetch(`${host.consoleUrl}/dev/services`)).json()).services.issuer;
    });
    afterAll(async () => {
        await host?.stop();
        removeDir(host?.stateDir);
    });

    const identity = async (app: string, query = '') => {
        const res = await fetch(`${host.origin(app)}/api/identity${query}`);
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };

    it('gives each instance a token of its own through DefaultAzureCredential and ManagedIdentityCredential', async () => {
        const alpha = await identity('alpha');
        expect(alpha.status).toBe(200);
        expect(alpha.body).toMatchObject({ aud: 'api://flexchange', azp: 'flexchange-alpha', iss: issuer });
        expect(alpha.body.expiresOnTimestamp).toBeGreaterThan(Date.now() + 30 * 60_000);
        const beta = await identity('beta', '?credential=managed');
        expect(beta.status).toBe(200);
        expect(beta.body).toMatchObject({ aud: 'api://flexchange', azp: 'flexchange-beta' });
        expect(beta.body.oid).not.toBe(alpha.body.oid);
        // Another resource: the token's audience follows it, as Entra ID's does.
        expect((await identity('alpha', `?scope=${encodeURIComponent('https://vault.azure.net/.default')}`)).body).toMatchObject({ aud: 'https://vault.azure.net', azp: 'flexchange-alpha' });
    });

    it('refuses a request without the instance\'s header, with a forged one, or for another identity', async () => {
        const ask = (headers: Record<string, string>, query = 'resource=api://flexchange&api-version=2019-08-01') => fetch(`${host.consoleUrl}/dev/msi/token?${query}`, { headers });
        expect((await ask({})).status).toBe(401);
        expect((await ask({ 'x-identity-header': 'forged' })).status).toBe(403);
        // An instance asking for a user-assigned identity it does not have gets none.
        const other = await identity('alpha', '?credential=managed&clientId=flexchange-beta');
        expect(other.status).toBe(500);
        expect(String(other.body.message)).toMatch(/system-assigned identity \(flexchange-alpha\)/);
    });
});
