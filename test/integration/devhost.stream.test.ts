import { fixture, removeDir, RunningDevhost, startDevhost } from '../harness/devhost';

describe('devhost with HTTP streaming enabled by the app', () => {
    let host: RunningDevhost;
    let api: string;

    beforeAll(async () => {
        host = await startDevhost(['--app', fixture('stream-app'), '--name', 'stream']);
        api = `${host.origin('stream')}/api`;
    });
    afterAll(async () => {
        await host?.stop();
        removeDir(host?.stateDir);
    });

    it('streams a large request body to the function with params, query and headers', async () => {
        const body = Buffer.alloc(3 * 1024 * 1024, 7);
        const res = await fetch(`${api}/upload/big?q=yes`, { method: 'POST', body, headers: { 'x-test': 'header-value' } });
        expect(res.status).toBe(200);
        expect(await res.json()).toEqual({ name: 'big', bytes: body.length, query: 'yes', header: 'header-value' });
    });

    it('streams a response written over time', async () => {
        const res = await fetch(`${api}/ticks`);
        expect(res.headers.get('content-type')).toBe('text/plain');
        expect(await res.text()).toBe('tick 0\ntick 1\ntick 2\n');
    });

    it('answers 500 when a streaming handler throws', async () => {
        expect((await fetch(`${api}/boom`)).status).toBe(500);
    });
});
