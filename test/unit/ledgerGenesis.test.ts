import { readFileSync } from 'node:fs';
import path from 'node:path';
import { computeAddress, decodeRlp, getAddress, SigningKey, Wallet } from 'ethers';
import { EVM_VERSION } from '../../contracts/evm';
import { buildGenesis, coreLedgerParameters, milestonesFor, newValidatorKeys, qbftExtraData } from '../../contracts/genesis';

const validators = Array.from({ length: 4 }, () => Wallet.createRandom().address.toLowerCase());

/** The consortium ledger's genesis (`npm run ledger:genesis`): QBFT's extraData, and milestones that are the contracts' EVM version. */
describe('the ledger genesis', () => {
    it('names the validators in QBFT extraData: vanity, validators, no votes, round 0, no seals', () => {
        const genesis = buildGenesis({ chainId: 4242, validators, timestamp: 1_800_000_000, alloc: { [validators[0]!]: '100' } });
        const [vanity, listed, votes, round, seals] = decodeRlp(genesis.extraData as string) as [string, string[], unknown[], string, unknown[]];
        expect(vanity).toBe(`0x${'00'.repeat(32)}`);
        expect(listed.map((v) => getAddress(v))).toEqual(validators.map((v) => getAddress(v)));
        expect([votes, round, seals]).toEqual([[], '0x', []]);
        expect(genesis).toMatchObject({
            config: { chainId: 4242, qbft: { blockperiodseconds: 2, epochlength: 30000, requesttimeoutseconds: 4 } },
            timestamp: '0x6b49d200',
            gasLimit: '0x01c9c380',
            difficulty: '0x1',
            alloc: { [validators[0]!.slice(2)]: { balance: '0x056bc75e2d63100000' } },
        });
    });

    it('activates from block 0 exactly the forks of the EVM version the contracts are compiled for', () => {
        const config = buildGenesis({ chainId: 1, validators, timestamp: 0 }).config as Record<string, unknown>;
        expect(EVM_VERSION).toBe('cancun');
        expect(config).toMatchObject({ londonBlock: 0, shanghaiTime: 0, cancunTime: 0 });
        expect(config).not.toHaveProperty('pragueTime');
        // An older consortium EVM: no time-based fork, so no PUSH0 the chain would refuse.
        expect(Object.keys(milestonesFor('paris'))).not.toContain('shanghaiTime');
        expect(Object.keys(milestonesFor('shanghai'))).toEqual(expect.arrayContaining(['londonBlock', 'shanghaiTime']));
        expect(() => milestonesFor('prague')).toThrow('No genesis milestones for EVM version "prague"');
    });

    it('refuses fewer than 4 validators, the same one twice, a bad chain id or address', () => {
        expect(() => buildGenesis({ chainId: 1, validators: validators.slice(0, 3) })).toThrow('at least 4 validators');
        expect(() => buildGenesis({ chainId: 1, validators: [...validators, validators[0]!.toUpperCase().replace('0X', '0x')] })).toThrow('each validator once');
        expect(() => buildGenesis({ chainId: 0, validators })).toThrow('chainId');
        expect(() => qbftExtraData(['0x1234'])).toThrow();
    });

    it("makes the core's validator keys and core.json's parameters for them: the genesis names them, the enodes are theirs", () => {
        const keys = newValidatorKeys(4);
        const genesis = `${JSON.stringify(buildGenesis({ chainId: 4242, validators: keys.map((k) => k.address) }))}\n`;
        const file = coreLedgerParameters(keys, genesis) as { parameters: Record<string, { value: unknown }> };
        const core = JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'infra', 'core.json'), 'utf8')) as { parameters: Record<string, { type: string; allowedValues?: number[] }> };
        // Only core.json's parameters, with their types; the keys in its secure object.
        expect(Object.keys(file.parameters).every((name) => name in core.parameters)).toBe(true);
        expect(core.parameters.validatorKeys!.type).toBe('secureObject');
        expect(core.parameters.validatorCount!.allowedValues).toContain(file.parameters.validatorCount!.value);
        const { keys: secrets } = file.parameters.validatorKeys!.value as { keys: string[] };
        const publicKeys = file.parameters.validatorPublicKeys!.value as string[];
        secrets.forEach((secret, i) => {
            expect(secret).toMatch(/^0x[0-9a-f]{64}$/);
            // The enode's public key and the genesis' validator are this key's.
            expect(`0x04${publicKeys[i]}`).toBe(new SigningKey(secret).publicKey);
            expect(publicKeys[i]).toMatch(/^[0-9a-f]{128}$/);
            expect(computeAddress(secret)).toBe(keys[i]!.address);
        });
        const named = decodeRlp(JSON.parse(Buffer.from(file.parameters.memberGenesisJsonBase64!.value as string, 'base64').toString()).extraData) as [string, string[]];
        expect(named[1].map((v) => getAddress(v))).toEqual(keys.map((k) => k.address));
        // New keys each time, and only the set sizes core.json runs.
        expect(newValidatorKeys(4)[0]!.privateKey).not.toBe(keys[0]!.privateKey);
        expect(newValidatorKeys(7)).toHaveLength(7);
        expect(() => newValidatorKeys(3)).toThrow('not 3');
        expect(() => newValidatorKeys(5)).toThrow('not 5');
    });
});
