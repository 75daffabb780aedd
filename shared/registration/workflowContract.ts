import type { ApplicationTiming, RegistrationWorkflow } from './applications';

/**
 * The registration workflow's contract with those who start it and send it decisions (the
 * registration routes): its names, instance id, input and the one external event it waits
 * for. Kept apart from the orchestration file, which registers functions when imported.
 */
export const REGISTRATION_WORKFLOW = 'registration';
/** Onboarding again after a failure, resuming from the step that failed. */
export const REGISTRATION_RESUME = 'registrationResume';
/** The decision the workflow waits for (approved or rejected, by an approver). */
export const APPROVAL_DECISION_EVENT = 'ApprovalDecision';

export const registrationInstanceId = (registrationId: string) => `registration-${registrationId}`;

export interface RegistrationInput extends ApplicationTiming {
    registrationId: string;
}

/** The part of a Durable client the registration routes use (the Functions binding's client is one). */
export interface WorkflowClient {
    startNew(name: string, options: { instanceId: string; input: unknown }): Promise<string>;
    raiseEvent(instanceId: string, eventName: string, eventData: unknown): Promise<void>;
}

/** The registration workflows as the use cases see them, run by Durable Functions. */
export function durableRegistrationWorkflow(durable: WorkflowClient): RegistrationWorkflow {
    return {
        start: async (registrationId, timing) => {
            const input: RegistrationInput = { registrationId, ...timing };
            await durable.startNew(REGISTRATION_WORKFLOW, { instanceId: registrationInstanceId(registrationId), input });
        },
        deliverDecision: (registrationId, decision) => durable.raiseEvent(registrationInstanceId(registrationId), APPROVAL_DECISION_EVENT, decision),
        resume: async (registrationId, attempt) => {
            await durable.startNew(REGISTRATION_RESUME, { instanceId: `${registrationInstanceId(registrationId)}:resume-${attempt}`, input: { registrationId } });
        },
    };
}
