import type { DeploymentClient } from '../../shared/auth/deploymentClient';
import { CoreDirectory } from '../../shared/directory/coreDirectory';
import { Upstream } from '../../shared/errors';

/** A member's view of its organisation's users, asked of the core: once per short while, however many mails go out. */
describe("the member's directory (the core's, cached)", () => {
    const user = (userId: string, orgId = 'acme') => ({ userId, orgId, email: `${userId}@acme.example`, roles: ['Org.Trader'], createdAt: '2026-12-03T00:00:00.000Z' });

    it('asks the core for the user list once per cache period, shares a request in flight, and keeps no failure', async () => {
        const asked: string[] = [];
        let answer: { status: number; body: unknown } = { status: 200, body: { items: [user('ada'), user('eve', 'globex')] } };
        const core = { request: async (_method: string, path: string) => (asked.push(path), answer) } as unknown as DeploymentClient;
        const directory = new CoreDirectory(core, 'acme', 50);
        const lists = await Promise.all([directory.listUsers('acme'), directory.listUsers('acme'), directory.listUsers('acme')]);
        // Another organisation's user is never listed; another organisation's list is not asked for.
        expect(lists.map((l) => l.map((u) => u.id))).toEqual([['ada'], ['ada'], ['ada']]);
        expect(await directory.listUsers('globex')).toEqual([]);
        expect(asked).toEqual(['orgs/acme/users']);
        await new Promise((r) => setTimeout(r, 60));
        answer = { status: 503, body: {} };
        await expect(directory.listUsers('acme')).rejects.toBeInstanceOf(Upstream);
        answer = { status: 200, body: { items: [user('ada'), user('bob')] } };
        expect((await directory.listUsers('acme')).map((u) => u.id)).toEqual(['ada', 'bob']);
        expect(asked).toEqual(['orgs/acme/users', 'orgs/acme/users', 'orgs/acme/users']);
    });
});
