import fc from 'fast-check';
import { CORE_TASK_HUB, memberResourceNames, type MemberResourceNames } from '../../shared/deployment/resourceNames';
import { orgIdFor } from '../../shared/registration/registrations';
import { localVaultName } from '../../devhost/services/keyVault';

/**
 * Every name derived from an organisation id holds its service's rule, written here on its own
 * (Azure's "Naming rules and restrictions for Azure resources"; the devhost console's app names),
 * for organisation ids made the way registration makes them, from thousands of generated names.
 */
type Rule = { min: number; max: number; re: RegExp };
const KEY_VAULT: Rule = { min: 3, max: 24, re: /^[A-Za-z][A-Za-z0-9-]*[A-Za-z0-9]$/ };
const RULES: Record<Exclude<keyof MemberResourceNames, 'orgId'>, Rule> = {
    app: { min: 1, max: 63, re: /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/ },
    localVault: KEY_VAULT,
    keyVault: KEY_VAULT,
    cosmosDatabase: { min: 1, max: 255, re: /^[^/\\#?]*[^/\\#? ]$/ },
    serviceBusSubscription: { min: 1, max: 50, re: /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/ },
    resourceGroup: { min: 1, max: 90, re: /^[-\w.()]*[-\w()]$/ },
    deployment: { min: 1, max: 64, re: /^[-\w.()]+$/ },
    storageAccount: { min: 3, max: 24, re: /^[a-z0-9]+$/ },
    // Blob containers: lowercase letters, digits and hyphens, starting and ending with a letter or digit.
    deploymentContainer: { min: 3, max: 63, re: /^[a-z0-9][a-z0-9-]*[a-z0-9]$/ },
    cosmosAccount: { min: 3, max: 44, re: /^[a-z0-9][a-z0-9-]*[a-z0-9]$/ },
    functionApp: { min: 2, max: 60, re: /^[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]$/ },
    scaleSet: { min: 1, max: 64, re: /^[A-Za-z0-9](?:[\w.-]*[A-Za-z0-9_])?$/ },
    namePrefix: { min: 3, max: 11, re: /^[a-z0-9]+$/ },
    // Durable Functions task hubs (Azure Storage provider): letters and digits, starting with a letter.
    taskHub: { min: 3, max: 45, re: /^[A-Za-z][A-Za-z0-9]*$/ },
};
/** Names with these rules must also have no two hyphens in a row. */
const NO_DOUBLE_HYPHEN = new Set(['localVault', 'keyVault', 'deploymentContainer']);

function problems(names: MemberResourceNames): string[] {
    const out: string[] = [];
    for (const [kind, rule] of Object.entries(RULES)) {
        const name = names[kind as keyof typeof RULES];
        if (name.length < rule.min || name.length > rule.max) out.push(`${kind} "${name}": ${name.length} characters, not ${rule.min}-${rule.max}`);
        if (!rule.re.test(name)) out.push(`${kind} "${name}": not ${rule.re}`);
        if (name.endsWith('-')) out.push(`${kind} "${name}": ends with a hyphen`);
        if (NO_DOUBLE_HYPHEN.has(kind) && name.includes('--')) out.push(`${kind} "${name}": two hyphens in a row`);
    }
    return out;
}

const SUFFIXES = ['', ' Energy Ltd', ' Energy Limited', ' GmbH', ' Power & Light Co.', ' Énergie SAS', ' 株式会社'];
/** Organisation names as people write them: short, long, unicode, digits first, with the usual suffixes. */
const orgName = fc.oneof(
    fc.tuple(fc.stringMatching(/^[a-z]{6}$/), fc.constantFrom(...SUFFIXES)).map(([n, s]) => n + s),
    fc.string({ minLength: 1, maxLength: 3 }),
    fc.string({ minLength: 20, maxLength: 120 }),
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }),
    fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }),
    fc.tuple(fc.integer({ min: 0, max: 99999 }), fc.string({ maxLength: 30 })).map(([d, s]) => `${d}${s}`),
    fc.stringMatching(/^[A-Za-z0-9 &.,'-]{1,60}$/),
);
const subscription = fc.uuid();

describe('member resource names', () => {
    it('hold every service rule for organisation ids made from thousands of generated names', () => {
        fc.assert(
            fc.property(orgName, fc.uuid(), subscription, fc.constantFrom('rg-flexchange', 'rg', 'my.company-members'), (name, registrationId, scope, resourceGroupPrefix) => {
                const names = memberResourceNames(orgIdFor(name, registrationId), { scope, resourceGroupPrefix });
                expect(problems(names)).toEqual([]);
            }),
            { numRuns: 5000 },
        );
    });

    it('hold them for any id the devhost and the event subscriptions accept', () => {
        fc.assert(
            fc.property(fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,62}$/), (orgId) => {
                expect(problems(memberResourceNames(orgId))).toEqual([]);
            }),
            { numRuns: 3000 },
        );
    });

    it('differ for organisations whose names are equal up to 20 characters', () => {
        fc.assert(
            fc.property(
                fc.stringMatching(/^[A-Za-z][A-Za-z0-9 ]{19}$/),
                fc.uniqueArray(fc.string({ minLength: 1, maxLength: 30 }), { minLength: 2, maxLength: 6 }),
                fc.uniqueArray(fc.uuid(), { minLength: 6, maxLength: 6 }),
                (common, tails, registrationIds) => {
                    const all = tails.map((tail, i) => memberResourceNames(orgIdFor(common + tail, registrationIds[i]!), { scope: 'sub-1' }));
                    expect(new Set(all.map((n) => n.orgId)).size).toBe(all.length);
                    for (const kind of Object.keys(RULES) as (keyof typeof RULES)[]) {
                        expect([kind, new Set(all.map((n) => n[kind])).size]).toEqual([kind, all.length]);
                    }
                },
            ),
            { numRuns: 1000 },
        );
    });

    it('differ for ids that share everything but their end, where the names must be cut', () => {
        const long = 'a-very-long-organisation-name-for-a-very-long-time-0123456789';
        const ids = ['0', '1', '2', 'x', 'y'].map((end) => `${long}${end}`);
        for (const kind of Object.keys(RULES) as (keyof typeof RULES)[]) {
            expect([kind, new Set(ids.map((id) => memberResourceNames(id)[kind])).size]).toEqual([kind, ids.length]);
        }
    });

    it('are the same for the same id (a second deployment finds the first), and keep the names members already have', () => {
        expect(memberResourceNames('acme-energy-3f2a9c', { scope: 's' })).toEqual(memberResourceNames('acme-energy-3f2a9c', { scope: 's' }));
        expect(memberResourceNames('acme-energy-3f2a9c', { resourceGroupPrefix: 'rg-flexchange' })).toMatchObject({
            app: 'member-acme-energy-3f2a9c',
            cosmosDatabase: 'member-acme-energy-3f2a9c',
            serviceBusSubscription: 'member-acme-energy-3f2a9c',
            resourceGroup: 'rg-flexchange-acme-energy-3f2a9c',
            deployment: 'flexchange-member-acme-energy-3f2a9c',
        });
    });

    it('gives ids that differ only in their hyphens task hubs of their own (a hub name holds letters and digits only)', () => {
        const [a, b] = [memberResourceNames('grid-co-1a2b3c'), memberResourceNames('gridco-1a2b3c')];
        expect(a.taskHub).toMatch(/^membergridco1a2b3c[0-9a-f]{10}$/);
        expect(a.taskHub).not.toBe(b.taskHub);
        expect(a.taskHub).not.toBe(CORE_TASK_HUB);
    });

    it('the windco / gridco case: an id with a hyphen at its 14th character names a valid vault', () => {
        for (const name of ['windco Energy Ltd', 'gridco Energy Ltd', 'solarx Energy Ltd']) {
            const orgId = orgIdFor(name, '7d0b3c4e-0f6a-4c1e-9d7b-2b9e8f1a6c55');
            // What made `fx-member-<orgId>` cut to 24 characters end with a hyphen.
            expect(orgId.charAt(13)).toBe('-');
            const names = memberResourceNames(orgId);
            expect(problems(names)).toEqual([]);
            // The devhost's own fallback, for a member whose request carries no names, holds the rule too.
            expect(localVaultName(names.app)).toMatch(/^(?!.*--)[a-z][a-z0-9-]{1,22}[a-z0-9]$/);
        }
    });
});

describe('the devhost vault name of an app instance it names itself', () => {
    it('is a valid Key Vault name for every app name the console accepts, and keeps the short ones as they were', () => {
        fc.assert(
            fc.property(fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,62}$/), (app) => {
                const name = localVaultName(app);
                expect(name.length).toBeGreaterThanOrEqual(3);
                expect(name.length).toBeLessThanOrEqual(24);
                expect(name).toMatch(KEY_VAULT.re);
                expect(name).not.toContain('--');
            }),
            { numRuns: 3000 },
        );
        expect(localVaultName('core')).toBe('fx-core');
        expect(localVaultName('member1')).toBe('fx-member1');
        expect(localVaultName('member-windco-energy-ltd-3f2a9c')).not.toBe(localVaultName('member-windco-energy-ltd-77aa01'));
    });
});
