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

/** The core's handler for the chain event pump: every event logged, each signature routed (at least once: the saga drops a repeat). */
export function signatureRouter(proposals: Proposals, toSaga: ToSaga, log: (message: string) => void): ChainEventHandler {
    return {
        handle: async (events) => {
            for (const e of events) {
                log(`chain event ${JSON.stringify({ id: e.id, name: e.name, version: e.version, block: e.blockNumber, args: e.args })}`);
                const { route, proposalId } = await routeSignature(proposals, e, toSaga);
                if (route === 'reconciled') log(`proposal reconciled with the ledger ${JSON.stringify({ proposalId, event: e.id })}`);
            }
        },
    };
}
