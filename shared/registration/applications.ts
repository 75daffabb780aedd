import { randomUUID } from 'node:crypto';
import type { Directory } from '../directory/directory';
import { AppError } from '../errors';
import { AlreadyDecided, approversOf, type Decision, type Registration, type RegistrationRequest, type Registrations } from './registrations';

/** When the workflow reminds the approvers, and when it gives the application up. */
export interface ApplicationTiming {
    reminderAfterSeconds: number;
    expireAfterSeconds: number;
}

/** The `registration` workflow, as the use cases drive it (Durable Functions in the app). */
export interface RegistrationWorkflow {
    /** Starts the application's workflow: its approvers are mailed, reminded, and the application expires. */
    start(registrationId: string, timing: ApplicationTiming): Promise<void>;
    /** Tells the waiting workflow what was decided. */
    deliverDecision(registrationId: string, decision: Decision): Promise<void>;
    /** Onboarding again (the `attempt`th retry), resuming from the step that failed. */
    resume(registrationId: string, attempt: number): Promise<void>;
}

type Store = Pick<Registrations, 'create' | 'get' | 'update' | 'step' | 'decide' | 'statusKey'>;

export interface ApplicationPorts {
    registrations: Store;
    workflow: RegistrationWorkflow;
}

/**
 * An organisation applies: refused (503 `no_approvers`) when nobody could decide it, rather than left to a
 * workflow whose first step would keep failing; otherwise stored (409 while another application for its
 * legal id is open) and its workflow started. Returns the application and the key of its status link.
 */
export async function submitApplication(
    ports: ApplicationPorts & {
        /** The approvers the settings name (FLEXCHANGE_APPROVERS); none: whoever holds the approver role in the directory. */
        approvers: readonly string[];
        directory: Pick<Directory, 'holders'>;
        timing: ApplicationTiming;
    },
    request: RegistrationRequest,
): Promise<{ registration: Registration; statusKey: string }> {
    if ((await approversOf(ports.approvers, ports.directory)).length === 0) {
        throw new AppError('Applications cannot be decided now: no approvers are configured (FLEXCHANGE_APPROVERS) and nobody holds the Flexchange.Approver role', 503, 'no_approvers');
    }
    const { registrations, workflow } = ports;
    const id = randomUUID();
    const registration = await registrations.create(request, id);
    try {
        await workflow.start(id, ports.timing);
    } catch (err) {
        // Without its workflow the application would hold the legal id forever: close it.
        await registrations.step(id, 'failed-to-start', { status: 'Failed', failure: 'the workflow did not start' }).catch(() => undefined);
        throw err;
    }
    return { registration, statusKey: await registrations.statusKey(id) };
}

/**
 * Records an approver's decision (the first one wins: any later one is `AlreadyDecided`), then tells the
 * workflow. A decision recorded but not delivered (the workflow could not be told) is delivered again
 * by the next attempt to decide.
 */
export async function decideApplication(ports: ApplicationPorts, id: string, decision: Omit<Decision, 'at' | 'delivered'>): Promise<Registration> {
    let decided: Registration;
    try {
        decided = await ports.registrations.decide(id, decision);
    } catch (err) {
        if (err instanceof AlreadyDecided && err.registration.decision && !err.registration.decision.delivered) await deliver(ports, err.registration);
        throw err;
    }
    await deliver(ports, decided);
    return ports.registrations.get(id);
}

async function deliver({ registrations, workflow }: ApplicationPorts, r: Registration): Promise<void> {
    await workflow.deliverDecision(r.id, r.decision!);
    await registrations.update(r.id, (cur) => (cur.decision && !cur.decision.delivered ? { ...cur, decision: { ...cur.decision, delivered: true } } : undefined));
}

/**
 * The operator retries an approved application whose onboarding failed (409 `not_failed` for any other):
 * it is `Provisioning` again with a `retry-<n>` step, and onboarding resumes from the step that failed.
 */
export async function retryOnboarding(ports: ApplicationPorts, id: string): Promise<Registration> {
    let attempt = 0;
    const r = await ports.registrations.update(id, (cur) => {
        if (cur.status !== 'Failed' || cur.decision?.decision !== 'approve') throw new AppError(`Only a failed onboarding is retried; this application is ${cur.status}`, 409, 'not_failed');
        attempt = cur.steps.filter((s) => s.step.startsWith('retry-')).length + 1;
        return { ...cur, status: 'Provisioning', failure: undefined, steps: [...cur.steps, { step: `retry-${attempt}`, at: new Date().toISOString() }] };
    });
    await ports.workflow.resume(id, attempt);
    return r;
}
