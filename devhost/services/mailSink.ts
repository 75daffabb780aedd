import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../files';
import path from 'node:path';
import type { Logger } from 'pino';
import { simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface CapturedMail {
    id: string;
    to: string[];
    from: string;
    subject: string;
    text: string;
    html: string;
    links: string[];
    receivedAt: string;
}

const MAX_MESSAGE_BYTES = 10 * 1024 * 1024;

/** Every http(s) link in a mail: hrefs of the HTML part and URLs in the text part, in order, once each. */
export function extractLinks(html: string, text: string): string[] {
    const found: string[] = [];
    for (const m of html.matchAll(/href\s*=\s*["']([^"']+)["']/gi)) found.push(m[1].replace(/&amp;/g, '&'));
    for (const m of text.matchAll(/https?:\/\/[^\s<>"')\]]+/g)) found.push(m[0]);
    return [...new Set(found.filter((l) => /^https?:\/\//i.test(l)))];
}

/**
 * The SMTP sink standing in for Azure Communication Services Email locally: it
 * accepts every mail on loopback, parses it and keeps it under `<state>/mail`
 * (written before the mail is acknowledged), for `GET /dev/mail`.
 */
export class MailSink {
    url = '';
    readonly #dir: string;
    readonly #log: Logger;
    readonly #mails: CapturedMail[] = [];
    #server?: SMTPServer;

    constructor(stateDir: string, logger: Logger) {
        this.#dir = path.join(stateDir, 'mail');
        this.#log = logger;
    }

    get mails(): CapturedMail[] {
        return [...this.#mails].sort((a, b) => (a.receivedAt < b.receivedAt ? 1 : a.receivedAt > b.receivedAt ? -1 : 0));
    }

    get(id: string): CapturedMail | undefined {
        return this.#mails.find((m) => m.id === id);
    }

    async start(port: number): Promise<void> {
        mkdirSync(this.#dir, { recursive: true });
        for (const f of readdirSync(this.#dir).filter((n) => n.endsWith('.json'))) {
            this.#mails.push(JSON.parse(readFileSync(path.join(this.#dir, f), 'utf8')) as CapturedMail);
        }
        const server = new SMTPServer({
            authOptional: true,
            disabledCommands: ['STARTTLS', 'AUTH'],
            // Stopping waits this long for a mail being sent, then closes what is left (the apps pool their
            // connections: an idle one would hold the stop for smtp-server's default 30 s).
            closeTimeout: 2000,
            size: MAX_MESSAGE_BYTES,
            logger: false,
            onData: (stream, session, callback) => {
                simpleParser(stream)
                    .then((parsed) => {
                        const html = typeof parsed.html === 'string' ? parsed.html : '';
                        const text = parsed.text ?? '';
                        const mail: CapturedMail = {
                            id: randomUUID(),
                            to: session.envelope.rcptTo.map((r) => r.address),
                            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
                            subject: parsed.subject ?? '',
                            text,
                            html,
                            links: extractLinks(html, text),
                            receivedAt: new Date().toISOString(),
                        };
                        const file = path.join(this.#dir, `${mail.receivedAt.replace(/[:.]/g, '-')}-${mail.id}.json`);
                        writeFileAtomic(file, JSON.stringify(mail));
                        this.#mails.push(mail);
                        this.#log.info({ mailId: mail.id, to: mail.to, subject: mail.subject }, 'mail captured');
                        callback();
                    })
                    .catch((err: Error) => callback(err));
            },
        });
        await new Promise<void>((resolve, reject) => {
            server.server.once('error', (err: NodeJS.ErrnoException) =>
                reject(new Error(err.code === 'EADDRINUSE' ? `Port ${port} for the SMTP sink is already in use` : err.message)),
            );
            server.listen(port, '127.0.0.1', () => resolve());
        });
        const address = server.server.address();
        this.url = `smtp://127.0.0.1:${typeof address === 'object' && address ? address.port : port}`;
        this.#server = server;
    }

    async stop(): Promise<void> {
        const server = this.#server;
        if (!server) return;
        await new Promise<void>((resolve) => server.close(() => resolve()));
    }
}
