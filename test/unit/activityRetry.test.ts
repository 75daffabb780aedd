import { activityRetryFirstMs, ConfigError, loadSettings } from '../../shared/config';
import { activityRetry } from '../../orchestrations/retry';

/** How the workflows retry a failed activity: `FLEXCHANGE_ACTIVITY_RETRY_SECONDS`, then doubling, at most a minute apart. */
describe('the workflows\' activity retry', () => {
    const saved = process.env.FLEXCHANGE_ACTIVITY_RETRY_SECONDS;
    afterEach(() => {
        if (saved === undefined) delete process.env.FLEXCHANGE_ACTIVITY_RETRY_SECONDS;
        else process.env.FLEXCHANGE_ACTIVITY_RETRY_SECONDS = saved;
    });

    it('waits 2 s first by default, doubling up to a minute, 5 attempts (a saga 6)', () => {
        delete process.env.FLEXCHANGE_ACTIVITY_RETRY_SECONDS;
        expect(activityRetry()).toMatchObject({ firstRetryIntervalInMilliseconds: 2000, maxNumberOfAttempts: 5, backoffCoefficient: 2, maxRetryIntervalInMilliseconds: 60_000 });
        expect(activityRetry(6).maxNumberOfAttempts).toBe(6);
        expect(activityRetryFirstMs({ FLEXCHANGE_ACTIVITY_RETRY_SECONDS: '' })).toBe(2000);
    });

    it('takes the first wait from the setting, in seconds', () => {
        process.env.FLEXCHANGE_ACTIVITY_RETRY_SECONDS = '0.25';
        expect(activityRetry().firstRetryIntervalInMilliseconds).toBe(250);
        expect(activityRetryFirstMs({ FLEXCHANGE_ACTIVITY_RETRY_SECONDS: '30' })).toBe(30_000);
    });

    it('refuses a wait that is not a number of seconds from 0.1 to 60, naming the setting', () => {
        for (const bad of ['0', '-1', 'soon', '61']) {
            expect(() => activityRetryFirstMs({ FLEXCHANGE_ACTIVITY_RETRY_SECONDS: bad })).toThrow(ConfigError);
            expect(() => activityRetryFirstMs({ FLEXCHANGE_ACTIVITY_RETRY_SECONDS: bad })).toThrow(/FLEXCHANGE_ACTIVITY_RETRY_SECONDS/);
            expect(() => loadSettings({ FLEXCHANGE_ACTIVITY_RETRY_SECONDS: bad })).toThrow(/FLEXCHANGE_ACTIVITY_RETRY_SECONDS/);
        }
    });
});
