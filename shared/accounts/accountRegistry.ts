import { getAddress } from 'ethers';
import { setBounded } from '../boundedMap';
import type { Repository } from '../documents/repository';
import { Conflict, Invalid, NotFound } from '../errors';

/** An account a member deployment created and registered with the core (container `accounts`, partition `/orgId`). */
export interface RegisteredAccount {
    /** The checksummed address. */
    id: string;
    orgId: string;
    address: string;
    label: string;
    registeredAt: string;
    registeredBy: string;
}

/** Which organisation an address belongs to (container `addresses`, partition `/id`): claimed once, create-only. */
export interface AddressClaim {
    id: string;
    orgId: string;
    claimedAt: string;
}

export function checksumAddress(address: string, path = 'address'): string {
    try {
        return getAddress(address);
    } catch {
        throw new Invalid(`${address} is not an Ethereum address`, [{ path, message: 'not a valid address (checksum or format)' }]);
    }
}

/**
 * The core's registry of member accounts. An address belongs to one organisation for good:
 * the claim is a create-only write keyed by the address, so two organisations racing for
 * one address cannot both win, and registering again (a retried call) changes nothing.
 */
export class AccountRegistry {
    /**
     * Owners this process has read (10,000 at most): a claim is create-only and never removed, so an owner once
     * read stays the owner (each new proposal asks for both parties). An address without one is asked again.
     */
    readonly #owners = new Map<string, string>();

    constructor(
        private readonly accounts: Repository<RegisteredAccount>,
        private readonly claims: Repository<AddressClaim>,
    ) {}

    async register(orgId: string, input: { address: string; label: string }, by: string): Promise<{ account: RegisteredAccount; created: boolean }> {
        const address = checksumAddress(input.address, 'address');
        const now = new Date().toISOString();
        try {
            await this.claims.create({ id: address, orgId, claimedAt: now });
        } catch (err) {
            if (!(err instanceof Conflict)) throw err;
            const claim = await this.claims.read(address, address);
            if (claim && claim.item.orgId !== orgId) throw new Conflict(`The address ${address} is registered to another organisation`, 'address_taken');
        }
        const existing = await this.accounts.read(address, orgId);
        if (existing) return { account: existing.item, created: false };
        const account: RegisteredAccount = { id: address, orgId, address, label: input.label, registeredAt: now, registeredBy: by };
        try {
            return { account: (await this.accounts.create(account)).item, created: true };
        } catch (err) {
            if (!(err instanceof Conflict)) throw err;
            return { account: (await this.accounts.read(address, orgId))!.item, created: false };
        }
    }

    async list(orgId: string): Promise<RegisteredAccount[]> {
        const out: RegisteredAccount[] = [];
        let continuationToken: string | undefined;
        do {
            const page = await this.accounts.query({ query: 'SELECT * FROM c WHERE c.orgId = @org ORDER BY c.registeredAt', parameters: [{ name: '@org', value: orgId }] }, { partitionKey: orgId, continuationToken });
            out.push(...page.items);
            continuationToken = page.continuationToken;
        } while (continuationToken);
        return out;
    }

    /** Every registered account of every organisation (the top-up timer walks them), page by page. */
    async *all(): AsyncGenerator<RegisteredAccount> {
        let continuationToken: string | undefined;
        do {
            const page = await this.accounts.query({ query: 'SELECT * FROM c ORDER BY c.registeredAt' }, { continuationToken, maxItemCount: 200 });
            yield* page.items;
            continuationToken = page.continuationToken;
        } while (continuationToken);
    }

    /** The account, only within its organisation (another organisation's address is `NotFound`). */
    async get(orgId: string, address: string): Promise<RegisteredAccount> {
        const found = await this.accounts.read(checksumAddress(address), orgId);
        if (!found) throw new NotFound('No such account in this organisation');
        return found.item;
    }

    /** The organisation an address is registered to, if any. */
    async ownerOf(address: string): Promise<string | undefined> {
        const a = checksumAddress(address);
        const known = this.#owners.get(a);
        if (known) return known;
        const owner = (await this.claims.read(a, a))?.item.orgId;
        if (owner) setBounded(this.#owners, a, owner, 10_000);
        return owner;
    }
}
