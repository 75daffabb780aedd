import type { DurableClient } from 'durable-functions';
import type { HttpRequest, HttpResponseInit } from '@azure/functions';
import { z } from 'zod';
import { getServices } from '../shared/composition';
import { AppError, Forbidden, Invalid, NotFound, TooLarge, Unauthorized, UnsupportedMediaType } from '../shared/errors';
import { durableRegistrationWorkflow } from '../shared/registration/workflowContract';
import { decideApplication, retryOnboarding, submitApplication, type ApplicationPorts } from '../shared/registration/applications';
import { AlreadyDecided, decisionRequest, registrationRequest, type DecisionRequest, type Registration } from '../shared/registration/registrations';
import { httpRoute, OPERATOR_ROLE } from './http/route';

const APPROVER_ROLE = 'Flexchange.Approver';

function view(r: Registration) {
    return {
        registrationId: r.id,
        status: r.status,
        organization: { name: r.organization.name, country: r.organization.country, legalId: r.organization.legalId },
        orgId: r.status === 'Active' || r.status === 'Provisioning' ? r.orgId : undefined,
        steps: r.steps,
        decision: r.decision ? { decision: r.decision.decision, by: r.decision.by, at: r.decision.at, reason: r.decision.reason } : undefined,
        failure: r.failure,
        createdAt: r.createdAt,
        updatedAt: r.updatedAt,
    };
}

/** POST /api/registrations: anyone may apply (rate-limited per address and per applicant); starts the `registration` workflow. */
httpRoute('registrationsCreate', {
    route: 'registrations',
    methods: ['POST'],
    access: 'anonymous',
    body: registrationRequest,
    durable: true,
    rateLimit: ({ body, clientAddress }) => [
        { key: `registrations:ip:${clientAddress}`, limit: getServices().settings.FLEXCHANGE_REGISTRATION_LIMIT_PER_ADDRESS, windowSeconds: 3600 },
        { key: `registrations:email:${body.applicant.email.toLowerCase()}`, limit: 3, windowSeconds: 86_400 },
    ],
    summary: 'Apply to join the consortium',
    handler: async ({ body, durable, request }) => {
        const services = getServices();
        const { registration, statusKey } = await submitApplication(
            {
                ...applicationPorts(durable!),
                approvers: services.settings.FLEXCHANGE_APPROVERS,
                directory: services.directory,
                timing: { reminderAfterSeconds: services.settings.FLEXCHANGE_REGISTRATION_REMINDER_SECONDS, expireAfterSeconds: services.settings.FLEXCHANGE_REGISTRATION_EXPIRY_SECONDS },
            },
            body,
        );
        const statusUrl = `${new URL(request.url).origin}/api/registrations/${registration.id}?key=${statusKey}`;
        return { status: 202, headers: { location: statusUrl }, jsonBody: { registrationId: registration.id, status: registration.status, statusUrl } };
    },
});

/** GET /api/registrations/{id}: the applicant (with the key from the status link), approvers, the operator. */
httpRoute('registrationsGet', {
    route: 'registrations/{id}',
    methods: ['GET'],
    access: 'anonymous',
    query: z.object({ key: z.string().max(64).optional() }).strict(),
    summary: 'The status of an application and the steps done',
    handler: async ({ params, query, request }) => {
        const services = getServices();
        const id = uuid(params.id);
        const registrations = services.registrations();
        if (!(await registrations.checkStatusKey(id, query.key ?? null))) {
            const principal = await services.tokens.validate(request.headers.get('authorization'));
            if (!principal.roles.some((r) => r === APPROVER_ROLE || r === OPERATOR_ROLE)) throw new Forbidden('Only the applicant (with the status link), approvers and the operator see an application');
        }
        return { headers: { 'cache-control': 'no-store' }, jsonBody: view(await registrations.get(id)) };
    },
});

/** POST /api/registrations/{id}/decision: an approver decides through the API. */
httpRoute('registrationsDecide', {
    route: 'registrations/{id}/decision',
    methods: ['POST'],
    access: { roles: [APPROVER_ROLE] },
    body: decisionRequest,
    durable: true,
    summary: 'Approve or reject an application',
    handler: async ({ params, body, principal, durable }) => {
        const r = await decideApplication(applicationPorts(durable!), uuid(params.id), { decision: body.decision, reason: body.reason, by: principal!.email ?? principal!.oid, via: 'api' });
        return { jsonBody: view(r) };
    },
});

/** POST /api/registrations/{id}/retry (operator): onboarding again for an approved registration that failed; it resumes from the failed step. */
httpRoute('registrationsRetry', {
    route: 'registrations/{id}/retry',
    methods: ['POST'],
    access: { roles: [OPERATOR_ROLE] },
    durable: true,
    noBody: true,
    summary: 'Resume the onboarding of a failed registration',
    handler: async ({ params, durable }) => ({ status: 202, jsonBody: view(await retryOnboarding(applicationPorts(durable!), uuid(params.id))) }),
});

/** GET /api/approvals/{token}: the application with Approve / Reject; a GET never decides (mail scanners fetch links). */
httpRoute('approvalsPage', {
    route: 'approvals/{token}',
    methods: ['GET'],
    access: 'anonymous',
    summary: 'The approval page of an approval link',
    handler: async ({ params }) => {
        try {
            const registrations = getServices().registrations();
            const claims = await registrations.verifyApprovalToken(params.token);
            const r = await registrations.get(claims.registrationId);
            if (r.decision) return page(409, 'Already decided', `<p>This application was already ${r.decision.decision === 'approve' ? 'approved' : 'rejected'} by ${esc(r.decision.by)} on ${esc(r.decision.at)}.</p>`);
            if (r.status !== 'PendingApproval') return page(409, 'No longer open', `<p>This application is ${esc(r.status)}.</p>`);
            return page(200, `Approve ${r.organization.name}?`, applicationHtml(r, claims.approver) + decisionForm(params.token));
        } catch (err) {
            return errorPage(err);
        }
    },
});


/** POST /api/approvals/{token}: decides, once. A form post (scripts off) or JSON. */
const formDecision = z.object({ decision: z.enum(['approve', 'reject']), reason: z.string().trim().max(1000).optional().transform((s) => (s ? s : undefined)) }).strict();

httpRoute('approvalsDecide', {
    route: 'approvals/{token}',
    methods: ['POST'],
    access: 'anonymous',
    durable: true,
    rawBody: { contentTypes: ['application/x-www-form-urlencoded', 'application/json'], description: 'The decision, from the approval page’s form or as JSON', schema: formDecision },
    rateLimit: ({ clientAddress }) => [{ key: `approvals:ip:${clientAddress}`, limit: 30, windowSeconds: 600 }],
    summary: 'Decide an application through an approval link',
    handler: async ({ params, request, durable }) => {
        const wantsHtml = (request.headers.get('content-type') ?? '').startsWith('application/x-www-form-urlencoded') || (request.headers.get('accept') ?? '').includes('text/html');
        try {
            const body = await readDecision(request);
            const registrations = getServices().registrations();
            const claims = await registrations.verifyApprovalToken(params.token);
            const r = await decideApplication(applicationPorts(durable!), claims.registrationId, { decision: body.decision, reason: body.reason, by: claims.approver, via: 'link' });
            if (!wantsHtml) return { jsonBody: view(r) };
            return page(200, body.decision === 'approve' ? 'Approved' : 'Rejected', `<p>${esc(r.organization.name)} was ${body.decision === 'approve' ? 'approved' : 'rejected'}. Thank you.</p>`);
        } catch (err) {
            if (!wantsHtml) throw err;
            return errorPage(err);
        }
    },
});

/** The use cases' ports: the registrations, and the `registration` workflows through the Durable Functions client. */
function applicationPorts(durable: DurableClient): ApplicationPorts {
    return { registrations: getServices().registrations(), workflow: durableRegistrationWorkflow(durable) };
}

async function readDecision(request: HttpRequest): Promise<DecisionRequest> {
    const type = (request.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
    const text = await request.text();
    if (text.length > 8192) throw new TooLarge();
    let raw: unknown;
    if (type === 'application/x-www-form-urlencoded') raw = Object.fromEntries(new URLSearchParams(text));
    else if (type === 'application/json') {
        try {
            raw = JSON.parse(text);
        } catch {
            throw new Invalid('The body is not valid JSON');
        }
    } else throw new UnsupportedMediaType('Send a form (application/x-www-form-urlencoded) or JSON');
    const parsed = formDecision.safeParse(raw);
    if (!parsed.success) throw new Invalid('The decision is not valid', parsed.error.issues.map((i) => ({ path: `body.${i.path.join('.')}`, message: i.message })));
    return parsed.data;
}

function uuid(id: string): string {
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id)) throw new NotFound('No such registration');
    return id;
}

// -- HTML ------------------------------------------------------------------------------

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function applicationHtml(r: Registration, approver: string): string {
    const o = r.organization;
    return `<dl>
<dt>Organisation</dt><dd>${esc(o.name)}</dd>
<dt>Country</dt><dd>${esc(o.country)}</dd>
<dt>Legal id</dt><dd>${esc(o.legalId)}</dd>
<dt>Contact</dt><dd>${esc(o.contactEmail)}</dd>
<dt>Member deployment</dt><dd>${o.azureSubscriptionId ? `in its own Azure subscription ${esc(o.azureSubscriptionId)} (the operator's core must have been given the rights to deploy there)` : "in the operator's subscription"}</dd>
<dt>Applicant</dt><dd>${esc(r.applicant.name)} &lt;${esc(r.applicant.email)}&gt;</dd>
<dt>Applied</dt><dd>${esc(r.createdAt)}</dd>
</dl>
<p class="who">You decide as ${esc(approver)}. The link works once.</p>`;
}

/** A plain form: it works with scripts off; nothing on the page runs any. */
function decisionForm(token: string): string {
    return `<form method="post" action="/api/approvals/${esc(token)}">
<label for="reason">Reason (optional, sent to the applicant on rejection)</label>
<textarea id="reason" name="reason" maxlength="1000" rows="3"></textarea>
<div class="buttons">
<button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="reject" class="reject">Reject</button>
</div>
</form>`;
}

function page(status: number, title: string, body: string): HttpResponseInit {
    const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>${esc(title)} · Flexchange</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#1b1f23}dt{font-weight:600}dd{margin:0 0 .5rem}textarea{width:100%}button{font-size:1rem;padding:.5rem 1.5rem;margin-right:1rem}.reject{background:#fde8e8}.who{color:#555}</style>
</head><body><h1>${esc(title)}</h1>${body}</body></html>`;
    return {
        status,
        headers: {
            'content-type': 'text/html; charset=utf-8',
            'cache-control': 'no-store',
            'referrer-policy': 'no-referrer',
            'x-frame-options': 'DENY',
            'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        },
        body: html,
    };
}

function errorPage(err: unknown): HttpResponseInit {
    if (err instanceof AlreadyDecided) return page(409, 'Already decided', `<p>This application was already ${err.earlier.decision === 'approve' ? 'approved' : 'rejected'} by ${esc(err.earlier.by)} on ${esc(err.earlier.at)}.</p>`);
    if (err instanceof AppError && err.status < 500 && !(err instanceof Unauthorized)) return page(err.status, 'This link cannot be used', `<p>${esc(err.message)}</p>`);
    throw err;
}
