import { CosmosClient } from '@azure/cosmos';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ensureDatabase } from '../../shared/documents/containers';
import { CosmosRepository } from '../../shared/documents/cosmosRepository';
import { TooManyRequests } from '../../shared/errors';
import { RateLimiter, RateWindow } from '../../shared/limits/rateLimiter';
import { fixture, removeDir, RunningDevhost, startDevhost } from '../harness/devhost';

describe('rate limiting persisted in the document store', () => {
    let host: RunningDevhost;
    let repo: CosmosRepository<RateWindow>;

    beforeAll(async () => {
        host = await startDevhost(['--app', fixture('basic-app'), '--name', 'core'], { storage: true });
        const info = JSON.parse(readFileSync(path.join(host.stateDir, 'storage.json'), 'utf8'));
        const client = new CosmosClient({ endpoint: info.cosmos.endpoint, key: info.cosmos.key, connectionPolicy: { enableEndpointDiscovery: false } });
        repo = new CosmosRepository<RateWindow>((await ensureDatabase(client, 'limits')).container('ratelimits'), (w) => w.key);
    });
    afterAll(async () => {
        await host?.stop();
        removeDir(host?.stateDir);
    });

    it('allows up to the limit per key and window, then answers 429 with the wait, and starts again in the next window', async () => {
        let now = Date.parse('2026-11-24T10:00:10Z');
        const limiter = new RateLimiter(repo, () => now);
        const rules = [{ key: 'ip:203.0.113.9', limit: 3, windowSeconds: 60 }];
        for (let i = 0; i < 3; i++) await limiter.hit(rules);
        const over = limiter.hit(rules);
        await expect(over).rejects.toBeInstanceOf(TooManyRequests);
        await expect(over).rejects.toMatchObject({ status: 429, retryAfterSeconds: 50 });
        // Another key has its own count.
        await limiter.hit([{ key: 'ip:198.51.100.7', limit: 3, windowSeconds: 60 }]);
        now = Date.parse('2026-11-24T10:01:00Z');
        await limiter.hit(rules);
    });

    it('holds across limiter instances (as across function instances and restarts) and under concurrent hits', async () => {
        const now = () => Date.parse('2026-11-24T11:00:00Z');
        const rules = [{ key: 'email:applicant@example.com', limit: 5, windowSeconds: 3600 }];
        const results = await Promise.allSettled(Array.from({ length: 8 }, () => new RateLimiter(repo, now).hit(rules)));
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(5);
        expect(results.filter((r) => r.status === 'rejected').every((r) => (r as PromiseRejectedResult).reason instanceof TooManyRequests)).toBe(true);
        expect((await repo.read(`email:applicant@example.com|${now()}`, 'email:applicant@example.com'))?.item.count).toBe(8);
    });
});
