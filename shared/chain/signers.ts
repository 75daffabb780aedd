import { randomBytes } from 'node:crypto';
import {
    AbstractSigner,
    computeAddress,
    encryptKeystoreJson,
    getAddress,
    hashMessage,
    recoverAddress,
    Signature,
    Transaction,
    TypedDataEncoder,
    Wallet,
    type Provider,
    type TransactionLike,
    type TransactionRequest,
    type TypedDataDomain,
    type TypedDataField,
} from 'ethers';
import { Conflict, Invalid, NotFound } from '../errors';
import type { KeyStore, SecretStore } from '../vault/vault';

/**
 * Where an account's key is kept (chosen per account):
 * - `keystore`: an encrypted keystore (Web3 Secret Storage JSON) as the vault secret
 *   `<name>`, its password in the separate secret `<name>-password`; decrypted in memory
 *   when the account signs.
 * - `keyvault`: a Key Vault EC key on curve P-256K that never leaves the vault; each
 *   digest is signed inside it with ES256K.
 */
export type Custody = 'keystore' | 'keyvault';

export interface AccountKeyRef {
    custody: Custody;
    /** The secret name (keystore) or key name (keyvault). */
    name: string;
    address: string;
}

const SECP256K1_N = BigInt('0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141');
const NAME_RE = /^[0-9a-zA-Z-]{1,100}$/;

/** The `signer.provider` every signer here is built with (the chain gateway's provider), or none. */
type MaybeProvider = Provider | null;

/** A signer for one account whose key is in the vault: its address is the one recorded with the key. */
export abstract class VaultAccountSigner extends AbstractSigner {
    constructor(
        readonly ref: AccountKeyRef,
        provider: MaybeProvider,
    ) {
        super(provider);
    }

    override async getAddress(): Promise<string> {
        return this.ref.address;
    }

    /** A signature of a 32-byte digest (e.g. a proposal's EIP-712 terms digest), low-s, with its recovery bit. */
    abstract signDigest(digest: string): Promise<Signature>;
}

/** An account whose key is an encrypted keystore in the vault. */
export class KeystoreSigner extends VaultAccountSigner {
    #wallet?: Promise<Wallet>;

    constructor(ref: AccountKeyRef, private readonly secrets: SecretStore, provider: MaybeProvider = null) {
        super(ref, provider);
    }

    override connect(provider: MaybeProvider): KeystoreSigner {
        const connected = new KeystoreSigner(this.ref, this.secrets, provider);
        connected.#wallet = this.#wallet;
        return connected;
    }

    /** Decrypted once per signer (`AccountKeys` keeps one per account); the decrypted key must derive the recorded address. */
    #unlock(): Promise<Wallet> {
        this.#wallet ??= (async () => {
            const [keystore, password] = await Promise.all([this.secrets.get(this.ref.name), this.secrets.get(`${this.ref.name}-password`)]);
            if (!keystore || !password) throw new NotFound(`The keystore of account ${this.ref.address} is not in the vault`);
            const wallet = (await Wallet.fromEncryptedJson(keystore.value, password.value)) as Wallet;
            if (wallet.address !== getAddress(this.ref.address)) throw new Conflict(`The keystore "${this.ref.name}" holds ${wallet.address}, not ${this.ref.address}`, 'key_mismatch');
            return wallet;
        })().catch((err: unknown) => {
            this.#wallet = undefined;
            throw err;
        });
        return this.#wallet;
    }

    override async signTransaction(tx: TransactionRequest): Promise<string> {
        return (await this.#unlock()).signTransaction(tx);
    }

    async signDigest(digest: string): Promise<Signature> {
        return (await this.#unlock()).signingKey.sign(digest);
    }

    override async signMessage(message: string | Uint8Array): Promise<string> {
        return (await this.#unlock()).signMessage(message);
    }

    override async signTypedData(domain: TypedDataDomain, types: Record<string, TypedDataField[]>, value: Record<string, unknown>): Promise<string> {
        return (await this.#unlock()).signTypedData(domain, types, value);
    }
}

/** An account whose key is a Key Vault P-256K key: every signature is made inside the vault. */
export class KeyVaultSigner extends VaultAccountSigner {
    constructor(ref: AccountKeyRef, private readonly keys: KeyStore, provider: MaybeProvider = null) {
        super(ref, provider);
    }

    override connect(provider: MaybeProvider): KeyVaultSigner {
        return new KeyVaultSigner(this.ref, this.keys, provider);
    }

    /**
     * ES256K in the vault gives r and s; Ethereum needs s in the lower half (EIP-2)
     * and the recovery bit, found by recovering the address with each parity.
     */
    async signDigest(digest: string): Promise<Signature> {
        const bytes = Buffer.from(digest.slice(2), 'hex');
        const { r, s } = await this.keys.signDigest(this.ref.name, bytes);
        let sValue = BigInt('0x' + s.toString('hex'));
        if (sValue > SECP256K1_N / 2n) sValue = SECP256K1_N - sValue;
        const rHex = '0x' + r.toString('hex').padStart(64, '0');
        const sHex = '0x' + sValue.toString(16).padStart(64, '0');
        for (const yParity of [0, 1] as const) {
            const sig = Signature.from({ r: rHex, s: sHex, yParity });
            if (recoverAddress(digest, sig) === getAddress(this.ref.address)) return sig;
        }
        throw new Conflict(`The vault key "${this.ref.name}" did not sign for ${this.ref.address}`, 'key_mismatch');
    }

    override async signTransaction(request: TransactionRequest): Promise<string> {
        const tx = Transaction.from(await resolvedTransaction(request));
        if (tx.from && getAddress(tx.from) !== getAddress(this.ref.address)) throw new Invalid(`The transaction is from ${tx.from}, not ${this.ref.address}`);
        tx.signature = await this.signDigest(tx.unsignedHash);
        return tx.serialized;
    }

    override async signMessage(message: string | Uint8Array): Promise<string> {
        return (await this.signDigest(hashMessage(message))).serialized;
    }

    override async signTypedData(domain: TypedDataDomain, types: Record<string, TypedDataField[]>, value: Record<string, unknown>): Promise<string> {
        return (await this.signDigest(TypedDataEncoder.hash(domain, types, value))).serialized;
    }
}

/** A transaction request with addresses resolved (no ENS here) and the sender dropped (it is the signature's). */
async function resolvedTransaction(request: TransactionRequest): Promise<TransactionLike<string>> {
    const { from, to, ...rest } = request;
    void from;
    return { ...rest, to: to === null || to === undefined ? null : typeof to === 'string' ? to : await (to as { getAddress(): Promise<string> }).getAddress() } as TransactionLike<string>;
}

/** Creates and opens accounts in the deployment's own vault. */
export class AccountKeys {
    /**
     * One signer per account in this process, so that a keystore is decrypted once, not for every
     * signature (its scrypt takes about a second of CPU at the default cost, and a member signing a
     * burst of proposals did nothing else). An account unused for `idleMs` is forgotten, and its
     * decrypted key with it.
     */
    readonly #signers = new Map<string, { signer: VaultAccountSigner; usedAt: number }>();

    constructor(
        private readonly secrets: SecretStore,
        private readonly keys: KeyStore,
        private readonly opts: { provider?: Provider; scryptN?: number; idleMs?: number } = {},
    ) {}

    /**
     * A new account under `name` (letters, digits, '-'). Refuses to overwrite: a name
     * already holding a key is a `Conflict`, so a retried creation never replaces a key.
     */
    async create(name: string, custody: Custody): Promise<AccountKeyRef> {
        if (!NAME_RE.test(name)) throw new Invalid(`The key name "${name}" must be 1-100 letters, digits or '-'`);
        if (custody === 'keyvault') {
            if (await this.keys.publicKey(name)) throw new Conflict(`The vault already has a key "${name}"`, 'key_exists');
            const key = await this.keys.createSecp256k1Key(name);
            return { custody, name, address: computeAddress('0x' + key.publicKey.toString('hex')) };
        }
        if (await this.secrets.get(name)) throw new Conflict(`The vault already has a keystore "${name}"`, 'key_exists');
        const wallet = Wallet.createRandom();
        const password = randomBytes(32).toString('base64url');
        const keystore = await encryptKeystoreJson({ address: wallet.address, privateKey: wallet.privateKey }, password, this.opts.scryptN ? { scrypt: { N: this.opts.scryptN } } : {});
        // The password first: a keystore without its password would be a key nobody can use.
        await this.secrets.set(`${name}-password`, password, { contentType: 'text/plain', tags: { address: wallet.address, purpose: 'keystore-password' } });
        await this.secrets.set(name, keystore, { contentType: 'application/json', tags: { address: wallet.address, custody: 'keystore' } });
        return { custody, name, address: wallet.address };
    }

    /** The signer of a recorded account (the same one while it is in use). */
    signer(ref: AccountKeyRef): VaultAccountSigner {
        const now = Date.now();
        const idleMs = this.opts.idleMs ?? 15 * 60_000;
        for (const [k, e] of this.#signers) if (now - e.usedAt > idleMs) this.#signers.delete(k);
        const key = `${ref.custody}:${ref.name}:${getAddress(ref.address)}`;
        const known = this.#signers.get(key);
        if (known) {
            known.usedAt = now;
            return known.signer;
        }
        const provider = this.opts.provider ?? null;
        const signer = ref.custody === 'keyvault' ? new KeyVaultSigner(ref, this.keys, provider) : new KeystoreSigner(ref, this.secrets, provider);
        this.#signers.set(key, { signer, usedAt: now });
        return signer;
    }
}
