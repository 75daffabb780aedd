import { getAddress } from 'ethers';
import type { SecretStore } from '../vault/vault';

/** The address a keystore secret holds (Web3 Secret Storage keeps it in the clear), or undefined when there is none. */
export async function readKeystoreAddress(secrets: SecretStore, name: string): Promise<string | undefined> {
    const secret = await secrets.get(name);
    if (!secret) return undefined;
    let parsed: { address?: unknown };
    try {
        parsed = JSON.parse(secret.value) as { address?: unknown };
    } catch {
        throw new Error(`The secret "${name}" is not a keystore (Web3 Secret Storage JSON)`);
    }
    if (typeof parsed.address !== 'string') throw new Error(`The keystore "${name}" has no address`);
    return getAddress(parsed.address.startsWith('0x') ? parsed.address : `0x${parsed.address}`);
}
