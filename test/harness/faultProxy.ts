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

/** A port free right now on loopback (for a service that must be told its port before it starts). */
export async function freePort(): Promise<number> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return port;
}
