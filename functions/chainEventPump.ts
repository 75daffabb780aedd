import { app } from '@azure/functions';
import type { ChainEvent, ChainEventHandler } from '../shared/chain/eventPump';
import { getServices } from '../shared/composition';
import { deploymentRole } from './http/route';

/**
 * The core's chain event pump: every 5 seconds, the contract events past the
 * confirmation depth since the checkpoint, decoded, handed to the handler, then the
 * checkpoint. Runs never overlap (the host does not start a timer while it runs).
 * Today's handler records what arrived in the log; the signing saga and event
 * publishing plug in here.
 */
// The core's job only: members learn of signatures through the core's events.
if (deploymentRole() === 'core') app.timer('chainEventPump', {
    schedule: '*/5 * * * * *',
    handler: async (_timer, context) => {
        const handler: ChainEventHandler = {
            handle: async (events: ChainEvent[]) => {
                for (const e of events) context.log(`chain event ${JSON.stringify({ id: e.id, name: e.name, version: e.version, block: e.blockNumber, args: e.args })}`);
            },
        };
        const runs = await getServices().chain().eventPump(handler).catchUp();
        const handled = runs.reduce((n, r) => n + r.events, 0);
        const rewound = runs.find((r) => r.rewoundTo !== undefined);
        if (handled || rewound) context.log(`chain events pumped ${JSON.stringify({ events: handled, to: runs.at(-1)?.to, rewoundTo: rewound?.rewoundTo })}`);
    },
});
