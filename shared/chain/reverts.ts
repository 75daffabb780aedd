import { Interface, isError, type InterfaceAbi, type Result } from 'ethers';
import { AppError } from '../errors';

/**
 * A transaction or call the contract refused, decoded from the ABI's custom errors
 * (or Solidity's `Error(string)` / `Panic(uint256)`). `name` is the error's name
 * (`NotAParty`, `DeadlinePassed`, ...), `args` its named arguments as JSON-safe values.
 * HTTP status 409: the request was well-formed, the ledger's state refused it.
 */
export class ContractRevert extends AppError {
    constructor(
        readonly errorName: string,
        readonly args: Record<string, string | number | boolean | string[]>,
        readonly data: string,
        options?: { cause?: unknown },
    ) {
        super(`The contract refused: ${errorName}${Object.keys(args).length ? ` ${JSON.stringify(args)}` : ''}`, 409, 'contract_revert', options);
    }
}

const PANIC_REASONS: Record<number, string> = {
    0x01: 'assertion failed',
    0x11: 'arithmetic overflow',
    0x12: 'division by zero',
    0x21: 'invalid enum value',
    0x32: 'array index out of bounds',
    0x41: 'out of memory',
};

function plain(v: unknown): string | number | boolean | string[] {
    if (typeof v === 'bigint') return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
    if (Array.isArray(v)) return v.map((x) => String(plain(x)));
    return String(v);
}

/** Decodes revert data with the given ABIs; undefined when it is none of their errors nor a standard one. */
export function decodeRevert(data: string | null | undefined, abis: InterfaceAbi[] = []): ContractRevert | undefined {
    if (!data || data === '0x' || data.length < 10) return undefined;
    for (const abi of abis) {
        const iface = abi instanceof Interface ? abi : new Interface(abi);
        try {
            const parsed = iface.parseError(data);
            if (parsed) return new ContractRevert(parsed.name, named(parsed.fragment.inputs.map((i) => i.name), parsed.args), data);
        } catch {
            // not this ABI's error
        }
    }
    const std = new Interface(['error Error(string reason)', 'error Panic(uint256 code)']);
    try {
        const parsed = std.parseError(data);
        if (parsed?.name === 'Error') return new ContractRevert('Error', { reason: String(parsed.args[0]) }, data);
        if (parsed?.name === 'Panic') {
            const code = Number(parsed.args[0]);
            return new ContractRevert('Panic', { code, reason: PANIC_REASONS[code] ?? 'panic' }, data);
        }
    } catch {
        // unknown selector
    }
    return new ContractRevert('UnknownError', { selector: data.slice(0, 10) }, data);
}

function named(names: string[], args: Result): Record<string, string | number | boolean | string[]> {
    const out: Record<string, string | number | boolean | string[]> = {};
    names.forEach((n, i) => (out[n || `arg${i}`] = plain(args[i])));
    return out;
}

/** The revert data inside an ethers / JSON-RPC error (eth_call and eth_estimateGas), if the node returned any. */
export function revertDataOf(err: unknown): string | undefined {
    if (isError(err, 'CALL_EXCEPTION') && typeof err.data === 'string') return err.data;
    const e = err as { data?: unknown; error?: { data?: unknown }; info?: { error?: { data?: unknown } } };
    for (const d of [e?.data, e?.error?.data, e?.info?.error?.data]) {
        if (typeof d === 'string' && d.startsWith('0x')) return d;
        if (d && typeof d === 'object' && typeof (d as { data?: unknown }).data === 'string') return (d as { data: string }).data;
    }
    return undefined;
}
