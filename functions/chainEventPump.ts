import { app } from '@azure/functions';
import * as df from 'durable-functions';
import { getServices } from '../shared/composition';
import { signatureRouter } from '../shared/proposals/chainSignatures';
import type { ChainSignature } from '../shared/chain/energyExchange';
import { checkSagaEvent, PROPOSAL_EVENT, proposalInstanceId } from '../shared/proposals/sagaContract';
import { deploymentRole } from './http/route';

/**
 * The core's chain event pump: every 5 seconds a run that follows the chain for
 * `FLEXCHANGE_CHAIN_PUMP_FOLLOW_MS`, reading the contract events past the confirmation depth
 * as soon as the head moves (polled every `FLEXCHANGE_CHAIN_PUMP_POLL_MS`), decoded, handed to
 * the handler, then the checkpoint. Runs never overlap (the host does not start a timer while
 * it runs; in Azure a timer runs on one instance at a time), and a run that finds the
 * checkpoint moved by someone else stops.
 * A party's `ProposalSigned` is raised on the proposal's signing saga (at least once: the
 * saga drops a repeat), or reconciled into the record when the saga has ended; every event is logged.
 */
// The core's job only: members learn of signatures through the core's events.
if (deploymentRole() === 'core') app.timer('chainEventPump', {
    schedule: '*/5 * * * * *',
    extraInputs: [df.input.durableClient()],
    handler: async (_timer, context) => {
        const client = df.getClient(context);
        const services = getServices();
        const router = signatureRouter(services.proposals(), (id, sig) => raiseSigned(client, id, sig), (m) => context.log(m));
        const runs = await services.chainEventPump(router).follow({ forMs: services.settings.FLEXCHANGE_CHAIN_PUMP_FOLLOW_MS, pollMs: services.settings.FLEXCHANGE_CHAIN_PUMP_POLL_MS });
        const handled = runs.reduce((n, r) => n + r.events, 0);
        const rewound = runs.find((r) => r.rewoundTo !== undefined);
        if (handled || rewound) context.log(`chain events pumped ${JSON.stringify({ events: handled, to: runs.at(-1)?.to, rewoundTo: rewound?.rewoundTo })}`);
    },
});

/** Raises a signature on the proposal's saga; false when the saga has ended (410) or is gone (404). */
async function raiseSigned(client: df.DurableClient, proposalId: string, sig: ChainSignature): Promise<boolean> {
    const signed = checkSagaEvent({ kind: 'signed', ...sig });
    try {
        await client.raiseEvent(proposalInstanceId(proposalId), PROPOSAL_EVENT, signed);
        return true;
    } catch (err) {
        const status = (err as { response?: { status?: number }; status?: number }).response?.status ?? (err as { status?: number }).status;
        if (status !== 404 && status !== 410 && !/404|410/.test(String((err as Error).message))) throw err;
        return false;
    }
}
