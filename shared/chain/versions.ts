import { createHash } from 'node:crypto';
import { getAddress, type InterfaceAbi } from 'ethers';
import { keptFor, type Timed } from '../boundedMap';
import { updateItem, type Repository } from '../documents/repository';
import { Conflict, Invalid, NotFound, Unavailable } from '../errors';
import { abiFunctions } from './energyExchange';
import type { ChainSender, TransactionPipeline } from './pipeline';
import type { FailoverProvider } from './provider';

/**
 * Versions of the EnergyExchange contract (container `contracts`, id `v<N>`).
 * New work resolves the latest active version; work that started on version N
 * keeps resolving exactly N, so a deployment never moves a proposal in flight.
 */
export interface ContractVersion {
    id: string;
    version: number;
    /** `deploying` until the deployment transaction is final. */
    state: 'deploying' | 'ready';
    origin: 'deployed' | 'registered';
    address?: string;
    abi: InterfaceAbi;
    abiSha256: string;
    bytecodeSha256?: string;
    txHash?: string;
    blockNumber?: number;
    deployedAt?: string;
    active: boolean;
    compiler?: string;
    createdBy: string;
    createdAt: string;
}

export interface ContractArtifact {
    contractName: string;
    abi: InterfaceAbi;
    bytecode: string;
    deployedBytecode: string;
    abiSha256: string;
    bytecodeSha256: string;
    compiler: { version: string };
}

/** What clients see (API.md: `{ version, address, abiSha256, deployedAt, active }` and the rest of the record). */
export function versionView(v: ContractVersion): Record<string, unknown> {
    return {
        version: v.version,
        state: v.state,
        origin: v.origin,
        address: v.address ?? null,
        abiSha256: v.abiSha256,
        bytecodeSha256: v.bytecodeSha256 ?? null,
        txHash: v.txHash ?? null,
        blockNumber: v.blockNumber ?? null,
        deployedAt: v.deployedAt ?? null,
        active: v.active,
        compiler: v.compiler ?? null,
    };
}

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
export const abiSha256 = (abi: InterfaceAbi) => sha256(JSON.stringify(abi));
const bytesSha256 = (hex: string) => sha256(Buffer.from(hex.replace(/^0x/, ''), 'hex'));

/** How long an instance reuses the answer to "which version does new work use" (each new proposal asks). */
export const LATEST_REUSE_MS = 2_000;

export class ContractVersions {
    /**
     * The last answer of `latestActiveRef` and when it was asked: reused for `LATEST_REUSE_MS`, forgotten at once
     * when this instance deploys, registers or (de)activates a version. A change made by another instance counts
     * here within `LATEST_REUSE_MS`; work already started stays on its own version either way.
     */
    readonly #latest = new Map<'latest', Timed<{ version: number; address?: string } | undefined>>();

    constructor(
        private readonly repo: Repository<ContractVersion>,
        private readonly provider: FailoverProvider,
    ) {}

    async list(): Promise<ContractVersion[]> {
        const out: ContractVersion[] = [];
        let continuationToken: string | undefined;
        do {
            const page = await this.repo.query({ query: 'SELECT * FROM c' }, { continuationToken, maxItemCount: 100 });
            out.push(...page.items);
            continuationToken = page.continuationToken;
        } while (continuationToken);
        return out.sort((a, b) => a.version - b.version);
    }

    /** Exactly version N (work that started on N stays on N). */
    async byVersion(version: number): Promise<ContractVersion> {
        const found = await this.repo.read(`v${version}`, `v${version}`);
        if (!found || found.item.state !== 'ready') throw new NotFound(`No contract version ${version}`);
        return found.item;
    }

    /** The version new work uses: the highest ready and active one. */
    async latestActive(): Promise<ContractVersion> {
        const latest = await this.latestActiveIfAny();
        if (!latest) throw new Unavailable('No contract version is deployed yet (POST /api/contracts)');
        return latest;
    }

    /** The version new work would use, if any, whole (its ABI included). */
    async latestActiveIfAny(): Promise<ContractVersion | undefined> {
        const ref = await this.latestActiveRef();
        return ref && this.byVersion(ref.version);
    }

    /**
     * The number and address of the version new work uses (the highest ready and active one), if any: one
     * small query, not every version read whole with its ABI (each new proposal asks twice).
     */
    latestActiveRef(): Promise<{ version: number; address?: string } | undefined> {
        return keptFor(this.#latest, 'latest', LATEST_REUSE_MS, () => this.#askLatest());
    }

    async #askLatest(): Promise<{ version: number; address?: string } | undefined> {
        const page = await this.repo.query({ query: 'SELECT TOP 1 c.version, c.address FROM c WHERE c.state = "ready" AND c.active = true ORDER BY c.version DESC' }, { maxItemCount: 1 });
        const latest = (page.items as unknown as { version: number; address?: string }[])[0];
        // One answer for every caller for LATEST_REUSE_MS: none of them may change it for the others.
        return latest && Object.freeze({ version: latest.version, address: latest.address });
    }

    /**
     * Takes a version out of new work (or back in). Work already on it carries on: `byVersion`
     * still resolves it; only `latestActive` skips it.
     */
    async setActive(version: number, active: boolean): Promise<ContractVersion> {
        try {
            return await this.#setActive(version, active);
        } finally {
            // After the write, so that no answer asked meanwhile outlives it.
            this.#latest.clear();
        }
    }

    async #setActive(version: number, active: boolean): Promise<ContractVersion> {
        const updated = await updateItem(
            this.repo,
            `v${version}`,
            `v${version}`,
            (current) => {
                if (!current || current.state !== 'ready') throw new NotFound(`No contract version ${version}`);
                return current.active === active ? undefined : { ...current, active };
            },
            { attempts: 3, conflict: () => new Conflict(`Contract version ${version} is being changed; try again`, 'version_race') },
        );
        return updated!;
    }

    /**
     * Deploys the artifact through the pipeline as the next version. Idempotent across
     * retries: an unfinished deployment (state `deploying`) is resumed with the same
     * operation id, so it is the same transaction.
     */
    async deploy(artifact: ContractArtifact, pipeline: TransactionPipeline, operator: ChainSender, by: string): Promise<ContractVersion> {
        const unfinished = (await this.list()).find((v) => v.state === 'deploying' && v.origin === 'deployed' && v.bytecodeSha256 === artifact.bytecodeSha256);
        const version = unfinished ?? (await this.#reserve({ origin: 'deployed', abi: artifact.abi, abiSha256: artifact.abiSha256, bytecodeSha256: artifact.bytecodeSha256, compiler: artifact.compiler.version }, by));
        const outcome = await pipeline.send({ operationId: `contract:${version.id}:deploy`, from: operator, data: artifact.bytecode, label: `deploy ${artifact.contractName} ${version.id}` }, { timeoutMs: 120_000 });
        if (outcome.state !== 'confirmed' || !outcome.contractAddress) throw new Conflict(`The deployment of ${version.id} reverted${outcome.revert ? `: ${outcome.revert.errorName}` : ''}`, 'deployment_failed');
        return this.#ready(version, { address: outcome.contractAddress, txHash: outcome.hash, blockNumber: outcome.blockNumber });
    }

    /**
     * Records a contract deployed elsewhere as the next version, after checking the ledger:
     * code must be at the address, and every function of the ABI must be in that code
     * (for our own ABI: the code must be exactly the artifact's runtime code).
     */
    async register(input: { address: string; abi: InterfaceAbi }, artifact: ContractArtifact, by: string): Promise<{ version: ContractVersion; created: boolean }> {
        const functions = abiFunctions(input.abi);
        const address = getAddress(input.address);
        const code = await this.provider.rpc<string>('eth_getCode', [address, 'latest']);
        if (!code || code === '0x') throw new Invalid(`There is no contract at ${address}`, [{ path: 'body.address', message: 'no code at this address' }]);
        const hash = abiSha256(input.abi);
        if (hash === artifact.abiSha256) {
            if (code.toLowerCase() !== artifact.deployedBytecode.toLowerCase()) throw new Invalid(`The code at ${address} is not the compiled EnergyExchange`, [{ path: 'body.address', message: 'code differs from the artifact' }]);
        } else {
            const missing = functions.filter((f) => !code.toLowerCase().includes(f.selector)).map((f) => f.signature);
            if (missing.length) throw new Invalid(`The code at ${address} does not implement the ABI`, missing.map((m) => ({ path: 'body.abi', message: `missing ${m}` })));
        }
        const existing = (await this.list()).find((v) => v.address === address);
        if (existing) return { version: existing, created: false };
        const version = await this.#reserve({ origin: 'registered', abi: input.abi, abiSha256: hash, bytecodeSha256: bytesSha256(code) }, by);
        return { version: await this.#ready(version, { address }), created: true };
    }

    /** Takes the next version number (create-only: two deployments at once get different numbers). */
    async #reserve(fields: Pick<ContractVersion, 'origin' | 'abi' | 'abiSha256' | 'bytecodeSha256' | 'compiler'>, by: string): Promise<ContractVersion> {
        for (let attempt = 0; attempt < 5; attempt++) {
            const next = ((await this.list()).at(-1)?.version ?? 0) + 1;
            const doc: ContractVersion = { id: `v${next}`, version: next, state: 'deploying', active: true, createdBy: by, createdAt: new Date().toISOString(), ...fields };
            try {
                return (await this.repo.create(doc)).item;
            } catch (err) {
                if (!(err instanceof Conflict)) throw err;
            }
        }
        throw new Conflict('Could not take a version number; try again', 'version_race');
    }

    async #ready(version: ContractVersion, fields: { address: string; txHash?: string; blockNumber?: number }): Promise<ContractVersion> {
        const current = await this.repo.read(version.id, version.id);
        if (!current) throw new NotFound(`Contract version ${version.version} disappeared`);
        if (current.item.state === 'ready') return current.item;
        const doc: ContractVersion = { ...current.item, ...fields, state: 'ready', deployedAt: new Date().toISOString() };
        try {
            return (await this.repo.replace(doc, current.etag)).item;
        } catch (err) {
            if (!(err instanceof Conflict)) throw err;
            const again = await this.repo.read(version.id, version.id);
            if (again?.item.state === 'ready') return again.item;
            throw err;
        } finally {
            // After the write, so that no answer asked meanwhile outlives it.
            this.#latest.clear();
        }
    }
}
