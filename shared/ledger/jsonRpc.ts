/** One JSON-RPC call over HTTP with a timeout (the chain gateway builds on ethers; health checks need only this). */
export async function jsonRpc<T>(url: string, method: string, params: unknown[] = [], timeoutMs = 2000): Promise<T> {
    const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
        signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) throw Object.assign(new Error(`HTTP ${res.status}`), { statusCode: res.status });
    const body = (await res.json()) as { result?: T; error?: { code: number; message: string } };
    if (body.error) throw Object.assign(new Error(body.error.message), { rpcCode: body.error.code });
    return body.result as T;
}

export async function blockNumber(url: string, timeoutMs = 2000): Promise<number> {
    return Number(BigInt(await jsonRpc<string>(url, 'eth_blockNumber', [], timeoutMs)));
}
