import { SecretClient } from '@azure/keyvault-secrets';
import { Wallet } from 'ethers';
import { vaultClientOptions } from '../../shared/vault/keyVault';
import { LocalIssuerCredential } from '../../shared/vault/credential';
import { jsonRpc as rpc } from '../../shared/ledger/jsonRpc';

export const OPERATOR_SECRET = 'ledger-operator-key';
/** 1,000,000 ether: the local treasury never runs dry by accident. */
const OPERATOR_BALANCE = 10n ** 24n;

/**
 * The core's operator account on the local ledger: its key is generated on first
 * start and kept in the core app's own vault (as the secret `ledger-operator-key`),
 * never on disk in the clear; the account is funded directly on anvil.
 */
export async function ensureOperator(opts: { vaultUrl: string; issuer: string; clientId: string; ledgerUrl: string }): Promise<string> {
    const client = new SecretClient(opts.vaultUrl, new LocalIssuerCredential(opts.issuer, opts.clientId), vaultClientOptions(opts.vaultUrl));
    let privateKey: string;
    try {
        privateKey = (await client.getSecret(OPERATOR_SECRET)).value!;
    } catch (err) {
        if ((err as { statusCode?: number }).statusCode !== 404) throw err;
        const wallet = Wallet.createRandom();
        privateKey = wallet.privateKey;
        await client.setSecret(OPERATOR_SECRET, privateKey, { contentType: 'application/x-ethereum-private-key', tags: { address: wallet.address } });
    }
    const address = new Wallet(privateKey).address;
    const balance = BigInt(await rpc<string>(opts.ledgerUrl, 'eth_getBalance', [address, 'latest']));
    // A fresh chain (state deleted, or a chain that lost its last save) gets the account funded again.
    if (balance < OPERATOR_BALANCE / 2n) await rpc(opts.ledgerUrl, 'anvil_setBalance', [address, `0x${OPERATOR_BALANCE.toString(16)}`]);
    return address;
}
