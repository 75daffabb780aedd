/**
 * The EVM version (hardfork) of the consortium's chain, in one place: `contracts/build.ts` compiles
 * the contracts for it, and the local ledger (anvil, through the devhost profile and the test
 * harness) runs it, so what passes locally runs on the chain the consortium deploys. anvil's own
 * default is the newest hardfork, which would hide an opcode the consortium's chain lacks (e.g.
 * PUSH0, Shanghai and later). A consortium chain on an older hardfork changes this one value
 * (and rebuilds the contracts: `npm run contracts:build`).
 */
export const EVM_VERSION = 'cancun';
