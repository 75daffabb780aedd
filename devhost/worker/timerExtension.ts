import { Cron } from 'croner';
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../files';
import path from 'node:path';
import { parseTimeSpan } from '../appFolder';
import type { AppContext, BindingExtension } from './extension';
import type { RegisteredFunction } from './functionRuntime';

/** A firing later than this after its scheduled time counts as past due. */
const PAST_DUE_TOLERANCE_MS = 1000;

interface Schedule {
    /** The first occurrence strictly after `after`. */
    next(after: Date): Date;
    /** Shortest gap between occurrences, to default `useMonitor` as the host does. */
    intervalMs: number;
    text: string;
}

interface ScheduleStatus {
    last?: string;
    next?: string;
    lastUpdated?: string;
}

interface Timer {
    fn: RegisteredFunction;
    schedule: Schedule;
    runOnStartup: boolean;
    useMonitor: boolean;
    statusFile: string;
    wake?: () => void;
    loop?: Promise<void>;
}

export function parseSchedule(text: string, timezone = 'UTC'): Schedule {
    const span = parseTimeSpan(text);
    if (span !== undefined) {
        if (span <= 0) throw new Error(`Timer schedule "${text}" must be a positive interval`);
        // A TimeSpan schedule runs at fixed intervals counted from the Unix epoch.
        return {
            text,
            intervalMs: span,
            next: (after) => new Date((Math.floor(after.getTime() / span) + 1) * span),
        };
    }
    const cron = new Cron(text, { mode: '6-part', paused: true, timezone, domAndDow: true });
    const [a, b] = cron.nextRuns(2, new Date());
    return {
        text,
        intervalMs: a && b ? b.getTime() - a.getTime() : Number.POSITIVE_INFINITY,
        next: (after) => {
            const n = cron.nextRun(after);
            if (!n) throw new Error(`Timer schedule "${text}" has no further occurrences`);
            return n;
        },
    };
}

/** Timer triggers on 6-field NCRONTAB or TimeSpan schedules, with schedule monitoring like the host's. */
export class TimerExtension implements BindingExtension {
    readonly name = 'timer';
    readonly triggerTypes = ['timerTrigger'];

    readonly #app: AppContext;
    readonly #timers: Timer[] = [];
    #stopped = false;

    constructor(app: AppContext) {
        this.#app = app;
    }

    addFunction(fn: RegisteredFunction): void {
        const binding = fn.metadata.bindings[fn.triggerName];
        if (typeof binding.schedule !== 'string') throw new Error(`Timer function "${fn.metadata.name}" has no schedule`);
        const text = this.#app.resolve(binding.schedule);
        const timezone = this.#app.settings.WEBSITE_TIME_ZONE ?? this.#app.settings.TZ ?? 'UTC';
        const schedule = parseSchedule(text, timezone);
        const useMonitor = typeof binding.useMonitor === 'boolean' ? binding.useMonitor : schedule.intervalMs >= 60_000;
        this.#timers.push({
            fn,
            schedule,
            runOnStartup: binding.runOnStartup === true,
            useMonitor,
            statusFile: path.join(this.#app.stateDir, 'timers', this.#app.name, `${fn.metadata.name}.json`),
        });
    }

    describe(fn: RegisteredFunction): string {
        const t = this.#timers.find((x) => x.fn === fn);
        return t ? `timer "${t.schedule.text}"${t.runOnStartup ? ', runOnStartup' : ''}` : '';
    }

    async start(): Promise<void> {
        for (const timer of this.#timers) {
            timer.loop = this.#run(timer).catch((err: Error) =>
                this.#app.logger.error({ function: timer.fn.metadata.name, err: { message: err.message } }, 'timer stopped'),
            );
        }
    }

    async stop(): Promise<void> {
        this.#stopped = true;
        for (const t of this.#timers) t.wake?.();
        await Promise.all(this.#timers.map((t) => t.loop));
    }

    async #run(timer: Timer): Promise<void> {
        const status = timer.useMonitor ? this.#readStatus(timer) : {};
        const now = Date.now();
        const missed = status.next !== undefined && now - Date.parse(status.next) > PAST_DUE_TOLERANCE_MS;
        let last = status.last;
        if (missed || timer.runOnStartup) {
            last = await this.#fire(timer, missed ? new Date(Date.parse(status.next!)) : new Date(now), missed, last);
        }
        let scheduled = timer.schedule.next(new Date());
        let missedDuringRun = false;
        while (!this.#stopped) {
            await this.#sleepUntil(timer, scheduled);
            if (this.#stopped) break;
            const pastDue = missedDuringRun || Date.now() - scheduled.getTime() > PAST_DUE_TOLERANCE_MS;
            last = await this.#fire(timer, scheduled, pastDue, last);
            // Occurrences that came while this run was busy collapse into one past-due run: runs never overlap.
            let following = timer.schedule.next(scheduled);
            let latestMissed: Date | undefined;
            for (let i = 0; following.getTime() <= Date.now() && i < 100_000; i++) {
                latestMissed = following;
                following = timer.schedule.next(following);
            }
            missedDuringRun = latestMissed !== undefined;
            scheduled = latestMissed ?? following;
        }
    }

    async #fire(timer: Timer, scheduled: Date, isPastDue: boolean, last: string | undefined): Promise<string> {
        const next = timer.schedule.next(new Date(Math.max(Date.now(), scheduled.getTime())));
        const lastUpdated = new Date().toISOString();
        const payload = {
            Schedule: { AdjustForDST: true },
            ScheduleStatus: { Last: last ?? new Date(0).toISOString(), Next: next.toISOString(), LastUpdated: lastUpdated },
            IsPastDue: isPastDue,
        };
        try {
            await this.#app.invoke(timer.fn, { data: { json: JSON.stringify(payload) } });
        } catch {
            // Already logged by the runtime; a failed run does not stop the schedule.
        }
        const ran = scheduled.toISOString();
        if (timer.useMonitor) this.#writeStatus(timer, { last: ran, next: next.toISOString(), lastUpdated });
        return ran;
    }

    #sleepUntil(timer: Timer, when: Date): Promise<void> {
        return new Promise((resolve) => {
            const wait = () => {
                const ms = when.getTime() - Date.now();
                if (ms <= 0 || this.#stopped) {
                    timer.wake = undefined;
                    resolve();
                    return;
                }
                // setTimeout cannot wait more than ~24.8 days at once.
                handle = setTimeout(wait, Math.min(ms, 2 ** 31 - 1));
            };
            let handle: NodeJS.Timeout | undefined;
            timer.wake = () => {
                if (handle) clearTimeout(handle);
                timer.wake = undefined;
                resolve();
            };
            wait();
        });
    }

    #readStatus(timer: Timer): ScheduleStatus {
        try {
            return JSON.parse(readFileSync(timer.statusFile, 'utf8')) as ScheduleStatus;
        } catch {
            return {};
        }
    }

    #writeStatus(timer: Timer, status: ScheduleStatus): void {
        writeFileAtomic(timer.statusFile, JSON.stringify(status));
    }
}
