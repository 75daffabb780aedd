/** An organisation of the consortium (container `organizations`, partition key `/id` = the org id). */
export interface Organization {
    id: string;
    name: string;
    legalId: string;
    country: string;
    contactEmail: string;
    status: 'Onboarding' | 'Active' | 'Suspended';
    registrationId: string;
    /** Where its member deployment answers, once it has one. */
    deployment?: { url: string; kind: 'devhost' | 'azure'; principalId?: string };
    createdAt: string;
    updatedAt: string;
}
