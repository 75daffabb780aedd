import { rmSync } from 'node:fs';
import { EVM_VERSION } from '../../contracts/evm';
import { LocalLedger, type LedgerOptions } from '../../devhost/services/ledger';
import { jsonRpc } from '../../shared/ledger/jsonRpc';
import { tempDir } from './devhost';

export interface TestLedger {
    ledger: LocalLedger;
    url: string;
    rpc<T>(method: string, params?: unknown[]): Promise<T>;
    /** Gives an address ether (anvil_setBalance), in ether. */
    fund(address: string, ether?: number): Promise<void>;
    mine(blocks?: number): Promise<void>;
    stop(): Promise<void>;
}

/** A fresh anvil of its own (chain id 31337, no dev accounts, the consortium's hardfork) on a free port, for tests that need to control mining or crash the node. */
export async function startLedger(opts: LedgerOptions = {}): Promise<TestLedger> {
    const dir = tempDir();
    const ledger = new LocalLedger(dir, { hardfork: EVM_VERSION, ...opts });
    await ledger.start(0);
    const rpc = <T>(method: string, params: unknown[] = []) => jsonRpc<T>(ledger.url, method, params, 30_000);
    return {
        ledger,
        get url() {
            return ledger.url;
        },
        rpc,
        fund: async (address, ether = 100) => {
            await rpc('anvil_setBalance', [address, '0x' + (BigInt(Math.round(ether * 1e6)) * 10n ** 12n).toString(16)]);
        },
        mine: async (blocks = 1) => {
            await rpc('anvil_mine', ['0x' + blocks.toString(16)]);
        },
        stop: async () => {
            await ledger.stop();
            rmSync(dir, { recursive: true, force: true });
        },
    };
}
