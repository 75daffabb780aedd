import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A TCP proxy on loopback in front of a real service, which a test can take down (connections refused,
 * open ones cut) and bring back on the same port: an outage of the service as its clients see it.
 */
export class FaultProxy {
    #server?: Server;
    readonly #sockets = new Set<Socket>();
    port = 0;

    constructor(private readonly target: { host: string; port: number }) {}

    get url(): string {
        return `http://127.0.0.1:${this.port}`;
    }

    async up(port = this.port): Promise<void> {
        if (this.#server) return;
        const server = createServer((client) => {
            const upstream = connect(this.target.port, this.target.host);
            for (const s of [client, upstream]) {
                this.#sockets.add(s);
                s.once('close', () => this.#sockets.delete(s));
                s.on('error', () => undefined);
            }
            client.pipe(upstream).pipe(client);
            client.once('close', () => upstream.destroy());
            upstream.once('close', () => client.destroy());
        });
        await new Promise<void>((resolve, reject) => {
            server.once('error', reject);
            server.listen(port, '127.0.0.1', () => resolve());
        });
        this.port = (server.address() as AddressInfo).port;
        this.#server = server;
    }

    async down(): Promise<void> {
        const server = this.#server;
        if (!server) return;
        this.#server = undefined;
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const s of this.#sockets) s.destroy();
        await closed;
    }
}

/**
 * A port that is free now, for a process started later. Drawn below the kernel's ephemeral range
 * (32768 and up): a port taken from that range can be handed to an outgoing connection, or to
 * another listener on port 0, before the process that was meant to have it binds it.
 */
export async function freePort(): Promise<number> {
    for (;;) {
        const port = 20_000 + Math.floor(Math.random() * 12_000);
        const server = createServer();
        const bound = await new Promise<boolean>((resolve) => {
            server.once('error', () => resolve(false));
            server.listen(port, '127.0.0.1', () => resolve(true));
        });
        if (!bound) continue;
        await new Promise<void>((resolve) => server.close(() => resolve()));
        return port;
    }
}
