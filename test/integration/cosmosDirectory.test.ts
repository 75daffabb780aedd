import { CosmosDirectory } from '../../shared/directory/cosmosDirectory';
import { startCosmos, type TestCosmos } from '../harness/cosmos';

/** The directory in the local Cosmos server: organisation look-ups, users per organisation, role holders across them. */
describe('directory in Cosmos', () => {
    let db: TestCosmos;
    beforeAll(async () => {
        db = await startCosmos();
    });
    afterAll(() => db?.stop());

    it('resolves principals to their organisation, lists users per organisation, and finds role holders across organisations', async () => {
        const directory = new CosmosDirectory(db.database.container('directory'), 0);
        const ada = await directory.addUser('acme', { email: 'Ada@Acme.example', roles: ['Org.Admin'] }, 'test');
        await directory.addUser('globex', { email: 'gil@globex.example', roles: ['Org.Trader'] }, 'test');
        await directory.register({ id: 'approver-1', orgId: 'operator', kind: 'user', email: 'alice@operator.example', roles: ['Flexchange.Approver'], createdAt: new Date().toISOString() });
        await directory.register({ id: 'app-1', orgId: 'acme', kind: 'app', name: 'member deployment', roles: ['Deployment.Member', 'Flexchange.Approver'], createdAt: new Date().toISOString() });

        expect(await directory.resolve(ada.id)).toMatchObject({ orgId: 'acme', email: 'ada@acme.example' });
        expect(await directory.resolve('app-1')).toMatchObject({ orgId: 'acme', kind: 'app' });
        expect((await directory.listUsers('acme')).map((u) => u.email)).toEqual(['ada@acme.example']);
        // Users only: an app identity holding the role is no approver to mail.
        expect(await directory.holders('Flexchange.Approver')).toEqual([{ id: 'approver-1', email: 'alice@operator.example' }]);
        expect(await directory.holders('Org.Trader')).toEqual([expect.objectContaining({ email: 'gil@globex.example' })]);
    });
});
