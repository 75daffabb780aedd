import { createKeccak, type IHasher } from 'hash-wasm';
import { getAddress, type Signature } from 'ethers';

/**
 * EIP-1559 (type-2) transactions encoded, hashed and serialized over Buffers, for the
 * pipeline's hot path: the same bytes as ethers' `Transaction` (a test compares them), without
 * its hex-string round trips, and keccak-256 in WebAssembly (hash-wasm) instead of JavaScript.
 * A batch call carries 25–50 KB of data; ethers converted, RLP-encoded and hashed it as hex
 * several times per signature (≈ 20 ms a transaction, most of the pipeline's CPU in
 * `bench:chain`).
 */

/** The fields of a type-2 transaction the pipeline signs (no access list). */
export interface Type2Fields {
    chainId: number | bigint;
    nonce: number | bigint;
    maxPriorityFeePerGas: bigint;
    maxFeePerGas: bigint;
    gasLimit: bigint;
    /** The recipient; none for a contract creation. */
    to?: string | null;
    value?: bigint;
    /** Call data (or init code), 0x-hex. */
    data?: string;
}

type RlpItem = Buffer | RlpItem[];

let hasher: Promise<IHasher> | undefined;

/** keccak-256 of bytes (the hasher is made once per process; each call uses it synchronously). */
export async function keccak(bytes: Uint8Array): Promise<Buffer> {
    const h = await (hasher ??= createKeccak(256));
    h.init();
    h.update(bytes);
    return Buffer.from(h.digest('binary'));
}

const HEX = /^0x(?:[0-9a-fA-F]{2})*$/;

/** 0x-hex (an even number of digits) as bytes; Buffer.from alone would silently stop at a bad digit. */
export function hexBytes(hex: string, what: string): Buffer {
    if (!HEX.test(hex)) throw new TypeError(`${what} is not 0x-prefixed hex bytes`);
    return Buffer.from(hex.slice(2), 'hex');
}

/** A non-negative integer as RLP wants it: big-endian, no leading zero bytes (zero is empty). */
function uint(value: number | bigint, what: string): Buffer {
    const v = BigInt(value);
    if (v < 0n) throw new RangeError(`${what} is negative`);
    if (v === 0n) return Buffer.alloc(0);
    const hex = v.toString(16);
    return Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
}

function lengthPrefix(length: number, short: number): Buffer {
    if (length < 56) return Buffer.from([short + length]);
    const len = uint(length, 'length');
    return Buffer.concat([Buffer.from([short + 55 + len.length]), len]);
}

/** Recursive length prefix encoding (the Ethereum yellow paper, appendix B). */
export function rlp(item: RlpItem): Buffer {
    if (Buffer.isBuffer(item)) {
        if (item.length === 1 && item[0] < 0x80) return item;
        return Buffer.concat([lengthPrefix(item.length, 0x80), item]);
    }
    const body = Buffer.concat(item.map(rlp));
    return Buffer.concat([lengthPrefix(body.length, 0xc0), body]);
}

function fieldsOf(tx: Type2Fields): RlpItem[] {
    return [
        uint(tx.chainId, 'chainId'),
        uint(tx.nonce, 'nonce'),
        uint(tx.maxPriorityFeePerGas, 'maxPriorityFeePerGas'),
        uint(tx.maxFeePerGas, 'maxFeePerGas'),
        uint(tx.gasLimit, 'gasLimit'),
        tx.to ? hexBytes(getAddress(tx.to), 'to') : Buffer.alloc(0),
        uint(tx.value ?? 0n, 'value'),
        tx.data ? hexBytes(tx.data, 'data') : Buffer.alloc(0),
        [], // access list
    ];
}

const TYPE_2 = Buffer.from([2]);

/** The bytes a type-2 transaction's signature covers: 0x02 ‖ rlp([chainId … accessList]). */
export function unsignedType2(tx: Type2Fields): Buffer {
    return Buffer.concat([TYPE_2, rlp(fieldsOf(tx))]);
}

/** The signed transaction as it is broadcast: 0x02 ‖ rlp([chainId … accessList, yParity, r, s]). */
export function signedType2(tx: Type2Fields, sig: Pick<Signature, 'yParity' | 'r' | 's'>): Buffer {
    return Buffer.concat([TYPE_2, rlp([...fieldsOf(tx), uint(sig.yParity, 'yParity'), uint(BigInt(sig.r), 'r'), uint(BigInt(sig.s), 's')])]);
}

/** Something that signs a 32-byte digest with the sender's key (a vault signer, or an ethers Wallet's signing key). */
export type DigestSigning = (digest: string) => Signature | Promise<Signature>;

/** The raw transaction, its hash and its signature, signed by `signDigest` over the type-2 digest. */
export async function signType2(tx: Type2Fields, signDigest: DigestSigning): Promise<{ raw: string; hash: string; signature: { r: string; s: string; yParity: 0 | 1 } }> {
    const digest = await keccak(unsignedType2(tx));
    const sig = await signDigest(`0x${digest.toString('hex')}`);
    const signed = signedType2(tx, sig);
    return { raw: `0x${signed.toString('hex')}`, hash: `0x${(await keccak(signed)).toString('hex')}`, signature: { r: sig.r, s: sig.s, yParity: sig.yParity } };
}
