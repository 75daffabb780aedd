import type { ChainSender, TransactionPipeline, TxOutcome } from '../chain/pipeline';
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
}
