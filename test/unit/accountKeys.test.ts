import { keccak256, recoverAddress, toUtf8Bytes } from 'ethers';
import { AccountKeys } from '../../shared/chain/signers';
import type { KeyStore } from '../../shared/vault/vault';
import { MemorySecrets } from './fakes/memoryStores';

/** The vault's secrets, counting what is read. */
class CountingSecrets extends MemorySecrets {
    reads = 0;
    override async get(name: string) {
        this.reads++;
        return super.get(name);
    }
}

describe('account keys', () => {
    const noKeys = {} as KeyStore;

    it('keeps one signer per account, so a keystore is decrypted once however often the account signs', async () => {
        const secrets = new CountingSecrets();
        const keys = new AccountKeys(secrets, noKeys, { scryptN: 1024 });
        const ref = await keys.create('acct-1', 'keystore');
        secrets.reads = 0;
        const digest = keccak256(toUtf8Bytes('terms'));
        for (let i = 0; i < 3; i++) {
            const signer = keys.signer({ ...ref });
            expect(signer).toBe(keys.signer(ref));
            expect(recoverAddress(digest, await signer.signDigest(digest))).toBe(ref.address);
        }
        // The keystore and its password, read once.
        expect(secrets.reads).toBe(2);
        // A signer connected to another provider shares what was decrypted.
        await keys.signer(ref).connect(null).signMessage('hello');
        expect(secrets.reads).toBe(2);
    });

    it('forgets an account unused for the idle time: its key is read and decrypted again', async () => {
        const secrets = new CountingSecrets();
        const keys = new AccountKeys(secrets, noKeys, { scryptN: 1024, idleMs: 50 });
        const [a, b] = [await keys.create('acct-a', 'keystore'), await keys.create('acct-b', 'keystore')];
        const first = keys.signer(a);
        await first.signMessage('one');
        expect(keys.signer(b)).not.toBe(first);
        await new Promise((r) => setTimeout(r, 80));
        secrets.reads = 0;
        const again = keys.signer(a);
        expect(again).not.toBe(first);
        await again.signMessage('two');
        expect(secrets.reads).toBe(2);
    });
});
