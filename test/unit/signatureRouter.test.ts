import type { ChainEvent } from '../../shared/chain/eventPump';
import { SIGNATURE_ROUTES_AT_ONCE, signatureRouter } from '../../shared/proposals/chainSignatures';
import type { Proposals } from '../../shared/proposals/proposals';

/** A `ProposalSigned` of chain proposal `chainId` by `party`, as the pump hands it over. */
function signed(chainId: string, party: string, blockNumber: number): ChainEvent {
    return { id: `0x${chainId}${party}:0`, name: 'ProposalSigned', args: { id: chainId, party }, contract: '0xc', version: 2, blockNumber, blockHash: '0xb', txHash: `0x${chainId}${party}`, logIndex: 0 };
}

/** Proposals as the router reads them: every chain id `n` is proposal `p-n`, waiting for signatures. */
const proposals = {
    byChainId: async (chainId: string) => ({ id: `p-${chainId}`, status: 'AwaitingSignatures' }),
    reconcile: async () => ({ changed: false }),
} as unknown as Proposals;

/** A call to the saga that stays open until the test lets it go. */
function heldSaga() {
    const calls: { proposalId: string; account: string; release: (ok?: boolean) => void; fail: (err: Error) => void }[] = [];
    const toSaga = (proposalId: string, sig: { account: string }) =>
        new Promise<boolean>((resolve, reject) => calls.push({ proposalId, account: sig.account, release: (ok = true) => resolve(ok), fail: reject }));
    return { calls, toSaga };
}

const settle = () => new Promise((r) => setImmediate(r));

describe("the chain event pump's signature router", () => {
    it('routes different proposals at once and each proposal\'s signatures one after another, in chain order', async () => {
        const saga = heldSaga();
        const router = signatureRouter(proposals, saga.toSaga, () => undefined);
        const done = router.handle([signed('1', 'a', 10), { ...signed('9', 'x', 10), name: 'ProposalAnchored' }, signed('1', 'b', 11), signed('2', 'a', 11), signed('3', 'a', 12)]);
        await settle();
        // Proposals 1, 2 and 3 are all at the saga; proposal 1's second signature waits for its first.
        expect(saga.calls.map((c) => `${c.proposalId}/${c.account}`)).toEqual(['p-1/a', 'p-2/a', 'p-3/a']);
        saga.calls[1]!.release();
        saga.calls[2]!.release();
        await settle();
        expect(saga.calls).toHaveLength(3);
        saga.calls[0]!.release();
        await settle();
        expect(saga.calls.map((c) => `${c.proposalId}/${c.account}`)).toEqual(['p-1/a', 'p-2/a', 'p-3/a', 'p-1/b']);
        saga.calls[3]!.release();
        await expect(done).resolves.toBeUndefined();
    });

    it(`holds at most ${SIGNATURE_ROUTES_AT_ONCE} proposals at the saga at a time`, async () => {
        const saga = heldSaga();
        const router = signatureRouter(proposals, saga.toSaga, () => undefined);
        const many = Array.from({ length: SIGNATURE_ROUTES_AT_ONCE + 4 }, (_, i) => signed(String(i + 1), 'a', 10 + i));
        const done = router.handle(many);
        await settle();
        expect(saga.calls).toHaveLength(SIGNATURE_ROUTES_AT_ONCE);
        for (const c of [...saga.calls]) c.release();
        await settle();
        expect(saga.calls).toHaveLength(SIGNATURE_ROUTES_AT_ONCE + 4);
        for (const c of saga.calls.slice(SIGNATURE_ROUTES_AT_ONCE)) c.release();
        await done;
        expect(new Set(saga.calls.map((c) => c.proposalId)).size).toBe(SIGNATURE_ROUTES_AT_ONCE + 4);
    });

    it("a failed route fails the call once the others have ended, and that proposal's later signatures wait for the next run", async () => {
        const saga = heldSaga();
        const router = signatureRouter(proposals, saga.toSaga, () => undefined);
        const done = router.handle([signed('1', 'a', 10), signed('1', 'b', 11), signed('2', 'a', 11)]);
        let ended = false;
        done.catch(() => undefined).finally(() => (ended = true));
        await settle();
        saga.calls[0]!.fail(new Error('saga unreachable'));
        await settle();
        // Proposal 2 is still at the saga: the call has not ended, and proposal 1's second signature was not routed.
        expect(ended).toBe(false);
        expect(saga.calls.map((c) => `${c.proposalId}/${c.account}`)).toEqual(['p-1/a', 'p-2/a']);
        saga.calls[1]!.release();
        await expect(done).rejects.toThrow('saga unreachable');
        expect(saga.calls).toHaveLength(2);
    });

    it('a signature whose saga has ended is reconciled into the record', async () => {
        const reconciled: string[] = [];
        const ended = { ...proposals, byChainId: proposals.byChainId, reconcile: async (id: string) => (reconciled.push(id), { changed: true }) } as unknown as Proposals;
        const logged: string[] = [];
        await signatureRouter(ended, async () => false, (m) => logged.push(m)).handle([signed('7', 'a', 10)]);
        expect(reconciled).toEqual(['p-7']);
        expect(logged.filter((m) => m.startsWith('proposal reconciled'))).toHaveLength(1);
        expect(logged.filter((m) => m.startsWith('chain event '))).toHaveLength(1);
    });
});
