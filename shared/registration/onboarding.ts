import type { AccountRegistry } from '../accounts/accountRegistry';
import type { Directory } from '../directory/directory';
import { updateItem, type Repository } from '../documents/repository';
import { Conflict } from '../errors';
import type { EventPublisher } from '../events/events';
import type { Treasury } from '../treasury/treasury';
import type { Organization } from './organizations';
import type { Registration, Registrations } from './registrations';

/** The part of a deployment client onboarding needs to ask a member deployment for its first account. */
export interface MemberApi {
    request(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: unknown }>;
}

/**
 * The steps of onboarding an approved organisation (the `memberOnboarding` workflow's
 * activities). Each is idempotent, because an activity runs at least once, and records itself
 * in the registration's steps, so a re-run resumes after the last step done.
 */
export class Onboarding {
    constructor(
        private readonly deps: {
            registrations: Registrations;
            organizations: Repository<Organization>;
            directory: Directory;
            accountRegistry: Pick<AccountRegistry, 'ownerOf'>;
            treasury: () => Pick<Treasury, 'grant'>;
            events: () => EventPublisher;
            memberApi: (baseUrl: string) => MemberApi;
            /** What the first account is granted (0: no grant). */
            initialGrantWei: bigint;
        },
    ) {}

    /** The organisation record (created once; a re-run finds it). */
    async organization(registrationId: string): Promise<{ orgId: string }> {
        const r = await this.#registration(registrationId);
        const now = new Date().toISOString();
        const { name, legalId, country, contactEmail, azureSubscriptionId } = r.organization;
        try {
            await this.deps.organizations.create({ id: r.orgId, name, legalId, country, contactEmail, ...(azureSubscriptionId ? { azureSubscriptionId } : {}), status: 'Onboarding', registrationId, createdAt: now, updatedAt: now });
        } catch (err) {
            if (!(err instanceof Conflict)) throw err;
        }
        await this.step(registrationId, 'organization');
        return { orgId: r.orgId };
    }

    /** The applicant, as the organisation's administrator (adding again updates, never duplicates). */
    async applicant(registrationId: string): Promise<{ userId: string }> {
        const r = await this.#registration(registrationId);
        const entry = await this.deps.directory.addUser(r.orgId, { email: r.applicant.email, name: r.applicant.name, roles: ['Org.Admin'] }, 'registration');
        await this.step(registrationId, 'applicant', entry.id);
        return { userId: entry.id };
    }

    /** A step done elsewhere (the subscription, the deployment), recorded in the registration. */
    async step(registrationId: string, step: string, detail?: string): Promise<{ step: string }> {
        await this.deps.registrations.step(registrationId, step, { detail });
        return { step };
    }

    /** The member deployment's app identity, entered in the directory for the organisation: its client-credential tokens now act for it. */
    async appIdentity(registrationId: string, principalId: string): Promise<{ principalId: string }> {
        const r = await this.#registration(registrationId);
        await this.deps.directory.register({ id: principalId, orgId: r.orgId, kind: 'app', name: `member deployment of ${r.orgId}`, roles: ['Deployment.Member'], createdAt: new Date().toISOString(), createdBy: 'onboarding' });
        await this.step(registrationId, 'app-identity', principalId);
        return { principalId };
    }

    /**
     * The organisation's first account, made on its member deployment (the key stays in the
     * member's vault; the member registers the address with the core). The idempotency key is
     * the registration's: a retried step gets the same account back.
     */
    async firstAccount(registrationId: string): Promise<{ address: string }> {
        const r = await this.#registration(registrationId);
        const url = (await this.deps.organizations.read(r.orgId, r.orgId))?.item.deployment?.url;
        if (!url) throw new Error(`The organisation ${r.orgId} has no member deployment yet`);
        const res = await this.deps.memberApi(url).request('POST', 'accounts', { label: 'primary' }, { 'idempotency-key': `onboarding:${registrationId}` });
        if (res.status !== 200 && res.status !== 201) throw new Error(`The member deployment refused the first account (${res.status}): ${(res.body as { detail?: string } | undefined)?.detail ?? ''}`);
        const address = (res.body as { address: string }).address;
        await this.step(registrationId, 'first-account', address);
        return { address };
    }

    /** The first account funded from the treasury (one grant per organisation, however often the step runs), with `account.funded`. */
    async fund(registrationId: string, address: string): Promise<{ address: string; txHash?: string }> {
        const r = await this.#registration(registrationId);
        if ((await this.deps.accountRegistry.ownerOf(address)) !== r.orgId) throw new Error(`The account ${address} is not registered to ${r.orgId}`);
        if (this.deps.initialGrantWei === 0n) {
            await this.step(registrationId, 'funded', 'no initial grant configured');
            return { address };
        }
        const grant = await this.deps.treasury().grant({ id: `onboarding:${r.orgId}`, orgId: r.orgId, address, amountWei: this.deps.initialGrantWei, reason: 'onboarding' });
        if (grant.state !== 'confirmed') throw new Error(`The grant to ${address} reverted (${grant.txHash})`);
        await this.deps.events().publish({
            id: `account.funded:${grant.id}`,
            type: 'account.funded',
            occurredAt: grant.updatedAt,
            orgIds: [r.orgId],
            subject: `orgs/${r.orgId}/accounts/${address}`,
            data: { orgId: r.orgId, address, amountWei: grant.amountWei, reason: grant.reason, txHash: grant.txHash, blockNumber: grant.blockNumber },
        });
        await this.step(registrationId, 'funded', grant.txHash);
        return { address, txHash: grant.txHash };
    }

    /** `org.activated` for the new member (on its own subscription); a fixed event id, so a retried step is dropped as a duplicate. */
    async announce(registrationId: string): Promise<{ orgId: string }> {
        const r = await this.#registration(registrationId);
        const org = await this.deps.organizations.read(r.orgId, r.orgId);
        await this.deps.events().publish({
            id: `org.activated:${r.orgId}`,
            type: 'org.activated',
            occurredAt: new Date().toISOString(),
            orgIds: [r.orgId],
            subject: `orgs/${r.orgId}`,
            data: { orgId: r.orgId, name: r.organization.name, memberUrl: org?.item.deployment?.url ?? null },
        });
        await this.step(registrationId, 'announced');
        return { orgId: r.orgId };
    }

    /** The organisation is active once every step is done. */
    async activate(registrationId: string): Promise<{ orgId: string }> {
        const r = await this.#registration(registrationId);
        const active = (current: Organization | undefined) => (current && current.status !== 'Active' ? { ...current, status: 'Active' as const, updatedAt: new Date().toISOString() } : undefined);
        await updateItem(this.deps.organizations, r.orgId, r.orgId, active, { conflict: () => new Conflict(`The organisation ${r.orgId} kept changing`) });
        return { orgId: r.orgId };
    }

    #registration(registrationId: string): Promise<Registration> {
        return this.deps.registrations.get(registrationId);
    }
}
