import { JsonRpcApiProvider, Network, type JsonRpcError, type JsonRpcPayload, type JsonRpcResult } from 'ethers';
import { Unavailable } from '../errors';

export interface ProviderOptions {
    /** JSON-RPC endpoints, tried in order; the last one that answered is tried first next time. */
    urls: string[];
    chainId: number;
    /** Per request (default 5 s). */
    timeoutMs?: number;
    /** Rounds over all URLs after the first (default 2), with back-off between rounds. */
    retries?: number;
    /** First back-off (default 200 ms), doubled each round. */
    backoffMs?: number;
    /** JSON-RPC batching (ethers coalesces calls made in the same few ms). Default 100. */
    batchMaxCount?: number;
    /** How often ethers polls for new blocks when something listens (default 1000 ms). */
    pollingIntervalMs?: number;
}

/**
 * An ethers provider over one or more JSON-RPC URLs: a timeout on every request,
 * failover to the next URL on a network error, a timeout, HTTP 5xx or 429, and
 * rounds of retries with back-off when every URL failed. JSON-RPC errors in a
 * body (a revert, "nonce too low") are answers, not failures: they are returned,
 * never retried elsewhere. The chain id is fixed by settings (no detection call).
 */
export class FailoverProvider extends JsonRpcApiProvider {
    readonly urls: string[];
    readonly #timeoutMs: number;
    readonly #retries: number;
    readonly #backoffMs: number;
    #current = 0;

    constructor(opts: ProviderOptions) {
        if (opts.urls.length === 0) throw new Error('At least one JSON-RPC URL is needed');
        super(Network.from(opts.chainId), {
            staticNetwork: Network.from(opts.chainId),
            batchMaxCount: opts.batchMaxCount ?? 100,
            batchStallTime: 2,
            pollingInterval: opts.pollingIntervalMs ?? 1000,
        });
        this.urls = [...opts.urls];
        this.#timeoutMs = opts.timeoutMs ?? 5000;
        this.#retries = opts.retries ?? 2;
        this.#backoffMs = opts.backoffMs ?? 200;
    }

    /** The URL that answered last. */
    get currentUrl(): string {
        return this.urls[this.#current];
    }

    /**
     * The node's answers, a read it refused because its head moved under it asked again (up to 3
     * times, 25 ms apart, doubling): anvil answers a call at `latest` while it mines with
     * "BlockOutOfRangeError", and nodes behind a load balancer answer "header not found"; ethers
     * would report either as a call exception without revert data (seen as 502s under load).
     */
    override async _send(payload: JsonRpcPayload | JsonRpcPayload[]): Promise<(JsonRpcResult | JsonRpcError)[]> {
        const requests = Array.isArray(payload) ? payload : [payload];
        const results = await this.#post(payload);
        for (let attempt = 0; attempt < 3; attempt++) {
            const again = requests.filter((q) => READS.has(q.method) && results.some((r) => r.id === q.id && 'error' in r && HEAD_MOVED.test(String(r.error?.message))));
            if (again.length === 0) break;
            await new Promise((r) => setTimeout(r, 25 * 2 ** attempt));
            const answers = await this.#post(again);
            for (const a of answers) {
                const at = results.findIndex((r) => r.id === a.id);
                if (at >= 0) results[at] = a;
            }
        }
        return results;
    }

    async #post(payload: JsonRpcPayload | JsonRpcPayload[]): Promise<(JsonRpcResult | JsonRpcError)[]> {
        const body = JSON.stringify(payload);
        const failures: string[] = [];
        for (let round = 0; round <= this.#retries; round++) {
            for (let i = 0; i < this.urls.length; i++) {
                const index = (this.#current + i) % this.urls.length;
                const url = this.urls[index];
                try {
                    const res = await fetch(url, {
                        method: 'POST',
                        headers: { 'content-type': 'application/json' },
                        body,
                        signal: AbortSignal.timeout(this.#timeoutMs),
                    });
                    if (res.status >= 500 || res.status === 429) throw new Error(`HTTP ${res.status}`);
                    const text = await res.text();
                    let json: unknown;
                    try {
                        json = JSON.parse(text);
                    } catch {
                        throw new Error(`HTTP ${res.status}: not JSON-RPC (${text.slice(0, 80)})`);
                    }
                    this.#current = index;
                    return (Array.isArray(json) ? json : [json]) as (JsonRpcResult | JsonRpcError)[];
                } catch (err) {
                    failures.push(`${redact(url)}: ${(err as Error).name === 'TimeoutError' ? `timed out after ${this.#timeoutMs} ms` : (err as Error).message}`);
                }
            }
            if (round < this.#retries) await new Promise((r) => setTimeout(r, this.#backoffMs * 2 ** round));
        }
        throw new Unavailable(`No JSON-RPC endpoint answered (${failures.slice(-this.urls.length).join('; ')})`);
    }

    /** One call outside ethers' batching and result shaping (e.g. anvil or geth extensions). */
    async rpc<T>(method: string, params: unknown[] = []): Promise<T> {
        return (await this.send(method, params)) as T;
    }
}

/** Reads of the chain's state, safe to ask again. */
const READS = new Set(['eth_call', 'eth_estimateGas', 'eth_getBalance', 'eth_getCode', 'eth_getStorageAt', 'eth_getTransactionCount', 'eth_getLogs', 'eth_getBlockByNumber', 'eth_getBlockReceipts']);
/** A node refusing a read because its head moved while it answered (transient). */
const HEAD_MOVED = /BlockOutOfRangeError|header not found/i;

/** Credentials in a URL (https://user:key@host) stay out of messages. */
function redact(url: string): string {
    try {
        const u = new URL(url);
        u.username = '';
        u.password = '';
        u.search = '';
        return u.toString();
    } catch {
        return 'an invalid URL';
    }
}
