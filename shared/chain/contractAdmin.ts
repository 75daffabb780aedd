import type { InterfaceAbi } from 'ethers';
import { ARTIFACTS, ENERGY_EXCHANGE, type ArtifactName } from './artifact';
import type { ChainSender, TransactionPipeline } from './pipeline';
import { abiSha256, type ContractVersion, type ContractVersions } from './versions';

/**
 * The operator's work on contract versions: deploying a compiled EnergyExchange (v1 or v2) from
 * the operator account, registering one deployed elsewhere, taking a version out of new work.
 */
export class ContractAdmin {
    constructor(
        readonly versions: ContractVersions,
        private readonly deps: { pipeline: TransactionPipeline; operator: () => Promise<ChainSender> },
    ) {}

    /** Deploys the named compiled artifact as the next version (a retry resumes the same deployment). */
    async deploy(name: ArtifactName, by: string): Promise<{ version: ContractVersion; created: boolean }> {
        return { version: await this.versions.deploy(ARTIFACTS[name], this.deps.pipeline, await this.deps.operator(), by), created: true };
    }

    /** Registers a contract deployed elsewhere after checking its code (against the artifact with the same ABI, if any); the same address again is the same version. */
    register(input: { address: string; abi: InterfaceAbi }, by: string): Promise<{ version: ContractVersion; created: boolean }> {
        const hash = abiSha256(input.abi);
        const artifact = Object.values(ARTIFACTS).find((a) => a.abiSha256 === hash) ?? ENERGY_EXCHANGE;
        return this.versions.register(input, artifact, by);
    }
}
