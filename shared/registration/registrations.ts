import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { Repository } from '../documents/repository';
import { updateExisting } from '../documents/updateExisting';
import { AppError, Conflict, NotFound } from '../errors';
import type { SecretStore } from '../vault/vault';

/** POST /registrations (API.md). */
export const registrationRequest = z
    .object({
        organization: z
            .object({
                name: z.string().trim().min(2).max(200),
                legalId: z.string().trim().regex(/^[A-Za-z0-9][A-Za-z0-9 ._/-]{1,63}$/, 'letters, digits, space, ".", "_", "/", "-"; 2-64 characters'),
                country: z.string().regex(/^[A-Z]{2}$/, 'an ISO 3166-1 alpha-2 code, e.g. GB'),
                contactEmail: z.string().email().max(254),
                /**
                 * Azure: the organisation keeps its member deployment in its own subscription, where it gives the core's identity
                 * the rights to deploy (infra/README.md, "Organisations with their own subscription"); absent, the operator's.
                 */
                azureSubscriptionId: z
                    .string()
                    .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'an Azure subscription id (GUID)')
                    .transform((s) => s.toLowerCase())
                    .optional(),
            })
            .strict(),
        applicant: z.object({ name: z.string().trim().min(1).max(200), email: z.string().email().max(254) }).strict(),
    })
    .strict();
export type RegistrationRequest = z.infer<typeof registrationRequest>;

export const decisionRequest = z.object({ decision: z.enum(['approve', 'reject']), reason: z.string().trim().max(1000).optional() }).strict();
export type DecisionRequest = z.infer<typeof decisionRequest>;

export type RegistrationStatus = 'PendingApproval' | 'Approved' | 'Rejected' | 'Expired' | 'Provisioning' | 'Active' | 'Failed';

export interface Decision {
    decision: 'approve' | 'reject';
    reason?: string;
    by: string;
    via: 'link' | 'api';
    at: string;
    /** Set once the workflow has been told (raising the event may fail and be retried). */
    delivered?: boolean;
}

export interface Registration {
    id: string;
    kind: 'registration';
    organization: RegistrationRequest['organization'];
    applicant: RegistrationRequest['applicant'];
    status: RegistrationStatus;
    /** The organisation id the member will have (deterministic from the registration). */
    orgId: string;
    steps: { step: string; at: string; detail?: string }[];
    decision?: Decision;
    failure?: string;
    createdAt: string;
    updatedAt: string;
}

/** One pending application per legal id: a claim document in the same container. */
export interface LegalIdClaim {
    id: string;
    kind: 'claim';
    registrationId: string;
}

type RegistrationDoc = Registration | LegalIdClaim;

const LINK_KEY_SECRET = 'approval-link-key';
const CLOSED: RegistrationStatus[] = ['Rejected', 'Expired', 'Failed'];

/** An organisation id from the name, unique by the registration: `acme-energy-3f2a9c`. */
export function orgIdFor(name: string, registrationId: string): string {
    const slug = name
        .toLowerCase()
        .normalize('NFKD')
        .replace(/[^a-z0-9]+/g, '-')
        .replace(/^-+|-+$/g, '')
        .slice(0, 24)
        .replace(/-+$/, '');
    const suffix = createHash('sha256').update(registrationId).digest('hex').slice(0, 6);
    return `${slug || 'org'}-${suffix}`;
}

/** Who decides registrations: the configured addresses, else whoever holds the approver role in the directory. */
export async function approversOf(configured: readonly string[], directory: { holders(role: string): Promise<{ email?: string }[]> }): Promise<string[]> {
    if (configured.length > 0) return [...configured];
    return [...new Set((await directory.holders('Flexchange.Approver')).flatMap((h) => (h.email ? [h.email.toLowerCase()] : [])))].sort();
}

export interface ApprovalClaims {
    registrationId: string;
    approver: string;
    expiresAt: number;
    nonce: string;
}

/**
 * Registrations (container `registrations`) and the keys of their links: approval links
 * signed with a key from the vault (HMAC-SHA256), bound to one registration and one
 * approver, expiring; the applicant's status link carries a key derived the same way.
 */
export class Registrations {
    #key?: Promise<Buffer>;

    constructor(
        private readonly repo: Repository<RegistrationDoc>,
        private readonly secrets: SecretStore,
    ) {}

    /** Stores a new application; 409 while another one for the same legal id is open. */
    async create(request: RegistrationRequest, id: string): Promise<Registration> {
        const claimId = `legal:${request.organization.country}:${request.organization.legalId.toUpperCase().replace(/[^A-Z0-9]/g, '')}`;
        const claim: LegalIdClaim = { id: claimId, kind: 'claim', registrationId: id };
        try {
            await this.repo.create(claim);
        } catch (err) {
            if (!(err instanceof Conflict)) throw err;
            const existing = await this.repo.read(claimId, claimId);
            const holder = existing && existing.item.kind === 'claim' ? await this.find(existing.item.registrationId) : undefined;
            // The claim of a closed application (rejected, expired, failed) can be taken again.
            if (existing && holder && !CLOSED.includes(holder.status)) {
                throw new Conflict(`An application for legal id ${request.organization.legalId} (${request.organization.country}) is already ${holder.status === 'Active' ? 'active' : 'open'}`, 'registration_exists');
            }
            if (existing) await this.repo.replace(claim, existing.etag);
        }
        const now = new Date().toISOString();
        const registration: Registration = {
            id,
            kind: 'registration',
            organization: request.organization,
            applicant: request.applicant,
            status: 'PendingApproval',
            orgId: orgIdFor(request.organization.name, id),
            steps: [{ step: 'submitted', at: now }],
            createdAt: now,
            updatedAt: now,
        };
        return (await this.repo.create(registration)).item as Registration;
    }

    async find(id: string): Promise<Registration | undefined> {
        const found = await this.repo.read(id, id);
        return found && found.item.kind === 'registration' ? found.item : undefined;
    }

    async get(id: string): Promise<Registration> {
        const r = await this.find(id);
        if (!r) throw new NotFound('No such registration');
        return r;
    }

    /**
     * Changes a registration under its ETag (retried on a concurrent change). `change` returns
     * the new document, or undefined to leave it as it is.
     */
    async update(id: string, change: (r: Registration) => Registration | undefined): Promise<Registration> {
        return updateExisting(this.repo, id, change, {
            is: (d): d is Registration => d.kind === 'registration',
            missing: () => new NotFound('No such registration'),
            conflict: () => new AppError('The registration is being changed by someone else; try again', 409, 'conflict'),
        });
    }

    /** Adds a step (once: a retried activity does not add it twice) and optionally a new status. */
    async step(id: string, step: string, opts: { status?: RegistrationStatus; detail?: string; failure?: string } = {}): Promise<Registration> {
        return this.update(id, (r) => {
            const done = r.steps.some((s) => s.step === step);
            if (done && (!opts.status || r.status === opts.status)) return undefined;
            return {
                ...r,
                status: opts.status ?? r.status,
                failure: opts.failure ?? (opts.status && opts.status !== 'Failed' ? undefined : r.failure),
                steps: done ? r.steps : [...r.steps, { step, at: new Date().toISOString(), ...(opts.detail ? { detail: opts.detail } : {}) }],
            };
        });
    }

    /**
     * Records the decision: the first one wins, any later attempt gets a Conflict naming who
     * decided. Returns the registration with the decision.
     */
    async decide(id: string, decision: Omit<Decision, 'at' | 'delivered'>): Promise<Registration> {
        let earlier: Decision | undefined;
        const updated = await this.update(id, (r) => {
            if (r.decision) {
                earlier = r.decision;
                return undefined;
            }
            if (r.status !== 'PendingApproval') {
                earlier = { decision: 'reject', by: 'the system', via: 'api', at: r.updatedAt, reason: `the application is ${r.status}` };
                return undefined;
            }
            return { ...r, decision: { ...decision, at: new Date().toISOString() } };
        });
        if (earlier) throw new AlreadyDecided(earlier, updated);
        return updated;
    }

    // -- links ---------------------------------------------------------------------

    /** A signed approval token for one approver of one registration. */
    async approvalToken(registrationId: string, approver: string, ttlMs: number): Promise<string> {
        const claims: ApprovalClaims = { registrationId, approver: approver.toLowerCase(), expiresAt: Date.now() + ttlMs, nonce: randomBytes(9).toString('base64url') };
        const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
        return `${payload}.${this.#sign(await this.#linkKey(), `approval.${payload}`)}`;
    }

    /** The token's claims when its signature is right and it has not expired; otherwise an error saying which. */
    async verifyApprovalToken(token: string): Promise<ApprovalClaims> {
        const [payload, signature, extra] = token.split('.');
        if (!payload || !signature || extra !== undefined || !/^[\w-]+$/.test(payload) || !/^[\w-]+$/.test(signature)) throw new InvalidLink('This approval link is not valid.');
        const expected = this.#sign(await this.#linkKey(), `approval.${payload}`);
        const a = Buffer.from(signature);
        const b = Buffer.from(expected);
        if (a.length !== b.length || !timingSafeEqual(a, b)) throw new InvalidLink('This approval link is not valid.');
        let claims: ApprovalClaims;
        try {
            claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as ApprovalClaims;
        } catch {
            throw new InvalidLink('This approval link is not valid.');
        }
        if (typeof claims.expiresAt !== 'number' || claims.expiresAt < Date.now()) throw new InvalidLink('This approval link has expired.', 410);
        return claims;
    }

    /** The key in the applicant's status link (`?key=`). */
    async statusKey(registrationId: string): Promise<string> {
        return this.#sign(await this.#linkKey(), `status.${registrationId}`).slice(0, 32);
    }

    async checkStatusKey(registrationId: string, key: string | null): Promise<boolean> {
        if (!key) return false;
        const expected = Buffer.from(await this.statusKey(registrationId));
        const given = Buffer.from(key);
        return given.length === expected.length && timingSafeEqual(given, expected);
    }

    #sign(key: Buffer, data: string): string {
        return createHmac('sha256', key).update(data).digest('base64url');
    }

    /** The link key from the vault, made on first use (the stored one wins a race between instances). */
    #linkKey(): Promise<Buffer> {
        this.#key ??= (async () => {
            const existing = await this.secrets.get(LINK_KEY_SECRET);
            if (existing) return Buffer.from(existing.value, 'base64');
            await this.secrets.set(LINK_KEY_SECRET, randomBytes(32).toString('base64'), { contentType: 'application/octet-stream', tags: { purpose: 'approval and status links' } });
            return Buffer.from((await this.secrets.get(LINK_KEY_SECRET))!.value, 'base64');
        })().catch((err: unknown) => {
            this.#key = undefined;
            throw err;
        });
        return this.#key;
    }
}

export class InvalidLink extends AppError {
    constructor(message: string, status = 400) {
        super(message, status, status === 410 ? 'link_expired' : 'invalid_link');
    }
}

export class AlreadyDecided extends AppError {
    constructor(
        readonly earlier: Decision,
        readonly registration: Registration,
    ) {
        super(`This application was already decided: ${earlier.decision === 'approve' ? 'approved' : 'rejected'} by ${earlier.by}`, 409, 'already_decided');
    }
}
