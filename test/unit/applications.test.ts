import { AppError } from '../../shared/errors';
import { decideApplication, retryOnboarding, submitApplication, type ApplicationTiming, type RegistrationWorkflow } from '../../shared/registration/applications';
import { AlreadyDecided, registrationRequest, Registrations, type Decision, type LegalIdClaim, type Registration, type RegistrationRequest } from '../../shared/registration/registrations';
import { MemoryRepository, MemorySecrets } from './fakes/memoryStores';

const request = (legalId = 'GB-123'): RegistrationRequest => ({
    organization: { name: 'Acme Energy', legalId, country: 'GB', contactEmail: 'ops@acme.example' },
    applicant: { name: 'Ada', email: 'ada@acme.example' },
});
const timing: ApplicationTiming = { reminderAfterSeconds: 60, expireAfterSeconds: 3600 };

/** The `registration` workflows as calls recorded; each kind of call can be made to fail. */
function workflows() {
    const calls: string[] = [];
    const failing = new Set<'start' | 'deliverDecision' | 'resume'>();
    const refuse = (what: 'start' | 'deliverDecision' | 'resume') => {
        if (failing.has(what)) throw new Error(`the task hub refused ${what}`);
    };
    const workflow: RegistrationWorkflow = {
        start: async (id, t) => {
            refuse('start');
            calls.push(`start ${id} ${t.reminderAfterSeconds}/${t.expireAfterSeconds}`);
        },
        deliverDecision: async (id, d: Decision) => {
            refuse('deliverDecision');
            calls.push(`decision ${id} ${d.decision} by ${d.by}`);
        },
        resume: async (id, attempt) => {
            refuse('resume');
            calls.push(`resume ${id} ${attempt}`);
        },
    };
    return { calls, failing, workflow };
}

function world(approvers: string[] = ['boss@operator.example']) {
    const registrations = new Registrations(new MemoryRepository<Registration | LegalIdClaim>((d) => d.id), new MemorySecrets());
    const wf = workflows();
    const directory = { holders: async () => [] as { id: string; email?: string }[] };
    return {
        registrations,
        ...wf,
        ports: { registrations, workflow: wf.workflow },
        submit: (req = request(), configured = approvers) => submitApplication({ registrations, workflow: wf.workflow, approvers: configured, directory, timing }, req),
    };
}

const problem = (code: string, status: number) => expect.objectContaining({ code, status });

describe('applying', () => {
    it('stores the application, starts its workflow with the timing, and gives a status key the registrations accept', async () => {
        const w = world();
        const { registration, statusKey } = await w.submit();
        expect(registration).toMatchObject({ status: 'PendingApproval', organization: request().organization, steps: [{ step: 'submitted' }] });
        expect(w.calls).toEqual([`start ${registration.id} 60/3600`]);
        expect(await w.registrations.checkStatusKey(registration.id, statusKey)).toBe(true);
        expect(await w.registrations.checkStatusKey(registration.id, 'x'.repeat(statusKey.length))).toBe(false);
    });

    it('is refused (503 no_approvers) when nobody could decide it, and then holds no legal id', async () => {
        const w = world([]);
        await expect(w.submit()).rejects.toEqual(problem('no_approvers', 503));
        expect(w.calls).toEqual([]);
        const { registration } = await w.submit(request(), ['boss@operator.example']);
        expect(registration.status).toBe('PendingApproval');
    });

    it('asks the directory for approver role holders when none is configured', async () => {
        const registrations = new Registrations(new MemoryRepository<Registration | LegalIdClaim>((d) => d.id), new MemorySecrets());
        const { workflow, calls } = workflows();
        const directory = { holders: async (role: string) => (role === 'Flexchange.Approver' ? [{ id: 'u1', email: 'Eve@Operator.example' }] : []) };
        const { registration } = await submitApplication({ registrations, workflow, approvers: [], directory, timing }, request());
        expect(calls).toEqual([`start ${registration.id} 60/3600`]);
    });

    it('closes the application when its workflow does not start, so its legal id can apply again', async () => {
        const w = world();
        w.failing.add('start');
        await expect(w.submit()).rejects.toThrow('the task hub refused start');
        w.failing.clear();
        // A second application for the same legal id is taken: the first one is Failed.
        const { registration } = await w.submit();
        expect(registration.status).toBe('PendingApproval');
        expect(w.calls).toEqual([`start ${registration.id} 60/3600`]);
    });

    it('refuses a second open application for the same legal id (409)', async () => {
        const w = world();
        await w.submit();
        await expect(w.submit()).rejects.toEqual(problem('registration_exists', 409));
        expect(w.calls).toHaveLength(1);
    });
});

describe('an organisation that keeps its own Azure subscription', () => {
    it('names it in its application (kept lower-case, with the application); anything but a subscription id is refused', async () => {
        const own = { ...request(), organization: { ...request().organization, azureSubscriptionId: '0B5E0E4C-1111-4222-8333-444455556666' } };
        const parsed = registrationRequest.parse(own);
        expect(parsed.organization.azureSubscriptionId).toBe('0b5e0e4c-1111-4222-8333-444455556666');
        const w = world();
        const { registration } = await w.submit(parsed);
        expect((await w.registrations.get(registration.id)).organization.azureSubscriptionId).toBe('0b5e0e4c-1111-4222-8333-444455556666');
        const refused = registrationRequest.safeParse({ ...request(), organization: { ...request().organization, azureSubscriptionId: '/subscriptions/x' } });
        expect(refused.success).toBe(false);
        expect(refused.error?.issues[0]).toMatchObject({ path: ['organization', 'azureSubscriptionId'], message: 'an Azure subscription id (GUID)' });
        // Without one, the operator's subscription.
        expect(registrationRequest.parse(request()).organization).not.toHaveProperty('azureSubscriptionId');
    });
});

describe('deciding', () => {
    it('records the first decision, tells the workflow once, and marks it delivered', async () => {
        const w = world();
        const { registration } = await w.submit();
        const decided = await decideApplication(w.ports, registration.id, { decision: 'approve', by: 'boss@operator.example', via: 'link' });
        expect(decided.decision).toMatchObject({ decision: 'approve', by: 'boss@operator.example', via: 'link', delivered: true });
        const later = decideApplication(w.ports, registration.id, { decision: 'reject', reason: 'changed my mind', by: 'other@operator.example', via: 'api' });
        await expect(later).rejects.toBeInstanceOf(AlreadyDecided);
        await expect(later).rejects.toEqual(problem('already_decided', 409));
        expect(w.calls.slice(1)).toEqual([`decision ${registration.id} approve by boss@operator.example`]);
    });

    it('delivers a decision the workflow was not told of on the next attempt to decide, which is still refused', async () => {
        const w = world();
        const { registration } = await w.submit();
        w.failing.add('deliverDecision');
        await expect(decideApplication(w.ports, registration.id, { decision: 'reject', reason: 'no licence', by: 'boss@operator.example', via: 'api' })).rejects.toThrow('refused deliverDecision');
        const recorded = (await w.registrations.get(registration.id)).decision;
        expect(recorded?.decision).toBe('reject');
        expect(recorded?.delivered).toBeUndefined();
        w.failing.clear();
        await expect(decideApplication(w.ports, registration.id, { decision: 'approve', by: 'other@operator.example', via: 'link' })).rejects.toBeInstanceOf(AlreadyDecided);
        expect(w.calls.slice(1)).toEqual([`decision ${registration.id} reject by boss@operator.example`]);
        expect((await w.registrations.get(registration.id)).decision).toMatchObject({ decision: 'reject', by: 'boss@operator.example', delivered: true });
    });
});

describe('retrying onboarding', () => {
    async function failedOnboarding(decision: 'approve' | 'reject' = 'approve') {
        const w = world();
        const { registration } = await w.submit();
        await decideApplication(w.ports, registration.id, { decision, by: 'boss@operator.example', via: 'api' });
        await w.registrations.step(registration.id, 'deploy-failed', { status: 'Failed', failure: 'ARM said no' });
        return { w, id: registration.id };
    }

    it('numbers each retry, clears the failure and resumes the workflow from the failed step', async () => {
        const { w, id } = await failedOnboarding();
        const first = await retryOnboarding(w.ports, id);
        expect(first).toMatchObject({ status: 'Provisioning', failure: undefined });
        expect(first.steps.map((s) => s.step)).toEqual(['submitted', 'deploy-failed', 'retry-1']);
        await w.registrations.step(id, 'deploy-failed-again', { status: 'Failed', failure: 'ARM said no again' });
        const second = await retryOnboarding(w.ports, id);
        expect(second.steps.map((s) => s.step).slice(-1)).toEqual(['retry-2']);
        expect(w.calls.filter((c) => c.startsWith('resume'))).toEqual([`resume ${id} 1`, `resume ${id} 2`]);
    });

    it('refuses (409 not_failed) an application that did not fail, or that was rejected, and resumes nothing', async () => {
        const w = world();
        const { registration } = await w.submit();
        await expect(retryOnboarding(w.ports, registration.id)).rejects.toEqual(problem('not_failed', 409));
        const rejected = await failedOnboarding('reject');
        await expect(retryOnboarding(rejected.w.ports, rejected.id)).rejects.toBeInstanceOf(AppError);
        expect([...w.calls, ...rejected.w.calls].filter((c) => c.startsWith('resume'))).toEqual([]);
    });
});
