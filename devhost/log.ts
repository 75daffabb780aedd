import pino, { Logger } from 'pino';

/**
 * One structured log for the devhost and every app it hosts. Each thread writes
 * JSON lines synchronously to stdout, so a crash loses nothing already logged and
 * lines from different threads never interleave mid-line.
 */
export function createLogger(bindings: Record<string, unknown> = {}): Logger {
    const level = process.env.FLEXCHANGE_LOG_LEVEL ?? process.env.LOG_LEVEL ?? 'info';
    return pino(
        {
            level,
            base: { pid: process.pid, ...bindings },
            timestamp: pino.stdTimeFunctions.isoTime,
            formatters: { level: (label) => ({ level: label }) },
        },
        pino.destination({ dest: 1, sync: true }),
    );
}

/** Maps the Functions RPC log levels onto pino's. `none` is dropped. */
export function pinoLevel(rpcLevel: string): pino.Level | undefined {
    switch (rpcLevel) {
        case 'trace':
            return 'trace';
        case 'debug':
            return 'debug';
        case 'information':
            return 'info';
        case 'warning':
            return 'warn';
        case 'error':
            return 'error';
        case 'critical':
            return 'fatal';
        default:
            return undefined;
    }
}
