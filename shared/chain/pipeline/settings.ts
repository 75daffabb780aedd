import type { InterfaceAbi } from 'ethers';

/** The pipeline's options as given, and as every part reads them: with their defaults filled in. */

export interface PipelineLog {
    info(obj: object, msg: string): void;
    warn(obj: object, msg: string): void;
    error(obj: object, msg: string): void;
}

export interface PipelineOptions {
    chainId: number;
    /** Blocks deep before a transaction is final (1 = in a block). */
    confirmations?: number;
    /** Upper bound of maxFeePerGas, in wei. */
    maxFeePerGasCap: bigint;
    /** Lower bound of the tip, in wei (default 1 gwei, or the cap if lower). */
    minPriorityFeePerGas?: bigint;
    /** Re-sign with higher fees after this long unmined (default 60 s). */
    replaceAfterMs?: number;
    /** Re-send the raw transaction after this long unmined (default 5 s). */
    rebroadcastAfterMs?: number;
    /** While anything is in flight, the head is asked for this often; receipts read when it moves (default 500 ms). */
    pollIntervalMs?: number;
    /** Nonce lease length (default 30 s); renewed at a third of it while in use. */
    leaseMs?: number;
    /** A lease is released after this long without submissions (default 5 s). */
    idleReleaseMs?: number;
    /** How long `submit` waits for another instance's lease (default 2 × leaseMs). */
    leaseWaitMs?: number;
    /** A nonce left unused (a duplicate submission, a failed write) is filled after this long if no submission took it (default 2 s). */
    holeFillAfterMs?: number;
    /** Extra gas over the estimate (default 20 %). */
    gasMarginPercent?: number;
    /** ABIs whose custom errors decode reverts. */
    abis?: InterfaceAbi[];
    instanceId?: string;
    log?: PipelineLog;
    /**
     * Called when the node turns a sender's transaction away for insufficient funds (e.g. to ask the
     * treasury for a top-up at once), at most once per sender per `fundsRequestIntervalMs`; the
     * transaction is re-sent as usual meanwhile.
     */
    onInsufficientFunds?: (sender: string) => Promise<void>;
    /** Default 30 s. */
    fundsRequestIntervalMs?: number;
}

export type PipelineSettings = Required<Omit<PipelineOptions, 'log' | 'instanceId' | 'abis' | 'onInsufficientFunds'>> & { abis: InterfaceAbi[] };

const GWEI = 10n ** 9n;

export function settingsFrom(opts: PipelineOptions): PipelineSettings {
    const leaseMs = opts.leaseMs ?? 30_000;
    return {
        chainId: opts.chainId,
        confirmations: Math.max(1, opts.confirmations ?? 1),
        maxFeePerGasCap: opts.maxFeePerGasCap,
        minPriorityFeePerGas: opts.minPriorityFeePerGas ?? (GWEI < opts.maxFeePerGasCap ? GWEI : opts.maxFeePerGasCap),
        replaceAfterMs: opts.replaceAfterMs ?? 60_000,
        rebroadcastAfterMs: opts.rebroadcastAfterMs ?? 5_000,
        pollIntervalMs: opts.pollIntervalMs ?? 500,
        leaseMs,
        idleReleaseMs: opts.idleReleaseMs ?? 5_000,
        leaseWaitMs: opts.leaseWaitMs ?? 2 * leaseMs,
        gasMarginPercent: opts.gasMarginPercent ?? 20,
        holeFillAfterMs: opts.holeFillAfterMs ?? 2000,
        fundsRequestIntervalMs: opts.fundsRequestIntervalMs ?? 30_000,
        abis: opts.abis ?? [],
    };
}
