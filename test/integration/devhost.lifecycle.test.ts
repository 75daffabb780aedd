import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { fixture, readJsonLines, removeDir, startDevhost, tempDir, waitFor } from '../harness/devhost';
import { freePort } from '../harness/faultProxy';

const basic = fixture('basic-app');

describe('devhost lifecycle: hooks, several app instances, graceful shutdown', () => {
    it('runs appStart, then preInvocation → handler → postInvocation per call, then appTerminate on stop', async () => {
        const out = tempDir();
        const host = await startDevhost(['--app', basic, '--name', 'hooks', '--set', `FIXTURE_OUT=${out}`]);
        try {
            const res = await fetch(`${host.origin('hooks')}/api/whoami`);
            expect(res.status).toBe(200);
        } finally {
            expect(await host.stop('SIGTERM')).toBe(0);
        }
        const hooks = readJsonLines(path.join(out, 'hooks.jsonl')).map((h) => [h.hook, h.fn, h.sawHookData].filter(Boolean).join(':'));
        expect(hooks).toEqual([
            'appStart',
            'preInvocation:whoami',
            'handler:whoami',
            'postInvocation:whoami:preInvocation',
            'appTerminate',
        ]);
        removeDir(out);
        removeDir(host.stateDir);
    });

    it('hosts two instances side by side, each on its own port with its own settings', async () => {
        const out = tempDir();
        const host = await startDevhost([
            '--app', basic, '--name', 'core', '--set', 'FIXTURE_GREETING=from core', '--set', `FIXTURE_OUT=${out}`, '--set', 'FLEXCHANGE_ROLE=core',
            '--app', basic, '--name', 'member1', '--set', 'FLEXCHANGE_ROLE=member', '--set', 'FLEXCHANGE_ORG_ID=org-1',
        ]);
        try {
            expect(host.apps.core.port).not.toBe(host.apps.member1.port);
            const core = await (await fetch(`${host.origin('core')}/api/whoami`)).json();
            const member = await (await fetch(`${host.origin('member1')}/api/whoami`)).json();
            expect(core).toMatchObject({ app: 'core', greeting: 'from core' });
            // member1 did not get core's override: it sees its folder's local.settings.json value.
            expect(member).toMatchObject({ app: 'member1', greeting: 'hello from local.settings' });

            const services = await (await fetch(`${host.consoleUrl}/dev/services`)).json();
            expect(services.apps).toEqual([
                { name: 'core', role: 'core', url: `http://localhost:${host.apps.core.port}/api` },
                { name: 'member1', role: 'member', orgId: 'org-1', url: `http://localhost:${host.apps.member1.port}/api` },
            ]);
            // Each instance has a vault of its own.
            expect(services.services['vault:core']).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
            expect(services.services['vault:member1']).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
            expect(services.services['vault:core']).not.toBe(services.services['vault:member1']);
            expect((await fetch(`${host.consoleUrl}/dev/nothing`)).headers.get('content-type')).toBe('application/problem+json');

            const runtime = JSON.parse(readFileSync(path.join(host.stateDir, 'devhost.json'), 'utf8'));
            expect(runtime.apps.map((a: { name: string }) => a.name)).toEqual(['core', 'member1']);
        } finally {
            expect(await host.stop()).toBe(0);
        }
        removeDir(out);
        removeDir(host.stateDir);
    });

    it('on SIGTERM finishes the request under way, refuses new connections, then exits 0', async () => {
        const out = tempDir();
        const host = await startDevhost(['--app', basic, '--name', 'graceful', '--set', `FIXTURE_OUT=${out}`]);
        const origin = host.origin('graceful');
        const slow = fetch(`${origin}/api/slow?ms=1500`).then(async (r) => ({ status: r.status, body: await r.json() }));
        await waitFor(() => host.logs().some((l) => l.function === 'slow' && l.msg === 'executing'));
        host.child.kill('SIGTERM');
        await waitFor(() => host.logs().some((l) => l.msg === 'stopping: waiting for invocations under way'));
        await expect(fetch(`${origin}/api/whoami`)).rejects.toThrow();
        expect(await slow).toEqual({ status: 200, body: { slept: 1500 } });
        expect(await host.exited).toBe(0);
        expect(readJsonLines(path.join(out, 'slow.jsonl'))).toHaveLength(1);
        const hooks = readJsonLines(path.join(out, 'hooks.jsonl')).map((h) => h.hook);
        expect(hooks.indexOf('appTerminate')).toBeGreaterThan(hooks.lastIndexOf('postInvocation'));
        removeDir(out);
        removeDir(host.stateDir);
    });

    it('restarts an app instance whose worker crashed, on the same port', async () => {
        const host = await startDevhost(['--app', basic, '--name', 'fragile']);
        try {
            const origin = host.origin('fragile');
            expect((await fetch(`${origin}/api/crash`, { method: 'POST' })).status).toBe(202);
            await waitFor(() => host.logs().some((l) => l.msg === 'app worker exited unexpectedly; restarting it'));
            const again = await waitFor(async () => {
                try {
                    return (await fetch(`${origin}/api/whoami`)).status === 200;
                } catch {
                    return false;
                }
            });
            expect(again).toBe(true);
        } finally {
            expect(await host.stop()).toBe(0);
        }
        removeDir(host.stateDir);
    });

    it('refuses a second devhost on the same state folder with a clear message', async () => {
        const out = tempDir();
        const first = await startDevhost(['--app', basic, '--name', 'one', '--set', `FIXTURE_OUT=${out}`]);
        try {
            await expect(startDevhost(['--app', basic, '--name', 'two'], { stateDir: first.stateDir })).rejects.toThrow(
                /Another devhost \(pid \d+\) is using/,
            );
        } finally {
            await first.stop();
        }
        removeDir(out);
        removeDir(first.stateDir);
    });

    it('says which port is taken instead of printing a stack trace', async () => {
        const blocker = await startDevhost(['--app', basic, '--name', 'blocker']);
        try {
            const port = blocker.apps.blocker.port;
            await expect(startDevhost(['--app', basic, '--name', 'clash', '--app-port', String(port)])).rejects.toThrow(
                new RegExp(`Port ${port} is already in use`),
            );
        } finally {
            await blocker.stop();
        }
        removeDir(blocker.stateDir);
    });

    it('refuses to start an instance on the task hub of another (they would take each other\'s work), and starts it on its own', async () => {
        const hub = 'AzureFunctionsJobHost__extensions__durableTask__hubName';
        const host = await startDevhost(['--app', basic, '--name', 'core', '--set', `${hub}=Shared-Hub`]);
        try {
            const put = (name: string, hubName: string) => fetch(`${host.consoleUrl}/dev/apps/${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ orgId: name, settings: { [hub]: hubName } }) });
            const refused = await put('b', 'sharedhub');
            expect(refused.status).toBe(500);
            expect(((await refused.json()) as { detail: string }).detail).toMatch(/would share the task hub "sharedhub" with "core"/);
            expect((await put('c', 'OtherHub')).status).toBe(201);
        } finally {
            await host.stop();
        }
        removeDir(host.stateDir);
    });

    it('starts member instances on the next ports, skipping the ports of its own services (the issuer after the apps)', async () => {
        // Three consecutive free ports: the core, then the issuer right after it, where the first member would go.
        let base = 0;
        for (let attempt = 0; attempt < 20 && !base; attempt++) {
            const p = await freePort();
            if ((await Promise.all([p + 1, p + 2].map(portIsFree))).every(Boolean)) base = p;
        }
        expect(base).toBeGreaterThan(0);
        const host = await startDevhost(['--port', String(base), '--identity-port', String(base + 1), '--app', basic, '--name', 'core']);
        try {
            const res = await fetch(`${host.consoleUrl}/dev/apps/member-a`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ orgId: 'a' }) });
            expect({ status: res.status, body: (await res.json()) as unknown }).toEqual({ status: 201, body: expect.objectContaining({ name: 'member-a', port: base + 2 }) });
        } finally {
            await host.stop();
        }
        removeDir(host.stateDir);
    });
});

function portIsFree(port: number): Promise<boolean> {
    return new Promise((resolve) => {
        const server = createServer();
        server.once('error', () => resolve(false));
        server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
}
