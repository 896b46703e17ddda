/**
 * Subscription billing periods: where each period of a subscription starts and ends, which period an instant falls
 * in, and the proration of a mid-period increase. Pure rules over milliseconds since the epoch, all in UTC; the
 * account workflow sleeps until the instants computed here.
 *
 * `BILLING_PERIOD` decides the length of one period:
 * - a duration made of years and months only (`P1M`, `P3M`, `P1Y`) is a number of calendar months;
 * - a duration without years and months (`PT12S`, `P1D`) is a fixed length, which is how tests run a "month" in
 *   seconds;
 * - a mix (`P1M1D`), a zero length (`P0D`) or anything else is not a billing period.
 * A plan billed every `year` has periods of 12 billing periods (12 months, or 12 x `PT12S` in tests).
 *
 * The calendar rule: period `n` starts `n` steps of months after the anchor (the subscription's start), computed
 * from the anchor every time and never chained from the previous period's start. The day of month is the
 * anchor's, clamped to the last day of a shorter month; the time of day is the anchor's. So a subscription started
 * Jan 31 10:00 renews Feb 28 10:00 (Feb 29 in a leap year), then Mar 31 10:00, Apr 30, May 31, and so on: a
 * short month does not pull every later renewal back to the 28th. A year plan started Feb 29 renews Feb 28 in
 * common years and Feb 29 again in leap years.
 */
import { addCalendarMonths, fixedDurationMs, isFixedLength, parseIsoDuration } from './durations';
import { NANOS_PER_CENT } from './money';

export type BillingPeriod = { kind: 'calendar'; months: number } | { kind: 'fixed'; ms: number };

/**
 * `P1M` (or any PnM / PnY without smaller parts) is calendar months; a duration without years/months is a fixed
 * length; anything else (P1M1D, P0D, P0M, garbage) is null.
 */
export function parseBillingPeriod(text: string): BillingPeriod | null {
  const duration = parseIsoDuration(text);
  if (!duration) return null;
  if (isFixedLength(duration)) {
    const ms = fixedDurationMs(duration);
    return ms > 0 && Number.isSafeInteger(ms) ? { kind: 'fixed', ms } : null;
  }
  const smaller = duration.weeks + duration.days + duration.hours + duration.minutes + duration.seconds !== 0;
  const months = duration.years * 12 + duration.months;
  // A month and a day is neither a calendar step nor a fixed length: refused rather than guessed at.
  if (smaller || months <= 0 || !Number.isSafeInteger(months)) return null;
  return { kind: 'calendar', months };
}

/** A year plan's period is 12 billing periods; a month plan's is one. */
function stepsPerPeriod(interval: 'month' | 'year'): number {
  return interval === 'year' ? 12 : 1;
}

function assertIndex(index: number): void {
  if (!Number.isSafeInteger(index) || index < 0) {
    throw new Error(`a period index is a whole number from 0, got ${index}`);
  }
}

/**
 * Start (ms) of period `index` of a subscription anchored at `anchor_ms`: index 0 is the anchor. Calendar periods
 * follow the rule in the module comment (from the anchor, clamped, time of day kept, UTC); fixed periods are
 * `anchor + index x length`. Throws on a negative or fractional index.
 */
export function periodStart_ms(
  anchor_ms: number,
  index: number,
  period: BillingPeriod,
  interval: 'month' | 'year',
): number {
  assertIndex(index);
  const steps = index * stepsPerPeriod(interval);
  if (period.kind === 'fixed') return anchor_ms + steps * period.ms;
  return addCalendarMonths(new Date(anchor_ms), steps * period.months).getTime();
}

/** Start and end (ms) of period `index`: the end is the next period's start (half-open, `[start, end)`). */
export function periodBounds(
  anchor_ms: number,
  index: number,
  period: BillingPeriod,
  interval: 'month' | 'year',
): { start_ms: number; end_ms: number } {
  return {
    start_ms: periodStart_ms(anchor_ms, index, period, interval),
    end_ms: periodStart_ms(anchor_ms, index + 1, period, interval),
  };
}

/**
 * Index of the period containing `at_ms` (periods are half-open, so a period's end belongs to the next one).
 * Throws when `at_ms` is before the anchor.
 */
export function periodIndexAt(
  anchor_ms: number,
  at_ms: number,
  period: BillingPeriod,
  interval: 'month' | 'year',
): number {
  if (at_ms < anchor_ms) throw new Error(`${at_ms} is before the subscription's anchor ${anchor_ms}`);
  if (period.kind === 'fixed') {
    return Math.floor((at_ms - anchor_ms) / (period.ms * stepsPerPeriod(interval)));
  }
  // Estimate from the calendar months between the two instants, then correct: clamping and the time of day move
  // a start by less than a month, so the estimate is off by at most one either way (the loops are bounded by 3).
  const anchor = new Date(anchor_ms);
  const at = new Date(at_ms);
  const months =
    (at.getUTCFullYear() - anchor.getUTCFullYear()) * 12 + (at.getUTCMonth() - anchor.getUTCMonth());
  let index = Math.max(0, Math.floor(months / (period.months * stepsPerPeriod(interval))));
  for (let i = 0; i < 3 && index > 0 && periodStart_ms(anchor_ms, index, period, interval) > at_ms; i += 1) {
    index -= 1;
  }
  for (let i = 0; i < 3 && periodStart_ms(anchor_ms, index + 1, period, interval) <= at_ms; i += 1) {
    index += 1;
  }
  return index;
}

/**
 * The charge for a mid-period increase (upgrade or more seats): `(new - old) x remaining / period`, rounded
 * half-up to the cent (a card is charged in cents), in exact bigint arithmetic. 0 when the new price is not
 * higher (decreases apply at the period end and refund nothing). Throws when `period_ms` is not a positive whole
 * number or `remaining_ms` is outside `0..period_ms`.
 */
export function prorate_nanos(input: {
  new_price_nanos: bigint;
  old_price_nanos: bigint;
  remaining_ms: number;
  period_ms: number;
}): bigint {
  const { new_price_nanos, old_price_nanos, remaining_ms, period_ms } = input;
  if (!Number.isSafeInteger(period_ms) || period_ms <= 0) {
    throw new Error(`period_ms must be a positive whole number, got ${period_ms}`);
  }
  if (!Number.isSafeInteger(remaining_ms) || remaining_ms < 0 || remaining_ms > period_ms) {
    throw new Error(`remaining_ms must be a whole number in 0..${period_ms}, got ${remaining_ms}`);
  }
  if (new_price_nanos <= old_price_nanos) return 0n;
  const numerator = (new_price_nanos - old_price_nanos) * BigInt(remaining_ms);
  const denominator = BigInt(period_ms) * NANOS_PER_CENT;
  // Half-up on a non-negative quotient: floor((2n + d) / 2d), i.e. add half a cent, then truncate.
  const cents = (2n * numerator + denominator) / (2n * denominator);
  return cents * NANOS_PER_CENT;
}
