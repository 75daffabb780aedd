import { EmailClient } from '@azure/communication-email';
import type { TokenCredential } from '@azure/core-auth';
import { isUnreachable, Unavailable, Upstream } from '../errors';
import type { Mail, MailSender } from './mailSender';

/** Mail through Azure Communication Services Email (in Azure). */
export class AcsMailSender implements MailSender {
    readonly #client: EmailClient;

    /** With a connection string (access key), or with the app's identity at the resource's endpoint (Azure: no key in any setting). */
    constructor(
        connection: string | { endpoint: string; credential: TokenCredential },
        private readonly from: string,
    ) {
        if (typeof connection === 'string') {
            // Plain http only for a local endpoint (the test fake); the service itself is https.
            const local = /endpoint=http:\/\/(127\.0\.0\.1|localhost)[:/]/i.test(connection);
            this.#client = new EmailClient(connection, local ? { allowInsecureConnection: true } : {});
        } else {
            this.#client = new EmailClient(connection.endpoint, connection.credential);
        }
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
