import { randomBytes } from 'node:crypto';
import { encryptKeystoreJson, hexlify, keccak256, Signature, Transaction, Wallet } from 'ethers';
import { signAttempt } from '../../shared/chain/pipeline/fees';
import { rawOf, type TxDoc } from '../../shared/chain/pipeline/records';
import { KeystoreSigner } from '../../shared/chain/signers';
import { hexBytes, keccak, rlp, signedType2, unsignedType2, type Type2Fields } from '../../shared/chain/txCodec';
import type { SecretStore } from '../../shared/vault/vault';

/** The pipeline's Buffer-based type-2 encoder gives ethers' bytes, hashes and signatures exactly. */
describe('type-2 transaction codec', () => {
    const wallet = Wallet.createRandom();
    const bytes = (n: number) => hexlify(randomBytes(n));
    const cases: [string, Type2Fields][] = [
        ['a call with zero nonce and value', { chainId: 31337, nonce: 0, maxPriorityFeePerGas: 10n ** 9n, maxFeePerGas: 3n * 10n ** 9n, gasLimit: 21_000n, to: wallet.address, value: 0n, data: '0x' }],
        ['a contract creation with large init code', { chainId: 1, nonce: 7, maxPriorityFeePerGas: 0n, maxFeePerGas: 1n, gasLimit: 3_000_000n, to: null, value: 0n, data: bytes(70_000) }],
        ['one data byte below 0x80', { chainId: 31337, nonce: 127, maxPriorityFeePerGas: 1n, maxFeePerGas: 2n, gasLimit: 60_000n, to: wallet.address.toLowerCase(), value: 1n, data: '0x7f' }],
        ['one data byte of 0x80', { chainId: 31337, nonce: 128, maxPriorityFeePerGas: 1n, maxFeePerGas: 2n, gasLimit: 60_000n, to: wallet.address, value: 128n, data: '0x80' }],
        ['55 and 56 byte boundaries', { chainId: 2 ** 40, nonce: 2 ** 32, maxPriorityFeePerGas: 2n ** 200n, maxFeePerGas: 2n ** 255n, gasLimit: 2n ** 63n, to: wallet.address, value: 10n ** 30n, data: bytes(55) }],
        ['a 56-byte call', { chainId: 31337, nonce: 1, maxPriorityFeePerGas: 1n, maxFeePerGas: 2n, gasLimit: 60_000n, to: wallet.address, data: bytes(56) }],
        ['a batch-sized call', { chainId: 31337, nonce: 99, maxPriorityFeePerGas: 10n ** 9n, maxFeePerGas: 10n ** 11n, gasLimit: 9_660_000n, to: wallet.address, value: 0n, data: bytes(51_204) }],
    ];
    const ethersTx = (tx: Type2Fields) => Transaction.from({ type: 2, chainId: tx.chainId, nonce: Number(tx.nonce), maxPriorityFeePerGas: tx.maxPriorityFeePerGas, maxFeePerGas: tx.maxFeePerGas, gasLimit: tx.gasLimit, to: tx.to ?? null, value: tx.value ?? 0n, data: tx.data ?? '0x' });

    it.each(cases)('%s: unsigned and signed bytes and the hash as ethers makes them', async (_, tx) => {
        const expected = ethersTx(tx);
        expect(hexlify(unsignedType2(tx))).toBe(expected.unsignedSerialized);
        expect('0x' + (await keccak(unsignedType2(tx))).toString('hex')).toBe(expected.unsignedHash);
        for (const sig of [wallet.signingKey.sign(expected.unsignedHash), Signature.from({ r: '0x00' + 'ab'.repeat(31), s: '0x0000' + '11'.repeat(30), yParity: 1 })]) {
            expected.signature = sig;
            expect(hexlify(signedType2(tx, sig))).toBe(expected.serialized);
            expect('0x' + (await keccak(signedType2(tx, sig))).toString('hex')).toBe(expected.hash);
        }
    });

    it('encodes RLP as the yellow paper gives it', () => {
        expect(rlp(Buffer.alloc(0)).toString('hex')).toBe('80');
        expect(rlp([]).toString('hex')).toBe('c0');
        expect(rlp(Buffer.from('dog')).toString('hex')).toBe('83646f67');
        expect(rlp([Buffer.from('cat'), Buffer.from('dog')]).toString('hex')).toBe('c88363617483646f67');
        expect(rlp([[], [[]], [[], [[]]]]).toString('hex')).toBe('c7c0c1c0c3c0c1c0');
        const long = Buffer.from('Lorem ipsum dolor sit amet, consectetur adipisicing elit');
        expect(rlp(long).toString('hex')).toBe('b838' + long.toString('hex'));
    });

    it('refuses data that is not hex bytes instead of truncating it', () => {
        expect(() => hexBytes('0xabc', 'data')).toThrow('not 0x-prefixed hex bytes');
        expect(() => hexBytes('0xzz', 'data')).toThrow('not 0x-prefixed hex bytes');
        expect(() => unsignedType2({ ...cases[0][1], data: '0x12g4' })).toThrow('data');
        expect(() => unsignedType2({ ...cases[0][1], to: '0x1234' })).toThrow();
    });

    it('signAttempt: a wallet and a vault keystore sign the same transaction as ethers does', async () => {
        const secrets = new Map<string, string>();
        const keystore = await encryptKeystoreJson({ address: wallet.address, privateKey: wallet.privateKey }, 'pw', { scrypt: { N: 2 } });
        secrets.set('k', keystore).set('k-password', 'pw');
        const store = { get: async (name: string) => (secrets.has(name) ? { value: secrets.get(name)! } : undefined) } as unknown as SecretStore;
        const vaultSigner = new KeystoreSigner({ custody: 'keystore', name: 'k', address: wallet.address }, store);
        const call = { chainId: 31337n, nonce: 5, to: Wallet.createRandom().address, data: bytes(1_000), value: 3n, gasLimit: 90_000n };
        const fees = { maxFeePerGas: 7n * 10n ** 9n, maxPriorityFeePerGas: 10n ** 9n };
        const expected = await wallet.signTransaction({ ...call, type: 2, ...fees });
        const doc = { id: 'op', sender: wallet.address, nonce: call.nonce, chainId: 31337, to: call.to, data: call.data, value: '3', gasLimit: '90000', attempts: [], state: 'pending', createdAt: '', updatedAt: '' } satisfies TxDoc;
        for (const signer of [wallet, vaultSigner]) {
            const attempt = await signAttempt(signer, call, fees);
            // The record keeps the signature, not the bytes again; they are rebuilt to broadcast.
            expect(attempt.raw).toBeUndefined();
            expect(attempt.hash).toBe(keccak256(expected));
            expect(await rawOf(doc, attempt)).toBe(expected);
            expect(Transaction.from(await rawOf(doc, attempt)).from).toBe(wallet.address);
            // A record that does not rebuild to its hash is not sent.
            await expect(rawOf({ ...doc, data: doc.data + '00' }, attempt)).rejects.toThrow('does not rebuild to its hash');
        }
        // Records written before kept the signed bytes, and still broadcast them.
        expect(await rawOf(doc, { hash: keccak256(expected), raw: expected, ...fees, maxFeePerGas: '7', maxPriorityFeePerGas: '1', sentAt: '' })).toBe(expected);
    });
});
