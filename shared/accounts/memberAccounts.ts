import { createHash, randomUUID } from 'node:crypto';
import { computeAddress, formatEther } from 'ethers';
import type { DeploymentClient } from '../auth/deploymentClient';
import { setBounded } from '../boundedMap';
import { readKeystoreAddress } from '../chain/operator';
import { InsufficientFunds, type ChainCall, type TransactionPipeline, type TxSummary } from '../chain/pipeline';
import type { AccountKeyRef, AccountKeys, Custody } from '../chain/signers';
import type { Repository } from '../documents/repository';
import { AppError, Conflict, Upstream } from '../errors';
import type { KeyStore, SecretStore } from '../vault/vault';

/** An account of this member deployment (its own database, container `accounts`): the key stays in its own vault. */
export interface MemberAccount {
    /** The key's name in the vault. */
    id: string;
    orgId: string;
    address: string;
    label: string;
    custody: Custody;
    createdAt: string;
    /** Set once the core has the address. */
    registeredAt?: string;
}

/** The core's answer to a top-up request (`POST /orgs/{orgId}/accounts/{address}/topup`). */
export type TopUpAnswer =
    | { granted: true; amountWei: string; txHash: string | null; state: 'submitted' | 'confirmed' | 'reverted' }
    | { granted: false; reason: 'above_threshold' | 'already_topped_up' | 'daily_cap' | 'treasury_floor'; detail: string; txHash: string | null };

/** An account the treasury's policy will not fund now: signing with it would stall, so it is refused (409). */
export class AccountUnfunded extends Conflict {
    constructor(
        message: string,
        readonly reason: Extract<TopUpAnswer, { granted: false }>['reason'],
    ) {
        super(message, 'account_unfunded');
    }
}

/** A transaction submitted from one of the member's accounts, and whether it waits for ether. */
export interface FundedSubmission {
    tx: TxSummary;
    /** `waiting_for_funds`: stored and sent, but the node takes it only once the account's top-up lands. */
    status: 'submitted' | 'waiting_for_funds';
    /** Set when the account was short: its balance, what the transaction may cost, and the core's answer (null: the core did not answer). */
    funding?: { balanceWei: string; neededWei: string; topUp: Extract<TopUpAnswer, { granted: true }> | null };
}

/** Where a member registers its accounts and asks for ether for them: the core (`POST /orgs/{orgId}/accounts[/{address}/topup]`). */
export interface AccountRegistration {
    register(address: string, label: string): Promise<void>;
    topUp(address: string): Promise<TopUpAnswer>;
}

/** The core's account registry over its API, with the member's client-credential token. */
export class CoreAccountRegistration implements AccountRegistration {
    constructor(
        private readonly core: DeploymentClient,
        private readonly orgId: string,
    ) {}

    async register(address: string, label: string): Promise<void> {
        const res = await this.core.request('POST', `orgs/${encodeURIComponent(this.orgId)}/accounts`, { address, label });
        if (res.status === 200 || res.status === 201) return;
        const detail = (res.body as { detail?: string } | undefined)?.detail;
        if (res.status === 409) throw new Conflict(`The core refused the address: ${detail ?? 'conflict'}`, 'address_taken');
        throw new Upstream(`The core refused the account registration (${res.status}${detail ? `: ${detail}` : ''})`);
    }

    async topUp(address: string): Promise<TopUpAnswer> {
        const res = await this.core.request('POST', `orgs/${encodeURIComponent(this.orgId)}/accounts/${encodeURIComponent(address)}/topup`);
        if (res.status === 200) return res.body as TopUpAnswer;
        const detail = (res.body as { detail?: string } | undefined)?.detail;
        throw new Upstream(`The core refused the top-up of ${address} (${res.status}${detail ? `: ${detail}` : ''})`);
    }
}

/**
 * The member's accounts. A new account's key is made in this deployment's vault (custody from
 * settings), recorded here, then registered with the core. With an idempotency key the key's
 * name is derived from it, so a retried request (or a crash between the steps) finds the same
 * key and finishes the steps left, never making a second key.
 */
export class MemberAccounts {
    /**
     * Key references this process has looked up, by lowercase address (10,000 at most): an account's name, custody
     * and address are fixed when it is made and accounts are never removed, so a reference once found stays true
     * (each signature asks). An address not found is asked again.
     */
    readonly #keyRefs = new Map<string, AccountKeyRef>();

    constructor(
        private readonly repo: Repository<MemberAccount>,
        private readonly keys: AccountKeys,
        private readonly vault: { secrets: SecretStore; keys: KeyStore },
        private readonly core: AccountRegistration,
        private readonly opts: { orgId: string; custody: Custody },
    ) {}

    async create(label: string, idempotencyKey?: string): Promise<{ account: MemberAccount; created: boolean }> {
        const name = idempotencyKey ? `acct-${createHash('sha256').update(`${this.opts.orgId}\n${idempotencyKey}`).digest('hex').slice(0, 40)}` : `acct-${randomUUID()}`;
        const known = await this.repo.read(name, this.opts.orgId);
        if (known) {
            if (known.item.label !== label) throw new AppError('The idempotency key was used for a different account', 422, 'idempotency_mismatch');
            return { account: await this.#registered(known.item, known.etag), created: false };
        }
        const ref = await this.#key(name);
        const account: MemberAccount = { id: name, orgId: this.opts.orgId, address: ref.address, label, custody: ref.custody, createdAt: new Date().toISOString() };
        let stored;
        try {
            stored = await this.repo.create(account);
        } catch (err) {
            if (!(err instanceof Conflict)) throw err;
            stored = (await this.repo.read(name, this.opts.orgId))!;
        }
        return { account: await this.#registered(stored.item, stored.etag), created: true };
    }

    async list(): Promise<MemberAccount[]> {
        const out: MemberAccount[] = [];
        let continuationToken: string | undefined;
        do {
            const page = await this.repo.query({ query: 'SELECT * FROM c WHERE c.orgId = @org ORDER BY c.createdAt', parameters: [{ name: '@org', value: this.opts.orgId }] }, { partitionKey: this.opts.orgId, continuationToken });
            out.push(...page.items);
            continuationToken = page.continuationToken;
        } while (continuationToken);
        return out;
    }

    /**
     * Asks the core's treasury for ether for one of this member's accounts, within its top-up policy
     * (the same grant per window as its timer). The policy refusing → `AccountUnfunded`, naming the limit.
     */
    async requestFunds(address: string): Promise<Extract<TopUpAnswer, { granted: true }>> {
        const answer = await this.core.topUp(address);
        if (!answer.granted) throw new AccountUnfunded(`The treasury will not fund ${address}: ${answer.detail}`, answer.reason);
        return answer;
    }

    /**
     * Submits a transaction from one of this member's accounts, checking first that the account can pay
     * for it. Short of ether: the core is asked for a top-up at once (within its policy); a refusal is
     * `AccountUnfunded` (nothing sent); a confirmed top-up lets it go out now; a top-up the core could
     * not confirm yet leaves it stored and re-sent until the ether arrives (`waiting_for_funds`).
     */
    async submitFunded(pipeline: Pick<TransactionPipeline, 'submit'>, call: ChainCall, log?: (message: string) => void): Promise<FundedSubmission> {
        let short: InsufficientFunds;
        try {
            return { tx: await pipeline.submit({ ...call, requireFunds: true }), status: 'submitted' };
        } catch (err) {
            if (!(err instanceof InsufficientFunds)) throw err;
            short = err;
        }
        const figures = { balanceWei: short.balanceWei.toString(), neededWei: short.neededWei.toString() };
        let topUp: Extract<TopUpAnswer, { granted: true }> | null = null;
        try {
            topUp = await this.requestFunds(call.from.address);
        } catch (err) {
            if (err instanceof AccountUnfunded) throw new AccountUnfunded(`${err.message}. It holds ${formatEther(short.balanceWei)} ETH; the transaction needs up to ${formatEther(short.neededWei)} ETH`, err.reason);
            // The core did not answer: the transaction goes out anyway; the pipeline asks again when the node refuses it.
            log?.(`asking the core to fund ${call.from.address} failed: ${(err as Error).message}`);
        }
        if (topUp?.state === 'confirmed') {
            try {
                return { tx: await pipeline.submit({ ...call, requireFunds: true }), status: 'submitted', funding: { ...figures, topUp } };
            } catch (err) {
                if (!(err instanceof InsufficientFunds)) throw err;
            }
        }
        return { tx: await pipeline.submit(call), status: 'waiting_for_funds', funding: { ...figures, topUp } };
    }

    /** The key reference of one of this member's accounts, by address, for signing. */
    async keyOf(address: string): Promise<AccountKeyRef | undefined> {
        const wanted = address.toLowerCase();
        const known = this.#keyRefs.get(wanted);
        if (known) return { ...known };
        const found = (await this.list()).find((a) => a.address.toLowerCase() === wanted);
        if (!found) return undefined;
        const ref: AccountKeyRef = { custody: found.custody, name: found.id, address: found.address };
        setBounded(this.#keyRefs, wanted, ref, 10_000);
        return { ...ref };
    }

    /** The key under `name`: made now, or the one an interrupted attempt made before. */
    async #key(name: string): Promise<AccountKeyRef> {
        try {
            return await this.keys.create(name, this.opts.custody);
        } catch (err) {
            if (!(err instanceof Conflict)) throw err;
            if (this.opts.custody === 'keyvault') {
                const pub = await this.vault.keys.publicKey(name);
                if (pub) return { custody: 'keyvault', name, address: computeAddress('0x' + pub.toString('hex')) };
            } else {
                const address = await readKeystoreAddress(this.vault.secrets, name);
                if (address) return { custody: 'keystore', name, address };
            }
            throw err;
        }
    }

    async #registered(account: MemberAccount, etag: string): Promise<MemberAccount> {
        if (account.registeredAt) return account;
        await this.core.register(account.address, account.label);
        const next = { ...account, registeredAt: new Date().toISOString() };
        try {
            return (await this.repo.replace(next, etag)).item;
        } catch (err) {
            if (err instanceof Conflict) return next; // a concurrent retry recorded it
            throw err;
        }
    }
}
