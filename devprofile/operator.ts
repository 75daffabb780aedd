import { AccountKeys } from '../shared/chain/signers';
import { readKeystoreAddress } from '../shared/chain/operator';
import { jsonRpc as rpc } from '../shared/ledger/jsonRpc';
import { LocalIssuerCredential } from '../shared/vault/credential';
import { KeyVaultKeyStore, KeyVaultSecretStore } from '../shared/vault/keyVault';

export const OPERATOR_KEY_NAME = 'ledger-operator';
/** 1,000,000 ether: the local treasury never runs dry by accident. */
const OPERATOR_BALANCE = 10n ** 24n;
/** Light scrypt for a generated development key (decrypted at every app start); Azure deployments bring their own keystore. */
const DEV_SCRYPT_N = 4096;

/**
 * The core's operator account on the local ledger, in keystore custody: an encrypted
 * keystore generated on first start and kept in the core app's own vault (secret
 * `ledger-operator`, its password in `ledger-operator-password`), never on disk in
 * the clear; the account is funded directly on anvil.
 */
export async function ensureOperator(opts: { vaultUrl: string; issuer: string; clientId: string; ledgerUrl: string }): Promise<string> {
    const credential = new LocalIssuerCredential(opts.issuer, opts.clientId);
    const secrets = new KeyVaultSecretStore(opts.vaultUrl, credential);
    let address = await readKeystoreAddress(secrets, OPERATOR_KEY_NAME);
    if (!address) {
        const keys = new AccountKeys(secrets, new KeyVaultKeyStore(opts.vaultUrl, credential), { scryptN: DEV_SCRYPT_N });
        address = (await keys.create(OPERATOR_KEY_NAME, 'keystore')).address;
    }
    const balance = BigInt(await rpc<string>(opts.ledgerUrl, 'eth_getBalance', [address, 'latest']));
    // A fresh chain (state deleted, or a chain that lost its last save) gets the account funded again.
    if (balance < OPERATOR_BALANCE / 2n) await rpc(opts.ledgerUrl, 'anvil_setBalance', [address, `0x${OPERATOR_BALANCE.toString(16)}`]);
    return address;
}
