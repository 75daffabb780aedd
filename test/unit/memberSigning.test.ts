import { AbiCoder, Interface, recoverAddress, Wallet, ZeroAddress, type InterfaceAbi } from 'ethers';
import { ENERGY_EXCHANGE, ENERGY_EXCHANGE_V2 } from '../../shared/chain/artifact';
import { EnergyExchange } from '../../shared/chain/energyExchange';
import type { VaultAccountSigner } from '../../shared/chain/signers';
import { AppError } from '../../shared/errors';
import { MemberSigning, type CoreReader } from '../../shared/proposals/memberSigning';
import { chainProposalId } from '../../shared/proposals/proposals';
import { proposalTypedData, termsDigest } from '../../shared/proposals/terms';

/** A member's signing use case against answers its core and the ledger might give: it acts only on a well-formed proposal, and on v2 signs only terms it holds itself. */
describe('member signing', () => {
    const proposalId = '3f6c1a52-0d4e-4d8e-9a51-6f1f2d6c9b10';
    const wallet = Wallet.createRandom();
    const account = wallet.address;
    const contract = Wallet.createRandom().address;
    const other = Wallet.createRandom().address;
    const terms = { product: 'baseload', direction: 'sell' as const, quantityMWh: 12.5, priceGbpPerMWh: 71.25, deliveryStart: '2027-01-01T00:00:00.000Z', deliveryEnd: '2027-01-01T00:30:00.000Z' };
    const view = (over: Record<string, unknown> = {}) => ({
        proposalId,
        chainProposalId: chainProposalId(proposalId),
        status: 'AwaitingSignatures',
        parties: [
            { orgId: 'windco', account, signed: false },
            { orgId: 'gridco', account: other, signed: false },
        ],
        terms,
        assets: [{ assetId: proposalId, sha256: 'ab'.repeat(32), algorithm: 'sha256', location: 'x' }],
        expiresAt: '2026-12-31T12:00:00.000Z',
        contract: { version: 1, address: contract },
        ...over,
    });
    /** What the member's copy holds when the core's events reached it. */
    let copy: Record<string, unknown> | undefined;
    let ledgerDigest = '0x' + '00'.repeat(32);
    /** The proposal's status on the ledger (`statusOf`: 0 None, 1 Open, 2 Completed, 3 Cancelled). */
    let ledgerStatus = 1;
    /** What the member asked its core for. */
    const asked: string[] = [];
    const statusOf = new Interface(ENERGY_EXCHANGE_V2.abi).getFunction('statusOf')!.selector;
    const submitted: { to?: string; data: string; operationId: string }[] = [];
    /** What went to the account's batcher of signatures (v2). */
    const batched: { contract: string; from: string; operationId: string; item: { chainProposalId: string; party: string; signature: string }; requireFunds?: boolean }[] = [];
    const signing = (answer: { status: number; body: unknown }, abi: InterfaceAbi = ENERGY_EXCHANGE.abi) =>
        new MemberSigning({
            orgId: 'windco',
            core: {
                request: async (_m: string, path: string) => {
                    asked.push(path);
                    return path.startsWith('contracts/') ? { status: 200, body: { version: 1, address: contract, abi } } : answer;
                },
            } satisfies CoreReader,
            accounts: {
                keyOf: async (a: string) => (a.toLowerCase() === account.toLowerCase() ? { custody: 'keystore', name: 'k1', address: account } : undefined),
                // As the real one: through what it is given (the pipeline on v1, this account's batcher on v2), asking for funds first.
                submitFunded: async (via, call) => {
                    submitted.push(call);
                    return { tx: await via.submit({ ...call, requireFunds: true }), status: 'submitted' };
                },
            },
            signerOf: (ref) => Object.assign(wallet, { ref, signDigest: async (d: string) => wallet.signingKey.sign(d) }) as unknown as VaultAccountSigner,
            pipeline: { submit: async (call) => ({ operationId: call.operationId, sender: account, nonce: 0, hash: '0x' + '1'.repeat(64), state: 'pending' }) },
            signatures: (exchange, from) => ({
                submit: async (operationId, item, opts) => {
                    batched.push({ contract: exchange.ref.address, from: from.address, operationId, item, requireFunds: opts?.requireFunds });
                    return { operationId: 'batch:1', sender: from.address, nonce: 0, hash: '0x' + '2'.repeat(64), state: 'pending' };
                },
            }),
            ledger: {
                rpc: async <T>(method: string, params?: unknown[]) => {
                    if (method !== 'eth_call') throw new Error(`unexpected ${method}`);
                    const data = (params?.[0] as { data: string }).data;
                    return (data.startsWith(statusOf) ? AbiCoder.defaultAbiCoder().encode(['uint8'], [ledgerStatus]) : AbiCoder.defaultAbiCoder().encode(['bytes32'], [ledgerDigest])) as T;
                },
            },
            copies: { arrival: async () => (copy ? (copy as never) : undefined) },
            chainId: 31337,
        });
    const failure = async (p: Promise<unknown>) => {
        const err = await p.then(() => undefined, (e: unknown) => e);
        expect(err).toBeInstanceOf(AppError);
        return err as AppError;
    };

    it('signs a v1 proposal the core describes, on the contract it names, once per proposal and account', async () => {
        const out = await signing({ status: 200, body: view() }).sign(proposalId, account);
        expect(out).toMatchObject({ proposalId, account, status: 'submitted' });
        const call = submitted.at(-1)!;
        expect(call.to).toBe(contract);
        expect(call.operationId).toBe(`proposal:${proposalId}:sign:${account.toLowerCase()}`);
        const signOnly = new EnergyExchange({ version: 1, address: ZeroAddress }, ENERGY_EXCHANGE.abi, { rpc: () => Promise.reject(new Error()) });
        expect(call.data).toBe(signOnly.sign(chainProposalId(proposalId)).data);
    });

    it('on v2, signs the digest the ledger holds once its own copy of the terms gives the same, and submits the signature from the party account', async () => {
        const domain = { name: 'Flexchange EnergyExchange', version: '2', chainId: 31337, verifyingContract: contract };
        copy = view();
        ledgerDigest = termsDigest(proposalTypedData({ ...view(), chainId: chainProposalId(proposalId) } as never, domain));
        const before = submitted.length;
        await signing({ status: 200, body: view() }, ENERGY_EXCHANGE_V2.abi).sign(proposalId, account);
        expect(submitted).toHaveLength(before + 1);
        const call = submitted.at(-1)!;
        const [items] = new Interface(ENERGY_EXCHANGE_V2.abi).decodeFunctionData('submitSignatures', call.data).toArray(true) as [[string, string, string][]];
        expect(items).toHaveLength(1);
        const [id, party, signature] = items[0]!;
        expect([id, party]).toEqual([chainProposalId(proposalId), account]);
        expect(recoverAddress(ledgerDigest, signature)).toBe(account);
        // The signature goes through the party account's batcher for this contract, under the item's own operation id.
        expect(batched.at(-1)).toEqual({ contract, from: account, operationId: call.operationId, item: { chainProposalId: id, party, signature }, requireFunds: true });
    });

    it('on v2, refuses with both digests and sends nothing when the ledger’s terms are not its own copy’s, or it has no copy yet', async () => {
        copy = view({ terms: { ...terms, priceGbpPerMWh: 71.24 } });
        const before = submitted.length;
        const batchedBefore = batched.length;
        const mismatch = await failure(signing({ status: 200, body: view() }, ENERGY_EXCHANGE_V2.abi).sign(proposalId, account));
        expect([mismatch.status, mismatch.code]).toEqual([409, 'terms_mismatch']);
        expect(mismatch.message).toContain(ledgerDigest);
        expect(mismatch.message).toMatch(/copy 0x[0-9a-f]{64}/);
        copy = undefined;
        const none = await failure(signing({ status: 200, body: view() }, ENERGY_EXCHANGE_V2.abi).sign(proposalId, account));
        expect([none.status, none.code]).toEqual([409, 'wrong_state']);
        expect(submitted).toHaveLength(before);
        expect(batched).toHaveLength(batchedBefore);
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
    it('signs from its own copy without asking the core, once the ledger holds the proposal open; refuses what the copy or the ledger says is closed', async () => {
        copy = view();
        ledgerStatus = 1;
        asked.length = 0;
        const before = submitted.length;
        // The core would answer 500: it is not asked for the proposal (only for the contract's ABI, once per version).
        const member = signing({ status: 500, body: {} });
        expect(await member.sign(proposalId, account)).toMatchObject({ proposalId, account, status: 'submitted' });
        expect(submitted).toHaveLength(before + 1);
        expect(asked).toEqual(['contracts/1']);
        // The ledger is the truth: a copy not yet told of the end is refused all the same, nothing sent.
        for (const [status, word] of [[3, 'Cancelled'], [2, 'Completed'], [0, 'not']] as const) {
            ledgerStatus = status;
            const closed = await failure(member.sign(proposalId, account));
            expect([closed.status, closed.code]).toEqual([409, 'wrong_state']);
            expect(closed.message).toContain(`is ${word} on the ledger`);
        }
        ledgerStatus = 1;
        copy = view({ status: 'Rejected' });
        const ended = await failure(member.sign(proposalId, account));
        expect([ended.status, ended.code]).toEqual([409, 'wrong_state']);
        // Not this organisation's party account, in its own copy either.
        copy = view();
        expect((await failure(member.sign(proposalId, other))).status).toBe(403);
        expect(submitted).toHaveLength(before + 1);
        expect(asked).toEqual(['contracts/1']);
        copy = undefined;
    });
});
