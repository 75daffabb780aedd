import { resolveSettingReferences, type HostJson } from '../appFolder';

/** The app setting that overrides host.json's `extensions.durableTask.hubName` (as in Azure). */
export const HUB_SETTING = 'AzureFunctionsJobHost__extensions__durableTask__hubName';

/**
 * An app instance's task hub, as the Durable extension names it: the app setting above, else
 * host.json's `hubName` (`%SETTING%` references resolved from the app's settings; a missing one
 * throws), else `TestHubName<instance>`; letters and digits only, at most 45 characters.
 */
export function taskHubName(hostJson: HostJson, settings: Record<string, string | undefined>, instance: string): string {
    const durable = (hostJson.extensions as Record<string, unknown> | undefined)?.durableTask as Record<string, unknown> | undefined;
    const configured = settings[HUB_SETTING] ?? (durable?.hubName as string | undefined);
    const base = configured ? resolveSettingReferences(configured, settings) : `TestHubName${instance.replace(/[^A-Za-z0-9]/g, '')}`;
    return base.replace(/[^A-Za-z0-9]/g, '').slice(0, 45);
}
