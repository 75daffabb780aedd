import * as df from 'durable-functions';
import { activityRetryFirstMs } from '../shared/config';

/** How every workflow retries its activities: after `FLEXCHANGE_ACTIVITY_RETRY_SECONDS` (2 s), doubling, at most a minute apart. */
export function activityRetry(attempts = 5): df.RetryOptions {
    const retry = new df.RetryOptions(activityRetryFirstMs(), attempts);
    retry.backoffCoefficient = 2;
    retry.maxRetryIntervalInMilliseconds = 60_000;
    return retry;
}
