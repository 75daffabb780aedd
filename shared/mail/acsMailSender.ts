import { EmailClient } from '@azure/communication-email';
import { isUnreachable, Unavailable, Upstream } from '../errors';
import type { Mail, MailSender } from './mailSender';

/** Mail through Azure Communication Services Email (in Azure). */
export class AcsMailSender implements MailSender {
    readonly #client: EmailClient;

    constructor(
        connectionString: string,
        private readonly from: string,
    ) {
        // Plain http only for a local endpoint (the test fake); the service itself is https.
        const local = /endpoint=http:\/\/(127\.0\.0\.1|localhost)[:/]/i.test(connectionString);
        this.#client = new EmailClient(connectionString, local ? { allowInsecureConnection: true } : {});
    }

    async send(mail: Mail): Promise<{ messageId: string }> {
        try {
            const poller = await this.#client.beginSend({
                senderAddress: this.from,
                content: { subject: mail.subject, plainText: mail.text, html: mail.html },
                recipients: { to: mail.to.map((address) => ({ address })) },
            });
            const result = await poller.pollUntilDone();
            if (result.status !== 'Succeeded') throw new Upstream(`Email was not sent (status ${result.status})`);
            return { messageId: result.id };
        } catch (err) {
            if (err instanceof Upstream) throw err;
            if (isUnreachable(err)) throw new Unavailable('Communication Services is unreachable', { cause: err });
            throw new Upstream('Communication Services refused the mail', { cause: err });
        }
    }
}
