import type { AccessToken, TokenCredential } from '@azure/core-auth';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CachedCredential } from '../../shared/auth/cachedCredential';
import { DeploymentClient } from '../../shared/auth/deploymentClient';
import { TokenValidator } from '../../shared/auth/tokenValidator';
import { Unavailable } from '../../shared/errors';
import { LocalIssuerCredential } from '../../shared/vault/credential';
import { fixture, removeDir, RunningDevhost, startDevhost } from '../harness/devhost';

/** Core ↔ member calls: client-credential tokens from the issuer, cached, accepted by the other side's validator. */
describe('service-to-service calls', () => {
    let host: RunningDevhost;
    let issuer: string;
    let member: http.Server;
    let memberUrl: string;
    const seen: { path: string; appOnly: boolean; clientId?: string }[] = [];

    beforeAll(async () => {
        host = await startDevhost(['--app', fixture('basic-app'), '--name', 'core']);
        issuer = (await (await fetch(`${host.consoleUrl}/dev/services`)).json()).services.issuer;
        const validator = new TokenValidator({ issuer, audience: 'api://flexchange', jwksUri: `${issuer}/jwks` });
        // A stand-in member deployment: it accepts only valid tokens for its API.
        member = http.createServer((req, res) => {
            validator.validate(req.headers.authorization).then(
                (p) => {
                    seen.push({ path: req.url!, appOnly: p.appOnly, clientId: p.clientId });
                    res.writeHead(200, { 'content-type': 'application/json' });
                    res.end(JSON.stringify({ ok: true, path: req.url }));
                },
                () => {
                    res.writeHead(401);
                    res.end();
                },
            );
        });
        await new Promise<void>((resolve) => member.listen(0, '127.0.0.1', () => resolve()));
        memberUrl = `http://127.0.0.1:${(member.address() as AddressInfo).port}/api`;
    });
    afterAll(async () => {
        await new Promise<void>((resolve) => member.close(() => resolve()));
        await host?.stop();
        removeDir(host?.stateDir);
    });

    it('calls the other deployment with an app token fetched once and reused', async () => {
        let fetched = 0;
        const counting: TokenCredential = {
            getToken: async (scopes, options): Promise<AccessToken | null> => {
                fetched++;
                return new LocalIssuerCredential(issuer, 'flexchange-core').getToken(scopes, options);
            },
        };
        const client = new DeploymentClient(memberUrl, new CachedCredential(counting), 'api://flexchange');
        const [a, b] = await Promise.all([client.request('GET', '/accounts'), client.request('POST', '/proposals/p1/signature', { account: '0xabc' })]);
        const c = await client.request('GET', '/health');
        expect([a.status, b.status, c.status]).toEqual([200, 200, 200]);
        expect(a.body).toEqual({ ok: true, path: '/api/accounts' });
        expect(fetched).toBe(1);
        expect(seen.every((s) => s.appOnly && s.clientId === 'flexchange-core')).toBe(true);
    });

    it('fetches a new token when the cached one is about to expire', async () => {
        let fetched = 0;
        const shortLived: TokenCredential = {
            getToken: async () => {
                fetched++;
                const t = await new LocalIssuerCredential(issuer, 'flexchange-core').getToken('api://flexchange/.default');
                return { token: t.token, expiresOnTimestamp: Date.now() + 60_000 };
            },
        };
        const client = new DeploymentClient(memberUrl, new CachedCredential(shortLived, 5 * 60_000), 'api://flexchange');
        await client.request('GET', '/a');
        await client.request('GET', '/b');
        expect(fetched).toBe(2);
    });

    it('reports an unreachable deployment as Unavailable', async () => {
        // A port that was just free: nothing listens there.
        const probe = http.createServer();
        await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', () => resolve()));
        const port = (probe.address() as AddressInfo).port;
        await new Promise<void>((resolve) => probe.close(() => resolve()));
        const client = new DeploymentClient(`http://127.0.0.1:${port}/api`, new CachedCredential(new LocalIssuerCredential(issuer, 'flexchange-core')), 'api://flexchange');
        await expect(client.request('GET', '/accounts')).rejects.toBeInstanceOf(Unavailable);
    });
});
