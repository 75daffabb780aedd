import type { Database } from '@azure/cosmos';
import { buildChainGateway } from '../../shared/chain/gateway';
import type { Settings } from '../../shared/config';
import { toProblem } from '../../shared/http/problem';
import type { KeyStore, SecretStore } from '../../shared/vault/vault';

/** Work that needs the operator account (top-ups, grants, contract deployment) when none is configured. */
describe('the operator account', () => {
    it('is reported as not configured (503 operator_not_configured naming FLEXCHANGE_OPERATOR_KEY) when its keystore is not in the vault', async () => {
        const asked: string[] = [];
        const secrets: SecretStore = {
            get: async (name) => void asked.push(name),
            set: async () => ({ version: '1' }),
            delete: async () => false,
            list: async () => [],
        };
        const settings = {
            FLEXCHANGE_LEDGER_RPC_URLS: ['http://127.0.0.1:9'],
            FLEXCHANGE_CHAIN_ID: 31337,
            FLEXCHANGE_CHAIN_RPC_TIMEOUT_MS: 1000,
            FLEXCHANGE_CHAIN_CONFIRMATIONS: 1,
            FLEXCHANGE_CHAIN_MAX_FEE_GWEI: 100,
            FLEXCHANGE_CHAIN_REPLACE_AFTER_SECONDS: 60,
            FLEXCHANGE_OPERATOR_KEY: 'treasury-key',
        } as unknown as Settings;
        const gateway = buildChainGateway(settings, { database: { container: () => ({}) } as unknown as Database, secrets, keys: {} as KeyStore });
        try {
            const problem = toProblem(await gateway.operator().catch((err: unknown) => err));
            expect(problem).toMatchObject({ status: 503, code: 'operator_not_configured' });
            expect(problem.detail).toContain('FLEXCHANGE_OPERATOR_KEY');
            expect(problem.detail).toContain('treasury-key');
            expect(asked).toEqual(['treasury-key']);
        } finally {
            await gateway.close();
        }
    });
});
