/**
 * The lifecycle's durations are configuration (wiring/config.ts), validated at startup with the names and
 * defaults, so a whole lifecycle can run in seconds and a bad value stops the process naming the variable.
 */
import { ConfigError, loadConfig } from '../../wiring/config';
import { scheduleSettingsFrom } from '../../wiring/runtime';

describe('lifecycle durations in the configuration', () => {
  it('defaults: a one-day BILLING_DAY, the Standard Webhooks retry schedule, a year of paid credit validity', () => {
    const config = loadConfig({});
    expect(config.BILLING_DAY).toBe(86_400_000);
    expect(config.WEBHOOK_RETRY_SCHEDULE).toEqual([
      0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000,
    ]);
    expect(config.TOP_UP_CREDIT_VALIDITY).toBe('P1Y');
    expect(config.ACCOUNT_WAKE_AFTER).toBe(60_000);
    expect(config.ACCOUNT_WAKE_MAX_BACKOFF).toBe(3_600_000);
  });

  it('the sweep takes its wake timings from the configuration, through its Schedule', () => {
    const config = loadConfig({ ACCOUNT_WAKE_AFTER: 'PT0S', ACCOUNT_WAKE_MAX_BACKOFF: 'PT10S' });
    expect(scheduleSettingsFrom(config).wake).toEqual({ overdue_by_ms: 0, max_backoff_ms: 10_000 });
  });

  it('reads short values for tests, and "none" for credit that never expires', () => {
    const config = loadConfig({
      BILLING_DAY: 'PT1S',
      WEBHOOK_RETRY_SCHEDULE: 'PT0S, PT0.5S,PT1S',
      TOP_UP_CREDIT_VALIDITY: 'PT3S',
    });
    expect(config.BILLING_DAY).toBe(1_000);
    expect(config.WEBHOOK_RETRY_SCHEDULE).toEqual([0, 500, 1_000]);
    expect(config.TOP_UP_CREDIT_VALIDITY).toBe('PT3S');
    expect(loadConfig({ TOP_UP_CREDIT_VALIDITY: 'none' }).TOP_UP_CREDIT_VALIDITY).toBeNull();
  });

  it.each([
    ['BILLING_DAY', 'PT0S'],
    ['BILLING_DAY', 'P1M'],
    ['BILLING_DAY', 'one day'],
    ['WEBHOOK_RETRY_SCHEDULE', ''],
    ['WEBHOOK_RETRY_SCHEDULE', 'PT0S,P1M'],
    ['WEBHOOK_RETRY_SCHEDULE', 'PT0S,,PT5S'],
    ['WEBHOOK_RETRY_SCHEDULE', Array.from({ length: 21 }, () => 'PT1S').join(',')],
    // Credit that expires the instant it is bought is not a validity.
    ['TOP_UP_CREDIT_VALIDITY', 'PT0S'],
    ['TOP_UP_CREDIT_VALIDITY', 'P0D'],
    ['TOP_UP_CREDIT_VALIDITY', 'PT0.000S'],
    ['TOP_UP_CREDIT_VALIDITY', 'P0Y0M'],
    ['TOP_UP_CREDIT_VALIDITY', 'never'],
    ['TOP_UP_CREDIT_VALIDITY', ''],
    ['ACCOUNT_WAKE_AFTER', 'P2D'],
    ['ACCOUNT_WAKE_AFTER', 'P1M'],
    ['ACCOUNT_WAKE_MAX_BACKOFF', 'PT0S'],
    ['ACCOUNT_WAKE_MAX_BACKOFF', 'P8D'],
  ])('refuses %s=%j at startup, naming the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`${name}: `));
  });
});
