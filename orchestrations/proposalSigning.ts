import * as df from 'durable-functions';
import type { OrchestrationContext, OrchestrationHandler, Task, TimerTask } from 'durable-functions';
import { z } from 'zod';
import { getServices } from '../shared/composition';
import { activityRetry } from './retry';
import { AppError } from '../shared/errors';
import { PROPOSAL_EVENT, PROPOSAL_SAGA, SAGA_STEPS, type ProposalSagaEvent, type ProposalSigningInput } from '../shared/proposals/sagaContract';
import { PROPOSAL_EVENT_TYPES, SAGA_OUTCOMES, type ProposalStatus } from '../shared/proposals/vocabulary';
import { ethAddress, parseInput } from '../shared/validation';
import { ACTIVITIES } from './names';

/**
 * The `proposalSigning` saga (instance `proposal-<id>`): pin the latest contract version and
 * anchor the proposal on it, publishing `proposal.created` to every party; then wait for each
 * party's on-chain signature or a rejection (`ProposalEvent`: signatures raised by the chain
 * event pump), or the deadline, reminding the parties' traders once on the way. All signed → Completed
 * (the last signature and the conclusion are one step); rejected or expired → cancelled on-chain.
 * Every ledger call goes through the pipeline with an operation id of its own, so a retried
 * activity never sends a second transaction. A saga started before `steps: 2` replays the steps
 * it was started with: a publish step after the anchor, a conclude step after the last signature.
 */
export { PROPOSAL_EVENT, proposalInstanceId, type PartySigned, type ProposalSagaEvent, type ProposalSigningInput, type Rejection } from '../shared/proposals/sagaContract';

const retry = activityRetry(6);

/** The saga itself, exported so it can be replayed against made-up histories without a host. */
export const proposalSigningSaga: OrchestrationHandler = function* (context: OrchestrationContext) {
    const input = context.df.getInput<ProposalSigningInput>();
    const id = input.proposalId;
    let anchored: { status: ProposalStatus; accounts: string[] };
    try {
        anchored = yield context.df.callActivityWithRetry(ACTIVITIES.proposalAnchor, retry, { proposalId: id });
    } catch (err) {
        yield context.df.callActivityWithRetry(ACTIVITIES.proposalFail, retry, { proposalId: id, reason: err instanceof Error ? err.message : String(err) });
        return 'Failed';
    }
    if (anchored.status === 'Failed') return 'Failed';
    const folded = input.steps === SAGA_STEPS;
    if (!folded) yield context.df.callActivityWithRetry(ACTIVITIES.proposalPublish, retry, { proposalId: id, type: 'proposal.created' });

    const pending = new Set(anchored.accounts.map((a) => a.toLowerCase()));
    const signed: string[] = [];
    let reminded = Date.parse(input.remindAt) <= context.df.currentUtcDateTime.getTime() || Date.parse(input.remindAt) >= Date.parse(input.expiresAt);
    for (;;) {
        context.df.setCustomStatus({ signed: [...signed], pending: [...pending] });
        // Fresh tasks every turn (one event, one timer): durable-functions 3 mis-tracks tasks yielded twice.
        const event = context.df.waitForExternalEvent(PROPOSAL_EVENT);
        const timer: TimerTask = context.df.createTimer(new Date(reminded ? input.expiresAt : input.remindAt));
        const winner: Task = yield context.df.Task.any([event, timer]);
        if (winner === timer) {
            if (!reminded) {
                reminded = true;
                yield context.df.callActivityWithRetry(ACTIVITIES.proposalRemind, retry, { proposalId: id });
                continue;
            }
            const status: ProposalStatus = yield context.df.callActivityWithRetry(ACTIVITIES.proposalConclude, retry, { proposalId: id, outcome: 'Expired' });
            return status;
        }
        timer.cancel();
        const e = event.result as ProposalSagaEvent;
        if (e.kind === 'rejected') {
            const status: ProposalStatus = yield context.df.callActivityWithRetry(ACTIVITIES.proposalConclude, retry, { proposalId: id, outcome: 'Rejected', reason: e.reason, rejectedBy: { orgId: e.orgId, by: e.by } });
            return status;
        }
        const account = String(e.account).toLowerCase();
        if (!pending.has(account)) continue; // a redelivered event, or not a party
        pending.delete(account);
        signed.push(account);
        const signature = { proposalId: id, account: e.account, txHash: e.txHash, blockNumber: e.blockNumber };
        if (folded && pending.size === 0) {
            context.df.setCustomStatus({ signed: [...signed], pending: [] });
            const status: ProposalStatus = yield context.df.callActivityWithRetry(ACTIVITIES.proposalSignedLast, retry, signature);
            return status;
        }
        yield context.df.callActivityWithRetry(ACTIVITIES.proposalSigned, retry, signature);
        if (pending.size > 0) continue;
        context.df.setCustomStatus({ signed: [...signed], pending: [] });
        const status: ProposalStatus = yield context.df.callActivityWithRetry(ACTIVITIES.proposalConclude, retry, { proposalId: id, outcome: 'Completed' });
        return status;
    }
};
df.app.orchestration(PROPOSAL_SAGA, proposalSigningSaga);

const byProposal = z.object({ proposalId: z.string().uuid() }).strict();

/** Pins the contract version and anchors the proposal; a refusal by the ledger ends it `Failed` (not retried). */
df.app.activity(ACTIVITIES.proposalAnchor, {
    handler: async (raw: unknown) => {
        const { proposalId } = parseInput(byProposal, raw);
        const proposals = getServices().proposals();
        try {
            const p = await proposals.anchor(proposalId);
            return { status: p.status, accounts: p.parties.map((x) => x.account) };
        } catch (err) {
            if (err instanceof AppError && err.code === 'anchor_failed') return { status: 'Failed', accounts: [] };
            throw err;
        }
    },
});

df.app.activity(ACTIVITIES.proposalFail, {
    handler: async (raw: unknown) => {
        const { proposalId, reason } = parseInput(z.object({ proposalId: z.string().uuid(), reason: z.string().max(2000) }).strict(), raw);
        await getServices().proposals().update(proposalId, (p) => (p.status === 'Failed' ? undefined : { ...p, status: 'Failed', reason }));
        return { status: 'Failed' };
    },
});

const publishInput = z.object({ proposalId: z.string().uuid(), type: z.enum(PROPOSAL_EVENT_TYPES) }).strict();

/** Publishes what the proposal's last step recorded (its events are written with the step's change, numbered): a step of sagas started before `steps: 2`. */
df.app.activity(ACTIVITIES.proposalPublish, {
    handler: async (raw: unknown) => {
        const { proposalId } = parseInput(publishInput, raw);
        const p = await getServices().proposals().publishPending(proposalId);
        return { status: p.status };
    },
});

const signedInput = z.object({ proposalId: z.string().uuid(), account: ethAddress, txHash: z.string().regex(/^0x[0-9a-fA-F]{64}$/), blockNumber: z.number().int().nonnegative() }).strict();

/** Records a party's signature and tells every party. */
df.app.activity(ACTIVITIES.proposalSigned, {
    handler: async (raw: unknown) => {
        const { proposalId, ...sig } = parseInput(signedInput, raw);
        await getServices().proposals().recordSignature(proposalId, sig);
        return { account: sig.account };
    },
});

/** Records the last party's signature, tells every party, and ends the proposal as the ledger holds it (Completed). */
df.app.activity(ACTIVITIES.proposalSignedLast, {
    handler: async (raw: unknown) => {
        const { proposalId, ...sig } = parseInput(signedInput, raw);
        const p = await getServices().proposals().recordLastSignature(proposalId, sig);
        return p.status;
    },
});

const concludeInput = z
    .object({
        proposalId: z.string().uuid(),
        outcome: z.enum(SAGA_OUTCOMES),
        reason: z.string().max(2000).optional(),
        rejectedBy: z.object({ orgId: z.string(), by: z.string() }).strict().optional(),
    })
    .strict();

/**
 * Ends the proposal as the ledger ends it: completed, or closed on-chain (rejected, expired);
 * a proposal every party signed on-chain first is completed, whichever the saga saw first.
 */
df.app.activity(ACTIVITIES.proposalConclude, {
    handler: async (raw: unknown) => {
        const { proposalId, outcome, ...detail } = parseInput(concludeInput, raw);
        const p = await getServices().proposals().conclude(proposalId, outcome, detail);
        return p.status;
    },
});

/** Mails the traders of every party that has not signed yet. */
df.app.activity(ACTIVITIES.proposalRemind, {
    handler: async (raw: unknown) => {
        const { proposalId } = parseInput(byProposal, raw);
        const services = getServices();
        const p = await services.proposals().get(proposalId);
        if (p.status !== 'AwaitingSignatures') return { reminded: 0 };
        let reminded = 0;
        for (const party of p.parties.filter((x) => !x.signed)) {
            const traders = (await services.directory.listUsers(party.orgId)).filter((u) => u.roles.includes('Org.Trader') && u.email);
            if (traders.length === 0) continue;
            await services.mail.send({
                to: traders.map((t) => t.email!),
                subject: `Reminder: proposal ${p.id.slice(0, 8)} awaits your signature`,
                text: `The proposal ${p.id} (${p.terms.product}, ${p.terms.quantityMWh} MWh at ${p.terms.priceGbpPerMWh} GBP/MWh) expires ${p.expiresAt}.\nYour organisation's account ${party.account} has not signed it yet.\nSign through your member deployment: POST /api/proposals/${p.id}/signature\n`,
            });
            reminded++;
        }
        return { reminded };
    },
});
