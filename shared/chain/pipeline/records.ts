import type { ContractRevert } from '../reverts';
import { keccak, signedType2 } from '../txCodec';

/**
 * What the pipeline stores and hands back: an operation's transaction as a record, the
 * summary a submission returns, the outcome once it is final, and a sender's nonce lease.
 */

export type TxState = 'pending' | 'confirmed' | 'reverted';

/**
 * One signing of an operation's transaction at some fees. The signed bytes are the record's fields
 * and these fees, with `signature`: rebuilt to broadcast (`rawOf`), so the call data is stored once
 * (a batch call is 25–50 KB). `raw` is kept instead for a signer that signs whole transactions
 * only, and is what records written before had.
 */
export interface TxAttempt {
    hash: string;
    signature?: { r: string; s: string; yParity: 0 | 1 };
    raw?: string;
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

/** The signed transaction of an attempt, as broadcast: its stored bytes, or rebuilt from the record and checked against its hash. */
export async function rawOf(doc: TxDoc, attempt: TxAttempt): Promise<string> {
    if (attempt.raw) return attempt.raw;
    if (!attempt.signature) throw new Error(`The attempt ${attempt.hash} of ${doc.id} has neither its signed bytes nor its signature`);
    const signed = signedType2(
        { chainId: doc.chainId, nonce: doc.nonce, maxPriorityFeePerGas: BigInt(attempt.maxPriorityFeePerGas), maxFeePerGas: BigInt(attempt.maxFeePerGas), gasLimit: BigInt(doc.gasLimit), to: doc.to, value: BigInt(doc.value), data: doc.data },
        attempt.signature,
    );
    const hash = `0x${(await keccak(signed)).toString('hex')}`;
    if (hash !== attempt.hash) throw new Error(`The attempt ${attempt.hash} of ${doc.id} does not rebuild to its hash (${hash})`);
    return `0x${signed.toString('hex')}`;
}
