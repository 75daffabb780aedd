import type { ChainEvent } from '../chain/eventPump';
import type { ChainSignature } from './onChain';
import type { Proposals } from './proposals';
import { isOpen } from './vocabulary';

export type SignatureRoute = 'not_ours' | 'saga' | 'reconciled' | 'unchanged';

/**
 * Where a `ProposalSigned` seen by the chain event pump goes: to the proposal's signing saga
 * while it waits for signatures (`toSaga` answers false when the saga has ended or is gone),
 * otherwise straight into the record, reconciled with what the ledger holds: a signature is
 * never dropped because the saga ended first (the deadline timer won a race, say).
 */
export async function routeSignature(proposals: Proposals, e: ChainEvent, toSaga: (proposalId: string, sig: ChainSignature) => Promise<boolean>): Promise<{ route: SignatureRoute; proposalId?: string }> {
    const p = await proposals.byChainId(String(e.args.id));
    if (!p) return { route: 'not_ours' };
    if (isOpen(p.status) && (await toSaga(p.id, { account: String(e.args.party), txHash: e.txHash, blockNumber: e.blockNumber }))) return { route: 'saga', proposalId: p.id };
    const { changed } = await proposals.reconcile(p.id);
    return { route: changed ? 'reconciled' : 'unchanged', proposalId: p.id };
}
