import type { ComponentHealth, HealthCheck } from './health';

/** The function app's own process: always up while it can answer; reports what an operator looks at first. */
export const processCheck: HealthCheck = {
    name: 'process',
    async check(): Promise<ComponentHealth> {
        const mem = process.memoryUsage();
        return {
            status: 'up',
            node: process.version,
            uptimeSeconds: Math.round(process.uptime()),
            rssMb: Math.round(mem.rss / 1024 / 1024),
            heapUsedMb: Math.round(mem.heapUsed / 1024 / 1024),
        };
    },
};
