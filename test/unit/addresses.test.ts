import { inRange, isLoopback, nonPublicClass, parseIp, parseRange } from '../../shared/net/addresses';
import { rpcUrlProblem } from '../../shared/nodes/nodeRegistry';

const cls = (text: string) => nonPublicClass(parseIp(text)!);

/** The address classes the core refuses to send to on a caller's behalf, and the node network's ranges. */
describe('address classes', () => {
    it.each([
        ['127.0.0.1', 'loopback (127.0.0.0/8)'],
        ['127.255.0.9', 'loopback (127.0.0.0/8)'],
        ['10.0.0.5', 'private (10.0.0.0/8)'],
        ['172.16.0.1', 'private (172.16.0.0/12)'],
        ['172.31.255.254', 'private (172.16.0.0/12)'],
        ['192.168.1.1', 'private (192.168.0.0/16)'],
        ['169.254.10.1', 'link-local (169.254.0.0/16)'],
        ['169.254.169.254', 'the cloud instance metadata service (169.254.169.254)'],
        ['168.63.129.16', 'the Azure platform endpoint (168.63.129.16)'],
        ['100.64.0.1', 'shared address space / CGNAT (100.64.0.0/10)'],
        ['100.127.255.255', 'shared address space / CGNAT (100.64.0.0/10)'],
        ['0.0.0.0', '"this network" (0.0.0.0/8)'],
        ['0.1.2.3', '"this network" (0.0.0.0/8)'],
        ['224.0.0.1', 'multicast (224.0.0.0/4)'],
        ['255.255.255.255', 'reserved or broadcast (240.0.0.0/4)'],
        ['192.0.2.10', 'documentation (192.0.2.0/24)'],
        ['198.18.0.1', 'benchmarking (198.18.0.0/15)'],
        ['::', 'the unspecified address (::)'],
        ['::1', 'loopback (::1)'],
        ['fe80::1', 'link-local (fe80::/10)'],
        ['febf:ffff::1', 'link-local (fe80::/10)'],
        ['fc00::1', 'unique-local (fc00::/7)'],
        ['fd12:3456::1', 'unique-local (fc00::/7)'],
        ['ff02::1', 'multicast (ff00::/8)'],
        ['::ffff:127.0.0.1', 'IPv4-mapped loopback (127.0.0.0/8)'],
        ['::ffff:10.1.2.3', 'IPv4-mapped private (10.0.0.0/8)'],
        ['::ffff:a9fe:a9fe', 'IPv4-mapped the cloud instance metadata service (169.254.169.254)'],
        ['::ffff:168.63.129.16', 'IPv4-mapped the Azure platform endpoint (168.63.129.16)'],
        ['::ffff:192.168.0.1', 'IPv4-mapped private (192.168.0.0/16)'],
        ['::ffff:0.0.0.0', 'IPv4-mapped "this network" (0.0.0.0/8)'],
        ['::127.0.0.1', 'IPv4-compatible IPv6 (::/96)'],
        ['64:ff9b::a00:1', 'NAT64 (64:ff9b::/96)'],
        ['2001:db8::1', 'documentation (2001:db8::/32)'],
        ['2002:a00:1::1', '6to4 (2002::/16)'],
        ['fe80::1%eth0', 'link-local (fe80::/10)'],
        ['[::1]', 'loopback (::1)'],
    ])('%s is %s', (address, expected) => {
        expect(cls(address)).toBe(expected);
    });

    it.each(['93.184.215.14', '1.1.1.1', '172.32.0.1', '100.128.0.1', '169.253.255.255', '2606:4700:4700::1111', '2a00:1450:4009:81f::200e', '::ffff:93.184.215.14'])('%s is public', (address) => {
        expect(cls(address)).toBeUndefined();
    });

    it('knows loopback in every spelling, and nothing that is not an address', () => {
        for (const a of ['127.0.0.1', '127.8.8.8', '::1', '::ffff:127.0.0.1', '0:0:0:0:0:0:0:1']) expect(isLoopback(parseIp(a)!)).toBe(true);
        for (const a of ['128.0.0.1', '::2', '::ffff:128.0.0.1']) expect(isLoopback(parseIp(a)!)).toBe(false);
        for (const a of ['localhost', '1.2.3', '256.1.1.1', 'fe80::1::2', '']) expect(parseIp(a)).toBeUndefined();
    });

    it('matches CIDR ranges of both families, an IPv4-mapped address as its IPv4 address', () => {
        const net = ['10.20.0.0/16', 'fd00:20::/48', '192.0.2.7'].map(parseRange);
        const inNet = (a: string) => net.some((r) => inRange(parseIp(a)!, r));
        expect(inNet('10.20.3.4')).toBe(true);
        expect(inNet('::ffff:10.20.3.4')).toBe(true);
        expect(inNet('10.21.0.1')).toBe(false);
        expect(inNet('fd00:20:0:1::5')).toBe(true);
        expect(inNet('fd00:21::5')).toBe(false);
        expect(inNet('192.0.2.7')).toBe(true);
        expect(inNet('192.0.2.8')).toBe(false);
        // The network part is what counts, however the range was written.
        expect(inRange(parseIp('10.20.255.1')!, parseRange('10.20.9.9/16'))).toBe(true);
        for (const bad of ['10.0.0.0/33', '::/129', 'nodes.example/24', '10.0.0.0/8/1', '10.0.0.0/x', '']) expect(() => parseRange(bad)).toThrow();
    });
});

describe('a node rpcUrl', () => {
    const network = ['10.20.0.0/16', 'fd00:20::/48'].map(parseRange);

    it('is accepted at an address inside the node network', () => {
        expect(rpcUrlProblem('http://10.20.1.4:8545', network)).toBeUndefined();
        expect(rpcUrlProblem('https://[fd00:20::4]:8545/rpc', network)).toBeUndefined();
    });

    it.each([
        ['http://10.21.1.4:8545', /outside the node network \(FLEXCHANGE_NODE_NETWORK_RANGES: 10\.20\.0\.0\/16, fd00:20::\/48\)/],
        ['http://127.0.0.1:8545', /outside the node network/],
        ['http://[::ffff:169.254.169.254]/', /metadata/],
        ['http://169.254.169.254/', /metadata/],
        ['http://168.63.129.16/', /Azure platform endpoint/],
        ['http://node.example:8545', /node\.example is a host name/],
        ['http://localhost:8545', /localhost is a host name/],
        ['ftp://10.20.1.4/', /http or https only/],
        ['http://u:p@10.20.1.4:8545', /no user:password/],
        ['not a url', /not a URL/],
    ])('is refused: %s', (url, why) => {
        expect(rpcUrlProblem(url, network)).toMatch(why);
    });

    it('is refused in any IPv4 spelling outside the ranges (URLs normalise them), and everywhere without ranges', () => {
        // 2130706433 and 0x7f.1 are 127.0.0.1; 0xa140104 is 10.20.1.4.
        expect(rpcUrlProblem('http://2130706433:8545', network)).toMatch(/127\.0\.0\.1 is outside/);
        expect(rpcUrlProblem('http://0x7f.1:8545', network)).toMatch(/127\.0\.0\.1 is outside/);
        expect(rpcUrlProblem('http://0xa140104:8545', network)).toBeUndefined();
        expect(rpcUrlProblem('http://10.20.1.4:8545', [])).toMatch(/FLEXCHANGE_NODE_NETWORK_RANGES is empty/);
        // Even a range that holds them does not open the metadata endpoints.
        expect(rpcUrlProblem('http://169.254.169.254/', [parseRange('169.254.0.0/16')])).toMatch(/metadata/);
    });
});
