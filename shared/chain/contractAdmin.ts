import type { InterfaceAbi } from 'ethers';
import type { ChainSender, TransactionPipeline } from './pipeline';
import type { ContractArtifact, ContractVersion, ContractVersions } from './versions';

/**
 * The operator's work on contract versions: deploying the compiled EnergyExchange from the
 * operator account, registering one deployed elsewhere, taking a version out of new work.
 */
export class ContractAdmin {
    constructor(
        readonly versions: ContractVersions,
        private readonly deps: { artifact: ContractArtifact; pipeline: TransactionPipeline; operator: () => Promise<ChainSender> },
    ) {}

    /** Deploys the compiled artifact as the next version (a retry resumes the same deployment). */
    async deploy(by: string): Promise<{ version: ContractVersion; created: boolean }> {
        return { version: await this.versions.deploy(this.deps.artifact, this.deps.pipeline, await this.deps.operator(), by), created: true };
    }

    /** Registers a contract deployed elsewhere after checking its code; the same address again is the same version. */
    register(input: { address: string; abi: InterfaceAbi }, by: string): Promise<{ version: ContractVersion; created: boolean }> {
        return this.versions.register(input, this.deps.artifact, by);
    }
}
