import artifactJson from '../../contracts/artifacts/EnergyExchange.json';
import artifactV2Json from '../../contracts/artifacts/EnergyExchangeV2.json';
import type { ContractArtifact } from './versions';

/** The compiled EnergyExchange (contracts/artifacts, built by `npm run contracts:build`; copied into dist by tsc). */
export const ENERGY_EXCHANGE = artifactJson as unknown as ContractArtifact;
/** Version 2: the parties sign the terms (EIP-712), batches of proposals and signatures. */
export const ENERGY_EXCHANGE_V2 = artifactV2Json as unknown as ContractArtifact;

/** The artifacts the operator can deploy by name (`POST /api/contracts {"artifact": …}`). */
export const ARTIFACTS = { EnergyExchange: ENERGY_EXCHANGE, EnergyExchangeV2: ENERGY_EXCHANGE_V2 } as const;
export type ArtifactName = keyof typeof ARTIFACTS;
export const ARTIFACT_NAMES = Object.keys(ARTIFACTS) as [ArtifactName, ...ArtifactName[]];
