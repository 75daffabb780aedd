import type { Page, Repository } from '../documents/repository';
import { NotFound } from '../errors';

/** An organisation of the consortium (container `organizations`, partition key `/id` = the org id). */
export interface Organization {
    id: string;
    name: string;
    legalId: string;
    country: string;
    contactEmail: string;
    /** Azure: the organisation's own subscription its member deployment goes into (the core's identity has rights there). */
    azureSubscriptionId?: string;
    status: 'Onboarding' | 'Active' | 'Suspended';
    registrationId: string;
    /** Where its member deployment answers, once it has one. */
    deployment?: { url: string; kind: 'devhost' | 'azure'; principalId?: string };
    createdAt: string;
    updatedAt: string;
}

/** The organisations, oldest first, a page at a time. */
export function listOrganizations(repo: Repository<Organization>, continuationToken?: string): Promise<Page<Organization>> {
    return repo.query({ query: 'SELECT * FROM c ORDER BY c.createdAt' }, { maxItemCount: 100, continuationToken });
}

/** One organisation's record (404 when it has none: it is not onboarded). */
export async function organization(repo: Repository<Organization>, orgId: string): Promise<Organization> {
    const found = await repo.read(orgId, orgId);
    if (!found) throw new NotFound('This organisation has no record (it is not onboarded)');
    return found.item;
}
