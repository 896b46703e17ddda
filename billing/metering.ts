import { formatUsd } from './money';
import type { PriceBook } from './price-book';
import { rateUsage, type RatableUsage, type RatedUsage, type RatingFailure } from './rating';

/**
 * The small pure glue between the API's usage objects and rating: what a usage object may carry besides counts,
 * how a rated usage is stored per dimension, and how long a hold lives.
 */

export interface UsageInput extends RatableUsage {
  readonly feature?: string;
}

/**
 * The most one usage event (or authorization) may cost: $1,000,000. Far above any real call, and far enough below
 * the bigint column that no batch sum or wallet balance can overflow, however many such events arrive.
 */
export const MAX_EVENT_COST_NANOS = 1_000_000n * 1_000_000_000n;

/** Rates one usage of `model` at `at`; a refusal's `param` is prefixed with where the usage sits in the request. */
export function rate(
  book: PriceBook,
  model: string,
  usage: UsageInput,
  at: Date,
  paramPrefix: string,
): RatedUsage | RatingFailure {
  const { feature: _feature, ...ratable } = usage;
  const rated = rateUsage(book, { model, usage: ratable, at });
  if (rated.ok && rated.cost_nanos > MAX_EVENT_COST_NANOS) {
    return {
      ok: false,
      code: 'invalid_quantity',
      param: paramPrefix.replace(/\.$/, '') || 'usage',
      message: `one usage may cost at most ${formatUsd(MAX_EVENT_COST_NANOS)} USD; this one costs ${formatUsd(rated.cost_nanos)}`,
    };
  }
  if (rated.ok) return rated;
  const param = rated.param === 'model' ? 'model' : `${paramPrefix}${rated.param}`;
  return { ...rated, param };
}

/**
 * Per-dimension [quantity, amount_nanos] of a rated usage, as stored with each usage event; the amounts add up
 * exactly to the event's cost, so grouping usage by dimension never loses or invents a nano.
 */
export function usageLines(rated: RatedUsage): Record<string, [number, string]> {
  const lines: Record<string, [number, string]> = {};
  for (const line of rated.lines) {
    const key = line.kind === 'tokens' ? line.dimension : `tool_calls.${line.tool}`;
    lines[key] = [line.quantity, line.amount_nanos.toString()];
  }
  return lines;
}

/** How far in the future an event's timestamp may be (clock skew between our users' servers and ours). */
export const MAX_EVENT_CLOCK_SKEW_MS = 5 * 60_000;

export function holdExpiry(now: Date, ttl_seconds: number): Date {
  return new Date(now.getTime() + ttl_seconds * 1000);
}
