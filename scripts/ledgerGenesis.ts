/**
 * Writes the consortium ledger's genesis (Hyperledger Besu, QBFT), its milestones from the
 * contracts' EVM version, and prints it base64 for the templates' `genesisJsonBase64`:
 *
 *   npm run ledger:genesis -- --chain-id 4242 --validators 0xA…,0xB…,0xC…,0xD… \
 *       [--block-period 2] [--gas-limit 30000000] [--alloc 0xTreasury=100000] [--out genesis.json]
 *
 * Validators are the addresses of the validator nodes' keys (`besu public-key export-address`). For the core's own
 * validators (core.json), `--new-validators 4|7|10` makes their keys instead and writes core.json's parameters for
 * them and the genesis (`--parameters-out`, default core.ledger.parameters.json, mode 0600: it holds the keys; git
 * ignores it). Deploy core.json with it as a second parameter file, then keep it offline or delete it.
 */
import { writeFileSync } from 'node:fs';
import { buildGenesis, coreLedgerParameters, newValidatorKeys } from '../contracts/genesis';
import { EVM_VERSION } from '../contracts/evm';

function arg(name: string): string | undefined {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? process.argv[i + 1] : undefined;
}

function main(): void {
    const chainId = Number(arg('chain-id'));
    const fresh = arg('new-validators');
    if (fresh && arg('validators')) throw new Error('--validators names existing validators; --new-validators makes keys for new ones: not both');
    const keys = fresh ? newValidatorKeys(Number(fresh)) : undefined;
    const validators = keys ? keys.map((k) => k.address) : (arg('validators') ?? '').split(',').map((v) => v.trim()).filter(Boolean);
    const alloc = Object.fromEntries((arg('alloc') ?? '').split(',').filter(Boolean).map((pair) => pair.split('=') as [string, string]));
    const genesis = buildGenesis({
        chainId,
        validators,
        blockPeriodSeconds: arg('block-period') ? Number(arg('block-period')) : undefined,
        gasLimit: arg('gas-limit') ? BigInt(arg('gas-limit')!) : undefined,
        alloc,
    });
    const text = `${JSON.stringify(genesis, null, 2)}\n`;
    const out = arg('out') ?? 'genesis.json';
    writeFileSync(out, text);
    console.log(`${out}: chain ${chainId}, QBFT with ${validators.length} validators, EVM ${EVM_VERSION}`);
    if (keys) {
        const parametersOut = arg('parameters-out') ?? 'core.ledger.parameters.json';
        writeFileSync(parametersOut, `${JSON.stringify(coreLedgerParameters(keys, text), null, 2)}\n`, { mode: 0o600 });
        console.log(`${parametersOut}: core.json's validatorCount, validatorKeys (secret: keep it out of git, offline once deployed), validatorPublicKeys and memberGenesisJsonBase64`);
        keys.forEach((k, i) => console.log(`validator ${i}: ${k.address} enode://${k.publicKey}@<cidrHost(ledgerSubnetPrefix, ${3 + i})>:30303`));
    }
    console.log(`genesisJsonBase64: ${Buffer.from(text).toString('base64')}`);
}

try {
    main();
} catch (err) {
    console.error(`ledger:genesis: ${(err as Error).message}`);
    process.exit(2);
}
