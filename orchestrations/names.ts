import { PROPOSAL_SAGA } from '../shared/proposals/sagaContract';
import { REGISTRATION_RESUME, REGISTRATION_WORKFLOW } from '../shared/registration/workflowContract';

/**
 * The name of every Durable function this app registers, for the registrations, the call
 * sites and the tests: a name typed wrong fails to compile instead of failing at run time
 * with "function not found". No side effects (the workflow files register when imported).
 */
export const ORCHESTRATORS = {
    memberDeployment: 'memberDeployment',
    memberOnboarding: 'memberOnboarding',
    registration: REGISTRATION_WORKFLOW,
    registrationResume: REGISTRATION_RESUME,
    proposalSigning: PROPOSAL_SAGA,
} as const;

export const ACTIVITIES = {
    deploymentRecord: 'deploymentRecord',
    deploymentStart: 'deploymentStart',
    deploymentStatus: 'deploymentStatus',
    onboardingActivate: 'onboardingActivate',
    onboardingAnnounce: 'onboardingAnnounce',
    onboardingAppIdentity: 'onboardingAppIdentity',
    onboardingApplicant: 'onboardingApplicant',
    onboardingFirstAccount: 'onboardingFirstAccount',
    onboardingFund: 'onboardingFund',
    onboardingOrganization: 'onboardingOrganization',
    onboardingStep: 'onboardingStep',
    proposalAnchor: 'proposalAnchor',
    proposalConclude: 'proposalConclude',
    proposalFail: 'proposalFail',
    proposalPublish: 'proposalPublish',
    proposalRemind: 'proposalRemind',
    proposalSigned: 'proposalSigned',
    proposalSignedLast: 'proposalSignedLast',
    provisionMemberSubscription: 'provisionMemberSubscription',
    registrationConclude: 'registrationConclude',
    registrationNotifyApprovers: 'registrationNotifyApprovers',
} as const;

export type ActivityName = (typeof ACTIVITIES)[keyof typeof ACTIVITIES];
