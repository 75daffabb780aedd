import { NotFound } from '../../shared/errors';
import { listOrganizations, organization, type Organization } from '../../shared/registration/organizations';
import { usageReport, type UsageCounter } from '../../shared/usage/usageMeter';
import { MemoryRepository } from './fakes/memoryStores';

describe('a usage report', () => {
    const meter = () => {
        const steps: string[] = [];
        const rows: UsageCounter[] = [];
        return {
            steps,
            rows,
            meter: {
                flush: async () => void steps.push('flush'),
                report: async (orgId: string, from: string, to: string) => (steps.push(`report ${orgId} ${from}..${to}`), rows),
            },
        };
    };

    it('covers the last 30 days up to today unless asked otherwise, with this instance’s counts flushed first', async () => {
        const m = meter();
        const out = await usageReport(m.meter, 'acme', {}, new Date('2026-03-15T23:59:00Z'));
        expect(out).toEqual({ from: '2026-02-13', to: '2026-03-15', rows: m.rows });
        expect(m.steps).toEqual(['flush', 'report acme 2026-02-13..2026-03-15']);
    });

    it('takes the days asked for, either end alone', async () => {
        const m = meter();
        await usageReport(m.meter, 'acme', { from: '2026-01-01' }, new Date('2026-03-15T00:00:00Z'));
        await usageReport(m.meter, 'acme', { to: '2026-01-31' }, new Date('2026-03-15T00:00:00Z'));
        expect(m.steps.filter((s) => s.startsWith('report'))).toEqual(['report acme 2026-01-01..2026-03-15', 'report acme 2026-02-13..2026-01-31']);
    });
});

describe('organisation records', () => {
    const org: Organization = { id: 'acme', name: 'Acme', legalId: 'GB1', country: 'GB', contactEmail: 'ops@acme.example', status: 'Active', registrationId: 'r1', createdAt: 'then', updatedAt: 'then' };

    it('reads one, and answers 404 for an organisation that is not onboarded', async () => {
        const repo = new MemoryRepository<Organization>((o) => o.id);
        await repo.create(org);
        expect(await organization(repo, 'acme')).toEqual(org);
        await expect(organization(repo, 'initech')).rejects.toEqual(new NotFound('This organisation has no record (it is not onboarded)'));
    });

    it('lists them oldest first, a page of 100 at a time, from the cursor given', async () => {
        const asked: unknown[] = [];
        const repo = { query: async (...args: unknown[]) => (asked.push(args), { items: [org], continuationToken: 'next' }) };
        expect(await listOrganizations(repo as never, 'cursor')).toEqual({ items: [org], continuationToken: 'next' });
        expect(asked).toEqual([[{ query: 'SELECT * FROM c ORDER BY c.createdAt' }, { maxItemCount: 100, continuationToken: 'cursor' }]]);
    });
});
