import type { ContractRevert } from '../reverts';

/**
 * What the pipeline stores and hands back: an operation's transaction as a record, the
 * summary a submission returns, the outcome once it is final, and a sender's nonce lease.
 */

export type TxState = 'pending' | 'confirmed' | 'reverted';

export interface TxAttempt {
    hash: string;
    raw: string;
    maxFeePerGas: string;
    maxPriorityFeePerGas: string;
    sentAt: string;
}

/** One operation's transaction, as stored (container `transactions`, partition key `/id`). */
export interface TxDoc {
    id: string;
    sender: string;
    nonce: number;
    chainId: number;
    to: string | null;
    data: string;
    value: string;
    gasLimit: string;
    attempts: TxAttempt[];
    state: TxState;
    /** The attempt that was mined. */
    hash?: string;
    blockNumber?: number;
    blockHash?: string;
    gasUsed?: string;
    /** Set for a contract creation. */
    contractAddress?: string;
    revert?: { name: string; args: Record<string, unknown> };
    /** What the operation is, for people reading the store (e.g. `createProposal p-1`). */
    label?: string;
    /** A 0-value transfer to self that filled a nonce nobody else could use. */
    filler?: boolean;
    createdAt: string;
    updatedAt: string;
}

/** A sender's nonce lease (container `nonces`, partition key `/id` = the address in lower case). */
export interface NonceLeaseDoc {
    id: string;
    owner: string;
    leaseUntil: number;
    /** The next nonce to assign, as of the last write by the owner. */
    next: number;
    updatedAt: string;
}

export interface TxSummary {
    operationId: string;
    sender: string;
    nonce: number;
    hash: string;
    state: TxState;
}

export interface TxOutcome extends TxSummary {
    state: 'confirmed' | 'reverted';
    blockNumber: number;
    blockHash: string;
    gasUsed: string;
    contractAddress?: string;
    revert?: ContractRevert;
}

export function summary(doc: TxDoc): TxSummary {
    return { operationId: doc.id, sender: doc.sender, nonce: doc.nonce, hash: doc.hash ?? doc.attempts.at(-1)!.hash, state: doc.state };
}
