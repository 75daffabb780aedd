import { getAddress, Interface, type InterfaceAbi } from 'ethers';

/** A proposal's state as the contract holds it (`enum Status` of EnergyExchange). */
export const CHAIN_STATUSES = ['None', 'Open', 'Completed', 'Cancelled'] as const;
export type ChainStatus = (typeof CHAIN_STATUSES)[number];

export interface ChainSignature {
    account: string;
    txHash: string;
    blockNumber: number;
}

/** What the ledger says of one proposal: its status and every party's signature (from the contract's `ProposalSigned` logs). */
export interface OnChainProposal {
    status: ChainStatus;
    signatures: ChainSignature[];
}

/** The part of a JSON-RPC client these reads need. */
export interface LedgerReader {
    rpc<T>(method: string, params?: unknown[]): Promise<T>;
}

interface RawLog {
    topics: string[];
    data: string;
    transactionHash: string;
    blockNumber: string;
    logIndex: string;
    removed?: boolean;
}

/**
 * Reads a proposal's on-chain status and signatures at the ledger's head: what the saga and
 * the chain event pump reconcile their records to (the ledger is the source of truth).
 */
export async function readOnChain(ledger: LedgerReader, contract: { address: string; abi: InterfaceAbi }, chainProposalId: string, fromBlock: number): Promise<OnChainProposal> {
    const iface = new Interface(contract.abi);
    const raw = await ledger.rpc<string>('eth_call', [{ to: contract.address, data: iface.encodeFunctionData('statusOf', [chainProposalId]) }, 'latest']);
    const [code] = iface.decodeFunctionResult('statusOf', raw) as unknown as [bigint];
    const status = CHAIN_STATUSES[Number(code)];
    if (!status) throw new Error(`The contract answered an unknown proposal status ${code}`);
    const signed = iface.getEvent('ProposalSigned')!;
    const logs = await ledger.rpc<RawLog[]>('eth_getLogs', [{ address: contract.address, fromBlock: `0x${fromBlock.toString(16)}`, toBlock: 'latest', topics: [signed.topicHash, chainProposalId] }]);
    const signatures = logs
        .filter((l) => !l.removed)
        .map((l) => ({ log: l, parsed: iface.parseLog({ topics: l.topics, data: l.data })! }))
        .sort((a, b) => Number(BigInt(a.log.blockNumber) - BigInt(b.log.blockNumber)) || Number(BigInt(a.log.logIndex) - BigInt(b.log.logIndex)))
        .map(({ log, parsed }) => ({ account: getAddress(String(parsed.args.party)), txHash: log.transactionHash, blockNumber: Number(BigInt(log.blockNumber)) }));
    return { status, signatures };
}
