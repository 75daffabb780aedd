import { BaseWallet, keccak256, type AbstractSigner, type TransactionRequest } from 'ethers';
import { VaultAccountSigner } from '../signers';
import { signType2, type DigestSigning } from '../txCodec';
import type { FailoverProvider } from '../provider';
import type { TxAttempt } from './records';
import type { PipelineLog, PipelineSettings } from './settings';

/** EIP-1559 fees per gas, in wei. */
export interface Fees {
    maxFeePerGas: bigint;
    maxPriorityFeePerGas: bigint;
}

/** A type-2 transaction signed at these fees: the attempt as it is recorded (hash, raw bytes, fees, when). */
export async function signAttempt(signer: AbstractSigner, tx: UnsignedCall, fees: Fees): Promise<TxAttempt> {
    const record = { maxFeePerGas: fees.maxFeePerGas.toString(), maxPriorityFeePerGas: fees.maxPriorityFeePerGas.toString(), sentAt: new Date().toISOString() };
    const byDigest = digestSigning(signer);
    if (byDigest && (tx.to === undefined || tx.to === null || typeof tx.to === 'string')) {
        const { hash, signature } = await signType2(
            { chainId: BigInt(tx.chainId ?? 0), nonce: BigInt(tx.nonce ?? 0), to: tx.to, data: tx.data ?? undefined, value: BigInt(tx.value ?? 0), gasLimit: BigInt(tx.gasLimit ?? 0), ...fees },
            byDigest,
        );
        return { hash, signature, ...record };
    }
    const raw = await signer.signTransaction({ ...tx, type: 2, maxFeePerGas: fees.maxFeePerGas, maxPriorityFeePerGas: fees.maxPriorityFeePerGas });
    return { hash: keccak256(raw), raw, ...record };
}

/** What `signAttempt` signs: every field but the type and the fees, given. */
export type UnsignedCall = Omit<TransactionRequest, 'type' | 'maxFeePerGas' | 'maxPriorityFeePerGas'> & Required<Pick<TransactionRequest, 'chainId' | 'nonce' | 'gasLimit'>>;

/**
 * Signers whose key signs a digest (the vault's signers, an ethers wallet) sign through the
 * Buffer-based encoder (`txCodec`); any other signer signs the transaction itself.
 */
function digestSigning(signer: AbstractSigner): DigestSigning | undefined {
    if (signer instanceof VaultAccountSigner) return (digest) => signer.signDigest(digest);
    if (signer instanceof BaseWallet) return (digest) => signer.signingKey.sign(digest);
    return undefined;
}

/**
 * What the pipeline offers per gas: EIP-1559 fees from the node (base fee × 2 + tip), and for a
 * stuck transaction's replacement 12.5 % more (the node's replacement rule); never above the cap.
 */
export class FeePolicy {
    #fees?: { at: number; value: Promise<Fees & { head: number }> };

    constructor(
        private readonly provider: FailoverProvider,
        private readonly settings: PipelineSettings,
        private readonly log?: PipelineLog,
    ) {}

    /** Current fees, shared for a second: base fee × 2 + tip, capped. */
    current(): Promise<Fees & { head: number }> {
        const now = Date.now();
        if (this.#fees && now - this.#fees.at < 1000) return this.#fees.value;
        const value = (async () => {
            const [block, tipHex] = await Promise.all([
                this.provider.rpc<{ number: string; baseFeePerGas?: string }>('eth_getBlockByNumber', ['latest', false]),
                this.provider.rpc<string>('eth_maxPriorityFeePerGas').catch(() => '0x0'),
            ]);
            const cap = this.settings.maxFeePerGasCap;
            let tip = BigInt(tipHex);
            if (tip < this.settings.minPriorityFeePerGas) tip = this.settings.minPriorityFeePerGas;
            if (tip > cap) tip = cap;
            const base = BigInt(block.baseFeePerGas ?? '0x0');
            let maxFee = base * 2n + tip;
            if (maxFee > cap) maxFee = cap;
            if (base + tip > cap) this.log?.warn({ baseFee: base.toString(), cap: cap.toString() }, 'chain: the base fee is above the fee cap; transactions wait until it falls');
            return { maxFeePerGas: maxFee, maxPriorityFeePerGas: tip, head: Number(BigInt(block.number)) };
        })();
        this.#fees = { at: now, value };
        value.catch(() => {
            if (this.#fees?.value === value) this.#fees = undefined;
        });
        return value;
    }

    /**
     * Fees to re-sign the last attempt with: 12.5 % over it, or the current fees if higher, up to
     * the cap. Undefined when the cap leaves no room: the node would refuse a smaller raise.
     */
    async replacing(last: TxAttempt): Promise<Fees | undefined> {
        const fees = await this.current();
        const cap = this.settings.maxFeePerGasCap;
        const bump = (v: bigint) => (v * 1125n) / 1000n + 1n;
        let tip = bump(BigInt(last.maxPriorityFeePerGas));
        if (fees.maxPriorityFeePerGas > tip) tip = fees.maxPriorityFeePerGas;
        let maxFee = bump(BigInt(last.maxFeePerGas));
        if (fees.maxFeePerGas > maxFee) maxFee = fees.maxFeePerGas;
        if (maxFee > cap) maxFee = cap;
        if (tip > maxFee) tip = maxFee;
        if (maxFee <= BigInt(last.maxFeePerGas) || tip < bump(BigInt(last.maxPriorityFeePerGas)) - 1n) return undefined;
        return { maxFeePerGas: maxFee, maxPriorityFeePerGas: tip };
    }
}
