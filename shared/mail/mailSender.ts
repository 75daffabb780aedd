export interface Mail {
    to: string[];
    subject: string;
    text: string;
    html?: string;
}

/** The mail port: approval links, reminders and notices to people. */
export interface MailSender {
    send(mail: Mail): Promise<{ messageId: string }>;
}
