import artifactJson from '../../contracts/artifacts/EnergyExchange.json';
import type { ContractArtifact } from './versions';

/** The compiled EnergyExchange (contracts/artifacts, built by `npm run contracts:build`; copied into dist by tsc). */
export const ENERGY_EXCHANGE = artifactJson as unknown as ContractArtifact;
