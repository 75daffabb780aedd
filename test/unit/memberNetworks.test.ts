import { Unavailable } from '../../shared/errors';
import { MemberNetworks, type NetworkClaim } from '../../shared/deployment/memberNetworks';
import { contains, parseRange, subrange } from '../../shared/net/addresses';
import { MemoryRepository } from './fakes/memoryStores';

/** Members' VNets from the consortium's member address space: one /20 each, never two alike, the same one when asked again. */
describe('member networks', () => {
    const space = parseRange('10.64.0.0/10');

    it('gives 50 organisations allocated at once 50 ranges that do not overlap, inside the space, and each the same one again', async () => {
        const claims = new MemoryRepository<NetworkClaim>((c) => c.id);
        const networks = new MemberNetworks(claims, space);
        expect(networks.capacity).toBe(1024);
        const orgs = Array.from({ length: 50 }, (_, i) => `org-${i}`);
        const first = await Promise.all(orgs.map((o) => networks.allocate(o)));
        const vnets = first.map((n) => parseRange(n.vnetAddressPrefix));
        expect(new Set(first.map((n) => n.vnetAddressPrefix)).size).toBe(50);
        for (const [i, v] of vnets.entries()) {
            expect(v.prefix).toBe(20);
            expect(contains(space, v)).toBe(true);
            for (const w of vnets.slice(i + 1)) expect(contains(v, w) || contains(w, v)).toBe(false);
            // The function app's, the nodes' and the private endpoints' subnets are three different /24s of the VNet.
            const subnets = [first[i]!.functionsSubnetPrefix, first[i]!.nodesSubnetPrefix, first[i]!.privateEndpointsSubnetPrefix].map(parseRange);
            expect(subnets.map((sn) => [sn.prefix, contains(v, sn)])).toEqual([
                [24, true],
                [24, true],
                [24, true],
            ]);
            expect(new Set(subnets.map((sn) => sn.text)).size).toBe(3);
        }
        expect(await Promise.all(orgs.map((o) => networks.allocate(o)))).toEqual(first);
    });

    it('gives one organisation asked for at once several times one range, and keeps no other claim for it', async () => {
        const claims = new MemoryRepository<NetworkClaim>((c) => c.id);
        // A space of two ranges: the racing allocations meet on the same few claims.
        const networks = new MemberNetworks(claims, parseRange('10.64.0.0/19'));
        const got = await Promise.all(Array.from({ length: 6 }, () => networks.allocate('acme')));
        expect(new Set(got.map((n) => n.vnetAddressPrefix)).size).toBe(1);
        // The other range is still free for another organisation.
        const other = await networks.allocate('globex');
        expect(other.vnetAddressPrefix).not.toBe(got[0]!.vnetAddressPrefix);
        await expect(networks.allocate('initech')).rejects.toBeInstanceOf(Unavailable);
        await expect(networks.allocate('initech')).rejects.toThrow('10.64.0.0/19 is full (2 ranges of /20)');
    });

    it('numbers ranges inside a space, and refuses a space smaller than a member range', () => {
        expect(subrange(space, 20, 0).text).toBe('10.64.0.0/20');
        expect(subrange(space, 20, 3).text).toBe('10.64.48.0/20');
        expect(subrange(space, 20, 1023).text).toBe('10.127.240.0/20');
        expect(() => subrange(space, 20, 1024)).toThrow('holds 1024 ranges of /20');
        expect(() => new MemberNetworks(new MemoryRepository<NetworkClaim>((c) => c.id), parseRange('10.64.0.0/24'))).toThrow('/20 or larger');
    });
});
