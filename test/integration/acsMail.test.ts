import { createHash, createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { AcsMailSender } from '../../shared/mail/acsMailSender';
import { Upstream } from '../../shared/errors';

/**
 * Azure Communication Services cannot run here: a local HTTP fake plays the Email
 * API and checks what the real SDK sends (HMAC-signed request, body shape), then
 * answers the long-running operation as the service does.
 */
describe('mail through Azure Communication Services (local fake of the Email API)', () => {
    const accessKey = Buffer.from('a-local-test-access-key-not-a-secret').toString('base64');
    let server: http.Server;
    let endpoint: string;
    const received: { method: string; url: string; headers: http.IncomingHttpHeaders; body: string }[] = [];
    let finalStatus = 'Succeeded';

    beforeAll(async () => {
        server = http.createServer((req, res) => {
            const chunks: Buffer[] = [];
            req.on('data', (c: Buffer) => chunks.push(c));
            req.on('end', () => {
                const body = Buffer.concat(chunks).toString('utf8');
                received.push({ method: req.method!, url: req.url!, headers: req.headers, body });
                const url = new URL(req.url!, endpoint);
                if (req.method === 'POST' && url.pathname === '/emails:send') {
                    res.writeHead(202, {
                        'content-type': 'application/json',
                        'operation-location': `${endpoint}/emails/operations/op-1?api-version=${url.searchParams.get('api-version')}`,
                        'retry-after': '0',
                    });
                    res.end(JSON.stringify({ id: 'op-1', status: 'Running' }));
                } else if (req.method === 'GET' && url.pathname === '/emails/operations/op-1') {
                    res.writeHead(200, { 'content-type': 'application/json' });
                    res.end(JSON.stringify({ id: 'op-1', status: finalStatus, ...(finalStatus === 'Failed' ? { error: { code: 'Rejected', message: 'no' } } : {}) }));
                } else {
                    res.writeHead(404);
                    res.end();
                }
            });
        });
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
        endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('sends a signed request with sender, recipients and content, and waits for the operation', async () => {
        const sender = new AcsMailSender(`endpoint=${endpoint}/;accesskey=${accessKey}`, 'noreply@flexchange.example');
        const result = await sender.send({ to: ['a@example.com', 'b@example.com'], subject: 'Approve ACME', text: 'Open the link', html: '<p>Open</p>' });
        expect(result.messageId).toBe('op-1');

        const send = received.find((r) => r.method === 'POST')!;
        expect(JSON.parse(send.body)).toMatchObject({
            senderAddress: 'noreply@flexchange.example',
            content: { subject: 'Approve ACME', plainText: 'Open the link', html: '<p>Open</p>' },
            recipients: { to: [{ address: 'a@example.com' }, { address: 'b@example.com' }] },
        });
        // The request is signed with the access key (HMAC-SHA256 over method, path, date, host and content hash).
        const contentHash = createHash('sha256').update(send.body).digest('base64');
        expect(send.headers['x-ms-content-sha256']).toBe(contentHash);
        const date = send.headers['x-ms-date'] as string;
        const host = send.headers.host as string;
        const stringToSign = `POST\n${send.url}\n${date};${host};${contentHash}`;
        const signature = createHmac('sha256', Buffer.from(accessKey, 'base64')).update(stringToSign).digest('base64');
        expect(send.headers.authorization).toBe(`HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=${signature}`);
        expect(received.some((r) => r.method === 'GET' && r.url.startsWith('/emails/operations/op-1'))).toBe(true);
    });

    it('reports a failed operation as an upstream failure', async () => {
        finalStatus = 'Failed';
        const sender = new AcsMailSender(`endpoint=${endpoint}/;accesskey=${accessKey}`, 'noreply@flexchange.example');
        await expect(sender.send({ to: ['a@example.com'], subject: 's', text: 't' })).rejects.toBeInstanceOf(Upstream);
    });
});
