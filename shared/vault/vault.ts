/** The secret store port: named secrets with versions, kept in the deployment's own vault. */
export interface SecretStore {
    get(name: string, version?: string): Promise<{ value: string; version: string } | undefined>;
    set(name: string, value: string, options?: { contentType?: string; tags?: Record<string, string> }): Promise<{ version: string }>;
    delete(name: string): Promise<boolean>;
    list(): Promise<string[]>;
}

/** The key store port: secp256k1 keys that sign digests inside the vault and never leave it. */
export interface KeyStore {
    createSecp256k1Key(name: string): Promise<{ name: string; version: string; publicKey: Buffer }>;
    publicKey(name: string): Promise<Buffer | undefined>;
    /** Signs a 32-byte digest; returns r and s (32 bytes each) as the vault returns them. */
    signDigest(name: string, digest: Buffer): Promise<{ r: Buffer; s: Buffer }>;
    /** Wraps a data key with the vault's RSA key `name` (RSA-OAEP-256), creating that key on first use; the RSA key never leaves the vault. */
    wrapKey(name: string, dataKey: Buffer): Promise<{ wrapped: Buffer; keyId: string }>;
    /** With `version`, that version of the key (a key rotated since the wrap still unwraps what its older version wrapped). */
    unwrapKey(name: string, wrapped: Buffer, version?: string): Promise<Buffer>;
}
