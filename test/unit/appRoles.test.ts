import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { APP_ROLES, appRoleId } from '../../shared/auth/appRoles';
import { profile } from '../../devprofile';

/** The app roles the app registration declares are the ones the code checks, with stable ids. */
describe('app roles', () => {
    const root = path.join(__dirname, '..', '..');
    const sources = (dir: string): string[] =>
        readdirSync(path.join(root, dir)).flatMap((f) => {
            const rel = path.join(dir, f);
            return statSync(path.join(root, rel)).isDirectory() ? sources(rel) : rel.endsWith('.ts') ? [rel] : [];
        });

    it('declares every role the routes and services name, and the devhost issues exactly those', () => {
        const named = new Set<string>();
        for (const rel of ['functions', 'orchestrations', 'shared'].flatMap(sources)) {
            for (const [, role] of readFileSync(path.join(root, rel), 'utf8').matchAll(/'((?:Flexchange|Org|Deployment)\.[A-Z][A-Za-z]+)'/g)) named.add(role!);
        }
        const declared = APP_ROLES.map((r) => r.value);
        expect([...named].filter((r) => !declared.includes(r))).toEqual([]);
        expect(profile.appRegistration?.roles).toEqual(declared);
    });

    it('gives each role a stable id of its own, shaped as a UUID', () => {
        const ids = APP_ROLES.map((r) => appRoleId(r.value));
        expect(new Set(ids).size).toBe(ids.length);
        for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        expect(appRoleId('Org.Trader')).toBe(appRoleId('Org.Trader'));
    });
});
