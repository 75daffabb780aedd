import type { CosmosClient } from '@azure/cosmos';
import type { SecretClient } from '@azure/keyvault-secrets';
import type { BlobServiceClient } from '@azure/storage-blob';
import { deploymentRole, loadSettings } from '../../shared/config';
import { cosmosCheck, storageCheck, vaultCheck } from '../../shared/health/checks';
import { checkHealth, HealthCheck, HealthMonitor, HealthReport, summaryOf } from '../../shared/health/health';
import { processCheck } from '../../shared/health/processCheck';

const check = (name: string, impl: () => Promise<{ status: 'up' | 'down' }>): HealthCheck => ({ name, check: impl });

describe('health report', () => {
    const now = () => new Date('2026-11-24T00:00:00Z');

    it('is healthy when every component is up', async () => {
        const report = await checkHealth([processCheck, check('ledger', async () => ({ status: 'up' }))], { role: 'core', timeoutMs: 500, now });
        expect(report).toMatchObject({ status: 'healthy', role: 'core', checkedAt: '2026-11-24T00:00:00.000Z' });
        expect(report.checks.process).toMatchObject({ status: 'up', node: process.version });
        expect(report.checks.ledger.status).toBe('up');
    });

    it('stays healthy with a component that is not configured', async () => {
        const report = await checkHealth([processCheck, { name: 'bus', check: async () => ({ status: 'not_configured' as const }) }], { role: 'core', timeoutMs: 500, now });
        expect(report.status).toBe('healthy');
        expect(report.checks.bus.status).toBe('not_configured');
    });

    it('is unhealthy when a component is down, throws, or does not answer in time', async () => {
        const failing = Object.assign(new Error('connect ECONNREFUSED 10.0.0.4:8545'), { code: 'ECONNREFUSED' });
        const report = await checkHealth(
            [
                check('vault', async () => ({ status: 'down' })),
                check('ledger', async () => Promise.reject(failing)),
                check('cosmos', () => new Promise(() => undefined)),
            ],
            { role: 'member', timeoutMs: 50, now },
        );
        expect(report.status).toBe('unhealthy');
        expect(report.checks.vault.status).toBe('down');
        // The reason is a code, never the internal message with addresses.
        expect(report.checks.ledger).toMatchObject({ status: 'down', detail: 'ECONNREFUSED' });
        expect(report.checks.cosmos).toMatchObject({ status: 'down', detail: 'no answer within 50 ms' });
    });
});

describe('dependency checks', () => {
    const failing = (props: object) => Object.assign(new Error('internal message with 10.0.0.4'), props);

    it('are up when their one request answers, with what it saw', async () => {
        const cosmos = { database: (id: string) => ({ read: async () => ({ id }) }) } as unknown as CosmosClient;
        const blobs = { getProperties: async () => ({ defaultServiceVersion: 'x' }) } as unknown as BlobServiceClient;
        const vault = { listPropertiesOfSecrets: () => ({ byPage: () => ({ next: async () => ({ done: true }) }) }) } as unknown as SecretClient;
        expect(await cosmosCheck(cosmos, 'flexchange').check()).toEqual({ status: 'up', database: 'flexchange' });
        expect(await storageCheck(blobs).check()).toEqual({ status: 'up' });
        expect(await vaultCheck(vault).check()).toEqual({ status: 'up' });
    });

    it('are down with a reason (a code, an HTTP status, else unreachable) and never the error’s message', async () => {
        const cosmos = (err: Error) => ({ database: () => ({ read: async () => Promise.reject(err) }) }) as unknown as CosmosClient;
        expect(await cosmosCheck(cosmos(failing({ code: 'ECONNREFUSED' })), 'flexchange').check()).toEqual({ status: 'down', detail: 'ECONNREFUSED' });
        expect(await storageCheck({ getProperties: async () => Promise.reject(failing({ statusCode: 403 })) } as unknown as BlobServiceClient).check()).toEqual({ status: 'down', detail: 'HTTP 403' });
        const vault = { listPropertiesOfSecrets: () => ({ byPage: () => ({ next: async () => Promise.reject(failing({})) }) }) } as unknown as SecretClient;
        expect(await vaultCheck(vault).check()).toEqual({ status: 'down', detail: 'unreachable' });
    });
});

describe('health for anonymous callers (HealthMonitor)', () => {
    /** A check that answers when the test says so, counting its runs; the clock is the test's. */
    const world = (maxAgeMs: number) => {
        let clock = 1_000_000;
        const pending: ((r: HealthReport) => void)[] = [];
        let runs = 0;
        const check = () =>
            new Promise<HealthReport>((resolve) => {
                runs++;
                const n = runs;
                pending.push((r) => resolve({ ...r, checkedAt: `check ${n}` }));
            });
        const monitor = new HealthMonitor(check, { maxAgeMs, now: () => clock });
        const report = (status: 'up' | 'down'): HealthReport => ({ status: status === 'up' ? 'healthy' : 'unhealthy', role: 'core', checkedAt: '', checks: { ledger: { status, blockNumber: 7, latencyMs: 3 } } });
        return {
            monitor,
            runs: () => runs,
            answer: (status: 'up' | 'down') => pending.shift()!(report(status)),
            advance: (ms: number) => {
                clock += ms;
            },
        };
    };
    const settle = () => new Promise((r) => setImmediate(r));

    it('runs one check for any number of concurrent callers, and answers from it until it is max age old', async () => {
        const w = world(5000);
        const callers = Array.from({ length: 50 }, () => w.monitor.recent());
        await settle();
        expect(w.runs()).toBe(1);
        w.answer('up');
        const answers = await Promise.all(callers);
        expect(new Set(answers.map((a) => a.checkedAt))).toEqual(new Set(['check 1']));
        expect(answers[0].status).toBe('healthy');

        // Younger than half the max age: answered from it, nothing runs.
        w.advance(2000);
        expect((await w.monitor.recent()).checkedAt).toBe('check 1');
        expect(w.runs()).toBe(1);
        expect(w.monitor.checksRun).toEqual({ shared: 1, operator: 0 });

        // Past the max age: the callers wait for a new check, one for all of them.
        w.advance(3000);
        const later = [w.monitor.recent(), w.monitor.recent(), w.monitor.recent()];
        await settle();
        expect(w.runs()).toBe(2);
        w.answer('down');
        const reports = await Promise.all(later);
        expect(reports.map((r) => r.checkedAt)).toEqual(['check 2', 'check 2', 'check 2']);
        expect(reports[0].status).toBe('unhealthy');
        expect(w.monitor.checksRun).toEqual({ shared: 2, operator: 0 });
    });

    it('past half the max age answers the result it has and checks again behind it, once', async () => {
        const w = world(4000);
        const first = w.monitor.recent();
        await settle();
        w.answer('up');
        await first;
        w.advance(2500);
        expect((await w.monitor.recent()).checkedAt).toBe('check 1');
        expect((await w.monitor.recent()).checkedAt).toBe('check 1');
        expect(w.runs()).toBe(2);
        w.answer('down');
        await settle();
        // The new result serves from now on, and its age counts from when it started.
        expect((await w.monitor.recent()).checkedAt).toBe('check 2');
        w.advance(1999);
        expect((await w.monitor.recent()).checkedAt).toBe('check 2');
        expect(w.runs()).toBe(2);
    });

    it('runs a fresh check for the operator every time, whose result then serves the others', async () => {
        const w = world(5000);
        const anonymous = w.monitor.recent();
        await settle();
        w.answer('up');
        await anonymous;
        const operator = w.monitor.fresh();
        await settle();
        expect(w.runs()).toBe(2);
        w.answer('down');
        expect((await operator).checkedAt).toBe('check 2');
        expect((await w.monitor.recent()).checkedAt).toBe('check 2');
        expect(w.monitor.checksRun).toEqual({ shared: 1, operator: 1 });
    });

    it('tells an anonymous caller each status and nothing else', () => {
        const full: HealthReport = { status: 'unhealthy', role: 'member', checkedAt: '2026-11-24T00:00:00.000Z', checks: { process: { status: 'up', node: 'v22', rssMb: 200 }, ledger: { status: 'down', detail: 'ECONNREFUSED', latencyMs: 4 } } };
        expect(summaryOf(full)).toEqual({ status: 'unhealthy', role: 'member', checkedAt: '2026-11-24T00:00:00.000Z', checks: { process: { status: 'up' }, ledger: { status: 'down' } } });
    });
});

const baseline = {
    COSMOS_ENDPOINT: 'https://flexchange.documents.azure.com:443/',
    AzureWebJobsStorage: 'DefaultEndpointsProtocol=https;AccountName=x;AccountKey=eA==;EndpointSuffix=core.windows.net',
    FLEXCHANGE_KEYVAULT_URL: 'https://flexchange-core.vault.azure.net',
    FLEXCHANGE_AUTH_ISSUER: 'https://login.microsoftonline.com/tenant/v2.0',
    FLEXCHANGE_AUTH_JWKS_URI: 'https://login.microsoftonline.com/tenant/discovery/v2.0/keys',
    FLEXCHANGE_LEDGER_RPC_URLS: 'http://10.0.1.4:8545, http://10.0.1.5:8545',
    FLEXCHANGE_CHAIN_ID: '10101',
    FLEXCHANGE_ACS_CONNECTION_STRING: 'endpoint=https://x.communication.azure.com/;accesskey=eA==',
};

describe('settings', () => {
    it('reads a complete configuration with its defaults', () => {
        expect(loadSettings(baseline)).toMatchObject({
            FLEXCHANGE_ROLE: 'core',
            FLEXCHANGE_HEALTH_TIMEOUT_MS: 2000,
            FLEXCHANGE_HEALTH_CACHE_SECONDS: 5,
            COSMOS_DATABASE: 'flexchange',
            FLEXCHANGE_CREDENTIAL: 'managed-identity',
            FLEXCHANGE_LEDGER_RPC_URLS: ['http://10.0.1.4:8545', 'http://10.0.1.5:8545'],
            FLEXCHANGE_CHAIN_ID: 10101,
        });
    });

    it('names every missing or malformed setting', () => {
        expect(() => loadSettings({})).toThrow(/COSMOS_ENDPOINT.*FLEXCHANGE_KEYVAULT_URL/);
        expect(() => loadSettings({ ...baseline, FLEXCHANGE_CHAIN_ID: 'abc' })).toThrow(/FLEXCHANGE_CHAIN_ID/);
        expect(() => loadSettings({ ...baseline, FLEXCHANGE_LEDGER_RPC_URLS: 'not a url' })).toThrow(/FLEXCHANGE_LEDGER_RPC_URLS/);
        expect(() => loadSettings({ ...baseline, FLEXCHANGE_ROLE: 'admin' })).toThrow(/FLEXCHANGE_ROLE/);
    });

    it('reads the deployment role the triggers register by as the settings read it', () => {
        for (const role of [undefined, '', 'core', 'member']) expect(deploymentRole({ ...baseline, FLEXCHANGE_ROLE: role })).toBe(role || 'core');
        expect(() => deploymentRole({ FLEXCHANGE_ROLE: 'Member' })).toThrow(/FLEXCHANGE_ROLE/);
        expect(() => loadSettings({ ...baseline, FLEXCHANGE_ROLE: 'Member' })).toThrow(/FLEXCHANGE_ROLE/);
    });

    it('refuses a member without an organisation or its core, no way to send mail, and a local credential without a client id', () => {
        expect(() => loadSettings({ ...baseline, FLEXCHANGE_ROLE: 'member' })).toThrow(/FLEXCHANGE_ORG_ID is required/);
        expect(() => loadSettings({ ...baseline, FLEXCHANGE_ROLE: 'member', FLEXCHANGE_ORG_ID: 'org-1' })).toThrow(/FLEXCHANGE_CORE_URL is required/);
        expect(loadSettings({ ...baseline, FLEXCHANGE_ROLE: 'member', FLEXCHANGE_ORG_ID: 'org-1', FLEXCHANGE_CORE_URL: 'https://core.example/api' }).FLEXCHANGE_ORG_ID).toBe('org-1');
        const { FLEXCHANGE_ACS_CONNECTION_STRING: _acs, ...noMail } = baseline;
        expect(() => loadSettings(noMail)).toThrow(/FLEXCHANGE_SMTP_URL, FLEXCHANGE_ACS_ENDPOINT or FLEXCHANGE_ACS_CONNECTION_STRING/);
        expect(() => loadSettings({ ...baseline, FLEXCHANGE_CREDENTIAL: 'local-issuer' })).toThrow(/FLEXCHANGE_CLIENT_ID is required/);
    });
});
