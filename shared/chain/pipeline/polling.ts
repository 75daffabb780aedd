import type { NonceLeases } from './nonceLeases';
import { errorMessage } from './nodeErrors';
import type { ReceiptWatch } from './receipts';
import type { Resender } from './resend';
import type { PipelineLog, PipelineSettings } from './settings';
import type { TrackedTransactions } from './tracking';

/**
 * The pipeline's heartbeat: while anything is watched or leased, a poll now and then renews or
 * releases the leases, looks at the chain for receipts, and re-sends what is not yet mined.
 */
export class PollLoop {
    #timer?: NodeJS.Timeout;
    #polling = false;
    #lastSubmitAt = 0;
    #stopped = false;

    constructor(
        private readonly tracked: TrackedTransactions,
        private readonly leases: NonceLeases,
        private readonly receipts: ReceiptWatch,
        private readonly resender: Resender,
        private readonly settings: PipelineSettings,
        private readonly log?: PipelineLog,
    ) {}

    /** A nonce was just assigned: while they keep coming, polls are spaced out. */
    submitted(at: number): void {
        this.#lastSubmitAt = at;
    }

    /** No more polls (one under way finishes). */
    stop(): void {
        this.#stopped = true;
        clearTimeout(this.#timer);
        this.#timer = undefined;
    }

    /** The next poll, unless one is due already. */
    schedule(): void {
        if (this.#timer || this.#stopped) return;
        // While transactions are pouring in, poll less often: each poll reads every new block's receipts,
        // and a node busy answering those takes in fewer transactions. Once the flow stops, poll at once.
        const busy = Date.now() - this.#lastSubmitAt < 200;
        const interval = busy ? Math.max(this.settings.pollIntervalMs, Math.min(2000, this.tracked.size)) : this.settings.pollIntervalMs;
        this.#timer = setTimeout(() => {
            this.#timer = undefined;
            void this.#poll().finally(() => {
                if (this.tracked.size > 0 || this.leases.anyHeld) this.schedule();
            });
        }, interval);
    }

    async #poll(): Promise<void> {
        if (this.#polling) return;
        this.#polling = true;
        try {
            await this.leases.releaseIdle();
            if (this.tracked.size === 0) {
                this.receipts.idle();
                return;
            }
            await this.receipts.check();
            await this.resender.resend();
        } catch (err) {
            this.log?.warn({ err: errorMessage(err) }, 'chain: polling failed; retrying');
        } finally {
            this.#polling = false;
        }
    }
}
