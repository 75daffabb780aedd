import type { Settings } from '../config';

/** Where links point: FLEXCHANGE_PUBLIC_URL, else this app's host name (http on localhost). */
export function publicBaseUrl(settings: Pick<Settings, 'FLEXCHANGE_PUBLIC_URL'>, hostName = process.env.WEBSITE_HOSTNAME ?? 'localhost:7071'): string {
    const configured = settings.FLEXCHANGE_PUBLIC_URL;
    if (configured) return configured.replace(/\/$/, '');
    return `${/^(localhost|127\.0\.0\.1)(:\d+)?$/.test(hostName) ? 'http' : 'https'}://${hostName}`;
}
