/**
 * Onboards many organisations over HTTP against a running `npm start`, as a new consortium would:
 * register each (generated names, several of them 6 letters with the usual suffix), approve it from
 * its approval mail, and check that it ends `Active` with its member deployment up. Prints a line per
 * organisation and a summary; exits 1 unless every one is Active with a healthy member.
 *
 *   npx tsx scripts/onboardMany.ts [--count 20] [--concurrency 5] [--core http://localhost:7071] [--console http://localhost:7070]
 *
 * Registrations come from one address: raise FLEXCHANGE_REGISTRATION_LIMIT_PER_ADDRESS for the run
 * (`npm start -- --set FLEXCHANGE_REGISTRATION_LIMIT_PER_ADDRESS=100`).
 */
import { randomBytes, randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
    options: {
        count: { type: 'string', default: '20' },
        concurrency: { type: 'string', default: '5' },
        core: { type: 'string', default: 'http://localhost:7071' },
        console: { type: 'string', default: 'http://localhost:7070' },
        'timeout-seconds': { type: 'string', default: '240' },
    },
});
const CORE = args.core!.replace(/\/$/, '');
const CONSOLE = args.console!.replace(/\/$/, '');
const COUNT = Number(args.count);
const CONCURRENCY = Number(args.concurrency);
const TIMEOUT_MS = Number(args['timeout-seconds']) * 1000;

interface Mail {
    id: string;
    to: string[];
    subject: string;
    links: string[];
}
interface Outcome {
    name: string;
    orgId?: string;
    status: string;
    seconds: number;
    memberUrl?: string;
    memberHealth?: number;
    failure?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const LETTERS = 'abcdefghijklmnopqrstuvwxyz';
const word = (n: number) => Array.from({ length: n }, () => LETTERS[randomInt(LETTERS.length)]).join('');
const SUFFIXES = [' Energy Ltd', ' Energy Ltd', ' Power plc', ' Renewables GmbH', ' Énergie SAS', ' Grid Services Limited'];

/** Generated organisation names: the three that failed before, more 6-letter ones, and longer ones sharing prefixes. */
function names(count: number): string[] {
    const fixed = ['windco Energy Ltd', 'gridco Energy Ltd', 'solarx Energy Ltd'];
    const out = fixed.slice(0, count);
    while (out.length < count) {
        const i = out.length;
        if (i % 3 === 0) out.push(`${word(6)} Energy Ltd`);
        else if (i % 3 === 1) out.push(`${word(6)}${SUFFIXES[randomInt(SUFFIXES.length)]}`);
        else out.push(`${word(3 + randomInt(12))} ${word(4 + randomInt(10))}${SUFFIXES[randomInt(SUFFIXES.length)]}`);
    }
    return out;
}

async function json<T>(res: Response, what: string): Promise<T> {
    const text = await res.text();
    if (!res.ok) throw new Error(`${what}: ${res.status} ${text.slice(0, 300)}`);
    return JSON.parse(text) as T;
}

async function operatorToken(): Promise<string> {
    const res = await fetch(`${CONSOLE}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ roles: ['Flexchange.Admin'], email: 'ops@operator.example' }) });
    return (await json<{ access_token: string }>(res, 'operator token')).access_token;
}

async function approvalLink(org: string, deadline: number): Promise<string> {
    for (;;) {
        const mails = await json<Mail[]>(await fetch(`${CONSOLE}/dev/mail`), 'mail');
        const link = mails.find((m) => /^Approve/.test(m.subject) && m.subject.includes(org))?.links.find((l) => l.includes('/api/approvals/'));
        if (link) return link;
        if (Date.now() > deadline) throw new Error('no approval mail');
        await sleep(250);
    }
}

async function onboard(name: string, token: () => Promise<string>): Promise<Outcome> {
    const started = Date.now();
    const deadline = started + TIMEOUT_MS;
    const tag = randomBytes(4).toString('hex');
    const outcome: Outcome = { name, status: 'NotRegistered', seconds: 0 };
    try {
        const res = await fetch(`${CORE}/api/registrations`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({
                organization: { name, legalId: `GB-${tag}`, country: 'GB', contactEmail: `ops-${tag}@example.org` },
                applicant: { name: 'Applicant', email: `admin-${tag}@example.org` },
            }),
        });
        const { registrationId } = await json<{ registrationId: string }>(res, 'register');
        outcome.status = 'PendingApproval';
        const decided = await fetch(await approvalLink(name, deadline), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ decision: 'approve' }) });
        if (decided.status !== 200) throw new Error(`approve: ${decided.status} ${(await decided.text()).slice(0, 200)}`);
        for (;;) {
            const r = await json<{ status: string; orgId?: string; failure?: string }>(await fetch(`${CORE}/api/registrations/${registrationId}`, { headers: { authorization: `Bearer ${await token()}` } }), 'status');
            Object.assign(outcome, { status: r.status, orgId: r.orgId, failure: r.failure });
            if (r.status === 'Active' || r.status === 'Failed' || r.status === 'Rejected' || r.status === 'Expired') break;
            if (Date.now() > deadline) throw new Error(`still ${r.status}`);
            await sleep(500);
        }
        if (outcome.status === 'Active') {
            const services = await json<{ apps: { orgId?: string; role?: string; url: string }[] }>(await fetch(`${CONSOLE}/dev/services`), 'services');
            outcome.memberUrl = services.apps.find((a) => a.role === 'member' && a.orgId === outcome.orgId)?.url;
            outcome.memberHealth = outcome.memberUrl ? (await fetch(`${outcome.memberUrl}/health`)).status : undefined;
        }
    } catch (err) {
        outcome.failure = (err as Error).message;
    }
    outcome.seconds = (Date.now() - started) / 1000;
    return outcome;
}

async function main(): Promise<void> {
    const started = Date.now();
    let token: Promise<string> | undefined;
    let tokenAt = 0;
    // One operator token, renewed every 10 minutes.
    const operator = () => {
        if (!token || Date.now() - tokenAt > 600_000) {
            tokenAt = Date.now();
            token = operatorToken();
        }
        return token;
    };
    const queue = names(COUNT);
    const outcomes: Outcome[] = [];
    const worker = async () => {
        for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
            const o = await onboard(name, operator);
            outcomes.push(o);
            const ok = o.status === 'Active' && o.memberHealth === 200;
            console.log(
                `${ok ? 'ok  ' : 'FAIL'} ${o.name.padEnd(44)} ${(o.orgId ?? '-').padEnd(32)} ${o.status.padEnd(15)} ${o.seconds.toFixed(1).padStart(6)} s  ` +
                    `${o.memberUrl ? `member ${o.memberUrl} health ${o.memberHealth}` : ''}${o.failure ? `  ${o.failure}` : ''}`,
            );
        }
    };
    await Promise.all(Array.from({ length: Math.max(1, CONCURRENCY) }, worker));
    const good = outcomes.filter((o) => o.status === 'Active' && o.memberHealth === 200).length;
    const seconds = (Date.now() - started) / 1000;
    console.log(`\n${good} of ${outcomes.length} organisations Active with their member deployment up, in ${seconds.toFixed(1)} s (concurrency ${CONCURRENCY})`);
    const byStatus = outcomes.reduce<Record<string, number>>((m, o) => ((m[o.status] = (m[o.status] ?? 0) + 1), m), {});
    console.log(`by status: ${Object.entries(byStatus).map(([s, n]) => `${s} ${n}`).join(', ')}`);
    process.exitCode = good === outcomes.length && outcomes.length === COUNT ? 0 : 1;
}

main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
});
