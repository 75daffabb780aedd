import nodemailer, { Transporter } from 'nodemailer';
import { isUnreachable, Unavailable, Upstream } from '../errors';
import type { Mail, MailSender } from './mailSender';

/**
 * Mail over SMTP (nodemailer): the devhost's SMTP sink locally. Connections are pooled (at most 5,
 * closed after 30 s unused): a burst of proposals mails every party's traders, and a connection
 * and greeting per mail held each member's event handlers for a third of a second at 32 proposers.
 */
export class SmtpMailSender implements MailSender {
    readonly #transport: Transporter;

    constructor(
        url: string,
        private readonly from: string,
    ) {
        const u = new URL(url);
        this.#transport = nodemailer.createTransport({
            pool: true,
            maxConnections: 5,
            idleTimeout: 30_000,
            host: u.hostname,
            port: Number(u.port || 25),
            secure: u.protocol === 'smtps:',
            ignoreTLS: u.protocol === 'smtp:' && ['127.0.0.1', 'localhost'].includes(u.hostname),
            auth: u.username ? { user: decodeURIComponent(u.username), pass: decodeURIComponent(u.password) } : undefined,
        });
    }

    async send(mail: Mail): Promise<{ messageId: string }> {
        try {
            const info = await this.#transport.sendMail({ from: this.from, to: mail.to, subject: mail.subject, text: mail.text, html: mail.html });
            return { messageId: info.messageId };
        } catch (err) {
            if (isUnreachable(err)) throw new Unavailable('The mail server is unreachable', { cause: err });
            throw new Upstream('The mail server refused the mail', { cause: err });
        }
    }
}
