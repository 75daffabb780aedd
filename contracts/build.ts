import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import solc from 'solc';

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

const CONTRACT = 'EnergyExchange';
/** Relative to the repository root: the source name given to solc and recorded in the artifact. */
export const SOURCE_PATH = 'contracts/EnergyExchange.sol';
export const ARTIFACT_FILE = path.join(__dirname, 'artifacts', `${CONTRACT}.json`);
const SOURCE_FILE = path.join(__dirname, `${CONTRACT}.sol`);

const OPTIMIZER = { enabled: true, runs: 200 };
const EVM_VERSION = 'cancun';

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
        super(`EnergyExchange.sol failed to compile:\n${diagnostics.join('\n')}`);
        this.name = 'CompileError';
    }
}

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

/** Compiles EnergyExchange.sol in-process with the bundled solc-js; the same source always gives the same bytes. */
export function compileEnergyExchange(onWarning: (message: string) => void = () => {}): Artifact {
    const source = readFileSync(SOURCE_FILE);
    const input = {
        language: 'Solidity',
        sources: { [SOURCE_PATH]: { content: source.toString('utf8') } },
        settings: {
            optimizer: OPTIMIZER,
            evmVersion: EVM_VERSION,
            // No metadata hash: the bytecode depends only on the code, not on comments or paths.
            metadata: { bytecodeHash: 'none' },
            outputSelection: { [SOURCE_PATH]: { [CONTRACT]: ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
        },
    };
    const output = JSON.parse(solc.compile(JSON.stringify(input))) as SolcOutput;
    const diagnostics = output.errors ?? [];
    const errors = diagnostics.filter((d) => d.severity === 'error');
    if (errors.length > 0) throw new CompileError(errors.map((e) => e.formattedMessage ?? e.message));
    for (const w of diagnostics) onWarning(w.formattedMessage ?? w.message);

    const compiled = output.contracts?.[SOURCE_PATH]?.[CONTRACT];
    if (!compiled) throw new CompileError([`solc returned no output for ${SOURCE_PATH}:${CONTRACT}`]);
    const bytecode = compiled.evm.bytecode.object;
    const deployedBytecode = compiled.evm.deployedBytecode.object;
    if (!bytecode || !deployedBytecode) throw new CompileError(['solc returned empty bytecode']);

    return {
        contractName: CONTRACT,
        sourcePath: SOURCE_PATH,
        sourceSha256: sha256(source),
        compiler: { version: solc.version() as string, optimizer: { ...OPTIMIZER }, evmVersion: EVM_VERSION },
        abi: compiled.abi,
        bytecode: `0x${bytecode}`,
        deployedBytecode: `0x${deployedBytecode}`,
        abiSha256: sha256(JSON.stringify(compiled.abi)),
        bytecodeSha256: sha256(Buffer.from(bytecode, 'hex')),
    };
}

export function writeArtifact(artifact: Artifact, file = ARTIFACT_FILE): void {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, `${JSON.stringify(artifact, null, 2)}\n`);
}

if (require.main === module) {
    try {
        const artifact = compileEnergyExchange((w) => console.warn(w));
        writeArtifact(artifact);
        const size = (artifact.deployedBytecode.length - 2) / 2;
        const initSize = (artifact.bytecode.length - 2) / 2;
        console.log(`${path.relative(process.cwd(), ARTIFACT_FILE)}: runtime ${size} bytes (init ${initSize}), solc ${artifact.compiler.version}, ${artifact.compiler.evmVersion}, optimizer runs ${OPTIMIZER.runs}`);
    } catch (err) {
        console.error(err instanceof Error ? err.message : err);
        process.exit(1);
    }
}
