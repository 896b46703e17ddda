import fc from 'fast-check';
import { billingPeriodOf, dunningRetryDaysOf } from '../../billing/account';
import { usd } from '../../billing/money';
import {
  type BillingPeriod,
  parseBillingPeriod,
  periodBounds,
  periodIndexAt,
  periodStart_ms,
  prorate_nanos,
} from '../../billing/periods';

/**
 * The subscription period rules (billing/periods.ts): which text is a billing period, the calendar rule (from the
 * anchor, clamped to the month's last day, time of day kept, UTC) over month ends and leap years, fixed periods,
 * the index of the period containing an instant, and the half-up proration of mid-period increases.
 */
const MONTH: BillingPeriod = { kind: 'calendar', months: 1 };
const at = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();
const starts = (anchor: string, count: number, period: BillingPeriod, interval: 'month' | 'year' = 'month') =>
  Array.from({ length: count }, (_, i) => iso(periodStart_ms(at(anchor), i, period, interval)));

describe('parseBillingPeriod', () => {
  it.each([
    ['P1M', { kind: 'calendar', months: 1 }],
    ['P3M', { kind: 'calendar', months: 3 }],
    ['P1Y', { kind: 'calendar', months: 12 }],
    ['P1Y6M', { kind: 'calendar', months: 18 }],
    ['PT12S', { kind: 'fixed', ms: 12_000 }],
    ['P1D', { kind: 'fixed', ms: 86_400_000 }],
    ['P1W', { kind: 'fixed', ms: 604_800_000 }],
    ['PT0.5S', { kind: 'fixed', ms: 500 }],
  ])('reads %s', (text, period) => expect(parseBillingPeriod(text)).toEqual(period));

  it.each([
    'P1M1D',
    'P1MT1S',
    'P1YT1H',
    'P0D',
    'PT0S',
    'P0M',
    'P0Y',
    '',
    'P',
    'PT',
    '1M',
    'monthly',
    'P-1M',
    'p1m',
  ])('refuses %j: a mix of calendar and fixed parts, a zero length or not a duration', (text) =>
    expect(parseBillingPeriod(text)).toBeNull(),
  );
});

describe('calendar periods (P1M)', () => {
  it('anchored Jan 31 renews Feb 28, then Mar 31: computed from the anchor, never chained', () => {
    expect(starts('2027-01-31T10:15:00.000Z', 6, MONTH)).toEqual([
      '2027-01-31T10:15:00.000Z',
      '2027-02-28T10:15:00.000Z',
      '2027-03-31T10:15:00.000Z',
      '2027-04-30T10:15:00.000Z',
      '2027-05-31T10:15:00.000Z',
      '2027-06-30T10:15:00.000Z',
    ]);
  });

  it('anchored Jan 31 of a leap year renews Feb 29', () => {
    expect(starts('2028-01-31T00:00:00.000Z', 3, MONTH)).toEqual([
      '2028-01-31T00:00:00.000Z',
      '2028-02-29T00:00:00.000Z',
      '2028-03-31T00:00:00.000Z',
    ]);
    expect(iso(periodStart_ms(at('2024-01-31T00:00:00.000Z'), 1, MONTH, 'month'))).toBe(
      '2024-02-29T00:00:00.000Z',
    );
  });

  it('2100 is not a leap year (divisible by 100) and 2000 is (divisible by 400)', () => {
    expect(iso(periodStart_ms(at('2100-01-31T00:00:00.000Z'), 1, MONTH, 'month'))).toBe(
      '2100-02-28T00:00:00.000Z',
    );
    expect(iso(periodStart_ms(at('2000-01-31T00:00:00.000Z'), 1, MONTH, 'month'))).toBe(
      '2000-02-29T00:00:00.000Z',
    );
  });

  it('anchored Mar 31 clamps to Apr 30, Jun 30, Sep 30, Nov 30 and comes back to the 31st', () => {
    expect(starts('2027-03-31T23:59:59.999Z', 10, MONTH)).toEqual([
      '2027-03-31T23:59:59.999Z',
      '2027-04-30T23:59:59.999Z',
      '2027-05-31T23:59:59.999Z',
      '2027-06-30T23:59:59.999Z',
      '2027-07-31T23:59:59.999Z',
      '2027-08-31T23:59:59.999Z',
      '2027-09-30T23:59:59.999Z',
      '2027-10-31T23:59:59.999Z',
      '2027-11-30T23:59:59.999Z',
      '2027-12-31T23:59:59.999Z',
    ]);
  });

  it('anchored Aug 31 renews Sep 30 and crosses the year to Feb 28 then Mar 31', () => {
    expect(starts('2027-08-31T00:00:00.000Z', 8, MONTH)).toEqual([
      '2027-08-31T00:00:00.000Z',
      '2027-09-30T00:00:00.000Z',
      '2027-10-31T00:00:00.000Z',
      '2027-11-30T00:00:00.000Z',
      '2027-12-31T00:00:00.000Z',
      '2028-01-31T00:00:00.000Z',
      '2028-02-29T00:00:00.000Z',
      '2028-03-31T00:00:00.000Z',
    ]);
  });

  it('four years of monthly periods anchored Jan 31 2025 end on each month end, Feb 29 only in 2028', () => {
    const all = starts('2025-01-31T12:00:00.000Z', 48, MONTH);
    const lastDay = (y: number, m: number) => new Date(Date.UTC(y, m + 1, 0)).getUTCDate();
    all.forEach((text, i) => {
      const d = new Date(text);
      expect(d.getUTCFullYear()).toBe(2025 + Math.floor(i / 12));
      expect(d.getUTCMonth()).toBe(i % 12);
      expect(d.getUTCDate()).toBe(lastDay(d.getUTCFullYear(), d.getUTCMonth()));
      expect(d.getUTCHours()).toBe(12);
    });
    expect(all.filter((t) => t.slice(5, 10) === '02-29')).toEqual(['2028-02-29T12:00:00.000Z']);
    expect(all[47]).toBe('2028-12-31T12:00:00.000Z');
  });

  it('a day that every month has (the 15th) is kept for 4 years', () => {
    const all = starts('2025-01-15T08:30:00.000Z', 48, MONTH);
    expect(all.every((t) => t.slice(8) === '15T08:30:00.000Z')).toBe(true);
  });

  it('a year plan started Feb 29 renews Feb 28 in common years and Feb 29 in leap years', () => {
    expect(starts('2024-02-29T00:00:00.000Z', 6, MONTH, 'year')).toEqual([
      '2024-02-29T00:00:00.000Z',
      '2025-02-28T00:00:00.000Z',
      '2026-02-28T00:00:00.000Z',
      '2027-02-28T00:00:00.000Z',
      '2028-02-29T00:00:00.000Z',
      '2029-02-28T00:00:00.000Z',
    ]);
  });

  it('a P3M period steps three months from the anchor', () => {
    expect(starts('2027-11-30T00:00:00.000Z', 4, { kind: 'calendar', months: 3 })).toEqual([
      '2027-11-30T00:00:00.000Z',
      '2028-02-29T00:00:00.000Z',
      '2028-05-30T00:00:00.000Z',
      '2028-08-30T00:00:00.000Z',
    ]);
  });

  it('periodBounds is [start of index, start of index + 1)', () => {
    expect(periodBounds(at('2027-01-31T00:00:00.000Z'), 1, MONTH, 'month')).toEqual({
      start_ms: at('2027-02-28T00:00:00.000Z'),
      end_ms: at('2027-03-31T00:00:00.000Z'),
    });
  });

  it('refuses a negative or fractional index', () => {
    expect(() => periodStart_ms(0, -1, MONTH, 'month')).toThrow(/period index/);
    expect(() => periodStart_ms(0, 1.5, MONTH, 'month')).toThrow(/period index/);
  });
});

describe('fixed periods (PT12S)', () => {
  const TWELVE_S: BillingPeriod = { kind: 'fixed', ms: 12_000 };

  it('a month plan steps 12 s from the anchor and a year plan 12 x 12 s', () => {
    expect(periodStart_ms(1_000, 3, TWELVE_S, 'month')).toBe(37_000);
    expect(periodBounds(1_000, 0, TWELVE_S, 'month')).toEqual({ start_ms: 1_000, end_ms: 13_000 });
    expect(periodBounds(1_000, 1, TWELVE_S, 'year')).toEqual({ start_ms: 145_000, end_ms: 289_000 });
  });

  it('periodIndexAt: the end of a period belongs to the next one', () => {
    expect(periodIndexAt(1_000, 1_000, TWELVE_S, 'month')).toBe(0);
    expect(periodIndexAt(1_000, 12_999, TWELVE_S, 'month')).toBe(0);
    expect(periodIndexAt(1_000, 13_000, TWELVE_S, 'month')).toBe(1);
    expect(periodIndexAt(1_000, 144_999, TWELVE_S, 'year')).toBe(0);
    expect(periodIndexAt(1_000, 145_000, TWELVE_S, 'year')).toBe(1);
  });

  it('refuses an instant before the anchor', () => {
    expect(() => periodIndexAt(1_000, 999, TWELVE_S, 'month')).toThrow(/before/);
  });
});

describe('periodIndexAt is the inverse of periodStart_ms (property)', () => {
  // 1970..2200 anchors; periods: calendar 1/3/12 months or fixed lengths from 1 ms to 40 days.
  const anchor = fc.integer({ min: 0, max: Date.UTC(2200, 0, 1) });
  const period: fc.Arbitrary<BillingPeriod> = fc.oneof(
    fc.constantFrom(1, 3, 12).map((months): BillingPeriod => ({ kind: 'calendar', months })),
    fc.integer({ min: 1, max: 40 * 86_400_000 }).map((ms): BillingPeriod => ({ kind: 'fixed', ms })),
  );
  const interval = fc.constantFrom<'month' | 'year'>('month', 'year');

  it('the start of period i is in period i, and the instant before the next start is too', () => {
    fc.assert(
      fc.property(anchor, fc.integer({ min: 0, max: 600 }), period, interval, (a, i, p, iv) => {
        const { start_ms, end_ms } = periodBounds(a, i, p, iv);
        expect(end_ms).toBeGreaterThan(start_ms);
        expect(periodIndexAt(a, start_ms, p, iv)).toBe(i);
        expect(periodIndexAt(a, end_ms - 1, p, iv)).toBe(i);
        expect(periodIndexAt(a, end_ms, p, iv)).toBe(i + 1);
      }),
      { numRuns: 2000 },
    );
  });

  it('any instant after the anchor lies within the bounds of its period', () => {
    fc.assert(
      fc.property(
        anchor,
        fc.integer({ min: 0, max: 50 * 365 * 86_400_000 }),
        period,
        interval,
        (a, d, p, iv) => {
          const index = periodIndexAt(a, a + d, p, iv);
          const { start_ms, end_ms } = periodBounds(a, index, p, iv);
          expect(start_ms).toBeLessThanOrEqual(a + d);
          expect(end_ms).toBeGreaterThan(a + d);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('prorate_nanos: (new - old) x remaining / period, half-up to the cent', () => {
  const prorate = (new_usd: string, old_usd: string, remaining_ms: number, period_ms: number) =>
    prorate_nanos({ new_price_nanos: usd(new_usd), old_price_nanos: usd(old_usd), remaining_ms, period_ms });

  it('Plus to Pro with half the period left charges half the difference: (200 - 20) x 1/2 = 90.00', () => {
    expect(prorate('200.00', '20.00', 15, 30)).toBe(usd('90.00'));
  });

  it('the full period left charges the whole difference, none left charges nothing', () => {
    expect(prorate('200.00', '20.00', 30, 30)).toBe(usd('180.00'));
    expect(prorate('200.00', '20.00', 0, 30)).toBe(0n);
  });

  it('a decrease or no change charges nothing', () => {
    expect(prorate('20.00', '200.00', 15, 30)).toBe(0n);
    expect(prorate('20.00', '20.00', 15, 30)).toBe(0n);
  });

  it('exactly half a cent rounds up, just below half rounds down', () => {
    // 0.01 x 1/2 = 0.005 -> 0.01; 0.01 x 499/1000 = 0.00499 -> 0.00; 0.01 x 501/1000 -> 0.01.
    expect(prorate('0.01', '0', 1, 2)).toBe(usd('0.01'));
    expect(prorate('0.01', '0', 499, 1000)).toBe(0n);
    expect(prorate('0.01', '0', 501, 1000)).toBe(usd('0.01'));
    // 10.00 x 1/3 = 3.3333... -> 3.33; 10.00 x 2/3 = 6.6666... -> 6.67; 0.05 x 1/2 = 0.025 -> 0.03.
    expect(prorate('10.00', '0', 1, 3)).toBe(usd('3.33'));
    expect(prorate('10.00', '0', 2, 3)).toBe(usd('6.67'));
    expect(prorate('0.05', '0', 1, 2)).toBe(usd('0.03'));
  });

  it('a month in milliseconds: Plus to Pro with 10 of 31 days left = 180 x 10/31 = 58.0645... -> 58.06', () => {
    const day = 86_400_000;
    expect(prorate('200.00', '20.00', 10 * day, 31 * day)).toBe(usd('58.06'));
  });

  it('is whole cents, between 0 and the difference, within half a cent of the exact value (property)', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 100_000_000n }),
        fc.bigInt({ min: 0n, max: 100_000_000n }),
        fc.integer({ min: 0, max: 400 * 86_400_000 }),
        fc.integer({ min: 0, max: 400 * 86_400_000 }),
        (newCents, oldCents, remaining_ms, more_ms) => {
          const period_ms = Math.max(1, remaining_ms + more_ms);
          const new_price_nanos = newCents * 10_000_000n;
          const old_price_nanos = oldCents * 10_000_000n;
          const charged = prorate_nanos({ new_price_nanos, old_price_nanos, remaining_ms, period_ms });
          expect(charged % 10_000_000n).toBe(0n);
          const diff = new_price_nanos > old_price_nanos ? new_price_nanos - old_price_nanos : 0n;
          expect(charged >= 0n && charged <= diff).toBe(true);
          // Within half a cent of the exact value: |charged x period - diff x remaining| <= half a cent x period.
          const error = charged * BigInt(period_ms) - diff * BigInt(remaining_ms);
          const half = 5_000_000n * BigInt(period_ms);
          expect(error <= half && error > -half).toBe(true);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('refuses a remaining time outside the period and a period that is not a positive whole number', () => {
    expect(() => prorate('2.00', '1.00', 31, 30)).toThrow(/remaining_ms/);
    expect(() => prorate('2.00', '1.00', -1, 30)).toThrow(/remaining_ms/);
    expect(() => prorate('2.00', '1.00', 0, 0)).toThrow(/period_ms/);
    expect(() => prorate('2.00', '1.00', 0.5, 30)).toThrow(/remaining_ms/);
  });
});

describe('the settings (billing/account.ts)', () => {
  it('default to calendar months and retries after 1, 3, 5 and 7 billing days for older starts', () => {
    expect(billingPeriodOf({ activity_timeout_ms: 1, continue_as_new_after_events: null })).toEqual(MONTH);
    expect(billingPeriodOf(undefined)).toEqual(MONTH);
    expect(dunningRetryDaysOf(undefined)).toEqual([1, 3, 5, 7]);
  });

  it('read billing_period and dunning_retry_days when set', () => {
    const settings = {
      activity_timeout_ms: 1,
      continue_as_new_after_events: null,
      billing_period: 'PT12S',
      dunning_retry_days: [0, 2],
    };
    expect(billingPeriodOf(settings)).toEqual({ kind: 'fixed', ms: 12_000 });
    expect(dunningRetryDaysOf(settings)).toEqual([0, 2]);
    expect(() => billingPeriodOf({ ...settings, billing_period: 'P1M1D' })).toThrow(/billing_period/);
  });
});
