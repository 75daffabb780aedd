import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FailoverProvider } from '../../shared/chain/provider';

/**
 * A node that refuses reads while its head moves (anvil's "BlockOutOfRangeError" while it mines,
 * "header not found" behind a load balancer): the provider asks again; other errors are answers.
 */
describe('FailoverProvider and a node whose head moves under a read', () => {
    let server: Server;
    let url: string;
    const seen: string[] = [];
    let refusals = 0;

    beforeAll(async () => {
        server = createServer((req, res) => {
            let body = '';
            req.on('data', (c) => (body += c));
            req.on('end', () => {
                const payload = JSON.parse(body) as { id: number; method: string; params: unknown[] } | { id: number; method: string; params: unknown[] }[];
                const answer = (q: { id: number; method: string }) => {
                    seen.push(q.method);
                    const error = (message: string) => ({ jsonrpc: '2.0', id: q.id, error: { code: -32602, message } });
                    if (q.method === 'eth_sendRawTransaction') return error('BlockOutOfRangeError: block height is 4 but requested was 3');
                    if (q.method === 'eth_getCode') return error('execution reverted');
                    if (refusals > 0) {
                        refusals--;
                        return error(q.method === 'eth_call' ? 'BlockOutOfRangeError: block height is 7 but requested was 6' : 'header not found');
                    }
                    return { jsonrpc: '2.0', id: q.id, result: '0x01' };
                };
                res.setHeader('content-type', 'application/json');
                res.end(JSON.stringify(Array.isArray(payload) ? payload.map(answer) : answer(payload)));
            });
        });
        await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
        url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));
    beforeEach(() => {
        seen.length = 0;
    });

    it('asks a read again until the node answers it', async () => {
        const provider = new FailoverProvider({ urls: [url], chainId: 31337 });
        refusals = 2;
        await expect(provider.rpc('eth_call', [{ to: '0x' + '11'.repeat(20), data: '0x' }, 'latest'])).resolves.toBe('0x01');
        expect(seen).toEqual(['eth_call', 'eth_call', 'eth_call']);
        refusals = 1;
        await expect(provider.rpc('eth_getBalance', ['0x' + '11'.repeat(20), 'latest'])).resolves.toBe('0x01');
        provider.destroy();
    });

    it('gives up after three more tries, and never sends a transaction again', async () => {
        const provider = new FailoverProvider({ urls: [url], chainId: 31337 });
        refusals = 10;
        await expect(provider.rpc('eth_call', [{ to: '0x' + '11'.repeat(20), data: '0x' }, 'latest'])).rejects.toThrow();
        expect(seen.filter((m) => m === 'eth_call')).toHaveLength(4);
        refusals = 0;
        seen.length = 0;
        await expect(provider.rpc('eth_sendRawTransaction', ['0x02'])).rejects.toThrow();
        await expect(provider.rpc('eth_getCode', ['0x' + '11'.repeat(20), 'latest'])).rejects.toThrow();
        expect(seen).toEqual(['eth_sendRawTransaction', 'eth_getCode']);
        provider.destroy();
    });
});
