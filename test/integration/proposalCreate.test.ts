import { randomUUID } from 'node:crypto';
import { AccountRegistry, type AddressClaim, type RegisteredAccount } from '../../shared/accounts/accountRegistry';
import { Assets, type Asset } from '../../shared/assets/assets';
import { CosmosRepository } from '../../shared/documents/cosmosRepository';
import { Invalid } from '../../shared/errors';
import { uuidFromName } from '../../shared/ids';
import type { NewProposal } from '../../shared/proposals/model';
import { Proposals, type Proposal } from '../../shared/proposals/proposals';
import { startCosmos, type TestCosmos } from '../harness/cosmos';

/** `POST /api/proposals` as the service records it: one create for a new proposal, and a retry answered by the first. */
describe('recording a proposal', () => {
    let db: TestCosmos;
    let accounts: AccountRegistry;
    let assets: Assets;
    const calls: string[] = [];
    let proposals: Proposals;

    beforeAll(async () => {
        db = await startCosmos('proposal-create');
        accounts = new AccountRegistry(
            new CosmosRepository<RegisteredAccount>(db.database.container('accounts'), (a) => a.orgId),
            new CosmosRepository<AddressClaim>(db.database.container('addresses'), (c) => c.id),
        );
        // Reading a document never touches its blob.
        assets = new Assets(new CosmosRepository<Asset>(db.database.container('assets'), (a) => a.id), undefined as never, { maxBytes: 1024, contentTypes: ['application/pdf'], apiBaseUrl: () => 'https://flexchange.invalid/api' } as never);
        const repo = new CosmosRepository<Proposal>(db.database.container('proposals'), (p) => p.id);
        // The proposal store's calls, counted.
        const counted = new Proxy(repo, {
            get: (target, name, receiver) => {
                const value = Reflect.get(target, name, receiver) as unknown;
                return typeof value === 'function' ? (...args: unknown[]) => (calls.push(String(name)), (value as (...a: unknown[]) => unknown).apply(target, args)) : value;
            },
        });
        proposals = new Proposals(counted, { accounts, assets, exchanges: undefined as never, chainId: 31337, pipeline: undefined as never, operator: undefined as never, events: undefined as never }, { minLifetimeSeconds: 60, maxLifetimeSeconds: 86_400 });
    });
    afterAll(async () => {
        await db?.stop();
    });

    /** Two organisations with an account each, and a document of the first's. */
    async function world() {
        const tag = randomUUID().slice(0, 8);
        const [north, south] = [`north-${tag}`, `south-${tag}`];
        const [a, b] = ['0x' + randomUUID().replace(/-/g, '').padEnd(40, '1'), '0x' + randomUUID().replace(/-/g, '').padEnd(40, '2')];
        const accountA = (await accounts.register(north, { address: a, label: 'a' }, 'admin')).account.address;
        const accountB = (await accounts.register(south, { address: b, label: 'b' }, 'admin')).account.address;
        const doc = async (): Promise<Asset> =>
            (
                await db.database.container('assets').items.create<Asset>({
                    id: randomUUID(),
                    orgId: north,
                    uploadedBy: 'trader',
                    sha256: 'ab'.repeat(32),
                    algorithm: 'sha256',
                    size: 10,
                    contentType: 'application/pdf',
                    location: 'https://flexchange.invalid/doc',
                    blob: { container: 'assets', name: 'doc' },
                    sharedWith: [],
                    createdAt: new Date().toISOString(),
                })
            ).resource!;
        const input = (assetIds: string[], expiresInS = 3600): NewProposal => ({
            parties: [
                { orgId: north, account: accountA },
                { orgId: south, account: accountB },
            ],
            terms: { product: 'baseload', direction: 'buy', quantityMWh: 10, priceGbpPerMWh: 80, deliveryStart: '2027-01-01T00:00:00.000Z', deliveryEnd: '2027-01-01T01:00:00.000Z' },
            assets: assetIds,
            expiresAt: new Date(Date.now() + expiresInS * 1000).toISOString(),
        });
        const sharedWith = async (id: string) => (await assets.get(id, north)).sharedWith;
        return { north, south, doc, input, sharedWith };
    }

    it('records a new proposal with one create, no read first, and lets the other party read its documents', async () => {
        const w = await world();
        const doc = await w.doc();
        calls.length = 0;
        const { proposal, created } = await proposals.create(w.input([doc.id]), { orgId: w.north, by: 'trader' }, 'deal-1');
        expect(created).toBe(true);
        expect(proposal.id).toBe(uuidFromName(`${w.north}\nproposal\ndeal-1`));
        expect(calls).toEqual(['create']);
        expect(await w.sharedWith(doc.id)).toEqual([w.south]);
        // Without a key: a fresh id each time, one create each.
        calls.length = 0;
        const [x, y] = await Promise.all([proposals.create(w.input([doc.id]), { orgId: w.north, by: 'trader' }), proposals.create(w.input([doc.id]), { orgId: w.north, by: 'trader' })]);
        expect(x.proposal.id).not.toBe(y.proposal.id);
        expect(calls).toEqual(['create', 'create']);
    });

    it('answers a retry with the first proposal, sharing the documents a first attempt that stopped after its create did not, and nothing else', async () => {
        const w = await world();
        const [first, other] = [await w.doc(), await w.doc()];
        // The first attempt recorded the proposal and stopped there (its documents not yet shared).
        const made = await proposals.create(w.input([first.id]), { orgId: w.north, by: 'trader' }, 'deal-2');
        await db.database.container('assets').item(first.id, first.id).replace<Asset>({ ...first, sharedWith: [] });
        calls.length = 0;
        // The retry (here with another document listed: the first's documents are the ones shared).
        const again = await proposals.create(w.input([first.id, other.id]), { orgId: w.north, by: 'trader' }, 'deal-2');
        expect(again).toEqual({ proposal: made.proposal, created: false });
        expect(calls).toEqual(['create', 'read']);
        expect(await w.sharedWith(first.id)).toEqual([w.south]);
        expect(await w.sharedWith(other.id)).toEqual([]);
        // Twice at once: both answered with the first.
        const both = await Promise.all([1, 2].map(() => proposals.create(w.input([first.id]), { orgId: w.north, by: 'trader' }, 'deal-2')));
        expect(both.map((r) => r.proposal.id)).toEqual([made.proposal.id, made.proposal.id]);
    });

    it('answers a retry whose input no longer passes (its expiry too near now) with the first; without a first, the errors', async () => {
        const w = await world();
        const doc = await w.doc();
        const made = await proposals.create(w.input([doc.id], 120), { orgId: w.north, by: 'trader' }, 'deal-3');
        const later = Date.now() + 90_000;
        const retry = await proposals.create(w.input([doc.id], 120), { orgId: w.north, by: 'trader' }, 'deal-3', later);
        expect(retry).toEqual({ proposal: made.proposal, created: false });
        const refused = proposals.create(w.input([doc.id], 120), { orgId: w.north, by: 'trader' }, 'deal-4', later);
        await expect(refused).rejects.toBeInstanceOf(Invalid);
        await expect(refused).rejects.toMatchObject({ errors: [{ path: 'expiresAt', message: 'must be at least 60 s in the future' }] });
        // An account of another organisation: refused, nothing recorded.
        calls.length = 0;
        const wrong = w.input([doc.id]);
        wrong.parties[1] = { ...wrong.parties[1]!, orgId: `${w.south}-other` };
        await expect(proposals.create(wrong, { orgId: w.north, by: 'trader' }, 'deal-5')).rejects.toMatchObject({ errors: [{ path: 'parties.1.account', message: `not an account registered to ${w.south}-other` }] });
        expect(calls).toEqual(['read']);
    });
});
