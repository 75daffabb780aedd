import { AccountKeys } from '../../shared/chain/signers';
import { MemberAccounts, type MemberAccount } from '../../shared/accounts/memberAccounts';
import { CosmosRepository } from '../../shared/documents/cosmosRepository';
import { startCosmos, type TestCosmos } from '../harness/cosmos';
import { MemorySecrets } from '../unit/fakes/memoryStores';

/** A member's accounts as its signatures look them up (its own database, container `accounts`). */
describe('member accounts: the key of an address', () => {
    let db: TestCosmos;

    beforeAll(async () => {
        db = await startCosmos('member-accounts');
    });
    afterAll(async () => {
        await db?.stop();
    });

    const account = (n: number, address: string): MemberAccount => ({ id: `acct-${n}`, orgId: 'north', address, label: `account ${n}`, custody: 'keystore', createdAt: new Date(Date.UTC(2026, 0, n)).toISOString() });

    function accounts(repo: CosmosRepository<MemberAccount>): MemberAccounts {
        const secrets = new MemorySecrets();
        const keys = { createSecp256k1Key: async () => Promise.reject(new Error('no keys here')), publicKey: async () => undefined } as never;
        const core = { register: async () => undefined, topUp: async () => Promise.reject(new Error('no core here')) } as never;
        return new MemberAccounts(repo, new AccountKeys(secrets, keys), { secrets, keys }, core, { orgId: 'north', custody: 'keystore' });
    }

    it('finds an account by address in any case, asks the store once for it, and again while an address is unknown', async () => {
        const repo = new CosmosRepository<MemberAccount>(db.database.container('accounts'), (a) => a.orgId);
        const queries = jest.spyOn(repo, 'query');
        const member = accounts(repo);
        const first = '0x52908400098527886E0F7030069857D2E4169EE7';
        const second = '0x8ba1f109551bD432803012645Ac136ddd64DBA72';
        await repo.create(account(1, first));
        expect(await member.keyOf(first.toLowerCase())).toEqual({ custody: 'keystore', name: 'acct-1', address: first });
        const asked = queries.mock.calls.length;
        expect(await Promise.all([member.keyOf(first), member.keyOf(first.toUpperCase().replace('0X', '0x'))])).toEqual([
            { custody: 'keystore', name: 'acct-1', address: first },
            { custody: 'keystore', name: 'acct-1', address: first },
        ]);
        expect(queries).toHaveBeenCalledTimes(asked);
        // Not an account of this member (yet): undefined, and not remembered as such.
        expect(await member.keyOf(second)).toBeUndefined();
        await repo.create(account(2, second));
        expect(await member.keyOf(second)).toEqual({ custody: 'keystore', name: 'acct-2', address: second });
    });
});
