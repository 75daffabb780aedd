import { getAddress, Interface, type FunctionFragment, type InterfaceAbi } from 'ethers';
import { keptUntilFailed } from '../boundedMap';
import { AppError, Invalid, Upstream } from '../errors';
import { decodeRevert, revertDataOf } from './reverts';
import { CREATE_PROPOSALS, encodeCreateProposals, encodeSubmitSignatures, SUBMIT_SIGNATURES } from './batchCalldata';

/**
 * The one port to the EnergyExchange contract. Everything the app asks of the contract goes
 * through here: the calls it sends (anchor, cancel, sign) built as data for the transaction
 * pipeline, the reads it makes (a proposal's status and signatures, an anchored asset), and
 * the events it decodes, each with the ABI of the version the work is pinned to. No other
 * product file holds an ABI fragment, an `Interface` or a raw `eth_call`.
 */

/** A proposal's state as the contract holds it (`enum Status` of EnergyExchange). */
export const CHAIN_STATUSES = ['None', 'Open', 'Completed', 'Cancelled'] as const;
export type ChainStatus = (typeof CHAIN_STATUSES)[number];

/** A party's signature as the ledger recorded it (a `ProposalSigned` log). */
export interface ChainSignature {
    account: string;
    txHash: string;
    blockNumber: number;
}

/** What the ledger says of one proposal: its status and every party's signature. */
export interface OnChainProposal {
    status: ChainStatus;
    signatures: ChainSignature[];
}

/** A document hash the proposal anchored, as the contract returns it. */
export interface AnchoredAsset {
    /** Hex, no `0x`. */
    hash: string;
    algorithm: string;
    location: string;
}

/** The EIP-712 domain that binds signed terms to one contract on one chain. */
export interface SigningDomain {
    name: string;
    version: string;
    chainId: number;
    verifyingContract: string;
}

/** Where a piece of work's contract is: the version it pinned and its address. */
export interface ContractRef {
    version: number;
    address: string;
}

/** A transaction for the pipeline: the contract, the call data, and the ABI its reverts are decoded with. */
export interface ContractCall {
    to: string;
    data: string;
    abi: InterfaceAbi;
    /**
     * A gas limit known beforehand (v2's batch calls): the pipeline then sends without estimating.
     * A batch skips the items that do not hold instead of reverting, so estimation would catch
     * nothing, and on a node that estimates by bisection (anvil) it runs the batch a dozen times.
     */
    gasLimit?: bigint;
}

/**
 * Upper bounds of the gas EnergyExchangeV2's batch calls use, from its storage layout (each new
 * proposal writes its packed status slot, its terms hash and one slot per party, 22,100 gas each;
 * a signature reads at most MAX_PARTIES party slots, recovers once and rewrites the packed slot),
 * with a margin. `test/integration/energyExchangeV2.test.ts` checks them against the gas used by
 * batches of two and of eight parties.
 */
const V2_GAS = { call: 60_000n, anchorBase: 20_000n, perSlot: 25_000n, signature: 48_000n } as const;

/** What a proposal anchors: its ledger id, the parties' accounts, the document hashes, the deadline; version 2 also the EIP-712 hash of its terms. */
export interface AnchorInput {
    chainProposalId: string;
    parties: string[];
    assets: { sha256: string; algorithm: string; location: string }[];
    expiresAt: string;
    /** `hashStruct` of the proposal's typed data (shared/proposals/terms.ts); required by contracts that bind terms. */
    termsHash?: string;
}

/** A party's EIP-712 signature of a proposal's terms, for a contract that binds terms. */
export interface TermsSignature {
    chainProposalId: string;
    party: string;
    /** 65 bytes, hex: r, s (low), v (27 or 28). */
    signature: string;
}

/** The part of a JSON-RPC client the reads need. */
export interface LedgerReader {
    rpc<T>(method: string, params?: unknown[]): Promise<T>;
}

/** A log as `eth_getLogs` returns it. */
export interface RawLog {
    address: string;
    topics: string[];
    data: string;
    blockNumber: string;
    blockHash: string;
    transactionHash: string;
    logIndex: string;
    removed?: boolean;
}

export type EventArgs = Record<string, string | number | boolean | string[]>;

/** A decoded contract event: its name and its arguments by name, as plain JSON values. */
export interface DecodedEvent {
    name: string;
    args: EventArgs;
}

/** The EnergyExchange contract at one version and address. */
export class EnergyExchange {
    readonly #iface: Interface;
    /** The batch calls this ABI has in the shapes `batchCalldata.ts` encodes (found once: they are encoded per batch). */
    readonly #batchFns: { create?: FunctionFragment; submit?: FunctionFragment };
    /** Version 2 and later: the parties sign the terms (EIP-712) and the contract checks the signatures; version 1: a party's account calls `sign`. */
    readonly bindsTerms: boolean;

    constructor(
        readonly ref: ContractRef,
        readonly abi: InterfaceAbi,
        private readonly ledger: LedgerReader,
    ) {
        this.#iface = new Interface(abi);
        this.bindsTerms = this.#iface.getFunction('submitSignatures') !== null;
        const shaped = (name: string, shape: string) => {
            const fn = this.#iface.getFunction(name);
            return fn?.format('sighash') === shape ? fn : undefined;
        };
        this.#batchFns = { create: shaped('createProposals', CREATE_PROPOSALS), submit: shaped('submitSignatures', SUBMIT_SIGNATURES) };
    }

    /**
     * The EIP-712 domain that binds a proposal's terms to this contract on this chain. Version 2
     * contracts check signatures under it; for version 1 it names the contract the terms were
     * anchored on, for any party to check against.
     */
    signingDomain(chainId: number): SigningDomain {
        return { name: 'Flexchange EnergyExchange', version: this.bindsTerms ? '2' : '1', chainId, verifyingContract: this.ref.address };
    }

    /** The operator anchors a proposal: `createProposal` (v1), a batch of one through `createProposals` (v2, with the terms' hash). */
    createProposal(p: AnchorInput): ContractCall {
        if (this.bindsTerms) return this.createProposals([p]);
        const assets = p.assets.map((a) => ({ hash: `0x${a.sha256}`, algorithm: a.algorithm, location: a.location }));
        return this.#call('createProposal', [p.chainProposalId, p.parties, assets, deadlineOf(p)]);
    }

    /** `createProposals` (v2): the operator anchors a batch, each proposal with its terms' hash; one that does not hold is skipped on-chain. */
    createProposals(items: AnchorInput[]): ContractCall {
        const batch = items.map((p) => {
            if (!p.termsHash) throw new Error(`Contract version ${this.ref.version} binds the terms: anchoring needs their hash`);
            return { id: p.chainProposalId, termsHash: p.termsHash, parties: p.parties, deadline: deadlineOf(p) };
        });
        const fn = this.#batchFns.create;
        const call = fn ? { to: this.ref.address, data: encodeCreateProposals(fn, batch), abi: this.abi } : this.#call('createProposals', [batch]);
        const gas = items.reduce<bigint>((sum, p) => sum + V2_GAS.anchorBase + V2_GAS.perSlot * BigInt(2 + p.parties.length), V2_GAS.call);
        return { ...call, gasLimit: gas };
    }

    /** `submitSignatures` (v2): parties' signatures of their proposals' terms, from any account; an item that does not hold is skipped on-chain. */
    submitSignatures(items: TermsSignature[]): ContractCall {
        const batch = items.map((x) => ({ id: x.chainProposalId, party: x.party, signature: x.signature }));
        const fn = this.#batchFns.submit;
        const call = fn ? { to: this.ref.address, data: encodeSubmitSignatures(fn, batch), abi: this.abi } : this.#call('submitSignatures', [batch]);
        return { ...call, gasLimit: V2_GAS.call + V2_GAS.signature * BigInt(items.length) };
    }

    /** The signatures a `submitSignatures` transaction carried (its input data), for anyone to check them off-chain. */
    signaturesIn(data: string): TermsSignature[] {
        const [items] = this.#iface.decodeFunctionData('submitSignatures', data).toArray(true) as [[string, string, string][]];
        return items.map(([chainProposalId, party, signature]) => ({ chainProposalId, party, signature }));
    }

    /** `signingDigest(id)` (v2): the digest the contract checks the parties' signatures against. */
    async signingDigest(chainProposalId: string): Promise<string> {
        const [digest] = await this.#read<[string]>('signingDigest', [chainProposalId]);
        return digest;
    }

    /** `cancelProposal`: the operator closes an open proposal (a rejection or its deadline). */
    cancelProposal(chainProposalId: string): ContractCall {
        return this.#call('cancelProposal', [chainProposalId]);
    }

    /** `sign` (v1): a party's account signs the proposal. */
    sign(chainProposalId: string): ContractCall {
        return this.#call('sign', [chainProposalId]);
    }

    async statusOf(chainProposalId: string): Promise<ChainStatus> {
        const [code] = await this.#read<[bigint]>('statusOf', [chainProposalId]);
        const status = CHAIN_STATUSES[Number(code)];
        if (!status) throw new Error(`The contract answered an unknown proposal status ${code}`);
        return status;
    }

    /** Every party's signature of the proposal, in chain order, from the `ProposalSigned` logs since `fromBlock`. */
    async signatures(chainProposalId: string, fromBlock: number): Promise<ChainSignature[]> {
        const signed = this.#iface.getEvent('ProposalSigned')!;
        const logs = await this.ledger.rpc<RawLog[]>('eth_getLogs', [{ address: this.ref.address, fromBlock: hex(fromBlock), toBlock: 'latest', topics: [signed.topicHash, chainProposalId] }]);
        return logs
            .filter((l) => !l.removed)
            .sort((a, b) => Number(BigInt(a.blockNumber) - BigInt(b.blockNumber)) || Number(BigInt(a.logIndex) - BigInt(b.logIndex)))
            .map((l) => ({ account: getAddress(String(this.decode(l)!.args.party)), txHash: l.transactionHash, blockNumber: Number(BigInt(l.blockNumber)) }));
    }

    /** The proposal as the ledger holds it now: status and signatures (what records are reconciled to). */
    async read(chainProposalId: string, fromBlock: number): Promise<OnChainProposal> {
        const status = await this.statusOf(chainProposalId);
        return { status, signatures: await this.signatures(chainProposalId, fromBlock) };
    }

    /** `getProposal(id)` (v2): the EIP-712 hash of the terms the proposal was anchored with. */
    async termsHash(chainProposalId: string): Promise<string> {
        const [, , , , , termsHash] = await this.#read<[bigint, bigint, bigint, string[], bigint, string]>('getProposal', [chainProposalId]);
        return termsHash;
    }

    /** `getAsset(id, index)` (v1): the hash anchored for the proposal's document at `index`. */
    async asset(chainProposalId: string, index: number): Promise<AnchoredAsset> {
        const [hash, algorithm, location] = await this.#read<[string, string, string]>('getAsset', [chainProposalId, index]);
        return { hash: hash.replace(/^0x/, ''), algorithm, location };
    }

    /** The event a log of this contract carries, or undefined for a log this version's ABI does not know. */
    decode(log: Pick<RawLog, 'topics' | 'data'>): DecodedEvent | undefined {
        return decodeWith(this.#iface, log);
    }

    #call(fn: string, args: unknown[]): ContractCall {
        return { to: this.ref.address, data: this.#iface.encodeFunctionData(fn, args), abi: this.abi };
    }

    /** A view call; the contract refusing is a `ContractRevert` (409), a node that answers nonsense an `Upstream` (502). */
    async #read<T>(fn: string, args: unknown[]): Promise<T> {
        let raw: string;
        try {
            raw = await this.ledger.rpc<string>('eth_call', [{ to: this.ref.address, data: this.#iface.encodeFunctionData(fn, args) }, 'latest']);
        } catch (err) {
            if (err instanceof AppError) throw err;
            const revert = decodeRevert(revertDataOf(err), [this.abi]);
            if (revert) throw revert;
            throw new Upstream(`The ledger did not answer ${fn} of contract version ${this.ref.version}: ${(err as Error).message}`, { cause: err });
        }
        try {
            return this.#iface.decodeFunctionResult(fn, raw) as unknown as T;
        } catch (err) {
            throw new Upstream(`The ledger's answer to ${fn} of contract version ${this.ref.version} at ${this.ref.address} is not what its ABI describes (${raw.slice(0, 20)}…)`, { cause: err });
        }
    }
}

/** A version of the contract as the registry of versions records it. */
export interface VersionRecord {
    version: number;
    state: 'deploying' | 'ready';
    address?: string;
    abi: InterfaceAbi;
    blockNumber?: number;
}

/** The registry of versions, as far as the port needs it (`ContractVersions`). */
export interface VersionSource {
    byVersion(version: number): Promise<VersionRecord>;
    /** The version new work uses, as its number and address only (no ABI: that is read once per version by `byVersion`). */
    latestActiveRef(): Promise<{ version: number; address?: string } | undefined>;
    list(): Promise<VersionRecord[]>;
}

/** Every version of the contract: the one a piece of work pinned, the one new work uses, all of them (for the event pump). */
export class EnergyExchanges {
    /** Ready versions by number: a version's address and ABI never change once it is ready, so each is read (and its ABI parsed) once per process. */
    readonly #ready = new Map<number, Promise<EnergyExchange>>();

    constructor(
        private readonly versions: VersionSource,
        private readonly ledger: LedgerReader,
    ) {}

    /** Exactly the pinned version (work that started on N stays on N). */
    async at(ref: ContractRef): Promise<EnergyExchange> {
        const exchange = await keptUntilFailed(this.#ready, ref.version, () =>
            this.versions.byVersion(ref.version).then((v) => {
                if (!v.address) throw new Error(`Contract version ${ref.version} has no address yet`);
                return new EnergyExchange({ version: v.version, address: v.address }, v.abi, this.ledger);
            }),
        );
        if (getAddress(exchange.ref.address) !== getAddress(ref.address)) throw new Error(`Contract version ${ref.version} is at ${exchange.ref.address}, not ${ref.address}`);
        return exchange;
    }

    /** The version new work is anchored on; undefined while none is active. */
    async latest(): Promise<EnergyExchange | undefined> {
        const v = await this.versions.latestActiveRef();
        return v?.address ? this.at({ version: v.version, address: v.address }) : undefined;
    }

    /** Every deployed version, with the block it was deployed in (where reading its logs starts). */
    async deployed(): Promise<{ version: number; address: string; abi: InterfaceAbi; blockNumber?: number }[]> {
        return (await this.versions.list()).filter((v) => v.state === 'ready' && v.address).map((v) => ({ version: v.version, address: v.address!, abi: v.abi, blockNumber: v.blockNumber }));
    }
}

/** A decoder of one version's logs (the event pump decodes every version's logs with its own ABI). */
export function eventDecoder(abi: InterfaceAbi): (log: Pick<RawLog, 'topics' | 'data'>) => DecodedEvent | undefined {
    const iface = new Interface(abi);
    return (log) => decodeWith(iface, log);
}

/** A `ProposalSigned` event's proposal and signature, read from a decoded event; undefined for any other event. */
export function signatureIn(e: DecodedEvent & { txHash: string; blockNumber: number }): { chainProposalId: string; signature: ChainSignature } | undefined {
    if (e.name !== 'ProposalSigned') return undefined;
    return { chainProposalId: String(e.args.id), signature: { account: String(e.args.party), txHash: e.txHash, blockNumber: e.blockNumber } };
}

/**
 * The functions an ABI declares, each with its selector (hex, no `0x`): an ABI registered for
 * a contract deployed elsewhere must be implemented by the code at its address. An ABI that
 * does not parse is refused.
 */
export function abiFunctions(abi: InterfaceAbi): { selector: string; signature: string }[] {
    let iface: Interface;
    try {
        iface = new Interface(abi);
    } catch (err) {
        throw new Invalid('The ABI is not valid', [{ path: 'body.abi', message: (err as Error).message }]);
    }
    const out: { selector: string; signature: string }[] = [];
    iface.forEachFunction((f) => out.push({ selector: f.selector.slice(2).toLowerCase(), signature: f.format() }));
    return out;
}

function decodeWith(iface: Interface, log: Pick<RawLog, 'topics' | 'data'>): DecodedEvent | undefined {
    const parsed = iface.parseLog({ topics: log.topics, data: log.data });
    if (!parsed) return undefined;
    const args: EventArgs = {};
    parsed.fragment.inputs.forEach((input, i) => (args[input.name || `arg${i}`] = plain(parsed.args[i])));
    return { name: parsed.name, args };
}

const hex = (n: number) => '0x' + n.toString(16);
const deadlineOf = (p: AnchorInput) => BigInt(Math.floor(Date.parse(p.expiresAt) / 1000));

function plain(v: unknown): string | number | boolean | string[] {
    if (typeof v === 'bigint') return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
    if (Array.isArray(v) || (v && typeof (v as Iterable<unknown>)[Symbol.iterator] === 'function')) return [...(v as Iterable<unknown>)].map((x) => String(plain(x)));
    return String(v);
}
