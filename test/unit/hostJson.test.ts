import { readFileSync } from 'node:fs';
import path from 'node:path';

const root = path.join(__dirname, '..', '..');

/** Every leaf of a JSON object as its dotted path (an array or a string is a leaf). */
function leaves(value: unknown, prefix = ''): string[] {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return [prefix];
    return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) => leaves(v, prefix ? `${prefix}.${k}` : k));
}

/**
 * host.json cannot carry comments (the Functions host ignores a whole file that has them), so the
 * README explains each setting: a setting added to the file without its reason fails here.
 */
describe('host.json and its explanation', () => {
    const hostJson = JSON.parse(readFileSync(path.join(root, 'host.json'), 'utf8')) as Record<string, unknown>;
    const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('### host.json, setting by setting'), readme.indexOf('## Deploying to Azure'));
    /** The settings the table names: each backticked path in a row's first cell. */
    const explained = new Set(
        section
            .split('\n')
            .filter((line) => line.startsWith('| `'))
            .flatMap((line) => [...line.split('|')[1]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!)),
    );

    it('is plain JSON with no comment, and every setting in it has its row', () => {
        expect(section.length).toBeGreaterThan(0);
        const settings = leaves(hostJson).filter((p) => p !== 'version' && !p.startsWith('extensionBundle.'));
        expect(settings.length).toBeGreaterThan(10);
        expect(settings.filter((p) => !explained.has(p))).toEqual([]);
        expect(explained.has('extensionBundle')).toBe(true);
    });

    it('sets what the deployment relies on: its own task hub, no extended sessions, log lines never sampled', () => {
        const durable = (hostJson.extensions as Record<string, Record<string, unknown>>).durableTask!;
        expect(durable.hubName).toBe('%FLEXCHANGE_TASK_HUB%');
        expect(durable.extendedSessionsEnabled).toBe(false);
        const sampling = ((hostJson.logging as Record<string, Record<string, unknown>>).applicationInsights!.samplingSettings as { excludedTypes: string }).excludedTypes.split(';');
        expect(sampling).toEqual(expect.arrayContaining(['Trace', 'Exception']));
    });
});
