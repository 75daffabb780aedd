/**
 * Writes the consortium ledger's genesis (Hyperledger Besu, QBFT), its milestones from the
 * contracts' EVM version, and prints it base64 for the templates' `genesisJsonBase64`:
 *
 *   npm run ledger:genesis -- --chain-id 4242 --validators 0xA…,0xB…,0xC…,0xD… \
 *       [--block-period 2] [--gas-limit 30000000] [--alloc 0xTreasury=100000] [--out genesis.json]
 *
 * Validators are the addresses of the validator nodes' keys (`besu public-key export-address`).
 */
import { writeFileSync } from 'node:fs';
import { buildGenesis } from '../contracts/genesis';
import { EVM_VERSION } from '../contracts/evm';

function arg(name: string): string | undefined {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? process.argv[i + 1] : undefined;
}

function main(): void {
    const chainId = Number(arg('chain-id'));
    const validators = (arg('validators') ?? '').split(',').map((v) => v.trim()).filter(Boolean);
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
    console.log(`genesisJsonBase64: ${Buffer.from(text).toString('base64')}`);
}

try {
    main();
} catch (err) {
    console.error(`ledger:genesis: ${(err as Error).message}`);
    process.exit(2);
}
