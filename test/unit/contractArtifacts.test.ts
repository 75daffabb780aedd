import { Interface, type InterfaceAbi } from 'ethers';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ARTIFACT_FILE, artifactFileOf, compileContract, compileEnergyExchange, type Artifact } from '../../contracts/build';
import { EVM_VERSION } from '../../contracts/evm';

const REBUILD = 'The committed contracts/artifacts/EnergyExchange.json is stale: run `npm run contracts:build` and commit the result.';

/** The committed artifact is what gets deployed: it must be exactly what the committed source compiles to. */
describe('EnergyExchange artifact', () => {
    let committed: Artifact;
    let fresh: Artifact;

    beforeAll(() => {
        committed = JSON.parse(readFileSync(ARTIFACT_FILE, 'utf8'));
        fresh = compileEnergyExchange();
    });

    const same = (what: string, actual: unknown, expected: unknown) => {
        if (JSON.stringify(actual) !== JSON.stringify(expected)) throw new Error(`${what} differs. ${REBUILD}`);
    };

    it('was built from the current source, with the installed compiler and settings', () => {
        same('sourceSha256', committed.sourceSha256, fresh.sourceSha256);
        same('compiler', committed.compiler, fresh.compiler);
        expect(committed.compiler).toEqual({ version: expect.stringMatching(/^0\.8\.37\+/), optimizer: { enabled: true, runs: 200 }, evmVersion: EVM_VERSION });
    });

    it('carries the ABI and bytecode the source compiles to', () => {
        same('abi', committed.abi, fresh.abi);
        same('bytecode', committed.bytecode, fresh.bytecode);
        same('deployedBytecode', committed.deployedBytecode, fresh.deployedBytecode);
        expect(committed.bytecode).toMatch(/^0x[0-9a-f]+$/);
        expect(committed.deployedBytecode).toMatch(/^0x[0-9a-f]+$/);
    });

    it('has exactly the documented keys and self-consistent digests', () => {
        expect(Object.keys(committed)).toEqual(['contractName', 'sourcePath', 'sourceSha256', 'compiler', 'abi', 'bytecode', 'deployedBytecode', 'abiSha256', 'bytecodeSha256']);
        expect(committed).toMatchObject({ contractName: 'EnergyExchange', sourcePath: 'contracts/EnergyExchange.sol' });
        const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
        expect(committed.abiSha256).toBe(sha256(JSON.stringify(committed.abi)));
        expect(committed.bytecodeSha256).toBe(sha256(Buffer.from(committed.bytecode.slice(2), 'hex')));
        expect(fresh).toEqual(committed);
    });

    it('exposes exactly the signatures other code calls', () => {
        const iface = new Interface(committed.abi as InterfaceAbi);
        const signatures = (kind: 'function' | 'event' | 'error') => {
            const out: string[] = [];
            iface.forEachFunction((f) => kind === 'function' && out.push(`${f.format('sighash')}${f.outputs.length ? ` -> (${f.outputs.map((o) => o.format('sighash')).join(',')})` : ''} ${f.stateMutability}`));
            iface.forEachEvent((e) => kind === 'event' && out.push(e.format('full')));
            iface.forEachError((e) => kind === 'error' && out.push(e.format('sighash')));
            return out.sort();
        };
        expect(signatures('function')).toEqual([
            'acceptOwnership() nonpayable',
            'cancelProposal(bytes32) nonpayable',
            'createProposal(bytes32,address[],(bytes32,string,string)[],uint64) nonpayable',
            'getAsset(bytes32,uint256) -> (bytes32,string,string) view',
            'getProposal(bytes32) -> (uint8,uint64,uint64,address[],uint8,uint256) view',
            'hasSigned(bytes32,address) -> (bool) view',
            'isCompleted(bytes32) -> (bool) view',
            'owner() -> (address) view',
            'pendingOwner() -> (address) view',
            'sign(bytes32) nonpayable',
            'statusOf(bytes32) -> (uint8) view',
            'transferOwnership(address) nonpayable',
        ]);
        expect(signatures('event')).toEqual([
            'event OwnershipTransferStarted(address indexed previousOwner, address indexed newOwner)',
            'event OwnershipTransferred(address indexed previousOwner, address indexed newOwner)',
            'event ProposalCancelled(bytes32 indexed id)',
            'event ProposalCompleted(bytes32 indexed id)',
            'event ProposalCreated(bytes32 indexed id, address[] parties, uint64 deadline, uint256 assetCount)',
            'event ProposalSigned(bytes32 indexed id, address indexed party, uint8 signatures)',
        ]);
        expect(signatures('error')).toEqual([
            'AlreadySigned(bytes32,address)',
            'DeadlineInPast(uint64)',
            'DeadlinePassed(bytes32,uint64)',
            'DuplicateParty(address)',
            'InvalidAsset(uint256)',
            'InvalidPartyCount(uint256)',
            'InvalidProposalId()',
            'NoAssets()',
            'NotAParty(bytes32,address)',
            'NotOwner(address)',
            'NotPendingOwner(address)',
            'ProposalExists(bytes32)',
            'ProposalNotFound(bytes32)',
            'ProposalNotOpen(bytes32,uint8)',
            'TooManyAssets(uint256)',
            'ZeroAddress()',
        ]);
    });
});

/** Version 2 (the parties sign the terms, EIP-712) is built and committed the same way. */
describe('EnergyExchangeV2 artifact', () => {
    it('is exactly what the committed source compiles to', () => {
        const committed: Artifact = JSON.parse(readFileSync(artifactFileOf('EnergyExchangeV2'), 'utf8'));
        const fresh = compileContract('EnergyExchangeV2');
        if (JSON.stringify(committed) !== JSON.stringify(fresh)) throw new Error('The committed contracts/artifacts/EnergyExchangeV2.json is stale: run `npm run contracts:build` and commit the result.');
        expect(committed).toMatchObject({ contractName: 'EnergyExchangeV2', sourcePath: 'contracts/EnergyExchangeV2.sol' });
        expect(new Interface(committed.abi as InterfaceAbi).getFunction('submitSignatures')?.format('sighash')).toBe('submitSignatures((bytes32,address,bytes)[])');
    });
});
