/**
 * Entry of the worker thread that hosts one app instance. A thread per instance
 * gives each its own `process.env` (settings) and its own module registry, so the
 * core and several members run side by side in one devhost process.
 */
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
