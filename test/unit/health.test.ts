import { loadSettings } from '../../shared/config';
import { checkHealth, HealthCheck } from '../../shared/health/health';
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

describe('settings', () => {
    it('defaults to the core role', () => {
        expect(loadSettings({})).toMatchObject({ FLEXCHANGE_ROLE: 'core', FLEXCHANGE_HEALTH_TIMEOUT_MS: 2000 });
    });

    it('refuses an unknown role and a member without an organisation', () => {
        expect(() => loadSettings({ FLEXCHANGE_ROLE: 'admin' })).toThrow(/FLEXCHANGE_ROLE/);
        expect(() => loadSettings({ FLEXCHANGE_ROLE: 'member' })).toThrow(/FLEXCHANGE_ORG_ID is required/);
        expect(loadSettings({ FLEXCHANGE_ROLE: 'member', FLEXCHANGE_ORG_ID: 'org-1' }).FLEXCHANGE_ORG_ID).toBe('org-1');
    });
});
