import type { FunctionFragment } from 'ethers';
import { hexBytes } from './txCodec';

/**
 * The call data of EnergyExchange v2's batch calls, ABI-encoded over Buffers: the same bytes as
 * ethers' `encodeFunctionData` (a test compares them) at a fraction of its CPU. ethers encodes
 * through hex strings and checksums every address with a JavaScript keccak; a batch of 200
 * signatures is 51 KB, and this encoding was a fifth of the pipeline's CPU in `bench:chain`.
 * Only the two shapes below are encoded here; any other function goes through ethers.
 */

export const CREATE_PROPOSALS = 'createProposals((bytes32,bytes32,address[],uint64)[])';
export const SUBMIT_SIGNATURES = 'submitSignatures((bytes32,address,bytes)[])';

const WORD = 32;
const BYTES32 = /^0x[0-9a-fA-F]{64}$/;
const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const UINT64_MAX = 2n ** 64n - 1n;

function word(value: bigint | number): Buffer {
    const w = Buffer.alloc(WORD);
    let v = BigInt(value);
    for (let i = WORD - 1; v > 0n; i--, v >>= 8n) w[i] = Number(v & 0xffn);
    return w;
}

function bytes32(hex: string, what: string): Buffer {
    if (!BYTES32.test(hex)) throw new TypeError(`${what} is not 32 bytes of hex`);
    return Buffer.from(hex.slice(2), 'hex');
}

function address(hex: string, what: string): Buffer {
    if (!ADDRESS.test(hex)) throw new TypeError(`${what} is not an address`);
    const w = Buffer.alloc(WORD);
    w.write(hex.slice(2), 12, 'hex');
    return w;
}

function uint64(value: bigint, what: string): Buffer {
    if (value < 0n || value > UINT64_MAX) throw new RangeError(`${what} does not fit a uint64`);
    return word(value);
}

/** `bytes`: its length, then the data padded with zeros to whole words. */
function dynamicBytes(data: Buffer): Buffer {
    const padded = Buffer.alloc(Math.ceil(data.length / WORD) * WORD);
    data.copy(padded);
    return Buffer.concat([word(data.length), padded]);
}

/** A dynamic array of dynamic tuples, each already encoded: its length, each tuple's offset, the tuples. */
function tupleArray(tuples: Buffer[]): Buffer {
    const offsets: Buffer[] = [];
    let at = tuples.length * WORD;
    for (const t of tuples) {
        offsets.push(word(at));
        at += t.length;
    }
    return Buffer.concat([word(tuples.length), ...offsets, ...tuples]);
}

/**
 * A call of `fn`, whose only argument is one dynamic array of tuples (`shape`, or it is refused):
 * the selector, the array's offset (one word), the array of the tuples `tuple` encodes.
 */
function tupleArrayCall<I>(fn: FunctionFragment, shape: string, encoder: string, items: I[], tuple: (item: I, i: number) => Buffer): string {
    if (fn.format('sighash') !== shape) throw new Error(`${encoder} cannot encode ${fn.format('sighash')}`);
    return `${fn.selector}${word(WORD).toString('hex')}${tupleArray(items.map(tuple)).toString('hex')}`;
}

export interface NewProposalItem {
    id: string;
    termsHash: string;
    parties: string[];
    deadline: bigint;
}

export interface PartySignatureItem {
    id: string;
    party: string;
    signature: string;
}

/** `createProposals(NewProposal[])`: each item id, terms hash, the offset of its parties (4 words in), deadline, the parties. */
export function encodeCreateProposals(fn: FunctionFragment, items: NewProposalItem[]): string {
    return tupleArrayCall(fn, CREATE_PROPOSALS, 'encodeCreateProposals', items, (p, i) =>
        Buffer.concat([
            bytes32(p.id, `item ${i}: id`),
            bytes32(p.termsHash, `item ${i}: termsHash`),
            word(4 * WORD),
            uint64(p.deadline, `item ${i}: deadline`),
            word(p.parties.length),
            ...p.parties.map((a, k) => address(a, `item ${i}: party ${k}`)),
        ]),
    );
}

/** `submitSignatures(PartySignature[])`: each item id, party, the offset of its signature (3 words in), the signature. */
export function encodeSubmitSignatures(fn: FunctionFragment, items: PartySignatureItem[]): string {
    return tupleArrayCall(fn, SUBMIT_SIGNATURES, 'encodeSubmitSignatures', items, (x, i) =>
        Buffer.concat([bytes32(x.id, `item ${i}: id`), address(x.party, `item ${i}: party`), word(3 * WORD), dynamicBytes(hexBytes(x.signature, `item ${i}: signature`))]),
    );
}
