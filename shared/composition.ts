import { loadSettings, Settings } from './config';
import { checkHealth, HealthCheck, HealthReport } from './health/health';
import { processCheck } from './health/processCheck';

/**
 * The composition root: the one place that decides which adapter backs each port,
 * from settings. Handlers ask it for services; nothing else builds SDK clients.
 */
export interface Services {
    settings: Settings;
    health(): Promise<HealthReport>;
}

let services: Services | undefined;

export function buildServices(settings: Settings = loadSettings()): Services {
    const checks: HealthCheck[] = [processCheck];
    return {
        settings,
        health: () => checkHealth(checks, { role: settings.FLEXCHANGE_ROLE, timeoutMs: settings.FLEXCHANGE_HEALTH_TIMEOUT_MS }),
    };
}

/** The app's services, built on first use (after the host has put the settings in the environment). */
export function getServices(): Services {
    services ??= buildServices();
    return services;
}
