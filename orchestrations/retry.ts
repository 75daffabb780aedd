import * as df from 'durable-functions';

/** How every workflow retries its activities: 2 s, doubling, at most a minute apart. */
export function activityRetry(attempts = 5): df.RetryOptions {
    const retry = new df.RetryOptions(2000, attempts);
    retry.backoffCoefficient = 2;
    retry.maxRetryIntervalInMilliseconds = 60_000;
    return retry;
}
