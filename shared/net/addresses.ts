import { isIPv4, isIPv6 } from 'node:net';

/**
 * IP addresses and ranges, for deciding where the core may send a request it was asked to send
 * (a member's node, an organisation's webhook): parsing, CIDR ranges, and the address classes a
 * request from the core must never reach.
 */
export interface IpAddress {
    family: 4 | 6;
    value: bigint;
}

export interface IpRange {
    family: 4 | 6;
    network: bigint;
    prefix: number;
    /** As written (`10.20.0.0/16`), for messages. */
    text: string;
}

const BITS = { 4: 32, 6: 128 } as const;

/** An IPv4 or IPv6 address (URL brackets and an IPv6 zone are dropped), or undefined when `text` is not one. */
export function parseIp(text: string): IpAddress | undefined {
    let s = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
    if (isIPv4(s)) return { family: 4, value: s.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n) };
    s = s.split('%')[0]!;
    if (!isIPv6(s)) return undefined;
    const groups = (half: string): number[] =>
        half === ''
            ? []
            : half.split(':').flatMap((g) => {
                  if (!g.includes('.')) return [parseInt(g, 16)];
                  const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number];
                  return [(a << 8) | b, (c << 8) | d];
              });
    const [head, tail] = s.includes('::') ? (s.split('::') as [string, string]) : [s, undefined];
    const left = groups(head);
    const right = tail === undefined ? [] : groups(tail);
    const all = tail === undefined ? left : [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
    return { family: 6, value: all.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n) };
}

/** `a.b.c.d/n`, `x:y::/n`, or a bare address (a range of one). Throws on anything else. */
export function parseRange(text: string): IpRange {
    const [addr, len, extra] = text.trim().split('/');
    const ip = parseIp(addr ?? '');
    if (!ip || extra !== undefined || (len !== undefined && !/^\d{1,3}$/.test(len))) throw new Error(`${text} is not an IP address or CIDR range`);
    const prefix = len === undefined ? BITS[ip.family] : Number(len);
    if (prefix > BITS[ip.family]) throw new Error(`${text}: the prefix is longer than the address`);
    const host = BITS[ip.family] - prefix;
    return { family: ip.family, network: (ip.value >> BigInt(host)) << BigInt(host), prefix, text: text.trim() };
}

/** The `index`th range of prefix `prefix` inside `range` (IPv4: `10.64.0.0/10`, 20, 3 → `10.64.48.0/20`). */
export function subrange(range: IpRange, prefix: number, index: number): IpRange {
    if (range.family !== 4) throw new Error('Subranges are IPv4 only');
    if (prefix < range.prefix || prefix > 32) throw new Error(`A /${prefix} does not fit in ${range.text}`);
    const count = 2 ** (prefix - range.prefix);
    if (!Number.isInteger(index) || index < 0 || index >= count) throw new Error(`${range.text} holds ${count} ranges of /${prefix}; there is no number ${index}`);
    const network = range.network + (BigInt(index) << BigInt(32 - prefix));
    const text = `${[24n, 16n, 8n, 0n].map((shift) => String((network >> shift) & 255n)).join('.')}/${prefix}`;
    return { family: 4, network, prefix, text };
}

/** Whether `inner` lies wholly inside `outer`. */
export function contains(outer: IpRange, inner: IpRange): boolean {
    return outer.family === inner.family && inner.prefix >= outer.prefix && inRange({ family: inner.family, value: inner.network }, outer);
}

export function inRange(ip: IpAddress, range: IpRange): boolean {
    const a = unmapped(ip);
    if (a.family !== range.family) return false;
    const host = BigInt(BITS[a.family] - range.prefix);
    return a.value >> host === range.network >> host;
}

/** The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`); any other address as it is. */
export function unmapped(ip: IpAddress): IpAddress {
    if (ip.family === 6 && ip.value >> 32n === 0xffffn) return { family: 4, value: ip.value & 0xffffffffn };
    return ip;
}

const ranges = (entries: [string, string][]) => entries.map(([cidr, name]) => ({ range: parseRange(cidr), name }));

/** Reached by nothing the core sends on anyone's behalf, whatever a setting allows (first match names the class). */
const NEVER = ranges([
    ['169.254.169.254/32', 'the cloud instance metadata service (169.254.169.254)'],
    ['168.63.129.16/32', 'the Azure platform endpoint (168.63.129.16)'],
    ['0.0.0.0/8', '"this network" (0.0.0.0/8)'],
    ['224.0.0.0/4', 'multicast (224.0.0.0/4)'],
    ['240.0.0.0/4', 'reserved or broadcast (240.0.0.0/4)'],
    ['::/128', 'the unspecified address (::)'],
    ['ff00::/8', 'multicast (ff00::/8)'],
]);

/** Not the public internet: a webhook (any URL the core fetches for a caller) must not resolve into these. */
const NOT_PUBLIC = ranges([
    ['127.0.0.0/8', 'loopback (127.0.0.0/8)'],
    ['10.0.0.0/8', 'private (10.0.0.0/8)'],
    ['172.16.0.0/12', 'private (172.16.0.0/12)'],
    ['192.168.0.0/16', 'private (192.168.0.0/16)'],
    ['169.254.0.0/16', 'link-local (169.254.0.0/16)'],
    ['100.64.0.0/10', 'shared address space / CGNAT (100.64.0.0/10)'],
    ['192.0.0.0/24', 'IETF protocol assignments (192.0.0.0/24)'],
    ['192.0.2.0/24', 'documentation (192.0.2.0/24)'],
    ['198.51.100.0/24', 'documentation (198.51.100.0/24)'],
    ['203.0.113.0/24', 'documentation (203.0.113.0/24)'],
    ['198.18.0.0/15', 'benchmarking (198.18.0.0/15)'],
    ['192.88.99.0/24', '6to4 relay anycast (192.88.99.0/24)'],
    ['::1/128', 'loopback (::1)'],
    ['fe80::/10', 'link-local (fe80::/10)'],
    ['fec0::/10', 'site-local (fec0::/10)'],
    ['fc00::/7', 'unique-local (fc00::/7)'],
    ['::/96', 'IPv4-compatible IPv6 (::/96)'],
    ['64:ff9b::/96', 'NAT64 (64:ff9b::/96)'],
    ['64:ff9b:1::/48', 'local-use NAT64 (64:ff9b:1::/48)'],
    ['100::/64', 'discard-only (100::/64)'],
    ['2001::/23', 'IETF protocol assignments, Teredo (2001::/23)'],
    ['2001:db8::/32', 'documentation (2001:db8::/32)'],
    ['2002::/16', '6to4 (2002::/16)'],
]);

const LOOPBACK = ranges([
    ['127.0.0.0/8', 'loopback'],
    ['::1/128', 'loopback'],
]);

export function isLoopback(ip: IpAddress): boolean {
    return LOOPBACK.some((r) => inRange(ip, r.range));
}

/** Why nothing the core sends for a caller may go to `ip` whatever the settings, or undefined. */
export function neverReachable(ip: IpAddress): string | undefined {
    const a = unmapped(ip);
    const why = NEVER.find((r) => inRange(a, r.range))?.name;
    return why && a !== ip ? `IPv4-mapped ${why}` : why;
}

/** Why `ip` is not a public internet address (the class it is in), or undefined when it is one. */
export function nonPublicClass(ip: IpAddress): string | undefined {
    const a = unmapped(ip);
    const why = neverReachable(a) ?? NOT_PUBLIC.find((r) => inRange(a, r.range))?.name;
    return why && a !== ip ? `IPv4-mapped ${why}` : why;
}
