import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readDemoClients, writeDemoClients } from '../../scripts/demoClients';

/** The file `npm run demo -- --client-credentials` reads: secrets, so readable by its owner only, and checked before use. */
describe('the demo clients file', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'demo-clients-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const clients = {
        tokenUrl: 'https://login.microsoftonline.com/eeeeeeee-1111-2222-3333-444444444444/oauth2/v2.0/token',
        scope: 'api://flexchange/.default',
        operator: { clientId: 'op', clientSecret: 's1' },
        traders: [
            { clientId: 't1', clientSecret: 's2' },
            { clientId: 't2', clientSecret: 's3' },
        ],
    };

    it('is written for its owner only and read back as written', () => {
        const file = path.join(dir, 'ok.json');
        writeDemoClients(file, clients);
        expect(statSync(file).mode & 0o777).toBe(0o600);
        expect(readDemoClients(file)).toEqual(clients);
        // Written again over a file others could read: it is the owner's only afterwards.
        chmodSync(file, 0o644);
        writeDemoClients(file, clients);
        expect(statSync(file).mode & 0o777).toBe(0o600);
    });

    it('is refused when others may read it, or when it is not the shape the demo needs, naming what is wrong', () => {
        const open = path.join(dir, 'open.json');
        writeDemoClients(open, clients);
        chmodSync(open, 0o644);
        expect(() => readDemoClients(open)).toThrow(`make it readable by you only (chmod 600 ${open})`);
        const bad = path.join(dir, 'bad.json');
        writeFileSync(bad, JSON.stringify({ ...clients, tokenUrl: 'not a url', traders: [clients.traders[0]] }), { mode: 0o600 });
        expect(() => readDemoClients(bad)).toThrow(/tokenUrl: .*; traders: /);
    });
});
