import type { AddressInfo, Server, Socket } from 'node:net';

export interface LoopbackListener {
    port: number;
    /** Stops listening and ends every open connection (a kept-alive client would otherwise hold the close). */
    close(): Promise<void>;
}

/** Listens on 127.0.0.1:`port` (0: a free one) and keeps track of connections, so that close ends them all. */
export async function listenOnLoopback(server: Server, port: number, what: string): Promise<LoopbackListener> {
    const sockets = new Set<Socket>();
    server.on('connection', (s: Socket) => {
        sockets.add(s);
        s.once('close', () => sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
        server.once('error', (err: NodeJS.ErrnoException) => reject(new Error(err.code === 'EADDRINUSE' ? `Port ${port} for ${what} is already in use` : err.message)));
        server.listen(port, '127.0.0.1', () => resolve());
    });
    return {
        port: (server.address() as AddressInfo).port,
        close: async () => {
            const closed = new Promise<void>((resolve) => server.close(() => resolve()));
            for (const s of sockets) s.destroy();
            await closed;
        },
    };
}
