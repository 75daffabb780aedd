import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { AppFolderError, parseTimeSpan, readAppFolder } from '../../devhost/appFolder';
import { parseStartArgs, UsageError } from '../../devhost/cli';
import { orphanGraceMs } from '../../devhost/services/storageProcess';
import { parseSchedule } from '../../devhost/worker/timerExtension';
import { fixture, removeDir, tempDir } from '../harness/devhost';

describe('reading a function app folder', () => {
    it('reads main globs, the route prefix and local settings', () => {
        const app = readAppFolder(fixture('basic-app'));
        expect(app.main).toBe('src/*.js');
        expect(app.entryFiles.map((f) => path.basename(f))).toEqual(['echo.js', 'lifecycle.js', 'record.js', 'responses.js', 'routes.js']);
        expect(app.routePrefix).toBe('api');
        expect(app.settings.FIXTURE_GREETING).toBe('hello from local.settings');
    });

    it('explains a missing build and a missing main', () => {
        const dir = tempDir();
        try {
            expect(() => readAppFolder(dir)).toThrow(/has no package.json/);
            writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'x' }));
            expect(() => readAppFolder(dir)).toThrow(/has no "main"/);
            writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'x', main: 'dist/functions/*.js' }));
            expect(() => readAppFolder(dir)).toThrow(AppFolderError);
            expect(() => readAppFolder(dir)).toThrow(/matches no files. Is the app built\?/);
        } finally {
            removeDir(dir);
        }
    });

    it('falls back to local.settings.sample.json and reads an empty route prefix', () => {
        const dir = tempDir();
        try {
            mkdirSync(path.join(dir, 'src'));
            writeFileSync(path.join(dir, 'src', 'a.js'), '');
            writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ main: 'src/a.js' }));
            writeFileSync(path.join(dir, 'host.json'), JSON.stringify({ extensions: { http: { routePrefix: '' } } }));
            writeFileSync(path.join(dir, 'local.settings.sample.json'), JSON.stringify({ Values: { A: 1, B: true }, Host: { LocalHttpPort: 7999 } }));
            const app = readAppFolder(dir);
            expect(app.routePrefix).toBe('');
            expect(app.settings).toEqual({ A: '1', B: 'true' });
            expect(app.localHttpPort).toBe(7999);
            expect(path.basename(app.settingsFile!)).toBe('local.settings.sample.json');
        } finally {
            removeDir(dir);
        }
    });

    it('parses host.json TimeSpans', () => {
        expect(parseTimeSpan('00:05:00')).toBe(300_000);
        expect(parseTimeSpan('1.02:00:00')).toBe(26 * 3600_000);
        expect(parseTimeSpan('00:00:01.5')).toBe(1500);
        expect(parseTimeSpan('five minutes')).toBeUndefined();
    });
});

describe('timer schedules', () => {
    it('reads 6-field NCRONTAB in UTC and refuses 5 fields', () => {
        const s = parseSchedule('0 */5 * * * *');
        expect(s.next(new Date('2026-11-24T10:02:30Z')).toISOString()).toBe('2026-11-24T10:05:00.000Z');
        expect(s.intervalMs).toBe(300_000);
        expect(() => parseSchedule('*/5 * * * *')).toThrow(/6 parts/);
    });

    it('requires both day-of-month and day-of-week, as NCRONTAB does', () => {
        // 13th of the month that is also a Friday.
        const s = parseSchedule('0 0 0 13 * 5');
        expect(s.next(new Date('2026-01-01T00:00:00Z')).toISOString()).toBe('2026-02-13T00:00:00.000Z');
    });

    it('reads a TimeSpan schedule as a fixed interval', () => {
        const s = parseSchedule('00:00:30');
        expect(s.next(new Date('2026-11-24T10:00:10Z')).toISOString()).toBe('2026-11-24T10:00:30.000Z');
        expect(s.intervalMs).toBe(30_000);
    });
});

describe('devhost command line', () => {
    it('defaults to the current folder as the core app', () => {
        const args = parseStartArgs([]);
        expect(args.apps).toEqual([{ name: 'core', folder: path.resolve('.') }]);
        expect(args).toMatchObject({ basePort: 7071, consolePort: 7070, stateDir: '.flexchange' });
    });

    it('applies options to the --app they follow', () => {
        const args = parseStartArgs(['--port', '8000', '--app', 'a', '--name', 'core', '--set', 'X=1=2', '--app', 'b', '--app-port', '9000']);
        expect(args.basePort).toBe(8000);
        expect(args.apps).toEqual([
            { name: 'core', folder: path.resolve('a'), settings: { X: '1=2' } },
            { name: 'app2', folder: path.resolve('b'), port: 9000 },
        ]);
    });

    it('refuses bad usage', () => {
        expect(() => parseStartArgs(['--name', 'x'])).toThrow(UsageError);
        expect(() => parseStartArgs(['--app', 'a', '--set', 'novalue'])).toThrow(/KEY=VALUE/);
        expect(() => parseStartArgs(['--port', 'abc'])).toThrow(/port number/);
        expect(() => parseStartArgs(['--app', 'a', '--name', 'x', '--app', 'b', '--name', 'x'])).toThrow(/two app instances/);
        expect(() => parseStartArgs(['--bogus'])).toThrow(/unknown option/);
    });
});

describe('the storage sidecar\'s grace after its devhost died', () => {
    it('is 15 s unless DEVHOST_STORAGE_ORPHAN_SECONDS says otherwise, from 1 s to an hour', () => {
        expect(orphanGraceMs({})).toBe(15_000);
        expect(orphanGraceMs({ DEVHOST_STORAGE_ORPHAN_SECONDS: '' })).toBe(15_000);
        expect(orphanGraceMs({ DEVHOST_STORAGE_ORPHAN_SECONDS: '2' })).toBe(2000);
        for (const bad of ['0', '0.5', '3601', 'soon']) expect(() => orphanGraceMs({ DEVHOST_STORAGE_ORPHAN_SECONDS: bad })).toThrow(/DEVHOST_STORAGE_ORPHAN_SECONDS must be a number of seconds from 1 to 3600/);
    });
});
