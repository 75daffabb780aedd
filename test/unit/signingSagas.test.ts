import type { AuditRecord } from '../../shared/audit/auditTrail';
import type { EnergyExchanges } from '../../shared/chain/energyExchange';
import type { Proposal, Proposals } from '../../shared/proposals/proposals';
import { SigningSagas } from '../../shared/proposals/signingSagas';

/** Starting a proposal's saga: once however often the request comes, and audited once, even when the first start fails. */
describe('proposing starts one saga and records one audit entry', () => {
    const proposal = { id: 'p-1', orgIds: ['acme', 'globex'], expiresAt: new Date(Date.now() + 3600_000).toISOString() } as Proposal;
    const actor = { oid: 'trader', orgId: 'acme', appOnly: false };

    function world(failStarts: number) {
        const audits: Omit<AuditRecord, 'id' | 'at'>[] = [];
        const starts: string[] = [];
        let stored = false;
        const sagas = new SigningSagas({
            // The first call records the proposal; a retry with the same key finds it.
            proposals: { create: async () => ({ proposal, created: !stored && (stored = true) }) } as unknown as Proposals,
            exchanges: { latest: async () => ({}) } as unknown as EnergyExchanges,
            audit: { record: async (r: Omit<AuditRecord, 'id' | 'at'>) => (audits.push(r), { ...r, id: 'a', at: 'now' }) } as never,
            remindBeforeSeconds: 60,
        });
        const durable = {
            getStatus: async (id: string) => (starts.includes(id) ? { runtimeStatus: 'Running' } : undefined),
            startNew: async (_name: string, o: { instanceId: string }) => {
                if (failStarts-- > 0) throw new Error('the task hub is unreachable');
                starts.push(o.instanceId);
                return o.instanceId;
            },
            raiseEvent: async () => undefined,
        };
        return { audits, starts, propose: () => sagas.propose({} as never, { orgId: 'acme', actor }, durable, 'key-1') };
    }

    it('audits the new proposal once and starts its saga', async () => {
        const w = world(0);
        await w.propose();
        await w.propose();
        expect(w.starts).toHaveLength(1);
        expect(w.audits).toEqual([{ orgId: 'acme', actor, action: 'proposal.created', target: 'p-1', details: { parties: ['acme', 'globex'] } }]);
    });

    it('keeps the audit entry of a proposal whose saga did not start, and starts it on the retry without a second entry', async () => {
        const w = world(1);
        await expect(w.propose()).rejects.toThrow('the task hub is unreachable');
        expect(w.audits).toHaveLength(1);
        expect(w.starts).toHaveLength(0);
        await w.propose();
        expect(w.starts).toHaveLength(1);
        expect(w.audits).toHaveLength(1);
    });
});
