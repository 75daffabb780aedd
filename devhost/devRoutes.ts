import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { DevConsole } from './console';
import { sendJson, sendProblem } from './console';
import type { DevPrincipal } from './profile';
import type { LocalIdentity } from './services/identity';
import type { MailSink } from './services/mailSink';
import type { LocalNodes } from './services/localNodes';
import { VAULT_NAME_RE } from './services/keyVault';

/** A console token request; its roles are the app registration's when it names them. */
const tokenRequest = (roles?: readonly string[]) =>
    z
        .object({
            roles: z.array(roles?.length ? z.enum(roles as [string, ...string[]]) : z.string().min(1).max(100)).min(1),
            orgId: z.string().min(1).max(100).optional(),
            email: z.string().email().optional(),
            name: z.string().min(1).max(200).optional(),
            appOnly: z.boolean().optional(),
            audience: z.string().min(1).optional(),
            expiresInSeconds: z.number().int().min(60).max(86_400).optional(),
        })
        .strict();

async function readJson(req: IncomingMessage, limit = 64 * 1024): Promise<unknown> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
        size += (chunk as Buffer).length;
        if (size > limit) throw Object.assign(new Error('body too large'), { status: 413 });
        chunks.push(chunk as Buffer);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    if (!text) return {};
    try {
        return JSON.parse(text);
    } catch {
        throw Object.assign(new Error('The body is not valid JSON'), { status: 400 });
    }
}

/** The body checked against `schema`; on bad input a 400 (or 413) problem is sent and undefined returned. */
async function readInput<S extends z.ZodType>(req: IncomingMessage, res: ServerResponse, schema: S): Promise<z.infer<S> | undefined> {
    let body: unknown;
    try {
        body = await readJson(req);
    } catch (err) {
        const e = err as Error & { status?: number };
        sendProblem(res, e.status ?? 400, 'Invalid input', e.message);
        return undefined;
    }
    const parsed = schema.safeParse(body);
    if (parsed.success) return parsed.data;
    sendProblem(res, 400, 'Invalid input', parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
    return undefined;
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** A member deployment, as the core's devhost deployment controller asks for one. */
export const memberAppRequest = z
    .object({
        orgId: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'a lower-case organisation id'),
        /** Settings for the instance, over the folder's own. */
        settings: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string().max(4096)).optional(),
        /** The names the app derived for this member's resources (its own naming rules live in the app). */
        names: z
            .object({
                vault: z.string().regex(VAULT_NAME_RE, 'a Key Vault name: 3-24 letters, digits and single hyphens, starting with a letter, not ending with a hyphen'),
                cosmosDatabase: z.string().regex(/^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,253}[A-Za-z0-9])?$/, 'a Cosmos database id'),
            })
            .strict()
            .optional(),
        /** The release package the core placed in the member's deployment container (Azurite): the instance runs from it, as a Flex Consumption app runs from its deployment container. */
        package: z
            .object({
                container: z.string().regex(/^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/, 'a blob container name'),
                blob: z.string().min(1).max(1024),
            })
            .strict()
            .optional(),
    })
    .strict();
export type MemberAppRequest = z.infer<typeof memberAppRequest>;

/** Where a member instance answers, and the app identity it gets tokens with (client credentials). */
export interface MemberAppInfo {
    name: string;
    url: string;
    port: number;
    identity: { clientId: string; principalId: string };
}

/** Fault injection on app instances' vaults. */
export interface VaultFaults {
    stop(app: string): Promise<string>;
    start(app: string): Promise<string>;
}

export interface MemberApps {
    /** Starts the member instance if it is not running (idempotent by name) and returns where it answers. */
    ensure(name: string, request: MemberAppRequest): Promise<MemberAppInfo & { created: boolean }>;
    get(name: string): MemberAppInfo | undefined;
}

const nodeFault = z
    .object({
        /** The fault comes back after every restart: a node that keeps failing. */
        persist: z.boolean().optional(),
        /** stall: the height the node stays at; diverge: the first height with hashes of its own (default: now). */
        height: z.number().int().nonnegative().optional(),
    })
    .strict();

export function registerDevRoutes(
    console: DevConsole,
    services: { identity: LocalIdentity; mail: MailSink; enterPrincipal?: (principal: DevPrincipal) => Promise<void>; memberApps?: MemberApps; nodes?: LocalNodes; vaults?: VaultFaults; counts?: () => Promise<unknown> },
): void {
    const tokenSchema = tokenRequest(services.identity.roles);
    // An app instance's vault taken down and brought back on the same port (an outage as the app sees it).
    console.route('POST', /^\/dev\/apps\/([a-z0-9][a-z0-9-]{0,62})\/vault\/(stop|start)$/, async (_req, res, [name, action]) => {
        if (!services.vaults) return sendProblem(res, 404, 'Not found', 'This devhost runs no vaults');
        try {
            const url = action === 'stop' ? await services.vaults.stop(name!) : await services.vaults.start(name!);
            sendJson(res, 200, { app: name, vault: url, running: action === 'start' });
        } catch (err) {
            const e = err as Error & { status?: number };
            sendProblem(res, e.status ?? 500, e.status === 404 ? 'Not found' : 'The vault did not do it', e.message);
        }
    });

    // Members' own ledger nodes and their faults (API.md: /dev/nodes/{id}/stall · /resume · /kill),
    // plus /diverge (a fork of its own) and /restart (what the member's watchdog calls).
    console.route('GET', /^\/dev\/nodes$/, (_req, res) => sendJson(res, 200, { items: services.nodes?.list() ?? [] }));
    console.route('POST', /^\/dev\/nodes\/([a-z0-9][a-z0-9-]{0,62})\/(stall|resume|kill|diverge|restart)$/, async (req, res, [nodeId, action]) => {
        const nodes = services.nodes;
        if (!nodes?.get(nodeId!)) return sendProblem(res, 404, 'Not found', `No local node "${nodeId}"`);
        const input = await readInput(req, res, nodeFault);
        if (!input) return;
        const { persist, height } = input;
        try {
            const info =
                action === 'stall' ? await nodes.stall(nodeId!, { persist, height })
                : action === 'diverge' ? await nodes.diverge(nodeId!, { persist, from: height })
                : action === 'kill' ? await nodes.kill(nodeId!, { persist })
                : action === 'resume' ? await nodes.resume(nodeId!)
                : await nodes.restart(nodeId!);
            sendJson(res, 200, info);
        } catch (err) {
            const e = err as Error & { status?: number };
            sendProblem(res, e.status ?? 500, e.status === 409 ? 'Conflict' : 'The node did not do it', e.message);
        }
    });


    // The devhost's stand-in for a member deployment: a member app instance of the same app folder,
    // on the next port, with its own settings, vault and database (the core's memberDeployment calls this).
    console.route('PUT', /^\/dev\/apps\/([a-z0-9][a-z0-9-]{0,62})$/, async (req, res, [name]) => {
        if (!services.memberApps) return sendProblem(res, 404, 'Not found', 'This devhost runs no app to copy');
        const input = await readInput(req, res, memberAppRequest);
        if (!input) return;
        try {
            const app = await services.memberApps.ensure(name, input);
            sendJson(res, app.created ? 201 : 200, app);
        } catch (err) {
            sendProblem(res, 500, 'The member app did not start', (err as Error).message);
        }
    });
    console.route('GET', /^\/dev\/apps\/([a-z0-9][a-z0-9-]{0,62})$/, (_req, res, [name]) => {
        const app = services.memberApps?.get(name);
        if (!app) return sendProblem(res, 404, 'Not found', `No app instance "${name}"`);
        sendJson(res, 200, app);
    });

    // What each app instance has done since it started (benchmarks: `bench:proposals --counts`).
    console.route('GET', /^\/dev\/counts$/, async (_req, res) => {
        if (!services.counts) return sendProblem(res, 404, 'Not found', 'This devhost counts nothing');
        sendJson(res, 200, await services.counts());
    });

    // The App Service managed-identity endpoint (each app instance's IDENTITY_ENDPOINT, with its IDENTITY_HEADER).
    console.route('GET', /^\/dev\/msi\/token$/, async (req, res) => {
        const header = req.headers['x-identity-header'];
        const { status, body } = await services.identity.managedIdentityToken(typeof header === 'string' ? header : undefined, new URL(req.url ?? '/', 'http://localhost').searchParams);
        sendJson(res, status, body);
    });

    console.route('POST', /^\/dev\/token$/, async (req, res) => {
        if (!(req.headers['content-type'] ?? 'application/json').includes('json')) {
            return sendProblem(res, 415, 'Unsupported media type', 'Send the token request as application/json');
        }
        let body: unknown;
        try {
            body = await readJson(req);
        } catch (err) {
            const e = err as Error & { status?: number };
            return sendProblem(res, e.status ?? 400, e.status === 413 ? 'Payload too large' : 'Invalid input', e.message);
        }
        const parsed = tokenSchema.safeParse(body);
        if (!parsed.success) {
            const text = JSON.stringify({
                type: 'about:blank',
                title: 'Invalid input',
                status: 400,
                detail: 'The token request is not valid',
                code: 'invalid_input',
                errors: parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
            });
            res.writeHead(400, { 'content-type': 'application/problem+json' });
            res.end(text);
            return;
        }
        const token = await services.identity.mint(parsed.data);
        // With an organisation, the principal is entered where the app looks its callers up (the app's profile),
        // as an admin adding a user would: the app takes the caller's organisation from there, never from the token.
        if (parsed.data.orgId && services.enterPrincipal) {
            await services.enterPrincipal({ oid: token.oid, orgId: parsed.data.orgId, roles: parsed.data.roles, appOnly: parsed.data.appOnly === true, email: parsed.data.email, name: parsed.data.name });
        }
        sendJson(res, 200, token);
    });

    console.route('GET', /^\/dev\/mail$/, (_req, res) => sendJson(res, 200, services.mail.mails));

    console.route('GET', /^\/dev\/mail\/([^/]+)$/, (req, res, [id]) => {
        const mail = services.mail.get(decodeURIComponent(id));
        if (!mail) return sendProblem(res, 404, 'Not found', 'No captured mail with that id');
        if ((req.headers.accept ?? '').includes('application/json')) return sendJson(res, 200, mail);
        const body = mail.html
            ? `<iframe sandbox style="width:100%;height:70vh;border:1px solid #ccc" srcdoc="${escapeHtml(mail.html)}"></iframe>`
            : `<pre>${escapeHtml(mail.text)}</pre>`;
        const links = mail.links.map((l) => `<li><a href="${escapeHtml(l)}">${escapeHtml(l)}</a></li>`).join('');
        const page = `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(mail.subject)}</title></head><body style="font-family:sans-serif">
<h1>${escapeHtml(mail.subject)}</h1>
<table><tr><th align="left">From</th><td>${escapeHtml(mail.from)}</td></tr><tr><th align="left">To</th><td>${escapeHtml(mail.to.join(', '))}</td></tr>
<tr><th align="left">Received</th><td>${escapeHtml(mail.receivedAt)}</td></tr></table>
${links ? `<h2>Links</h2><ul>${links}</ul>` : ''}<h2>Message</h2>${body}</body></html>`;
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; frame-src 'self'" });
        res.end(page);
    });
}
