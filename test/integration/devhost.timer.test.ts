import path from 'node:path';
import { fixture, readJsonLines, removeDir, startDevhost, tempDir, waitFor } from '../harness/devhost';

const basic = fixture('basic-app');

function timerRuns(out: string) {
    const lines = readJsonLines(path.join(out, 'timer.jsonl'));
    return { lines, starts: lines.filter((l) => l.start) };
}

/** Every start is followed by its own end before the next start: runs never overlap. */
function expectNoOverlap(lines: Record<string, unknown>[]) {
    const kinds = lines.map((l) => (l.start ? 'start' : 'end'));
    for (let i = 0; i < kinds.length; i++) expect(kinds[i]).toBe(i % 2 === 0 ? 'start' : 'end');
}

describe('devhost timer triggers', () => {
    it('fires a 6-field NCRONTAB schedule taken from a %setting%, on time and not past due', async () => {
        const out = tempDir();
        const host = await startDevhost(['--app', basic, '--name', 't', '--set', `FIXTURE_OUT=${out}`, '--set', 'FIXTURE_TIMER_SCHEDULE=*/1 * * * * *']);
        try {
            await waitFor(() => timerRuns(out).starts.length >= 3 && timerRuns(out).lines.length >= 6, 10000);
        } finally {
            await host.stop();
        }
        const { lines, starts } = timerRuns(out);
        expectNoOverlap(lines);
        expect(starts.every((s) => s.isPastDue === false && s.hasStatus === true)).toBe(true);
        const gaps = starts.slice(1).map((s, i) => Date.parse(s.start as string) - Date.parse(starts[i].start as string));
        expect(gaps.every((g) => g >= 900)).toBe(true);
        removeDir(out);
        removeDir(host.stateDir);
    });

    it('never runs a timer twice at once: occurrences missed by a long run collapse into one past-due run', async () => {
        const out = tempDir();
        const host = await startDevhost([
            '--app', basic, '--name', 't', '--set', `FIXTURE_OUT=${out}`,
            '--set', 'FIXTURE_TIMER_SCHEDULE=*/1 * * * * *', '--set', 'FIXTURE_TIMER_BUSY_MS=2200',
        ]);
        try {
            await waitFor(() => timerRuns(out).lines.length >= 6, 15000);
        } finally {
            await host.stop();
        }
        const { lines, starts } = timerRuns(out);
        expectNoOverlap(lines);
        expect(starts[0].isPastDue).toBe(false);
        expect(starts.slice(1).every((s) => s.isPastDue === true)).toBe(true);
        removeDir(out);
        removeDir(host.stateDir);
    });

    it('after a restart, runs once with isPastDue when the monitored schedule was missed', async () => {
        const out = tempDir();
        const stateDir = tempDir('flexchange-state-');
        const args = ['--app', basic, '--name', 't', '--set', `FIXTURE_OUT=${out}`, '--set', 'FIXTURE_TIMER_SCHEDULE=*/2 * * * * *'];
        const first = await startDevhost(args, { stateDir });
        await waitFor(() => timerRuns(out).lines.length >= 2, 10000);
        await first.stop();
        const before = timerRuns(out).starts.length;
        await new Promise((r) => setTimeout(r, 3500));

        const second = await startDevhost(args, { stateDir });
        try {
            await waitFor(() => timerRuns(out).starts.length > before, 10000);
        } finally {
            await second.stop();
        }
        const afterRestart = timerRuns(out).starts.slice(before);
        expect(afterRestart[0].isPastDue).toBe(true);
        removeDir(out);
        removeDir(stateDir);
    });

    it('runs once at start-up with runOnStartup, not past due', async () => {
        const out = tempDir();
        const host = await startDevhost([
            '--app', basic, '--name', 't', '--set', `FIXTURE_OUT=${out}`, '--set', 'FIXTURE_TIMER_RUN_ON_STARTUP=true',
        ]);
        try {
            await waitFor(() => timerRuns(out).lines.length >= 2, 10000);
        } finally {
            await host.stop();
        }
        const { starts } = timerRuns(out);
        expect(starts).toHaveLength(1);
        expect(starts[0].isPastDue).toBe(false);
        removeDir(out);
        removeDir(host.stateDir);
    });
});
