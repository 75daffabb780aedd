import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

const root = path.resolve(__dirname, '..', '..');
/** The project's source (tests may import every side, so they are not cruised). */
const SOURCES = ['devhost', 'devprofile', 'shared', 'functions', 'orchestrations', 'scripts', 'bench', 'contracts'];

interface Violation {
    type: string;
    from: string;
    to: string;
    rule: { name: string; severity: string };
    cycle?: { name: string }[];
}

interface CruiseResult {
    modules: { source: string }[];
    summary: { violations: Violation[]; totalCruised: number };
}

/**
 * dependency-cruiser over the source with the rules in .dependency-cruiser.cjs and the TypeScript config.
 * Its API is an ES module, which jest's CommonJS runtime cannot import: it runs as its own process.
 */
async function cruise(): Promise<CruiseResult> {
    const bin = path.join(root, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruiser.mjs');
    const args = [bin, '--config', '.dependency-cruiser.cjs', '--output-type', 'json', ...SOURCES];
    // It exits non-zero when it finds violations; the report is on stdout either way.
    const { stdout } = await promisify(execFile)(process.execPath, args, { cwd: root, maxBuffer: 64 * 1024 * 1024 }).catch((err: { stdout?: string; stderr?: string }) => {
        if (!err.stdout) throw new Error(`dependency-cruiser failed: ${err.stderr}`);
        return { stdout: err.stdout };
    });
    return JSON.parse(stdout) as CruiseResult;
}

const edge = (v: Violation) => (v.cycle ? [v.from, ...v.cycle.map((c) => c.name)].join(' → ') : `${v.from} → ${v.to}`);
const broken = (result: CruiseResult, rules: string[]) =>
    result.summary.violations
        .filter((v) => rules.includes(v.rule.name))
        .map((v) => `${v.rule.name}: ${edge(v)}`)
        .sort();

describe('the architecture', () => {
    let result: CruiseResult;
    beforeAll(async () => {
        result = await cruise();
    }, 60_000);

    it('cruises the whole source', () => {
        const sources = new Set(result.modules.map((m) => m.source));
        for (const file of ['devhost/devHost.ts', 'devhost/profile.ts', 'devprofile/index.ts', 'shared/composition.ts', 'functions/http/route.ts', 'scripts/demo.ts']) expect(sources).toContain(file);
    });

    it('has no import circle', () => {
        expect(broken(result, ['no-circular'])).toEqual([]);
    });

    it('keeps the devhost and the app apart: the devhost loads the app profile by path, the app reaches the devhost over HTTP', () => {
        expect(broken(result, ['devhost-imports-no-app', 'app-imports-no-devhost', 'profile-sees-the-profile-interface-only'])).toEqual([]);
    });

    it('breaks no other rule', () => {
        expect(result.summary.violations.map((v) => `${v.rule.name}: ${edge(v)}`)).toEqual([]);
    });
});
