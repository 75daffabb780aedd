import path from 'node:path';
import { fixture, readJsonLines, removeDir, startDevhost, tempDir, waitFor } from '../harness/devhost';

/**
 * SIGKILL of the devhost in the middle of a chain of activities: after a restart the
 * orchestration resumes from its history and completes, and no activity that had
 * completed runs again (side effects are counted in a file the activities append to).
 */
describe('Durable orchestrations survive a devhost crash', () => {
    it('resumes a chain after SIGKILL without re-running completed activities', async () => {
        const out = tempDir();
        const stateDir = tempDir('flexchange-state-');
        const args = ['--app', fixture('durable-app'), '--name', 'durable', '--set', `FIXTURE_OUT=${out}`];
        const steps = 8;
        const runs = () => readJsonLines(path.join(out, 'activities.jsonl')).filter((l) => l.run === 'crash');

        const first = await startDevhost(args, { stateDir, storage: true });
        const origin = first.origin('durable');
        const started = await fetch(`${origin}/api/start/chain/crash-test`, { method: 'POST', body: JSON.stringify({ run: 'crash', steps, sleepMs: 400 }) });
        expect(started.status).toBe(202);

        // Kill in the middle of step 4: steps 1-3 completed, step 4 is running.
        await waitFor(() => runs().length >= 3, 30000, 10);
        await new Promise((r) => setTimeout(r, 200));
        first.child.kill('SIGKILL');
        await first.exited;
        const beforeCrash = runs().map((l) => l.step);
        expect(beforeCrash).toEqual([1, 2, 3]);

        const second = await startDevhost(args, { stateDir, storage: true });
        try {
            const status = await waitFor(async () => {
                const res = await fetch(`${second.origin('durable')}/runtime/webhooks/durabletask/instances/crash-test`);
                const body = await res.json();
                return body.runtimeStatus === 'Completed' ? body : undefined;
            }, 60000, 200);
            expect(status.output).toBe(steps);
            expect(status.customStatus).toEqual({ done: steps });
        } finally {
            await second.stop();
        }
        // Every step ran exactly once, in order, across the crash.
        expect(runs().map((l) => l.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
        removeDir(out);
        removeDir(stateDir);
    });
});
