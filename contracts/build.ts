import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import solc from 'solc';
import { EVM_VERSION } from './evm';

/** The committed build output of EnergyExchange.sol: what deployment records (address + ABI) and what the tests deploy. */
export interface Artifact {
    contractName: string;
    sourcePath: string;
    /** sha256 of the .sol file's bytes. */
    sourceSha256: string;
    compiler: {
        version: string;
        optimizer: { enabled: boolean; runs: number };
        evmVersion: string;
    };
    abi: AbiItem[];
    bytecode: string;
    deployedBytecode: string;
    /** sha256 of JSON.stringify(abi). */
    abiSha256: string;
    /** sha256 of the creation bytecode's bytes. */
    bytecodeSha256: string;
}

export interface AbiItem {
    type: string;
    name?: string;
    inputs?: unknown[];
    outputs?: unknown[];
    stateMutability?: string;
    anonymous?: boolean;
}

/** The contracts built here, each from `contracts/<name>.sol` into `contracts/artifacts/<name>.json`. */
export const CONTRACTS = ['EnergyExchange', 'EnergyExchangeV2'] as const;
export type ContractName = (typeof CONTRACTS)[number];

/** Relative to the repository root: the source name given to solc and recorded in the artifact. */
export const sourcePathOf = (name: ContractName) => `contracts/${name}.sol`;
export const artifactFileOf = (name: ContractName) => path.join(__dirname, 'artifacts', `${name}.json`);
export const SOURCE_PATH = sourcePathOf('EnergyExchange');
export const ARTIFACT_FILE = artifactFileOf('EnergyExchange');

const OPTIMIZER = { enabled: true, runs: 200 };

interface SolcError {
    severity: 'error' | 'warning' | 'info';
    formattedMessage?: string;
    message: string;
}

interface SolcOutput {
    errors?: SolcError[];
    contracts?: Record<string, Record<string, { abi: AbiItem[]; evm: { bytecode: { object: string }; deployedBytecode: { object: string } } }>>;
}

export class CompileError extends Error {
    constructor(readonly diagnostics: string[]) {
        super(`The contract failed to compile:\n${diagnostics.join('\n')}`);
        this.name = 'CompileError';
    }
}

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

/** Compiles EnergyExchange.sol in-process with the bundled solc-js; the same source always gives the same bytes. */
export const compileEnergyExchange = (onWarning: (message: string) => void = () => {}): Artifact => compileContract('EnergyExchange', onWarning);

/** Compiles `contracts/<name>.sol` in-process with the bundled solc-js; the same source always gives the same bytes. */
export function compileContract(name: ContractName, onWarning: (message: string) => void = () => {}): Artifact {
    const sourcePath = sourcePathOf(name);
    const source = readFileSync(path.join(__dirname, `${name}.sol`));
    const input = {
        language: 'Solidity',
        sources: { [sourcePath]: { content: source.toString('utf8') } },
        settings: {
            optimizer: OPTIMIZER,
            evmVersion: EVM_VERSION,
            // No metadata hash: the bytecode depends only on the code, not on comments or paths.
            metadata: { bytecodeHash: 'none' },
            outputSelection: { [sourcePath]: { [name]: ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
        },
    };
    const output = JSON.parse(solc.compile(JSON.stringify(input))) as SolcOutput;
    const diagnostics = output.errors ?? [];
    const errors = diagnostics.filter((d) => d.severity === 'error');
    if (errors.length > 0) throw new CompileError(errors.map((e) => e.formattedMessage ?? e.message));
    for (const w of diagnostics) onWarning(w.formattedMessage ?? w.message);

    const compiled = output.contracts?.[sourcePath]?.[name];
    if (!compiled) throw new CompileError([`solc returned no output for ${sourcePath}:${name}`]);
    const bytecode = compiled.evm.bytecode.object;
    const deployedBytecode = compiled.evm.deployedBytecode.object;
    if (!bytecode || !deployedBytecode) throw new CompileError(['solc returned empty bytecode']);

    return {
        contractName: name,
        sourcePath,
        sourceSha256: sha256(source),
        compiler: { version: solc.version() as string, optimizer: { ...OPTIMIZER }, evmVersion: EVM_VERSION },
        abi: compiled.abi,
        bytecode: `0x${bytecode}`,
        deployedBytecode: `0x${deployedBytecode}`,
        abiSha256: sha256(JSON.stringify(compiled.abi)),
        bytecodeSha256: sha256(Buffer.from(bytecode, 'hex')),
    };
}

export function writeArtifact(artifact: Artifact, file = artifactFileOf(artifact.contractName as ContractName)): void {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, `${JSON.stringify(artifact, null, 2)}\n`);
}

if (require.main === module) {
    try {
        for (const name of CONTRACTS) {
            const artifact = compileContract(name, (w) => console.warn(w));
            writeArtifact(artifact);
            const size = (artifact.deployedBytecode.length - 2) / 2;
            const initSize = (artifact.bytecode.length - 2) / 2;
            console.log(`${path.relative(process.cwd(), artifactFileOf(name))}: runtime ${size} bytes (init ${initSize}), solc ${artifact.compiler.version}, ${artifact.compiler.evmVersion}, optimizer runs ${OPTIMIZER.runs}`);
        }
    } catch (err) {
        console.error(err instanceof Error ? err.message : err);
        process.exit(1);
    }
}
