import { createHash } from 'node:crypto';
import type { Repository } from '../documents/repository';
import { Conflict, Unavailable } from '../errors';
import { subrange, type IpRange } from '../net/addresses';

/**
 * A claim on a member's address range, in the node registry's claims container (partition `/id`):
 * `vnet:<n>` → the organisation holding range n; `vnet-of:<orgId>` → the range it holds.
 */
export interface NetworkClaim {
    id: string;
    orgId: string;
    index?: number;
    claimedAt: string;
}

/** A member's address space: its VNet, and the function app's and the nodes' subnets in it. */
export interface MemberNetwork {
    vnetAddressPrefix: string;
    functionsSubnetPrefix: string;
    nodesSubnetPrefix: string;
    /** The private endpoints of its storage, Key Vault and Cosmos DB. */
    privateEndpointsSubnetPrefix: string;
}

/** Each member's VNet is a /20 of the consortium's member address space: room for its two /24 subnets and more. */
export const MEMBER_VNET_PREFIX = 20;

/**
 * Non-overlapping address ranges for members' VNets (so the core's and the members' networks can be
 * peered), allocated by the core from `FLEXCHANGE_MEMBER_ADDRESS_SPACE`. Each organisation gets one
 * range, for good: asked again it gets the same one, and two organisations never get the same one,
 * even when allocated at once (create-only claims; a range is looked for from a point fixed by the
 * organisation id, so allocations rarely meet).
 */
export class MemberNetworks {
    constructor(
        private readonly claims: Repository<NetworkClaim>,
        private readonly space: IpRange,
    ) {
        if (space.family !== 4 || space.prefix > MEMBER_VNET_PREFIX) throw new Error(`The member address space must be an IPv4 range of /${MEMBER_VNET_PREFIX} or larger, not ${space.text}`);
    }

    get capacity(): number {
        return 2 ** (MEMBER_VNET_PREFIX - this.space.prefix);
    }

    async allocate(orgId: string): Promise<MemberNetwork> {
        const held = await this.claims.read(`vnet-of:${orgId}`, `vnet-of:${orgId}`);
        if (held?.item.index !== undefined) return this.#network(held.item.index);
        const start = createHash('sha256').update(orgId).digest().readUInt32BE(0) % this.capacity;
        for (let step = 0; step < this.capacity; step++) {
            const index = (start + step) % this.capacity;
            if (!(await this.#claim(index, orgId))) continue;
            try {
                await this.claims.create({ id: `vnet-of:${orgId}`, orgId, index, claimedAt: new Date().toISOString() });
                return this.#network(index);
            } catch (err) {
                if (!(err instanceof Conflict)) throw err;
                // Allocated for this organisation at the same time: keep the other one, give this one back.
                const winner = (await this.claims.read(`vnet-of:${orgId}`, `vnet-of:${orgId}`))!.item.index!;
                if (winner !== index) await this.claims.delete(`vnet:${index}`, `vnet:${index}`).catch(() => false);
                return this.#network(winner);
            }
        }
        throw new Unavailable(`The member address space ${this.space.text} is full (${this.capacity} ranges of /${MEMBER_VNET_PREFIX})`);
    }

    /** Takes range `index` for the organisation: true when it is (now or already) the organisation's. */
    async #claim(index: number, orgId: string): Promise<boolean> {
        try {
            await this.claims.create({ id: `vnet:${index}`, orgId, claimedAt: new Date().toISOString() });
            return true;
        } catch (err) {
            if (!(err instanceof Conflict)) throw err;
            return (await this.claims.read(`vnet:${index}`, `vnet:${index}`))?.item.orgId === orgId;
        }
    }

    #network(index: number): MemberNetwork {
        const vnet = subrange(this.space, MEMBER_VNET_PREFIX, index);
        return { vnetAddressPrefix: vnet.text, functionsSubnetPrefix: subrange(vnet, 24, 1).text, nodesSubnetPrefix: subrange(vnet, 24, 2).text, privateEndpointsSubnetPrefix: subrange(vnet, 24, 3).text };
    }
}
