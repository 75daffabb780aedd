import { formatEther } from 'ethers';
import type { ChainSender, TransactionPipeline, TxOutcome } from '../chain/pipeline';
import type { EventPublisher } from '../events/events';
import type { Repository } from '../documents/repository';
import { Conflict } from '../errors';

/** One grant of ether from the treasury (container `treasury`, partition `/id`), keyed by its operation id. */
export interface Grant {
    id: string;
    kind: 'grant';
    orgId: string;
    address: string;
    amountWei: string;
    reason: 'onboarding' | 'topup';
    state: 'submitted' | 'confirmed' | 'reverted';
    txHash?: string;
    blockNumber?: number;
    createdAt: string;
    updatedAt: string;
}

const GRANT_ID_RE = /^[0-9A-Za-z:._-]{1,180}$/;

/** The top-up policy (settings): below `thresholdWei` an account is topped up to `targetWei`, within the caps. */
export interface TopUpPolicy {
    thresholdWei: bigint;
    targetWei: bigint;
    /** At most this much to one account per UTC day. */
    dailyCapWei: bigint;
    /** The treasury keeps at least this much: below it, no more grants and `treasury.low` once per window. */
    floorWei: bigint;
    /** One top-up per account per window, however many runs overlap. */
    windowSeconds: number;
}

export type TopUpResult =
    | { granted: true; grant: Grant }
    | { granted: false; reason: 'above_threshold' | 'already_topped_up' | 'daily_cap' | 'treasury_floor'; grant?: Grant };

export type TopUpRefusal = Extract<TopUpResult, { granted: false }>['reason'];

/** Why the policy gives an account nothing now, naming the limit and its setting (for problems and answers). */
export function refusalDetail(reason: TopUpRefusal, policy: TopUpPolicy): string {
    switch (reason) {
        case 'daily_cap':
            return `the daily cap of ${formatEther(policy.dailyCapWei)} ETH per account (FLEXCHANGE_TOPUP_DAILY_CAP_ETH) is used up for today (UTC)`;
        case 'treasury_floor':
            return `the treasury would fall below its floor of ${formatEther(policy.floorWei)} ETH (FLEXCHANGE_TREASURY_FLOOR_ETH); the operator must refill it`;
        case 'above_threshold':
            return `the account holds at least the top-up threshold of ${formatEther(policy.thresholdWei)} ETH (FLEXCHANGE_TOPUP_THRESHOLD_ETH)`;
        case 'already_topped_up':
            return `the account was topped up in this window already (one top-up per ${policy.windowSeconds} s, FLEXCHANGE_TOPUP_WINDOW_SECONDS)`;
    }
}

/** A top-up's outcome as the API shows it (the top-up route, and account registration's `funding`). */
export function topUpView(r: TopUpResult, policy: TopUpPolicy) {
    return r.granted
        ? { granted: true as const, amountWei: r.grant.amountWei, txHash: r.grant.txHash ?? null, state: r.grant.state }
        : { granted: false as const, reason: r.reason, detail: refusalDetail(r.reason, policy), txHash: r.grant?.txHash ?? null };
}

/**
 * The treasury: the core's operator account funding members' accounts through the
 * transaction pipeline. A grant is keyed by an operation id the caller makes stable (e.g.
 * `onboarding:<orgId>`): a retried activity finds the grant and its one transaction,
 * never a second transfer.
 */
export class Treasury {
    constructor(
        private readonly grants: Repository<Grant>,
        private readonly pipeline: TransactionPipeline,
        private readonly operator: () => Promise<ChainSender>,
    ) {}

    async grant(input: { id: string; orgId: string; address: string; amountWei: bigint; reason: Grant['reason'] }): Promise<Grant> {
        if (!GRANT_ID_RE.test(input.id)) throw new Error(`Not a grant id: ${input.id}`);
        const now = new Date().toISOString();
        let stored = await this.grants.read(input.id, input.id);
        if (!stored) {
            try {
                stored = await this.grants.create({ id: input.id, kind: 'grant', orgId: input.orgId, address: input.address, amountWei: input.amountWei.toString(), reason: input.reason, state: 'submitted', createdAt: now, updatedAt: now });
            } catch (err) {
                if (!(err instanceof Conflict)) throw err;
                stored = (await this.grants.read(input.id, input.id))!;
            }
        }
        const grant = stored.item;
        if (grant.address !== input.address || grant.amountWei !== input.amountWei.toString()) throw new Conflict(`The grant ${input.id} was made for a different transfer`, 'grant_mismatch');
        if (grant.state !== 'submitted') return grant;
        const from = await this.operator();
        const outcome: TxOutcome = await this.pipeline.send({ operationId: `treasury:${grant.id}`, from, to: grant.address, data: '0x', value: BigInt(grant.amountWei), gasLimit: 21_000n, label: `grant ${grant.id}` }, { timeoutMs: 120_000 });
        const done: Grant = { ...grant, state: outcome.state === 'confirmed' ? 'confirmed' : 'reverted', txHash: outcome.hash, blockNumber: outcome.blockNumber, updatedAt: new Date().toISOString() };
        try {
            return (await this.grants.replace(done, stored.etag)).item;
        } catch (err) {
            if (err instanceof Conflict) return done; // a concurrent retry recorded the same outcome
            throw err;
        }
    }

    async list(opts: { orgId?: string; limit?: number } = {}): Promise<Grant[]> {
        const page = await this.grants.query(
            opts.orgId
                ? { query: 'SELECT * FROM c WHERE c.kind = "grant" AND c.orgId = @org ORDER BY c.createdAt DESC', parameters: [{ name: '@org', value: opts.orgId }] }
                : { query: 'SELECT * FROM c WHERE c.kind = "grant" ORDER BY c.createdAt DESC' },
            { maxItemCount: opts.limit ?? 100 },
        );
        return page.items;
    }

    async address(): Promise<string> {
        return (await this.operator()).address;
    }

    /**
     * Tops one account up under the policy. The grant id is the account and the window, so two
     * overlapping runs (or a retried activity) fund it once: whoever comes second finds the grant.
     */
    async topUp(input: { orgId: string; address: string; balanceOf: (address: string) => Promise<bigint>; policy: TopUpPolicy; events?: EventPublisher; now?: number }): Promise<TopUpResult> {
        const { policy } = input;
        const now = input.now ?? Date.now();
        const window = Math.floor(now / 1000 / policy.windowSeconds);
        const id = `topup:${input.address}:${window}`;
        const existing = await this.grants.read(id, id);
        if (existing) {
            // Finish a grant an earlier run recorded but did not see mined.
            return existing.item.state === 'submitted' ? { granted: true, grant: await this.grant({ id, orgId: existing.item.orgId, address: existing.item.address, amountWei: BigInt(existing.item.amountWei), reason: 'topup' }) } : { granted: false, reason: 'already_topped_up', grant: existing.item };
        }
        const balance = await input.balanceOf(input.address);
        if (balance >= policy.thresholdWei) return { granted: false, reason: 'above_threshold' };
        const day = new Date(now).toISOString().slice(0, 10);
        const today = (await this.list({ orgId: input.orgId, limit: 500 })).filter((g) => g.address === input.address && g.reason === 'topup' && g.state !== 'reverted' && g.createdAt.startsWith(day));
        const spent = today.reduce((sum, g) => sum + BigInt(g.amountWei), 0n);
        let amount = policy.targetWei - balance;
        if (spent + amount > policy.dailyCapWei) amount = policy.dailyCapWei - spent;
        if (amount <= 0n) return { granted: false, reason: 'daily_cap' };
        const treasury = await this.address();
        if ((await input.balanceOf(treasury)) - amount < policy.floorWei) {
            await input.events?.publish({
                // Once per window: the fixed id makes every further run's event a duplicate.
                id: `treasury.low:${window}`,
                type: 'treasury.low',
                occurredAt: new Date(now).toISOString(),
                orgIds: ['operator'],
                subject: `treasury/${treasury}`,
                data: { address: treasury, floorWei: policy.floorWei.toString(), wantedWei: amount.toString(), for: input.address },
            });
            return { granted: false, reason: 'treasury_floor' };
        }
        try {
            return { granted: true, grant: await this.grant({ id, orgId: input.orgId, address: input.address, amountWei: amount, reason: 'topup' }) };
        } catch (err) {
            // An overlapping run recorded this window's grant first (with its own amount): that one stands.
            if (err instanceof Conflict && err.code === 'grant_mismatch') return { granted: false, reason: 'already_topped_up', grant: (await this.grants.read(id, id))?.item };
            throw err;
        }
    }
}
