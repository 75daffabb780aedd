/**
 * Entry of the worker thread that hosts one app instance. A thread per instance
 * gives each its own `process.env` (settings) and its own module registry, so the
 * core and several members run side by side in one devhost process.
 */
import { readFileSync } from 'node:fs';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import { parentPort, workerData } from 'node:worker_threads';
import { createLogger } from '../log';
import { AppHost } from './appHost';
import { appCounts, startCounting, type AppCounts } from './counts';

export interface AppWorkerData {
    name: string;
    folder: string;
    port: number;
    stateDir: string;
}

export type AppWorkerMessage =
    | { type: 'ready'; port: number; functions: { name: string; trigger: string; detail: string }[] }
    | { type: 'failed'; message: string }
    | { type: 'stopped' }
    | { type: 'counts'; counts: AppCounts };

const data = workerData as AppWorkerData;
// Node reads NODE_EXTRA_CA_CERTS once, when the process starts; an instance given one (the devhost's local CA,
// for the Service Bus's TLS) trusts it in its own thread, as a process started with it would. Nothing else changes.
if (process.env.NODE_EXTRA_CA_CERTS) {
    setDefaultCACertificates([...getCACertificates('default'), readFileSync(process.env.NODE_EXTRA_CA_CERTS, 'utf8')]);
}
startCounting();
const logger = createLogger({ app: data.name });
const host = new AppHost({ name: data.name, port: data.port, stateDir: data.stateDir, logger });
const post = (m: AppWorkerMessage) => parentPort!.postMessage(m);

parentPort!.on('message', (msg: { type: string }) => {
    if (msg.type === 'counts') post({ type: 'counts', counts: appCounts });
    if (msg.type === 'shutdown') {
        host.stop()
            .catch((err: Error) => logger.error({ err: { message: err.message, stack: err.stack } }, 'error while stopping'))
            .finally(() => post({ type: 'stopped' }));
    }
});

host.start(data.folder).then(
    (functions) => post({ type: 'ready', port: host.listeningPort, functions }),
    (err: Error) => {
        logger.debug({ err: { message: err.message, stack: err.stack } }, 'app failed to start');
        post({ type: 'failed', message: err.message });
    },
);
