import { promises as dns, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { isLoopback, nonPublicClass, parseIp } from './addresses';

/** The resolver port: every address a host name has (the system resolver in production, a fake in tests). */
export type Lookup = (hostname: string) => Promise<{ address: string; family: number }[]>;

/** The system resolver, bounded: a name that has not resolved within 5 s is refused (a retried delivery asks again). */
export const systemLookup: Lookup = (hostname) =>
    new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(Object.assign(new Error(`resolving ${hostname} timed out`), { code: 'ETIMEOUT' })), 5000);
        dns.lookup(hostname, { all: true, verbatim: true }).then(resolve, reject).finally(() => clearTimeout(timer));
    });

/** A URL whose host was resolved and every address checked; requests go to `address`, and nowhere else. */
export interface CheckedTarget {
    url: URL;
    /** The host name as the URL has it, without IPv6 brackets (the Host header, the TLS server name). */
    host: string;
    address: string;
    family: 4 | 6;
    /** Every address the name had was loopback. */
    loopback: boolean;
}

/** Why a URL may not be reached (said to the caller; the address class named). */
export class TargetRefused extends Error {}

/**
 * Resolves the URL's host and checks every address it has: all must be public internet addresses,
 * or, with `allowLoopback` (the devhost), all loopback. A name with one private address among public
 * ones is refused: the resolver could hand out either.
 */
export async function checkPublicTarget(url: URL, opts: { lookup: Lookup; allowLoopback: boolean }): Promise<CheckedTarget> {
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const literal = parseIp(host);
    let found: { address: string; family: number }[];
    if (literal) found = [{ address: host, family: literal.family }];
    else {
        try {
            found = await opts.lookup(host);
        } catch (err) {
            throw new TargetRefused(`${host} does not resolve (${(err as { code?: string }).code ?? (err as Error).message})`);
        }
    }
    if (found.length === 0) throw new TargetRefused(`${host} does not resolve`);
    const ips = found.map((f) => ({ text: f.address, ip: parseIp(f.address) }));
    const loopback = ips.every((a) => a.ip && isLoopback(a.ip));
    if (!(loopback && opts.allowLoopback)) {
        for (const a of ips) {
            const why = a.ip ? nonPublicClass(a.ip) : 'not an IP address';
            if (why) throw new TargetRefused(literal ? `${host} is ${why}` : `${host} resolves to ${a.text}, ${why}`);
        }
    }
    const first = ips[0]!;
    return { url, host, address: first.text, family: first.ip!.family, loopback };
}

/** A lookup that answers the checked address and nothing else: the connection cannot be re-resolved elsewhere. */
function pinnedLookup(target: CheckedTarget): LookupFunction {
    return (_hostname, options, callback) => {
        const answer: LookupAddress = { address: target.address, family: target.family };
        if ((options as { all?: boolean }).all) (callback as (err: null, addresses: LookupAddress[]) => void)(null, [answer]);
        else callback(null, answer.address, answer.family);
    };
}

/**
 * POSTs `body` to a checked target, connecting to its checked address only (no second resolution
 * between the check and the connection), with the URL's own Host header and, for https, its host
 * name as the TLS server name and for certificate verification. No redirects are followed; no
 * connection is reused. Resolves to the response status.
 */
export function postToTarget(target: CheckedTarget, req: { headers: Record<string, string>; body: string; timeoutMs: number; ca?: string | Buffer }): Promise<number> {
    const { url } = target;
    const secure = url.protocol === 'https:';
    const options: https.RequestOptions = {
        method: 'POST',
        host: target.host,
        port: url.port || (secure ? 443 : 80),
        path: `${url.pathname}${url.search}`,
        headers: { ...req.headers, 'content-length': String(Buffer.byteLength(req.body)) },
        lookup: pinnedLookup(target),
        agent: false,
        signal: AbortSignal.timeout(req.timeoutMs),
        ...(secure ? { servername: parseIp(target.host) ? undefined : target.host, ...(req.ca ? { ca: req.ca } : {}) } : {}),
    };
    return new Promise<number>((resolve, reject) => {
        const sent = (secure ? https : http).request(options, (res) => {
            res.resume();
            res.on('error', () => undefined);
            resolve(res.statusCode ?? 0);
        });
        sent.on('error', reject);
        sent.end(req.body);
    });
}
