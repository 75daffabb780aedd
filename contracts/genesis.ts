import { encodeRlp, getAddress, parseEther, toBeHex, Wallet, zeroPadValue } from 'ethers';
import { armParameterFile } from '../shared/deployment/armParameterFile';
import { EVM_VERSION } from './evm';

/**
 * The consortium ledger's genesis: Hyperledger Besu with QBFT (see infra/README.md, "The ledger
 * network"), its protocol milestones taken from the contracts' EVM version (`EVM_VERSION`), so the
 * chain runs every opcode the compiled contracts use and the local ledger (anvil, started with the
 * same hardfork) behaves as the consortium's chain does.
 */
export interface GenesisOptions {
    chainId: number;
    /** The validators' addresses (each validator node's key): at least 4, so that one may fail (QBFT tolerates f of 3f + 1). */
    validators: string[];
    /** Seconds between blocks. */
    blockPeriodSeconds?: number;
    /** Seconds a round waits for a proposal before the next validator proposes. */
    requestTimeoutSeconds?: number;
    /** Blocks between resets of validator votes. */
    epochLength?: number;
    gasLimit?: bigint;
    /** Ether (decimal string) given to accounts at block 0: the core's treasury. */
    alloc?: Record<string, string>;
    /** Seconds since 1970 of block 0 (default: now, whole seconds). */
    timestamp?: number;
    /** The EVM version to activate from block 0 (default: the contracts'). */
    evmVersion?: string;
}

/** Milestones from genesis, by EVM version: block-numbered forks up to London, then time-based ones (Besu names). */
const BLOCK_FORKS = ['homesteadBlock', 'eip150Block', 'eip155Block', 'eip158Block', 'byzantiumBlock', 'constantinopleBlock', 'petersburgBlock', 'istanbulBlock', 'muirGlacierBlock', 'berlinBlock', 'londonBlock'];
const TIME_FORKS: Record<string, string[]> = {
    // A QBFT chain never merges: "paris" is London's EVM (solc emits PREVRANDAO only where a contract reads it).
    london: [],
    paris: [],
    shanghai: ['shanghaiTime'],
    cancun: ['shanghaiTime', 'cancunTime'],
};

export function milestonesFor(evmVersion: string): Record<string, number> {
    const times = TIME_FORKS[evmVersion];
    if (!times) throw new Error(`No genesis milestones for EVM version "${evmVersion}" (one of ${Object.keys(TIME_FORKS).join(', ')})`);
    return Object.fromEntries([...BLOCK_FORKS, ...times].map((k) => [k, 0]));
}

/** QBFT's extraData: RLP of [32-byte vanity, validators, votes (none), round 0, committed seals (none)]. */
export function qbftExtraData(validators: string[]): string {
    return encodeRlp([zeroPadValue('0x', 32), validators.map((v) => getAddress(v)), [], '0x', []]);
}

export function buildGenesis(opts: GenesisOptions): Record<string, unknown> {
    if (!Number.isInteger(opts.chainId) || opts.chainId <= 0) throw new Error('chainId must be a positive integer');
    const validators = [...new Set(opts.validators.map((v) => getAddress(v)))];
    if (validators.length !== opts.validators.length) throw new Error('each validator once');
    if (validators.length < 4) throw new Error(`QBFT needs at least 4 validators to tolerate one failing (got ${validators.length})`);
    const blockPeriod = opts.blockPeriodSeconds ?? 2;
    const gasLimit = opts.gasLimit ?? 30_000_000n;
    const alloc = Object.fromEntries(
        Object.entries(opts.alloc ?? {}).map(([address, ether]) => [getAddress(address).slice(2).toLowerCase(), { balance: toBeHex(parseEther(ether)) }]),
    );
    return {
        config: {
            chainId: opts.chainId,
            ...milestonesFor(opts.evmVersion ?? EVM_VERSION),
            qbft: { blockperiodseconds: blockPeriod, epochlength: opts.epochLength ?? 30_000, requesttimeoutseconds: opts.requestTimeoutSeconds ?? Math.max(4, blockPeriod * 2) },
        },
        nonce: '0x0',
        timestamp: toBeHex(opts.timestamp ?? Math.floor(Date.now() / 1000)),
        gasLimit: toBeHex(gasLimit),
        difficulty: '0x1',
        // QBFT's fixed mixHash ("Istanbul" BFT block marker).
        mixHash: '0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365',
        coinbase: '0x0000000000000000000000000000000000000000',
        extraData: qbftExtraData(validators),
        alloc,
    };
}

/** Validator sets core.json can run (its `validatorCount`): 3f + 1 validators survive f faulty. */
export const VALIDATOR_SET_SIZES = [4, 7, 10] as const;

export interface ValidatorKey {
    /** The node key (Besu's key file: 0x and 64 hex digits). Secret: it goes into core.json's secure `validatorKeys` only. */
    privateKey: string;
    address: string;
    /** The node's public key as enode URLs name it (128 hex digits, no 0x, no 04 prefix). */
    publicKey: string;
}

/** New node keys for the core's validators (core.json keeps them in its vault, one readable by each validator). */
export function newValidatorKeys(count: number): ValidatorKey[] {
    if (!(VALIDATOR_SET_SIZES as readonly number[]).includes(count)) throw new Error(`The core runs ${VALIDATOR_SET_SIZES.join(', ')} validators (core.json validatorCount), not ${count}`);
    return Array.from({ length: count }, () => {
        const wallet = Wallet.createRandom();
        return { privateKey: wallet.privateKey, address: wallet.address, publicKey: wallet.signingKey.publicKey.slice(4) };
    });
}

/**
 * core.json's parameters for its validators and the consortium's genesis, as an ARM parameter file: the keys (secure
 * object), their public keys (the enode URLs every node boots from), how many, and the genesis naming them.
 */
export function coreLedgerParameters(keys: ValidatorKey[], genesisJson: string): Record<string, unknown> {
    return armParameterFile({
        validatorCount: keys.length,
        validatorKeys: { keys: keys.map((k) => k.privateKey) },
        validatorPublicKeys: keys.map((k) => k.publicKey),
        memberGenesisJsonBase64: Buffer.from(genesisJson).toString('base64'),
    });
}
