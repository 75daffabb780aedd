import { randomBytes } from 'node:crypto';
import { parseEther } from 'ethers';
import { devToken, removeDir, repoRoot, RunningDevhost, startDevhost, tempDir, waitFor } from '../harness/devhost';
import { onboard, type OnboardedOrg } from '../harness/journeys';

interface Problem {
    status: number;
    code: string;
    detail: string;
}

/**
 * Accounts made after onboarding sign when asked (funded on registration, within the top-up policy;
 * refused with a 409 naming the policy when it will not fund them), and work that cannot run is
 * refused up front (a proposal with no contract version). The top-up timer is set to once a year,
 * so it cannot be what funds anything here.
 */
describe('accounts that can sign when asked, and work refused up front', () => {
    let host: RunningDevhost;
    let north: OnboardedOrg;
    let south: OnboardedOrg;
    let admin: string;

    const core = (p: string, init: RequestInit = {}) => fetch(`${host.origin('core')}/api/${p}`, init);
    const json = (bearer: string, body?: unknown, extra: Record<string, string> = {}): RequestInit => ({
        method: body === undefined ? 'GET' : 'POST',
        headers: { authorization: `Bearer ${bearer}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...extra },
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const ledger = async <T>(method: string, params: unknown[]): Promise<T> => {
        const services = (await (await fetch(`${host.consoleUrl}/dev/services`)).json()) as { services: { ledger: string } };
        const res = (await (await fetch(services.services.ledger, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) })).json()) as { result: T; error?: unknown };
        if (res.error) throw new Error(JSON.stringify(res.error));
        return res.result;
    };
    const balanceOf = async (address: string) => BigInt(await ledger<string>('eth_getBalance', [address, 'latest']));
    /** A new account on the organisation's member deployment, made by its admin (the applicant). */
    const newAccount = async (org: OnboardedOrg, adminEmail: string, label: string) => {
        const orgAdmin = await devToken(host, { roles: ['Org.Admin'], orgId: org.orgId, email: adminEmail });
        const res = await fetch(`${org.memberUrl}/accounts`, json(orgAdmin, { label }, { 'idempotency-key': `${label}-${randomBytes(4).toString('hex')}` }));
        expect(res.status).toBe(201);
        return ((await res.json()) as { address: string }).address;
    };
    const proposalBody = async (parties: { orgId: string; account: string }[]) => {
        const up = await core('assets', { method: 'POST', headers: { authorization: `Bearer ${north.trader}`, 'content-type': 'application/pdf' }, body: Buffer.from(`%PDF funding ${randomBytes(8).toString('hex')}`) });
        expect(up.status).toBe(201);
        return {
            parties,
            terms: { product: 'baseload', direction: 'sell', quantityMWh: 10, priceGbpPerMWh: 70, deliveryStart: '2027-01-01T00:00:00Z', deliveryEnd: '2027-02-01T00:00:00Z' },
            assets: [((await up.json()) as { assetId: string }).assetId],
            expiresAt: new Date(Date.now() + 3600_000).toISOString(),
        };
    };
    /** The operator deploys the contract the first time a test needs it. */
    let deployed: Promise<void> | undefined;
    const contract = () =>
        (deployed ??= (async () => {
            expect((await core('contracts', json(admin, { artifact: 'EnergyExchange' }))).status).toBe(201);
        })());
    const statusOf = async (id: string) => ((await (await core(`proposals/${id}`, json(north.trader))).json()) as { status: string }).status;
    const until = (id: string, status: string) => waitFor(async () => ((await statusOf(id)) === status ? true : undefined), 60_000, 250);
    const sign = (org: OnboardedOrg, id: string, account: string) => fetch(`${org.memberUrl}/proposals/${id}/signature`, json(org.trader, { account }));

    const stateDir = tempDir('flexchange-state-');
    beforeAll(async () => {
        host = await startDevhost(
            ['--app', repoRoot, '--name', 'core', '--set', 'FLEXCHANGE_APPROVERS=approver@operator.example', '--set', 'FLEXCHANGE_PROPOSAL_MIN_SECONDS=5', '--set', 'FLEXCHANGE_TOPUP_SCHEDULE=0 0 0 1 1 *'],
            { stateDir, storage: true },
        );
        admin = await devToken(host, { roles: ['Flexchange.Admin'], email: 'ops@operator.example' });
        north = await onboard(host, 'Fen Wind', 'ada@fen.example');
        south = await onboard(host, 'Moor Solar', 'sol@moor.example');
    }, 180_000);
    afterAll(async () => {
        await host?.stop();
        removeDir(stateDir);
    });

    it('refuses a proposal while no contract version is active (409 no_contract naming POST /api/contracts): nothing recorded, no saga', async () => {
        const res = await core('proposals', json(north.trader, await proposalBody([{ orgId: north.orgId, account: north.account }, { orgId: south.orgId, account: south.account }])));
        expect(res.status).toBe(409);
        expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        const problem = (await res.json()) as Problem;
        expect(problem.code).toBe('no_contract');
        expect(problem.detail).toContain('POST /api/contracts');
        expect(((await (await core('proposals', json(north.trader))).json()) as { items: unknown[] }).items).toEqual([]);
    }, 60_000);

    it('funds an account made after onboarding when it is registered, and it signs a proposal that completes', async () => {
        await contract();
        const desk = await newAccount(north, 'ada@fen.example', 'desk-2');
        // Funded to the top-up target (FLEXCHANGE_TOPUP_TARGET_ETH, 1 by default) by its registration, not by the timer.
        expect(await balanceOf(desk)).toBe(parseEther('1'));
        const grants = ((await (await core('treasury', json(admin))).json()) as { grants: { address: string; reason: string; state: string }[] }).grants;
        expect(grants.filter((g) => g.address === desk)).toEqual([expect.objectContaining({ reason: 'topup', state: 'confirmed' })]);

        const res = await core('proposals', json(north.trader, await proposalBody([{ orgId: north.orgId, account: desk }, { orgId: south.orgId, account: south.account }])));
        expect(res.status).toBe(202);
        const { proposalId } = (await res.json()) as { proposalId: string };
        await until(proposalId, 'AwaitingSignatures');
        const signed = await sign(north, proposalId, desk);
        expect(signed.status).toBe(202);
        expect(await signed.json()).toMatchObject({ account: desk, status: 'submitted' });
        expect((await sign(south, proposalId, south.account)).status).toBe(202);
        await until(proposalId, 'Completed');
    }, 120_000);

    it('refuses to sign with an account the treasury will not fund (409 account_unfunded naming the limit), instead of accepting a signature that stalls', async () => {
        await contract();
        const treasury = ((await (await core('treasury', json(admin))).json()) as { address: string }).address;
        const before = await balanceOf(treasury);
        // Below the treasury's floor (FLEXCHANGE_TREASURY_FLOOR_ETH, 10 by default), with ether left for the operator's own transactions.
        await ledger('anvil_setBalance', [treasury, `0x${parseEther('5').toString(16)}`]);
        try {
            const desk = await newAccount(north, 'ada@fen.example', 'desk-3');
            expect(await balanceOf(desk)).toBe(0n);
            const res = await core('proposals', json(north.trader, await proposalBody([{ orgId: north.orgId, account: desk }, { orgId: south.orgId, account: south.account }])));
            expect(res.status).toBe(202);
            const { proposalId } = (await res.json()) as { proposalId: string };
            await until(proposalId, 'AwaitingSignatures');

            const refused = await sign(north, proposalId, desk);
            expect(refused.status).toBe(409);
            expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
            const problem = (await refused.json()) as Problem;
            expect(problem.code).toBe('account_unfunded');
            expect(problem.detail).toContain('FLEXCHANGE_TREASURY_FLOOR_ETH');
            expect(problem.detail).toContain(desk);
            // Nothing was signed or sent from it.
            expect(Number(BigInt(await ledger<string>('eth_getTransactionCount', [desk, 'pending'])))).toBe(0);
        } finally {
            await ledger('anvil_setBalance', [treasury, `0x${before.toString(16)}`]);
        }
    }, 120_000);
});

describe('applications nobody could decide', () => {
    let host: RunningDevhost;
    const stateDir = tempDir('flexchange-state-');
    beforeAll(async () => {
        host = await startDevhost(['--app', repoRoot, '--name', 'core', '--set', 'FLEXCHANGE_APPROVERS='], { stateDir, storage: true });
    }, 120_000);
    afterAll(async () => {
        await host?.stop();
        removeDir(stateDir);
    });

    it('are refused up front (503 no_approvers naming FLEXCHANGE_APPROVERS) when no approver is configured or holds the role', async () => {
        const res = await fetch(`${host.origin('core')}/api/registrations`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ organization: { name: 'Nobody Decides', legalId: 'GB-0000001', country: 'GB', contactEmail: 'ops@nobody.example' }, applicant: { name: 'Ned', email: 'ned@nobody.example' } }),
        });
        expect(res.status).toBe(503);
        expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        const problem = (await res.json()) as Problem;
        expect(problem.code).toBe('no_approvers');
        expect(problem.detail).toContain('FLEXCHANGE_APPROVERS');
    }, 30_000);
});
