/**
 * One member's ledger node in the devhost: a JSON-RPC relay process in front of the shared anvil chain
 * (argv: upstream URL, port). The devhost controls it over IPC:
 * - `{ cmd: 'stall', height? }`: the node stops following the chain: its head stays at that height
 *   (`eth_blockNumber`, `eth_getBlockByNumber('latest')`), later blocks are unknown to it;
 * - `{ cmd: 'diverge', from }`: from that height on its blocks have hashes of their own (a fork);
 * - `{ cmd: 'resume' }`: back to following the chain.
 * Other calls are relayed as they are. The process exits when the devhost goes (its IPC channel closes).
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

interface RpcRequest {
    jsonrpc: '2.0';
    id: unknown;
    method: string;
    params?: unknown[];
}
interface RpcResponse {
    jsonrpc: '2.0';
    id: unknown;
    result?: unknown;
    error?: unknown;
}

const [upstream, portArg] = process.argv.slice(2);
if (!upstream || portArg === undefined) {
    console.error('usage: nodeRelayProcess <upstream-url> <port>');
    process.exit(2);
}

let stalledAt: number | null = null;
let divergeFrom: number | null = null;

const LATEST_TAGS = new Set(['latest', 'pending', 'safe', 'finalized']);
const hex = (n: number) => `0x${n.toString(16)}`;
const forked = (hash: string) => `0x${createHash('sha256').update(`fork:${hash}`).digest('hex')}`;

async function relay(body: RpcRequest | RpcRequest[]): Promise<RpcResponse | RpcResponse[]> {
    const res = await fetch(upstream!, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(30_000) });
    return (await res.json()) as RpcResponse | RpcResponse[];
}

async function upstreamHeight(): Promise<number> {
    const r = (await relay({ jsonrpc: '2.0', id: 0, method: 'eth_blockNumber', params: [] })) as RpcResponse;
    return Number(BigInt(r.result as string));
}

/** A call as this node answers it: rewritten while stalled or diverged, otherwise as the chain answers. */
async function handle(call: RpcRequest): Promise<RpcResponse> {
    if (stalledAt !== null) {
        if (call.method === 'eth_blockNumber') return { jsonrpc: '2.0', id: call.id, result: hex(stalledAt) };
        if (call.method === 'eth_getBlockByNumber' && Array.isArray(call.params)) {
            const tag = call.params[0] as string;
            if (LATEST_TAGS.has(tag)) call = { ...call, params: [hex(stalledAt), ...call.params.slice(1)] };
            else if (Number(BigInt(tag)) > stalledAt) return { jsonrpc: '2.0', id: call.id, result: null };
        }
    }
    const answer = (await relay(call)) as RpcResponse;
    if (divergeFrom !== null && (call.method === 'eth_getBlockByNumber' || call.method === 'eth_getBlockByHash') && answer.result) {
        const block = answer.result as { number: string; hash: string; parentHash: string };
        const n = Number(BigInt(block.number));
        if (n >= divergeFrom) answer.result = { ...block, hash: forked(block.hash), parentHash: n > divergeFrom ? forked(block.parentHash) : block.parentHash };
    }
    return answer;
}

async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
    };
    if (req.method !== 'POST') return send(405, { jsonrpc: '2.0', id: null, error: { code: -32600, message: 'JSON-RPC over POST only' } });
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let body: RpcRequest | RpcRequest[];
    try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as RpcRequest | RpcRequest[];
    } catch {
        return send(400, { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } });
    }
    try {
        if (stalledAt === null && divergeFrom === null) return send(200, await relay(body));
        send(200, Array.isArray(body) ? await Promise.all(body.map(handle)) : await handle(body));
    } catch (err) {
        send(502, { jsonrpc: '2.0', id: Array.isArray(body) ? null : body.id, error: { code: -32603, message: `upstream: ${(err as Error).message}` } });
    }
}

const server = createServer((req, res) => void serve(req, res));
server.keepAliveTimeout = 5000;
server.listen(Number(portArg), '127.0.0.1', () => {
    process.send?.({ type: 'ready', port: (server.address() as AddressInfo).port });
});
server.on('error', (err) => {
    process.send?.({ type: 'failed', message: err.message });
    process.exit(1);
});

process.on('message', (m: { cmd: string; height?: number; from?: number; seq: number }) => {
    void (async () => {
        try {
            if (m.cmd === 'stall') stalledAt = m.height ?? (await upstreamHeight());
            else if (m.cmd === 'resume') stalledAt = divergeFrom = null;
            else if (m.cmd === 'diverge') divergeFrom = m.from ?? (await upstreamHeight());
            process.send?.({ type: 'state', seq: m.seq, stalledAt, divergeFrom });
        } catch (err) {
            process.send?.({ type: 'error', seq: m.seq, message: (err as Error).message });
        }
    })();
});
process.on('disconnect', () => process.exit(0));
