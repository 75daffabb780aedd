import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AccessToken, TokenCredential } from '@azure/core-auth';
import { createDefaultHttpClient } from '@azure/core-rest-pipeline';
import { VmssNodeController } from '../../shared/nodes/controllers';
import type { WatchedNode } from '../../shared/nodes/watchdog';

const SUB = '00000000-1111-2222-3333-444444444444';

/**
 * The Azure node controller against a local fake of ARM (ARM cannot run here): it records what the
 * real @azure/arm-compute client sends for a scale set instance restart and answers 202 as ARM does.
 */
describe('VM scale set node controller', () => {
    const requests: { method: string; path: string; apiVersion: string | null; authorization?: string }[] = [];
    let status = 202;
    let server: Server;
    let url = '';
    const credential: TokenCredential = { getToken: async (): Promise<AccessToken> => ({ token: 'arm-token', expiresOnTimestamp: Date.now() + 3600_000 }) };

    beforeAll(async () => {
        server = createServer((req, res) => {
            const u = new URL(req.url ?? '/', 'http://x');
            requests.push({ method: req.method!, path: u.pathname, apiVersion: u.searchParams.get('api-version'), authorization: req.headers.authorization });
            req.resume();
            if (status !== 202) {
                res.writeHead(status, { 'content-type': 'application/json' });
                return res.end(JSON.stringify({ error: { code: 'AuthorizationFailed', message: 'The client does not have authorization to perform action restart' } }));
            }
            res.writeHead(202, { location: `https://${req.headers.host}/operations/restart-1?api-version=2024-07-01`, 'retry-after': '1' });
            res.end();
        });
        await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
        url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    const node = (vmss?: WatchedNode['vmss']): WatchedNode => ({
        id: 'acme-tx-0', orgId: 'acme', enode: 'enode://x', rpcUrl: 'http://10.1.0.4:8545', vmss, height: 10, status: 'stalled', lastCheckedAt: null, restarts: 0,
        registeredAt: '2026-01-01T00:00:00Z', updatedAt: '2026-01-01T00:00:00Z',
        watch: { lastHash: null, quietChecks: 3, lastError: null, recentRestarts: [], failedRestarts: 0, nextRestartAt: null }, history: [],
    });
    // The client talks https, as to ARM (its bearer policy refuses anything else); after signing, its requests go to the fake's plain-HTTP port.
    const controller = () => {
        const transport = createDefaultHttpClient();
        return new VmssNodeController(credential, {
            endpoint: url.replace('http:', 'https:'),
            retryOptions: { maxRetries: 0 },
            httpClient: { sendRequest: (request) => transport.sendRequest(Object.assign(request, { url: request.url.replace(/^https:/, 'http:'), allowInsecureConnection: true })) },
        });
    };

    it('restarts the node’s scale set instance with a signed POST and returns once ARM accepted it', async () => {
        await controller().restart(node({ subscriptionId: SUB, resourceGroup: 'rg-acme', scaleSet: 'acme-geth', instanceId: '3' }));
        expect(requests).toHaveLength(1);
        expect(requests[0]).toMatchObject({
            method: 'POST',
            path: `/subscriptions/${SUB}/resourceGroups/rg-acme/providers/Microsoft.Compute/virtualMachineScaleSets/acme-geth/virtualMachines/3/restart`,
            apiVersion: expect.stringMatching(/^\d{4}-\d{2}-\d{2}/),
            authorization: 'Bearer arm-token',
        });
    });

    it('says why when ARM refuses, and refuses a node without a scale set instance', async () => {
        status = 403;
        await expect(controller().restart(node({ subscriptionId: SUB, resourceGroup: 'rg-acme', scaleSet: 'acme-geth', instanceId: '3' }))).rejects.toThrow(/ARM refused the restart of acme-geth\/3/);
        status = 202;
        await expect(controller().restart(node())).rejects.toThrow(/no scale set instance/);
    });
});
