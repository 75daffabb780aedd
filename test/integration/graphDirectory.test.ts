import type { AccessToken, TokenCredential } from '@azure/core-auth';
import type { Directory, DirectoryEntry } from '../../shared/directory/directory';
import { GraphDirectory } from '../../shared/directory/graphDirectory';
import { Unavailable, Upstream } from '../../shared/errors';
import { FakeGraph } from '../harness/azureFakes';

/** An in-memory store behind the Graph directory (the Cosmos one is tested against the Cosmos server). */
class MemoryDirectory implements Directory {
    readonly entries = new Map<string, DirectoryEntry>();
    async resolve(id: string, _opts?: { fresh?: boolean }) {
        return this.entries.get(id);
    }
    async listUsers(orgId: string) {
        return [...this.entries.values()].filter((e) => e.orgId === orgId);
    }
    async addUser(): Promise<DirectoryEntry> {
        throw new Error('not used');
    }
    async removeUser(orgId: string, id: string) {
        return this.entries.get(id)?.orgId === orgId ? this.entries.delete(id) : false;
    }
    async register(e: DirectoryEntry) {
        this.entries.set(e.id, e);
        return e;
    }
    async listClients(orgId: string) {
        return [...this.entries.values()].filter((e) => e.orgId === orgId && e.clientId);
    }
    async clientPrincipal(): Promise<undefined> {
        throw new Error('not used: the Graph directory asks Graph');
    }
    async holders(role: string) {
        return [...this.entries.values()].filter((e) => e.roles.includes(role)).map((e) => ({ id: e.id, email: e.email }));
    }
}

/**
 * Microsoft Graph cannot run here: a local HTTP fake plays it and checks every
 * request the directory sends (token, path, body).
 */
describe('directory on Microsoft Graph (local fake)', () => {
    const SP = '11111111-2222-3333-4444-555555555555';
    const ROLE_IDS = { 'Org.Admin': 'aaaaaaaa-0000-0000-0000-000000000001', 'Org.Trader': 'aaaaaaaa-0000-0000-0000-000000000002', 'Deployment.Member': 'aaaaaaaa-0000-0000-0000-000000000003', 'Flexchange.Approver': 'aaaaaaaa-0000-0000-0000-000000000004' };
    const graph = new FakeGraph(SP);
    const { requests, assignments } = graph;
    let graphUrl: string;

    beforeAll(async () => {
        // Role holders: two pages of assignments, then each user's mail.
        graph.extra = ({ method, url }, json) => {
            if (method !== 'GET') return false;
            if (url === `/v1.0/servicePrincipals/${SP}/appRoleAssignedTo?$top=999`) {
                json(200, {
                    value: [
                        { principalId: 'u-approver-1', principalType: 'User', appRoleId: ROLE_IDS['Flexchange.Approver'] },
                        { principalId: 'u-trader', principalType: 'User', appRoleId: ROLE_IDS['Org.Trader'] },
                        { principalId: 'sp-app', principalType: 'ServicePrincipal', appRoleId: ROLE_IDS['Flexchange.Approver'] },
                    ],
                    '@odata.nextLink': `${graphUrl}/v1.0/servicePrincipals/${SP}/appRoleAssignedTo?$top=999&$skiptoken=page2`,
                });
            } else if (url === `/v1.0/servicePrincipals/${SP}/appRoleAssignedTo?$top=999&$skiptoken=page2`) {
                json(200, { value: [{ principalId: 'u-approver-2', principalType: 'User', appRoleId: ROLE_IDS['Flexchange.Approver'] }] });
            } else if (url === '/v1.0/users/u-approver-1?$select=id,mail,userPrincipalName') json(200, { id: 'u-approver-1', mail: 'Alice@Operator.example' });
            else if (url === '/v1.0/users/u-approver-2?$select=id,mail,userPrincipalName') json(200, { id: 'u-approver-2', mail: null, userPrincipalName: 'bob@operator.example' });
            else return false;
            return true;
        };
        await graph.start();
        graphUrl = graph.url;
    });
    afterAll(() => graph.stop());

    const scopes: string[] = [];
    const credential: TokenCredential = {
        getToken: async (scope): Promise<AccessToken> => {
            scopes.push(String(scope));
            return { token: 'graph-token', expiresOnTimestamp: Date.now() + 3600_000 };
        },
    };
    const directory = (store = new MemoryDirectory()) =>
        ({ store, graph: new GraphDirectory(store, { graphUrl, servicePrincipalId: SP, appRoleIds: ROLE_IDS, inviteRedirectUrl: 'https://app.flexchange.example', credential }) });

    it('invites the user, assigns each app role, and records the organisation', async () => {
        requests.length = 0;
        const { store, graph } = directory();
        const entry = await graph.addUser('acme', { email: 'Trader@Acme.example', name: 'Tess', roles: ['Org.Trader', 'Org.Admin'] }, 'admin-oid');
        expect(entry).toMatchObject({ orgId: 'acme', kind: 'user', email: 'trader@acme.example', roles: ['Org.Admin', 'Org.Trader'] });
        expect(requests.map((r) => `${r.method} ${r.path}`)).toEqual([
            'POST /v1.0/invitations',
            `POST /v1.0/servicePrincipals/${SP}/appRoleAssignedTo`,
            `POST /v1.0/servicePrincipals/${SP}/appRoleAssignedTo`,
        ]);
        expect(requests.every((r) => r.auth === 'Bearer graph-token')).toBe(true);
        expect(scopes.every((s) => s === 'https://graph.microsoft.com/.default')).toBe(true);
        expect(requests[0].body).toEqual({ invitedUserEmailAddress: 'Trader@Acme.example', invitedUserDisplayName: 'Tess', inviteRedirectUrl: 'https://app.flexchange.example', sendInvitationMessage: true });
        expect(requests[1].body).toEqual({ principalId: entry.id, resourceId: SP, appRoleId: ROLE_IDS['Org.Admin'] });
        expect(requests[2].body).toEqual({ principalId: entry.id, resourceId: SP, appRoleId: ROLE_IDS['Org.Trader'] });
        expect((await store.resolve(entry.id))?.orgId).toBe('acme');
    });

    it('removes the role assignments and the entry, and only within the organisation', async () => {
        const { store, graph } = directory();
        const entry = await graph.addUser('acme', { email: 'x@acme.example', roles: ['Org.Trader'] }, 'admin');
        requests.length = 0;
        expect(await graph.removeUser('globex', entry.id)).toBe(false);
        expect(requests).toHaveLength(0);
        expect(await graph.removeUser('acme', entry.id)).toBe(true);
        expect(requests.map((r) => r.method)).toEqual(['DELETE']);
        expect(requests[0].path).toMatch(new RegExp(`^/v1\\.0/servicePrincipals/${SP}/appRoleAssignedTo/assignment-\\d+$`));
        expect(await store.resolve(entry.id)).toBeUndefined();
    });

    it("assigns a deployment's app identity its roles once, however often onboarding registers it", async () => {
        requests.length = 0;
        const { store, graph } = directory();
        const app = { id: '7d7c1c8e-0000-4000-8000-00000000a001', orgId: 'acme', kind: 'app' as const, name: 'member deployment', roles: ['Deployment.Member'], createdAt: new Date().toISOString() };
        await graph.register(app);
        await graph.register(app);
        expect(requests.map((r) => `${r.method} ${r.path}`)).toEqual([`POST /v1.0/servicePrincipals/${SP}/appRoleAssignedTo`]);
        expect(requests[0].body).toEqual({ principalId: app.id, resourceId: SP, appRoleId: ROLE_IDS['Deployment.Member'] });
        expect(await store.resolve(app.id)).toMatchObject({ orgId: 'acme', kind: 'app', roles: ['Deployment.Member'] });
    });

    it('keeps onboarding idempotent when Graph answers that the role is already assigned (400), and remembers that assignment', async () => {
        const app = { id: '7d7c1c8e-0000-4000-8000-00000000a002', orgId: 'acme', kind: 'app' as const, name: 'member deployment', roles: ['Deployment.Member'], createdAt: new Date().toISOString() };
        await directory().graph.register(app);
        const first = [...assignments.values()].find((a) => a.principalId === app.id)!;
        // A retried step whose record did not survive (another store, a step that failed after Graph answered).
        requests.length = 0;
        const { store, graph } = directory();
        await expect(graph.register(app)).resolves.toMatchObject({ id: app.id, orgId: 'acme', roles: ['Deployment.Member'] });
        expect(requests.map((r) => `${r.method} ${r.path.split('?')[0]}`)).toEqual([`POST /v1.0/servicePrincipals/${SP}/appRoleAssignedTo`, `GET /v1.0/servicePrincipals/${app.id}/appRoleAssignments`]);
        expect(await store.resolve(app.id)).toMatchObject({ assignments: [first.id], assignedRoles: { 'Deployment.Member': first.id } });
        expect([...assignments.values()].filter((a) => a.principalId === app.id)).toHaveLength(1);
    });

    it('adds a user who already holds the role again without failing, and removes the one assignment Graph holds', async () => {
        const { graph } = directory();
        const once = await graph.addUser('acme', { email: 'again@acme.example', roles: ['Org.Trader'] }, 'admin');
        const twice = await graph.addUser('acme', { email: 'again@acme.example', roles: ['Org.Trader', 'Org.Admin'] }, 'admin');
        expect(twice.id).toBe(once.id);
        const held = [...assignments.values()].filter((a) => a.principalId === once.id);
        expect(held.map((a) => a.appRoleId).sort()).toEqual([ROLE_IDS['Org.Admin'], ROLE_IDS['Org.Trader']]);
        expect([...((twice as { assignments?: string[] }).assignments ?? [])].sort()).toEqual(held.map((a) => a.id).sort());
        expect(await graph.removeUser('acme', once.id)).toBe(true);
        expect([...assignments.values()].filter((a) => a.principalId === once.id)).toEqual([]);
    });

    it("finds an API client's service principal by its client id with the API roles it holds, and keeps its assignments to the roles it is given", async () => {
        const BOT = 'b0b0b0b0-0000-4000-8000-000000000001';
        const BOT_SP = '5b5b5b5b-0000-4000-8000-000000000001';
        graph.servicePrincipals.set(BOT, BOT_SP);
        const { store, graph: dir } = directory();
        requests.length = 0;
        await expect(dir.clientPrincipal(BOT)).resolves.toEqual({ id: BOT_SP, roles: [] });
        expect(requests.map((r) => `${r.method} ${decodeURIComponent(r.path)}`)).toEqual([
            `GET /v1.0/servicePrincipals(appId='${BOT}')?$select=id,servicePrincipalType`,
            `GET /v1.0/servicePrincipals/${BOT_SP}/appRoleAssignments?$filter=resourceId eq ${SP}`,
        ]);
        // Not an application of the tenant, or not an id Entra ID gives: none, without asking for a malformed path.
        await expect(dir.clientPrincipal('c0c0c0c0-0000-4000-8000-000000000009')).resolves.toBeUndefined();
        requests.length = 0;
        await expect(dir.clientPrincipal("x') or true or ('")).resolves.toBeUndefined();
        expect(requests).toHaveLength(0);

        // A managed identity (a deployment's) is told apart, whatever roles it holds yet.
        graph.servicePrincipals.set('b0b0b0b0-0000-4000-8000-00000000000f', 'mi-1');
        graph.managedIdentities.add('mi-1');
        await expect(dir.clientPrincipal('b0b0b0b0-0000-4000-8000-00000000000f')).resolves.toEqual({ id: 'mi-1', roles: [], managedIdentity: true });

        const client = { id: BOT_SP, orgId: 'acme', kind: 'app' as const, clientId: BOT, name: 'trading bot', roles: ['Org.Admin', 'Org.Trader'], createdAt: new Date().toISOString() };
        await dir.register(client);
        await expect(dir.clientPrincipal(BOT)).resolves.toEqual({ id: BOT_SP, roles: expect.arrayContaining(['Org.Admin', 'Org.Trader']) });
        expect(await dir.listClients('acme')).toEqual([expect.objectContaining({ id: BOT_SP, clientId: BOT })]);
        // Fewer roles: the dropped one's assignment goes.
        await dir.register({ ...client, roles: ['Org.Trader'] });
        expect([...assignments.values()].filter((a) => a.principalId === BOT_SP).map((a) => a.appRoleId)).toEqual([ROLE_IDS['Org.Trader']]);
        expect(await store.resolve(BOT_SP)).toMatchObject({ roles: ['Org.Trader'], assignedRoles: { 'Org.Trader': expect.any(String) } });
        expect(await dir.removeUser('acme', BOT_SP)).toBe(true);
        expect([...assignments.values()].filter((a) => a.principalId === BOT_SP)).toEqual([]);
    });

    it('lists the users holding an app role across pages, with their mail (the approvers when settings name none)', async () => {
        requests.length = 0;
        await expect(directory().graph.holders('Flexchange.Approver')).resolves.toEqual([
            { id: 'u-approver-1', email: 'alice@operator.example' },
            { id: 'u-approver-2', email: 'bob@operator.example' },
        ]);
        expect(requests.every((r) => r.method === 'GET' && r.auth === 'Bearer graph-token')).toBe(true);
    });

    it('reports Graph being down as Unavailable and a refused role as Upstream', async () => {
        graph.failInvitations = 1;
        await expect(directory().graph.addUser('acme', { email: 'y@acme.example', roles: ['Org.Trader'] }, 'a')).rejects.toBeInstanceOf(Unavailable);
        await expect(directory().graph.addUser('acme', { email: 'z@acme.example', roles: ['Flexchange.Admin'] }, 'a')).rejects.toBeInstanceOf(Upstream);
    });
});
