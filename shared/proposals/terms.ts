import { TypedDataEncoder, type TypedDataField } from 'ethers';
import type { SigningDomain } from '../chain/energyExchange';

/**
 * A proposal's terms as EIP-712 typed data: what the parties agree to, in one structure any
 * party can hash and check with standard tooling (ethers' `TypedDataEncoder`, `verifyTypedData`,
 * a wallet's `eth_signTypedData_v4`). Amounts are integers in the units their names state, never
 * floats: quantity in kWh, price in pence per MWh (negative when the seller pays), times in Unix
 * seconds. The domain binds the terms to one chain and one contract. The core, the members and
 * `verify` all build it here, from a stored proposal.
 */

/** The EIP-712 types of a proposal's terms (primary type `Proposal`). */
export const PROPOSAL_TYPES: Record<string, TypedDataField[]> = {
    Proposal: [
        { name: 'id', type: 'bytes32' },
        { name: 'parties', type: 'address[]' },
        { name: 'product', type: 'string' },
        { name: 'direction', type: 'string' },
        { name: 'quantityKWh', type: 'uint256' },
        { name: 'pricePencePerMWh', type: 'int256' },
        { name: 'deliveryStart', type: 'uint64' },
        { name: 'deliveryEnd', type: 'uint64' },
        { name: 'documents', type: 'Document[]' },
        { name: 'deadline', type: 'uint64' },
    ],
    Document: [
        { name: 'hash', type: 'bytes32' },
        { name: 'algorithm', type: 'string' },
    ],
};

/** The decimals each amount may carry in the API (`quantityMWh`: 3, to the kWh; `priceGbpPerMWh`: 2, to the penny). */
export const AMOUNT_DECIMALS = { quantityMWh: 3, priceGbpPerMWh: 2 } as const;

/** What the terms are built from: the stored proposal's own fields. */
export interface TermsSource {
    chainId: string;
    parties: { account: string }[];
    terms: { product: string; direction: 'buy' | 'sell'; quantityMWh: number; priceGbpPerMWh: number; deliveryStart: string; deliveryEnd: string };
    assets: { sha256: string; algorithm: string }[];
    expiresAt: string;
}

/** The message of the typed data, in JSON-safe form (integers as decimal strings). */
export interface ProposalTerms {
    id: string;
    parties: string[];
    product: string;
    direction: 'buy' | 'sell';
    quantityKWh: string;
    pricePencePerMWh: string;
    deliveryStart: number;
    deliveryEnd: number;
    documents: { hash: string; algorithm: string }[];
    deadline: number;
}

/** The EIP-712 domain of the contract a proposal is anchored on (`EnergyExchange.signingDomain`). */
export type { SigningDomain };

export interface ProposalTypedData {
    domain: SigningDomain;
    types: Record<string, TypedDataField[]>;
    primaryType: 'Proposal';
    message: ProposalTerms;
}

/** A decimal amount as an integer of its smallest unit; undefined when it has more decimals than the unit allows. */
export function toUnits(value: number, decimals: number): bigint | undefined {
    if (!Number.isFinite(value)) return undefined;
    const fixed = value.toFixed(decimals);
    if (Number(fixed) !== value) return undefined;
    return BigInt(fixed.replace('.', ''));
}

const seconds = (iso: string) => Math.floor(Date.parse(iso) / 1000);

/** The proposal's terms as typed data under the contract's signing domain. */
export function proposalTypedData(p: TermsSource, domain: SigningDomain): ProposalTypedData {
    const quantity = toUnits(p.terms.quantityMWh, AMOUNT_DECIMALS.quantityMWh);
    const price = toUnits(p.terms.priceGbpPerMWh, AMOUNT_DECIMALS.priceGbpPerMWh);
    if (quantity === undefined || price === undefined) throw new Error(`The proposal ${p.chainId} has amounts finer than their units (kWh, pence)`);
    return {
        domain,
        types: PROPOSAL_TYPES,
        primaryType: 'Proposal',
        message: {
            id: p.chainId,
            parties: p.parties.map((x) => x.account),
            product: p.terms.product,
            direction: p.terms.direction,
            quantityKWh: quantity.toString(),
            pricePencePerMWh: price.toString(),
            deliveryStart: seconds(p.terms.deliveryStart),
            deliveryEnd: seconds(p.terms.deliveryEnd),
            documents: p.assets.map((a) => ({ hash: `0x${a.sha256}`, algorithm: a.algorithm })),
            deadline: seconds(p.expiresAt),
        },
    };
}

/** The EIP-712 digest a party signs: `keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(terms))`. */
export const termsDigest = (td: ProposalTypedData) => TypedDataEncoder.hash(td.domain, td.types, td.message);

/** `hashStruct(terms)`: what a contract that binds terms holds for the proposal. */
export const termsStructHash = (td: ProposalTypedData) => TypedDataEncoder.hashStruct(td.primaryType, td.types, td.message);
