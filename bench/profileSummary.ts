/**
 * Where a V8 CPU profile's time went: self time by function (with its file) and by package,
 * and each sample charged to the nearest function of the project's own code; the largest first.
 *
 *   npx tsx bench/profileSummary.ts <file.cpuprofile> [--top 30] [--last <s>]
 *
 * `--last <s>`: only the samples of the profile's last s seconds (a bench's final level, without
 * the start-up and onboarding before it).
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
}
interface Profile {
    startTime: number;
    endTime: number;
    nodes: ProfileNode[];
    samples: number[];
    timeDeltas: number[];
}

const file = process.argv[2];
if (!file) {
    console.error('usage: tsx bench/profileSummary.ts <file.cpuprofile> [--top N]');
    process.exit(2);
}
const topAt = process.argv.indexOf('--top');
const TOP = topAt > 0 ? Number(process.argv[topAt + 1]) : 30;
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const selfUs = new Map<number, number>();
const lastAt = process.argv.indexOf('--last');
const since = lastAt > 0 ? profile.endTime - Number(process.argv[lastAt + 1]) * 1e6 : -Infinity;
let at = profile.startTime;
profile.samples.forEach((id, i) => {
    at += profile.timeDeltas[i] ?? 0;
    if (at >= since) selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
});
const total = [...selfUs.values()].reduce((a, b) => a + b, 0);

const packageOf = (url: string) => {
    if (!url) return '(native)';
    const nm = url.lastIndexOf('node_modules/');
    if (nm >= 0) {
        const rest = url.slice(nm + 'node_modules/'.length).split('/');
        return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
    }
    return url.startsWith('node:') ? 'node' : url.includes('/work/') || url.startsWith('file:') ? 'flexchange' : url;
};
const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);
const fns = new Map<string, number>();
const pkgs = new Map<string, number>();
for (const [id, us] of selfUs) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    add(fns, `${functionName || '(anonymous)'}  ${url.split('/').slice(-2).join('/')}:${lineNumber + 1}`, us);
    add(pkgs, packageOf(url), us);
}
const show = (title: string, m: Map<string, number>) => {
    console.log(`${title} (self time, of ${(total / 1000).toFixed(0)} ms sampled)`);
    for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`  ${(us / 1000).toFixed(1).padStart(8)} ms  ${((100 * us) / total).toFixed(1).padStart(5)} %  ${k}`);
};
// Each sample's time charged to the nearest frame of the project's own code on its stack
// (library and native time included): which of our calls costs what.
const parentOf = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);
const ours = new Map<string, number>();
for (const [id, us] of selfUs) {
    let at: number | undefined = id;
    while (at !== undefined && packageOf(byId.get(at)!.callFrame.url) !== 'flexchange') at = parentOf.get(at);
    const frame = at === undefined ? undefined : byId.get(at)!.callFrame;
    add(ours, frame ? `${frame.functionName || '(anonymous)'}  ${frame.url.split('/').slice(-2).join('/')}:${frame.lineNumber + 1}` : `(outside the project: ${byId.get(id)!.callFrame.functionName || packageOf(byId.get(id)!.callFrame.url)})`, us);
}
show('by package', pkgs);
show('by function', fns);
show('by nearest project function (library time included)', ours);
