/**
 * npm run demo [-- --core http://localhost:7071 --console http://localhost:7070 --ledger http://127.0.0.1:8545]
 * npm run demo -- --core https://<core>/api --client-credentials <file> [--ledger <rpc url>]
 *
 * Walks the whole story against a running `npm start`: the contract, two organisations registered and
 * approved from their mails, their member deployments and funded accounts, a webhook, a proposal with
 * a document, both signatures over the terms (EIP-712), completion, the document verified, the signed
 * terms checked with ethers, the events received on the webhook.
 *
 * With --client-credentials (a deployed core, or the devhost used as one): no devhost console. The demo
 * signs in as the applications of the file (scripts/demoClients.ts) with the client credentials grant:
 * the operator's client approves through the API (the approval mail goes to real people) and registers
 * each trader client as its new organisation's API client; the events are read from the organisation's
 * event feed (a deployed core cannot reach a webhook on this machine); the signatures are recovered from
 * the ledger only when --ledger names an RPC endpoint this machine reaches. At the end the trader clients
 * are removed from the organisations, so the next run can use them again.
 * Prints each step as it goes and where to look; exits 1 at the first step that fails.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { TypedDataEncoder, verifyTypedData, type TypedDataField } from 'ethers';
import { EnergyExchange } from '../shared/chain/energyExchange';
import { jsonRpc } from '../shared/ledger/jsonRpc';
import { clientCredentialsToken, readDemoClients, type DemoClient } from './demoClients';

const arg = (name: string, fallback: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
};
// `--core` with or without the route prefix.
const CORE = `${arg('core', 'http://localhost:7071').replace(/\/+$/, '').replace(/\/api$/, '')}/api`;
const CONSOLE = arg('console', 'http://localhost:7070').replace(/\/$/, '');
const CLIENTS_FILE = arg('client-credentials', '');
const clients = CLIENTS_FILE ? readDemoClients(CLIENTS_FILE) : undefined;
const LEDGER = arg('ledger', clients ? '' : 'http://127.0.0.1:8545');
const tty = process.stdout.isTTY;
const paint = (code: string, s: string) => (tty ? `\x1b[${code}m${s}\x1b[0m` : s);

let stepNo = 0;
// Signed in as applications, there is no webhook subscription step.
const TOTAL = clients ? 12 : 13;
const notes: string[] = [];

async function step<T>(title: string, fn: () => Promise<T>, describe: (v: T) => string = () => ''): Promise<T> {
    stepNo += 1;
    const label = `[${String(stepNo).padStart(2)}/${TOTAL}] ${title}`;
    process.stdout.write(tty ? `${paint('36', '…')} ${label}` : `   ${label}\n`);
    const started = Date.now();
    try {
        const value = await fn();
        const took = `${((Date.now() - started) / 1000).toFixed(1)} s`;
        const detail = describe(value);
        process.stdout.write(`${tty ? '\r' : ''}${paint('32', '✓')} ${label} ${paint('2', `(${took})`)}\n${detail ? `${detail.replace(/^/gm, '      ')}\n` : ''}`);
        return value;
    } catch (err) {
        process.stdout.write(`${tty ? '\r' : ''}${paint('31', '✗')} ${label}\n      ${(err as Error).message}\n`);
        throw Object.assign(err as Error, { reported: true });
    }
}

async function call(method: string, url: string, opts: { token?: string; json?: unknown; body?: string; type?: string } = {}): Promise<{ status: number; body: any }> {
    const headers: Record<string, string> = {};
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (opts.json !== undefined) headers['content-type'] = 'application/json';
    if (opts.type) headers['content-type'] = opts.type;
    let res: Response;
    try {
        res = await fetch(url, { method, headers, body: opts.json !== undefined ? JSON.stringify(opts.json) : opts.body, signal: AbortSignal.timeout(60_000) });
    } catch (err) {
        throw new Error(`${method} ${url}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}${clients ? '' : ' — is `npm start` running?'}`);
    }
    const text = await res.text();
    let body: any = text;
    try {
        body = text ? JSON.parse(text) : undefined;
    } catch {
        // not JSON
    }
    return { status: res.status, body };
}

function expectStatus(r: { status: number; body: any }, wanted: number[], what: string) {
    if (!wanted.includes(r.status)) throw new Error(`${what}: HTTP ${r.status} ${typeof r.body === 'object' ? (r.body?.detail ?? JSON.stringify(r.body)) : String(r.body).slice(0, 200)}`);
    return r.body;
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, ms = 120_000): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
        const v = await fn();
        if (v !== undefined) return v;
        if (Date.now() > end) throw new Error(`gave up waiting for ${what} after ${ms / 1000} s`);
        await new Promise((r) => setTimeout(r, 500));
    }
}

const token = async (body: Record<string, unknown>): Promise<string> => expectStatus(await call('POST', `${CONSOLE}/dev/token`, { json: body }), [200], 'a dev token').access_token;

/** A client's token once it carries `roles` (Entra ID: a new assignment shows in tokens issued after it, within a minute or two). */
async function clientToken(who: DemoClient, roles: string[]): Promise<string> {
    let held: string[] = [];
    return waitFor(
        `${who.clientId}'s token to carry ${roles.join(' and ')}`,
        async () => {
            const t = await clientCredentialsToken(clients!, who);
            held = t.roles;
            return roles.every((r) => t.roles.includes(r)) ? t.token : undefined;
        },
        180_000,
    ).catch((err: Error) => {
        throw new Error(`${err.message} (it carries ${held.join(', ') || 'no role'})`);
    });
}

/** The approval: from the approval mail in the devhost's sink, or (signed in as applications) through the API with the operator client's token. */
async function approve(name: string, r: { registrationId: string; statusUrl: string }, operator: string): Promise<string> {
    if (clients) {
        await waitFor('the registration to await approval', async () => {
            const v = (await call('GET', absolute(r.statusUrl))).body as { status?: string };
            if (v?.status && !['Submitted', 'PendingApproval'].includes(v.status)) throw new Error(`the registration is ${v.status}`);
            return v?.status === 'PendingApproval' ? true : undefined;
        });
        expectStatus(await call('POST', `${CORE}/registrations/${r.registrationId}/decision`, { token: operator, json: { decision: 'approve' } }), [200], 'POST /registrations/{id}/decision');
        return `approved through the API (POST ${CORE}/registrations/${r.registrationId}/decision)`;
    }
    const mail = await waitFor('the approval mail', async () => {
        const mails = expectStatus(await call('GET', `${CONSOLE}/dev/mail`), [200], 'the mail sink') as { id: string; subject: string; links: string[] }[];
        return mails.find((m) => m.subject.includes(name) && m.links.some((l) => l.includes('/api/approvals/')));
    });
    const link = mail.links.find((l) => l.includes('/api/approvals/'))!;
    expectStatus(await call('POST', link, { body: 'decision=approve', type: 'application/x-www-form-urlencoded' }), [200], 'the approval link');
    return `the mail: ${CONSOLE}/dev/mail/${encodeURIComponent(mail.id)}`;
}

const absolute = (url: string) => (url.startsWith('http') ? url : `${CORE.replace(/\/api$/, '')}${url}`);

interface Org {
    name: string;
    email: string;
    orgId: string;
    registrationId: string;
    memberUrl: string;
    account: string;
    trader: string;
    admin: string;
}

/** A webhook receiver on loopback that checks every delivery's signature. */
async function webhookReceiver() {
    const received: { type: string; id: string; verified: boolean }[] = [];
    let secret = '';
    const server = createServer((req: IncomingMessage, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
            const body = Buffer.concat(chunks).toString('utf8');
            const sig = String(req.headers['flexchange-signature'] ?? '');
            const t = /t=(\d+)/.exec(sig)?.[1] ?? '';
            const v1 = /v1=([0-9a-f]{64})/.exec(sig)?.[1] ?? '';
            const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
            const verified = v1.length === 64 && timingSafeEqual(Buffer.from(v1, 'hex'), Buffer.from(expected, 'hex')) && Math.abs(Date.now() / 1000 - Number(t)) < 300;
            try {
                const event = JSON.parse(body) as { id: string; type: string };
                received.push({ type: event.type, id: event.id, verified });
            } catch {
                received.push({ type: 'unparseable', id: '', verified: false });
            }
            res.writeHead(verified ? 204 : 401).end();
        });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/flexchange`, received, setSecret: (s: string) => (secret = s), close: () => new Promise<void>((r) => server.close(() => r())) };
}

async function main(): Promise<void> {
    console.log(`Flexchange demo against ${CORE} (${clients ? `signed in as the applications of ${CLIENTS_FILE}` : `console ${CONSOLE}`})\n`);
    const run = randomBytes(3).toString('hex');
    const hook = await webhookReceiver();
    // The trader clients registered with the new organisations: removed at the end, whatever happens.
    const registeredClients: { orgId: string; clientId: string }[] = [];
    let operator = '';
    try {
        operator = await step(
            'The system is up',
            async () => {
                const health = await call('GET', `${CORE}/health`);
                if (health.status !== 200) throw new Error(`GET /api/health answered ${health.status}: ${JSON.stringify(health.body?.checks ?? health.body)}`);
                return clients ? clientToken(clients.operator, ['Flexchange.Admin', 'Flexchange.Approver']) : token({ roles: ['Flexchange.Admin'], email: 'ops@operator.example' });
            },
            () => `health: ${CORE}/health · API docs: ${CORE}/docs${clients ? ` · signed in as ${clients.operator.clientId} (${clients.tokenUrl})` : ''}`,
        );

        const contract = await step(
            'The EnergyExchange contract is deployed (EnergyExchangeV2 on a new ledger: the parties sign the terms)',
            async () => {
                const list = expectStatus(await call('GET', `${CORE}/contracts`, { token: operator }), [200], 'GET /contracts');
                // New work uses the latest active version (README, "Versions").
                const active = (list.items as { version: number; address: string; active: boolean }[]).filter((v) => v.active).sort((x, y) => y.version - x.version)[0];
                if (active) return { ...active, deployed: false };
                return { ...expectStatus(await call('POST', `${CORE}/contracts`, { token: operator, json: { artifact: 'EnergyExchangeV2' } }), [200, 201], 'POST /contracts'), deployed: true };
            },
            (v) => `version ${v.version} at ${v.address}${v.deployed ? ' (deployed now)' : ' (already there)'}`,
        );

        const orgs: Org[] = [];
        for (const [i, [name, person]] of ([
            [`North Wind ${run}`, 'ada'],
            [`South Solar ${run}`, 'sol'],
        ] as const).entries()) {
            const email = `${person}@${name.split(' ')[0]!.toLowerCase()}-${run}.example`;
            const registered = await step(
                `${name} registers and is approved ${clients ? 'by the operator through the API' : 'from the approval mail'}`,
                async () => {
                    const r = expectStatus(
                        await call('POST', `${CORE}/registrations`, { json: { organization: { name, legalId: `GB-${randomBytes(4).toString('hex')}`, country: 'GB', contactEmail: email }, applicant: { name: person, email } } }),
                        [202],
                        'POST /registrations',
                    ) as { registrationId: string; statusUrl: string };
                    return { ...r, approval: await approve(name, r, operator) };
                },
                (r) => `registration ${r.registrationId}; ${r.approval}`,
            );
            const org = await step(
                `${name}: member deployment up, first account made and funded${clients ? ', its trader client registered' : ''}`,
                async () => {
                    const statusUrl = absolute(registered.statusUrl);
                    const s = await waitFor(
                        'the organisation to be Active',
                        async () => {
                            const v = (await call('GET', statusUrl)).body as { status: string; orgId: string; steps: { step: string; detail?: string }[] };
                            if (v?.status === 'Failed' || v?.status === 'Rejected') throw new Error(`the registration is ${v.status}: ${JSON.stringify(v.steps.at(-1))}`);
                            return v?.status === 'Active' ? v : undefined;
                        },
                        180_000,
                    );
                    const who = clients?.traders[i];
                    if (who) {
                        // The operator registers the trader client as the organisation's API client (Entra ID: the org roles are assigned to it).
                        const added = await call('POST', `${CORE}/orgs/${s.orgId}/clients`, { token: operator, json: { clientId: who.clientId, name: `npm run demo (${name})`, roles: ['Org.Admin', 'Org.Trader'] } });
                        if (added.status === 409) throw new Error(`${who.clientId}: ${added.body?.detail} — an earlier run that stopped half-way left it there; remove it with DELETE ${CORE}/orgs/<that org>/clients/${who.clientId} (operator token)`);
                        expectStatus(added, [201], 'POST /orgs/{orgId}/clients');
                        registeredClients.push({ orgId: s.orgId, clientId: who.clientId });
                    }
                    const orgToken = who ? await clientToken(who, ['Org.Admin', 'Org.Trader']) : undefined;
                    const o: Org = {
                        name,
                        email,
                        orgId: s.orgId,
                        registrationId: registered.registrationId,
                        memberUrl: s.steps.find((x) => x.step === 'member-deployment')!.detail!,
                        account: s.steps.find((x) => x.step === 'first-account')!.detail!,
                        trader: orgToken ?? (await token({ roles: ['Org.Trader'], orgId: s.orgId, email: `trader@${s.orgId}.example` })),
                        admin: orgToken ?? (await token({ roles: ['Org.Admin'], email })),
                    };
                    const accounts = await waitFor('the account to be funded', async () => {
                        const list = expectStatus(await call('GET', `${CORE}/orgs/${o.orgId}/accounts`, { token: o.admin }), [200], 'GET /orgs/{orgId}/accounts').items as { address: string; balanceWei?: string }[];
                        const a = list.find((x) => x.address.toLowerCase() === o.account.toLowerCase());
                        return a && BigInt(a.balanceWei ?? '0') > 0n ? a : undefined;
                    });
                    return { ...o, balanceWei: accounts.balanceWei! };
                },
                (o) => `org ${o.orgId}; member deployment ${o.memberUrl} (docs: ${o.memberUrl}/docs); account ${o.account} with ${Number(BigInt(o.balanceWei) / 10n ** 14n) / 10_000} ETH${clients ? `; acting as its API client ${clients.traders[i]!.clientId}` : ''}`,
            );
            orgs.push(org);
        }
        const [a, b] = orgs as [Org, Org];

        if (!clients)
            await step(
                `${a.name} subscribes a webhook to its events`,
                async () => {
                    const created = expectStatus(await call('POST', `${CORE}/orgs/${a.orgId}/webhooks`, { token: a.admin, json: { url: hook.url, description: 'npm run demo' } }), [201], 'POST /orgs/{orgId}/webhooks');
                    hook.setSecret(created.secret);
                    return created as { webhookId: string };
                },
                (w) => `webhook ${w.webhookId} → ${hook.url} (signatures checked with its secret)`,
            );

        const document = `Flexchange demo confirmation ${run}\nBaseload, 10 MWh at 70 GBP/MWh, delivery 2027-01-01.\n`;
        const asset = await step(
            `${a.name} uploads the deal's document`,
            async () => expectStatus(await call('POST', `${CORE}/assets`, { token: a.trader, body: document, type: 'text/plain' }), [201], 'POST /assets') as { assetId: string; sha256: string },
            (x) => `asset ${x.assetId}, sha256 ${x.sha256}`,
        );

        const proposal = await step(
            `${a.name} proposes the deal to ${b.name}; it is anchored on the ledger`,
            async () => {
                const created = expectStatus(
                    await call('POST', `${CORE}/proposals`, {
                        token: a.trader,
                        json: {
                            parties: [
                                { orgId: a.orgId, account: a.account },
                                { orgId: b.orgId, account: b.account },
                            ],
                            terms: { product: 'baseload', direction: 'sell', quantityMWh: 10, priceGbpPerMWh: 70, deliveryStart: '2027-01-01T00:00:00Z', deliveryEnd: '2027-01-02T00:00:00Z' },
                            assets: [asset.assetId],
                            expiresAt: new Date(Date.now() + 3600_000).toISOString(),
                        },
                    }),
                    [202],
                    'POST /proposals',
                ) as { proposalId: string };
                return waitFor('the proposal to be anchored', async () => {
                    const v = (await call('GET', `${CORE}/proposals/${created.proposalId}`, { token: a.trader })).body;
                    if (v?.status === 'Failed') throw new Error(`the proposal failed: ${JSON.stringify(v.error ?? v)}`);
                    return v?.status === 'AwaitingSignatures' ? v : undefined;
                });
            },
            (p) => `proposal ${p.proposalId}; created in tx ${p.anchor?.txHash} (block ${p.anchor?.blockNumber}) on contract version ${p.contract?.version} at ${p.contract?.address}`,
        );

        const completed = await step(
            'Both traders sign through their own member deployments; the deal completes',
            async () => {
                for (const o of [a, b]) {
                    // A member signs terms it holds itself: its copy arrives with proposal.created.
                    await waitFor(`${o.name}'s copy of the proposal`, async () => ((await call('GET', `${o.memberUrl}/proposals/${proposal.proposalId}`, { token: o.trader })).status === 200 ? true : undefined));
                    expectStatus(await call('POST', `${o.memberUrl}/proposals/${proposal.proposalId}/signature`, { token: o.trader, json: { account: o.account } }), [202], `${o.name}'s signature`);
                }
                return waitFor('the proposal to be Completed', async () => {
                    const v = (await call('GET', `${CORE}/proposals/${proposal.proposalId}`, { token: b.trader })).body;
                    return v?.status === 'Completed' ? v : undefined;
                });
            },
            (p) => (p.parties as { orgId: string; txHash?: string; blockNumber?: number }[]).map((x) => `${x.orgId} signed in tx ${x.txHash} (block ${x.blockNumber})`).join('\n'),
        );

        await step(
            `${b.name} verifies the document against the hash on the ledger`,
            async () => {
                const v = expectStatus(await call('POST', `${CORE}/proposals/${proposal.proposalId}/verify`, { token: b.trader, body: document, type: 'text/plain' }), [200], 'POST /proposals/{id}/verify');
                if (!v.match) throw new Error(`the document does not match: ${JSON.stringify(v)}`);
                const tampered = expectStatus(await call('POST', `${CORE}/proposals/${proposal.proposalId}/verify`, { token: b.trader, body: `${document}!`, type: 'text/plain' }), [200], 'verify (changed copy)');
                if (tampered.match) throw new Error('a changed copy of the document matched');
                return v;
            },
            (v) => `match: ${v.match} (${v.algorithm} ${v.onChainHash}, tx ${v.txHash}); a changed copy: no match`,
        );

        await step(
            LEDGER
                ? `${a.name} checks the signed terms with ethers: the EIP-712 digest, and each party's signature from its transaction`
                : `${a.name} checks the signed terms with ethers: the EIP-712 digest (the signatures need --ledger <rpc url>)`,
            async () => {
                const p = expectStatus(await call('GET', `${CORE}/proposals/${proposal.proposalId}`, { token: a.trader }), [200], 'GET /proposals/{id}');
                const td = p.typedData as { domain: { version: string; verifyingContract: string }; types: Record<string, TypedDataField[]>; message: Record<string, unknown> };
                if (TypedDataEncoder.hash(td.domain, td.types, td.message) !== p.termsDigest) throw new Error('the typed data does not hash to termsDigest');
                if (td.domain.version !== '2') return { digest: p.termsDigest as string, signers: [] as string[], terms: 'not on the ledger (contract version 1)' };
                const terms = expectStatus(await call('POST', `${CORE}/proposals/${proposal.proposalId}/verify`, { token: a.trader, json: { terms: p.terms } }), [200], 'verify (terms)');
                if (!terms.match) throw new Error(`the terms do not match the ledger: ${JSON.stringify(terms)}`);
                const termsLine = `match (ledger holds ${terms.onChainTermsHash})`;
                if (!LEDGER) return { digest: p.termsDigest as string, signers: [] as string[], terms: termsLine };
                const { abi } = expectStatus(await call('GET', `${CORE}/contracts/${p.contract.version}`, { token: a.trader }), [200], 'GET /contracts/{version}');
                const exchange = new EnergyExchange(p.contract, abi, { rpc: (method, params) => jsonRpc(LEDGER, method, params ?? []) });
                const signers: string[] = [];
                for (const party of p.parties as { account: string; txHash: string }[]) {
                    const tx = await jsonRpc<{ input: string }>(LEDGER, 'eth_getTransactionByHash', [party.txHash]);
                    const mine = exchange.signaturesIn(tx.input).find((s) => s.party === party.account)!;
                    const signer = verifyTypedData(td.domain, td.types, td.message, mine.signature);
                    if (signer !== party.account) throw new Error(`the signature in ${party.txHash} is ${signer}'s, not ${party.account}'s`);
                    signers.push(signer);
                }
                return { digest: p.termsDigest as string, signers, terms: termsLine };
            },
            (v) => `digest ${v.digest}; ${v.signers.length ? `signed by ${v.signers.join(' and ')} (verifyTypedData)` : LEDGER ? 'no signatures over the terms on v1' : 'signatures not recovered (no --ledger)'}; terms: ${v.terms}`,
        );

        const wantedEvents = ['proposal.created', 'proposal.signed', 'proposal.completed'];
        if (clients)
            await step(
                `${a.name} reads the proposal's events from its event feed`,
                async () =>
                    waitFor(
                        'the events',
                        async () => {
                            const feed = expectStatus(await call('GET', `${CORE}/orgs/${a.orgId}/events?after=0&limit=500`, { token: a.admin }), [200], 'GET /orgs/{orgId}/events');
                            const mine = (feed.items as { id: string; type: string; subject: string }[]).filter((e) => e.subject === `proposals/${proposal.proposalId}`);
                            return wantedEvents.every((t) => mine.some((e) => e.type === t)) ? mine : undefined;
                        },
                        60_000,
                    ),
                (events) => events.map((e) => `${e.type} (${e.id})`).join('\n'),
            );
        else
            await step(
                `${a.name}'s webhook received the proposal's events, each signed`,
                async () => {
                    await waitFor('the webhook deliveries', async () => (wantedEvents.every((t) => hook.received.some((e) => e.type === t)) ? true : undefined), 60_000);
                    const bad = hook.received.filter((e) => !e.verified);
                    if (bad.length) throw new Error(`${bad.length} deliveries had a bad signature`);
                    return hook.received;
                },
                (events) => events.map((e) => `${e.type} (${e.id})`).join('\n'),
            );

        console.log(`\n${paint('32', 'The whole story ran.')} Where to look:`);
        for (const line of [
            `proposal        ${CORE}/proposals/${completed.proposalId}${clients ? '' : `   (Bearer: npm run -s token -- --role Org.Trader --org ${a.orgId})`}`,
            `events          ${CORE}/orgs/${a.orgId}/events?after=0`,
            `contract        version ${contract.version} at ${contract.address}${LEDGER ? ` on the ledger at ${LEDGER}` : ''}`,
            ...(clients ? [] : [`mails           ${CONSOLE}/dev/mail`]),
            `member APIs     ${a.memberUrl}/docs · ${b.memberUrl}/docs`,
            `core API        ${CORE}/docs`,
            ...notes,
        ])
            console.log(`  ${line}`);
    } finally {
        await hook.close();
        const removedFrom: string[] = [];
        for (const c of registeredClients) {
            const removed = await call('DELETE', `${CORE}/orgs/${c.orgId}/clients/${c.clientId}`, { token: operator }).catch((err: Error) => ({ status: 0, body: err.message }));
            if (removed.status === 204) removedFrom.push(c.orgId);
            else console.error(`Could not remove ${c.clientId} from ${c.orgId} (${removed.status}): remove it before the next run`);
        }
        if (removedFrom.length) console.log(`  (the trader clients were removed from ${removedFrom.join(' and ')} again)`);
    }
}

main().then(
    () => process.exit(0),
    (err: Error & { reported?: boolean }) => {
        if (!err.reported) console.error(err);
        console.error(`\n${paint('31', 'The demo stopped at a failed step.')}`);
        process.exit(1);
    },
);
