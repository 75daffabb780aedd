import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fixture, readJsonLines, removeDir, startDevhost, tempDir, waitFor } from '../harness/devhost';

/**
 * SIGKILL of the devhost in the middle of a chain of activities: after a restart the orchestration
 * resumes from its history and completes with the output a clean run has, and each step's durable
 * effect exists exactly once. Activities run at least once (a step whose completion was not recorded
 * before the crash runs again), so what is checked is the effect — a write keyed by the instance and the
 * step, which a second run of the step finds done — not how often the activity ran.
 */
describe('Durable orchestrations survive a devhost crash', () => {
    it('resumes a chain after SIGKILL: it completes as a clean run does, with one effect per step', async () => {
        const out = tempDir();
        const stateDir = tempDir('flexchange-state-');
        const args = ['--app', fixture('durable-app'), '--name', 'durable', '--set', `FIXTURE_OUT=${out}`];
        const steps = 8;
        /** The effects of one instance: the step records it holds, by step (one file per key, so one each). */
        const effects = (instance: string) =>
            existsSync(path.join(out, 'effects'))
                ? readdirSync(path.join(out, 'effects'))
                      .filter((f) => f.startsWith(`${instance}.`) && f.endsWith('.json'))
                      .map((f) => JSON.parse(readFileSync(path.join(out, 'effects', f), 'utf8')) as { instance: string; step: number; prev: number })
                      .sort((a, b) => a.step - b.step)
                : [];
        const attempts = (run: string) => readJsonLines(path.join(out, 'activities.jsonl')).filter((l) => l.run === run);
        const completed = async (origin: string, instance: string) =>
            waitFor(async () => {
                const body = await (await fetch(`${origin}/runtime/webhooks/durabletask/instances/${instance}`)).json();
                return body.runtimeStatus === 'Completed' ? (body as { output: unknown; customStatus: unknown }) : undefined;
            }, 60000, 200);

        const first = await startDevhost(args, { stateDir, storage: true });
        const started = await fetch(`${first.origin('durable')}/api/start/chain/crash-test`, { method: 'POST', body: JSON.stringify({ run: 'crash', steps, sleepMs: 400 }) });
        expect(started.status).toBe(202);

        // Killed in the middle of the chain: some steps done, the rest not yet.
        await waitFor(() => effects('crash-test').length >= 3, 30000, 10);
        await new Promise((r) => setTimeout(r, 200));
        first.child.kill('SIGKILL');
        await first.exited;
        const beforeCrash = effects('crash-test').map((e) => e.step);
        expect(beforeCrash.length).toBeGreaterThanOrEqual(3);
        expect(beforeCrash.length).toBeLessThan(steps);
        expect(beforeCrash).toEqual(Array.from({ length: beforeCrash.length }, (_, i) => i + 1));

        const second = await startDevhost(args, { stateDir, storage: true });
        let crashed: { output: unknown; customStatus: unknown };
        let clean: { output: unknown; customStatus: unknown };
        try {
            crashed = await completed(second.origin('durable'), 'crash-test');
            // The same chain without a crash, for comparison.
            const cleanStart = await fetch(`${second.origin('durable')}/api/start/chain/clean-test`, { method: 'POST', body: JSON.stringify({ run: 'clean', steps, sleepMs: 0 }) });
            expect(cleanStart.status).toBe(202);
            clean = await completed(second.origin('durable'), 'clean-test');
        } finally {
            await second.stop();
        }
        expect(crashed.output).toBe(steps);
        expect(crashed.customStatus).toEqual({ done: steps });
        expect(crashed).toMatchObject({ output: clean.output, customStatus: clean.customStatus });

        // One effect per step, each step fed the previous one's result: the clean run's effects, under the crashed instance's key.
        const expected = (instance: string) => Array.from({ length: steps }, (_, i) => ({ instance, step: i + 1, prev: i }));
        expect(effects('clean-test')).toEqual(expected('clean-test'));
        expect(effects('crash-test')).toEqual(expected('crash-test'));
        // No step ran again with other inputs than its first run, and every step did run.
        expect(readJsonLines(path.join(out, 'conflicts.jsonl'))).toEqual([]);
        expect(new Set(attempts('crash').map((l) => l.step))).toEqual(new Set(expected('crash-test').map((e) => e.step)));
        removeDir(out);
        removeDir(stateDir);
    }, 150_000);
});
