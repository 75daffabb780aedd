import type { AbstractSigner, InterfaceAbi } from 'ethers';
import { AppError } from '../../errors';

/** What a caller asks the pipeline to send, and the refusal when the sender cannot pay for it. */

export interface ChainSender {
    address: string;
    signer: AbstractSigner;
}

export interface ChainCall {
    /** Stable for the operation across retries: e.g. `proposal:<id>:create`. */
    operationId: string;
    from: ChainSender;
    /** Absent: a contract creation (`data` is the init code). */
    to?: string;
    data: string;
    value?: bigint;
    /** Skips estimation (which also decodes reverts before anything is sent). */
    gasLimit?: bigint;
    /** For decoding this call's reverts (in addition to the pipeline's ABIs). */
    abi?: InterfaceAbi;
    label?: string;
    /**
     * Refuse (`InsufficientFunds`, nothing signed, no nonce used) when the sender's balance does not
     * cover gas limit × max fee + value, instead of storing a transaction the node will turn away.
     */
    requireFunds?: boolean;
}

/** The sender cannot pay for the call (balance below gas limit × max fee + value): nothing was signed or sent. */
export class InsufficientFunds extends AppError {
    constructor(
        readonly sender: string,
        readonly balanceWei: bigint,
        readonly neededWei: bigint,
    ) {
        super(`${sender} has ${balanceWei} wei; the transaction needs up to ${neededWei} wei`, 409, 'insufficient_funds');
    }
}

/** What makes two submissions under one operation id the same transaction. */
export function fingerprint(call: ChainCall): string {
    return [call.from.address.toLowerCase(), call.to?.toLowerCase() ?? 'create', call.data.toLowerCase(), (call.value ?? 0n).toString()].join('|');
}
