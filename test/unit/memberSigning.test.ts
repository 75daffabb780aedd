import { Wallet, ZeroAddress } from 'ethers';
import { ENERGY_EXCHANGE } from '../../shared/chain/artifact';
import { EnergyExchange } from '../../shared/chain/energyExchange';
import { MemberSigning, type CoreReader } from '../../shared/proposals/memberSigning';
import { chainProposalId } from '../../shared/proposals/proposals';
import { AppError } from '../../shared/errors';

/** A member's signing use case against answers its core might give: only a well-formed proposal view is acted on. */
describe('member signing', () => {
    const proposalId = '3f6c1a52-0d4e-4d8e-9a51-6f1f2d6c9b10';
    const account = Wallet.createRandom().address;
    const contract = Wallet.createRandom().address;
    const view = (over: Record<string, unknown> = {}) => ({
        proposalId,
        chainProposalId: chainProposalId(proposalId),
        status: 'AwaitingSignatures',
        parties: [
            { orgId: 'windco', account, signed: false },
            { orgId: 'gridco', account: Wallet.createRandom().address, signed: false },
        ],
        contract: { version: 1, address: contract },
        ...over,
    });
    const submitted: { to?: string; data: string; operationId: string }[] = [];
    const signing = (answer: { status: number; body: unknown }) =>
        new MemberSigning({
            orgId: 'windco',
            core: { request: async () => answer } satisfies CoreReader,
            accounts: {
                keyOf: async (a: string) => (a.toLowerCase() === account.toLowerCase() ? { custody: 'keystore', name: 'k1', address: account } : undefined),
                submitFunded: async (_pipeline, call) => {
                    submitted.push(call);
                    return { tx: { operationId: call.operationId, hash: '0x' + '1'.repeat(64), state: 'pending' } as never, status: 'submitted' };
                },
            },
            signerOf: () => Wallet.createRandom(),
            pipeline: { submit: async () => undefined as never },
            exchangeAt: (ref) => new EnergyExchange(ref, ENERGY_EXCHANGE.abi, { rpc: () => Promise.reject(new Error('no reads')) }),
        });
    const failure = async (p: Promise<unknown>) => {
        const err = await p.then(() => undefined, (e: unknown) => e);
        expect(err).toBeInstanceOf(AppError);
        return err as AppError;
    };

    it('signs the proposal the core describes, on the contract it names, once per proposal and account', async () => {
        const out = await signing({ status: 200, body: view() }).sign(proposalId, account);
        expect(out).toMatchObject({ proposalId, account, status: 'submitted' });
        const call = submitted.at(-1)!;
        expect(call.to).toBe(contract);
        expect(call.operationId).toBe(`proposal:${proposalId}:sign:${account.toLowerCase()}`);
        const signOnly = new EnergyExchange({ version: 1, address: ZeroAddress }, ENERGY_EXCHANGE.abi, { rpc: () => Promise.reject(new Error()) });
        expect(call.data).toBe(signOnly.sign(chainProposalId(proposalId)).data);
    });

    it('refuses an answer from the core that is not a proposal view (502), instead of acting on it', async () => {
        for (const body of [{ hello: 'world' }, view({ chainProposalId: 'not-an-id' }), view({ parties: 'all' }), view({ status: 'Whatever' }), view({ contract: { version: 1, address: 'nowhere' } })]) {
            const err = await failure(signing({ status: 200, body }).sign(proposalId, account));
            expect(err.status).toBe(502);
            expect(err.message).toMatch(/not a proposal/);
        }
    });

    it('maps the core and the proposal to the route’s refusals', async () => {
        expect((await failure(signing({ status: 404, body: {} }).sign(proposalId, account))).status).toBe(404);
        expect((await failure(signing({ status: 500, body: {} }).sign(proposalId, account))).status).toBe(502);
        expect((await failure(signing({ status: 200, body: view() }).sign('not-a-uuid', account))).status).toBe(404);
        expect((await failure(signing({ status: 200, body: view() }).sign(proposalId, Wallet.createRandom().address))).status).toBe(403);
        const anchoring = await failure(signing({ status: 200, body: view({ status: 'Anchoring', contract: null }) }).sign(proposalId, account));
        expect([anchoring.status, anchoring.code]).toEqual([409, 'wrong_state']);
        const ended = await failure(signing({ status: 200, body: view({ status: 'Completed' }) }).sign(proposalId, account));
        expect([ended.status, ended.code]).toEqual([409, 'wrong_state']);
        const stranger = view({ parties: [{ orgId: 'gridco', account, signed: false }] });
        expect((await failure(signing({ status: 200, body: stranger }).sign(proposalId, account))).status).toBe(404);
    });
});
