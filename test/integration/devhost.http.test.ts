import { connect } from 'node:net';
import { fixture, removeDir, RunningDevhost, startDevhost, tempDir } from '../harness/devhost';

describe('devhost HTTP triggers on an unmodified v4 app', () => {
    let host: RunningDevhost;
    let api: string;
    const out = tempDir();

    beforeAll(async () => {
        host = await startDevhost(['--app', fixture('basic-app'), '--name', 'basic', '--set', `FIXTURE_OUT=${out}`]);
        api = `${host.origin('basic')}/api`;
    });
    afterAll(async () => {
        await host?.stop();
        removeDir(out);
        removeDir(host?.stateDir);
    });

    const getJson = async (path: string) => {
        const res = await fetch(`${api}${path}`);
        return { status: res.status, body: res.status === 200 ? await res.json() : undefined };
    };

    describe('route templates', () => {
        it('passes a typed parameter and prefers the constrained route', async () => {
            expect(await getJson('/items/42')).toEqual({ status: 200, body: { fn: 'itemById', params: { id: '42' } } });
            expect(await getJson('/items/widget')).toEqual({ status: 200, body: { fn: 'itemByName', params: { name: 'widget' } } });
        });

        it('matches literals case-insensitively and decodes parameters', async () => {
            expect(await getJson('/ITEMS/a%20b')).toEqual({ status: 200, body: { fn: 'itemByName', params: { name: 'a b' } } });
            expect(await getJson('/items/7/detail')).toEqual({ status: 200, body: { fn: 'itemDetail', params: { id: '7' } } });
        });

        it('rejects a value that fails the int constraint on a route with no alternative', async () => {
            expect((await getJson('/items/abc/detail')).status).toBe(404);
        });

        it('gives the rest of the path to a catch-all parameter', async () => {
            expect(await getJson('/files/a/b/c.txt')).toEqual({ status: 200, body: { fn: 'files', params: { rest: 'a/b/c.txt' } } });
            expect(await getJson('/files')).toEqual({ status: 200, body: { fn: 'files', params: {} } });
        });

        it('treats an optional parameter as optional and fills a default', async () => {
            expect(await getJson('/optional')).toEqual({ status: 200, body: { fn: 'optional', params: {} } });
            expect(await getJson('/optional/here')).toEqual({ status: 200, body: { fn: 'optional', params: { x: 'here' } } });
            expect(await getJson('/default')).toEqual({ status: 200, body: { fn: 'withDefault', params: { x: 'fallback' } } });
            expect(await getJson('/default/given')).toEqual({ status: 200, body: { fn: 'withDefault', params: { x: 'given' } } });
        });

        it('splits a complex segment into its parameters', async () => {
            expect(await getJson('/docs/report.final.pdf')).toEqual({
                status: 200,
                body: { fn: 'complex', params: { name: 'report.final', ext: 'pdf' } },
            });
        });

        it('enforces range, guid, alpha+length and regex constraints', async () => {
            expect((await getJson('/range/5')).status).toBe(200);
            expect((await getJson('/range/11')).status).toBe(404);
            expect((await getJson('/guid/3f2504e0-4f89-11d3-9a0c-0305e82c3301')).status).toBe(200);
            expect((await getJson('/guid/not-a-guid')).status).toBe(404);
            expect((await getJson('/alpha/abc')).status).toBe(200);
            expect((await getJson('/alpha/a')).status).toBe(404);
            expect((await getJson('/alpha/abcde')).status).toBe(404);
            expect((await getJson('/alpha/ab1')).status).toBe(404);
            expect((await getJson('/codes/GBP')).body).toEqual({ fn: 'regex', params: { c: 'GBP' } });
            expect((await getJson('/codes/GBPX')).status).toBe(404);
        });

        it('uses the function name when no route is given', async () => {
            expect(await getJson('/plainName')).toEqual({ status: 200, body: { fn: 'plainName', params: {} } });
        });

        it('answers 404 for an unknown route and 405 with Allow for a wrong method', async () => {
            expect((await fetch(`${api}/no/such/route`)).status).toBe(404);
            expect((await fetch(`${host.origin('basic')}/items/1`)).status).toBe(404);
            const res = await fetch(`${api}/post-only`);
            expect(res.status).toBe(405);
            expect(res.headers.get('allow')).toBe('POST, PUT');
            expect((await fetch(`${api}/post-only`, { method: 'POST' })).status).toBe(200);
        });
    });

    describe('requests', () => {
        it('passes method, query (repeated keys too), headers, cookies and a JSON body', async () => {
            const res = await fetch(`${api}/echo/some/path?a=1&a=2&b=x%20y`, {
                method: 'POST',
                headers: { 'content-type': 'application/json', 'x-custom': 'yes', cookie: 'c1=v1; c2=v2' },
                body: JSON.stringify({ hello: 'world' }),
            });
            expect(res.status).toBe(200);
            const body = await res.json();
            expect(body.method).toBe('POST');
            expect(body.params).toEqual({ path: 'some/path' });
            expect(body.query).toEqual([
                ['a', '1'],
                ['a', '2'],
                ['b', 'x y'],
            ]);
            expect(body.headers['x-custom']).toBe('yes');
            expect(body.headers.cookie).toBe('c1=v1; c2=v2');
            expect(body.json).toEqual({ hello: 'world' });
            expect(new URL(body.url).pathname).toBe('/api/echo/some/path');
        });

        it('passes a raw binary body byte for byte', async () => {
            const bytes = Buffer.from([0, 255, 1, 254, 10, 13, 0x80]);
            const res = await fetch(`${api}/echo/bin`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: bytes });
            const body = await res.json();
            expect(Buffer.from(body.bodyBase64, 'base64').equals(bytes)).toBe(true);
        });

        it('refuses a body over host.json maxRequestBodySize with 413', async () => {
            const res = await fetch(`${api}/echo/big`, { method: 'POST', body: Buffer.alloc(1024 * 1024 + 1, 1) });
            expect(res.status).toBe(413);
            expect(res.headers.get('content-type')).toBe('application/problem+json');
            expect(await res.json()).toMatchObject({ status: 413, title: 'Payload Too Large' });
        });

        it('answers a URL over 16 KB with 431 problem+json, and a malformed request with 400 problem+json', async () => {
            const long = await fetch(`${api}/echo/long?q=${'q'.repeat(17 * 1024)}`);
            expect(long.status).toBe(431);
            expect(long.headers.get('content-type')).toBe('application/problem+json');
            expect(await long.json()).toMatchObject({ status: 431, title: 'Request Header Fields Too Large' });

            const raw = await new Promise<string>((resolve, reject) => {
                const socket = connect(Number(new URL(api).port), '127.0.0.1', () => socket.write('NOT A REQUEST\r\n\r\n'));
                let answer = '';
                socket.on('data', (chunk) => (answer += chunk.toString('utf8')));
                socket.on('end', () => resolve(answer));
                socket.on('error', reject);
            });
            expect(raw).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
            expect(raw).toContain('content-type: application/problem+json');
            expect(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4))).toMatchObject({ status: 400 });
        });
    });

    describe('responses', () => {
        it('sends a string body with its headers', async () => {
            const res = await fetch(`${api}/resp/string`);
            expect(res.status).toBe(200);
            expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8');
            expect(await res.text()).toBe('plain text body');
        });

        it('sends bytes and a Buffer unchanged', async () => {
            const res = await fetch(`${api}/resp/bytes`);
            expect(Buffer.from(await res.arrayBuffer())).toEqual(Buffer.from([0, 1, 2, 253, 254, 255]));
            expect(await (await fetch(`${api}/resp/buffer`)).text()).toBe('from a buffer');
        });

        it('sends a Node stream and a web stream in full', async () => {
            expect(await (await fetch(`${api}/resp/stream`)).text()).toBe('chunk-1;chunk-2;chunk-3');
            expect(await (await fetch(`${api}/resp/webstream`)).text()).toBe('web-stream');
        });

        it('sends jsonBody as application/json', async () => {
            const res = await fetch(`${api}/resp/json`);
            expect(res.headers.get('content-type')).toBe('application/json');
            expect(await res.json()).toEqual({ ok: true, n: 42, nested: { list: [1, 2, 3] } });
        });

        it('keeps the status, headers of an HttpResponse and of a plain object', async () => {
            const teapot = await fetch(`${api}/resp/status`);
            expect(teapot.status).toBe(418);
            expect(await teapot.text()).toBe("I'm a teapot");
            const created = await fetch(`${api}/resp/created`);
            expect(created.status).toBe(201);
            expect(created.headers.get('location')).toBe('/api/things/abc');
            expect(await created.json()).toEqual({ id: 'abc' });
            const headers = await fetch(`${api}/resp/headers`);
            expect(headers.headers.get('x-one')).toBe('1');
            expect(headers.headers.get('x-two')).toBe('two');
        });

        it('sends each cookie as its own Set-Cookie header with its attributes', async () => {
            const res = await fetch(`${api}/resp/cookies`);
            const cookies = res.headers.getSetCookie();
            expect(cookies).toHaveLength(2);
            expect(cookies[0]).toBe('session=abc%20123; Path=/; Max-Age=3600; Secure; HttpOnly; SameSite=Strict');
            expect(cookies[1]).toBe('theme=dark; Domain=localhost; Expires=Tue, 01 Jan 2030 00:00:00 GMT; SameSite=Lax');
        });

        it('sends 204 with no body, and 204 when the handler returns nothing', async () => {
            const empty = await fetch(`${api}/resp/empty`);
            expect(empty.status).toBe(204);
            expect(await empty.text()).toBe('');
            expect((await fetch(`${api}/resp/none`)).status).toBe(204);
        });

        it('answers 500 without internals when the handler throws, and logs the error', async () => {
            const res = await fetch(`${api}/resp/throws`);
            expect(res.status).toBe(500);
            expect(await res.text()).not.toContain('secret');
            const failed = host.logs().find((l) => l.msg === 'function failed' && l.function === 'resp_throws');
            expect(failed).toMatchObject({ app: 'basic', level: 'error' });
            expect(typeof failed?.invocationId).toBe('string');
        });
    });

    it('writes context.log to the structured log with the function name and invocation id', async () => {
        const res = await fetch(`${api}/whoami`);
        const { invocationId } = await res.json();
        const line = host.logs().find((l) => l.invocationId === invocationId && l.category === 'user' && l.level === 'info');
        expect(line).toMatchObject({ app: 'basic', function: 'whoami', msg: expect.stringContaining('whoami called') });
        const warn = host.logs().find((l) => l.invocationId === invocationId && l.level === 'warn');
        expect(warn).toMatchObject({ function: 'whoami', msg: 'a warning from whoami' });
    });
});
