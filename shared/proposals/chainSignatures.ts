import { signatureIn, type ChainSignature } from '../chain/energyExchange';
import type { ChainEvent, ChainEventHandler } from '../chain/eventPump';
import type { Proposals } from './proposals';
import { isOpen } from './vocabulary';

export type SignatureRoute = 'not_ours' | 'saga' | 'reconciled' | 'unchanged';

/** Raises a signature on the proposal's saga; false when the saga has ended or is gone. */
export type ToSaga = (proposalId: string, sig: ChainSignature) => Promise<boolean>;

/**
 * Where a `ProposalSigned` seen by the chain event pump goes: to the proposal's signing saga
 * while it waits for signatures (`toSaga` answers false when the saga has ended or is gone),
 * otherwise straight into the record, reconciled with what the ledger holds: a signature is
 * never dropped because the saga ended first (the deadline timer won a race, say).
 */
export async function routeSignature(proposals: Proposals, e: ChainEvent, toSaga: ToSaga): Promise<{ route: SignatureRoute; proposalId?: string }> {
    const signed = signatureIn(e);
    if (!signed) return { route: 'not_ours' };
    const p = await proposals.byChainId(signed.chainProposalId);
    if (!p) return { route: 'not_ours' };
    if (isOpen(p.status) && (await toSaga(p.id, signed.signature))) return { route: 'saga', proposalId: p.id };
    const { changed } = await proposals.reconcile(p.id);
    return { route: changed ? 'reconciled' : 'unchanged', proposalId: p.id };
}

/** How many proposals' signatures the pump's handler routes at once. */
export const SIGNATURE_ROUTES_AT_ONCE = 16;

/**
 * The core's handler for the chain event pump: every event logged, in order; each signature
 * routed (at least once: the saga drops a repeat). Signatures of different proposals are
 * routed at once, up to `SIGNATURE_ROUTES_AT_ONCE` proposals, each proposal's own one after
 * another in chain order: routing one is a document read and a call to the saga, and one by
 * one they held a burst's later proposals back by seconds (78 signatures took 7 s at 32
 * proposers, bench/README). A failure fails the whole call once every route has ended (the
 * pump then keeps its checkpoint and hands the same events again); the routes that went
 * through are repeats next time, which the saga and the reconciliation drop.
 */
export function signatureRouter(proposals: Proposals, toSaga: ToSaga, log: (message: string) => void): ChainEventHandler {
    return {
        handle: async (events) => {
            const byProposal = new Map<string, ChainEvent[]>();
            for (const e of events) {
                log(`chain event ${JSON.stringify({ id: e.id, name: e.name, version: e.version, block: e.blockNumber, args: e.args })}`);
                const signed = signatureIn(e);
                if (!signed) continue;
                const queue = byProposal.get(signed.chainProposalId);
                if (queue) queue.push(e);
                else byProposal.set(signed.chainProposalId, [e]);
            }
            const queues = [...byProposal.values()];
            const failures: unknown[] = [];
            const routeQueues = async () => {
                for (let queue = queues.shift(); queue; queue = queues.shift()) {
                    for (const e of queue) {
                        try {
                            const { route, proposalId } = await routeSignature(proposals, e, toSaga);
                            if (route === 'reconciled') log(`proposal reconciled with the ledger ${JSON.stringify({ proposalId, event: e.id })}`);
                        } catch (err) {
                            failures.push(err);
                            break; // this proposal's later signatures wait for the next run, in order
                        }
                    }
                }
            };
            await Promise.all(Array.from({ length: Math.min(SIGNATURE_ROUTES_AT_ONCE, queues.length) }, routeQueues));
            if (failures.length) throw failures[0];
        },
    };
}
