import { AppError } from '../errors';
import type { EventEnvelope } from '../events/events';
import { topUpView, type TopUpPolicy, type TopUpResult } from '../treasury/treasury';
import type { RegisteredAccount } from './accountRegistry';

/** `account.registered`, with an id fixed by the address: published on every registration call, so a retry after a failed publish fills the gap and a repeat is harmless. */
export function accountRegistered(account: RegisteredAccount): EventEnvelope {
    return {
        id: `account.registered:${account.address}`,
        type: 'account.registered',
        occurredAt: account.registeredAt,
        orgIds: [account.orgId],
        subject: `orgs/${account.orgId}/accounts/${account.address}`,
        data: { orgId: account.orgId, address: account.address, label: account.label },
    };
}

export type RegistrationFunding =
    | ReturnType<typeof topUpView>
    | { granted: false; reason: 'onboarding' | 'failed'; detail: string; txHash: null };

/**
 * A newly registered account is funded at once within the top-up policy (the timer's grant for
 * this window), so it can sign when asked. While its organisation onboards, onboarding's own
 * grant funds its first account instead. A failed grant does not undo the registration: the
 * member's signing route and the timer ask again.
 */
export async function fundOnRegistration(
    deps: { onboarding: (orgId: string) => Promise<boolean>; topUp: (orgId: string, address: string) => Promise<TopUpResult>; policy: TopUpPolicy; warn: (message: string) => void },
    account: Pick<RegisteredAccount, 'orgId' | 'address'>,
): Promise<RegistrationFunding> {
    if (await deps.onboarding(account.orgId)) return { granted: false, reason: 'onboarding', detail: 'funded by onboarding (FLEXCHANGE_TREASURY_INITIAL_GRANT_ETH)', txHash: null };
    try {
        return topUpView(await deps.topUp(account.orgId, account.address), deps.policy);
    } catch (err) {
        deps.warn(`funding ${account.address} on registration failed: ${(err as Error).message}`);
        return { granted: false, reason: 'failed', detail: err instanceof AppError ? err.message : 'the top-up could not be made now; it is asked for again when the account signs', txHash: null };
    }
}
