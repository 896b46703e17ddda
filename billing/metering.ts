import { formatUsd } from './money';
import { STORAGE_GB_DAY_DECIMALS, type PriceBook } from './price-book';
import { rateUsage, type RatableUsage, type RatedLine, type RatedUsage, type RatingFailure } from './rating';

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
const MAX_EVENT_COST_NANOS = 1_000_000n * 1_000_000_000n;

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
 * Per-dimension `[quantity, amount_nanos]` of one usage event, as stored in `usage_events.lines` and summed by the
 * usage report. Keys: a token dimension (`input_tokens`), `images.<size>.<quality>`, `audio_seconds`,
 * `storage_gb_days`, `tool_calls.<tool>`. The quantity is a whole count (tokens, images, seconds, calls) or, for
 * `storage_gb_days`, an exact decimal string with 9 decimals, so that no quantity is ever a float.
 */
export type UsageLines = Record<string, [number | string, string]>;

/** The key of a rated line in `UsageLines`, which is also its `dimension` in quotes and usage reports. */
function lineKey(line: RatedLine): string {
  switch (line.kind) {
    case 'tokens':
      return line.dimension;
    case 'images':
      return `images.${line.size}.${line.quality}`;
    case 'audio':
      return 'audio_seconds';
    case 'storage':
      return 'storage_gb_days';
    case 'tool_calls':
      return `tool_calls.${line.tool}`;
  }
}

/**
 * The lines of a rated usage as stored with each usage event; the amounts add up exactly to the event's cost, so
 * grouping usage by dimension never loses or invents a nano.
 */
export function usageLines(rated: RatedUsage): UsageLines {
  const lines: UsageLines = {};
  for (const line of rated.lines) lines[lineKey(line)] = [line.quantity, line.amount_nanos.toString()];
  return lines;
}

/** Dimensions whose quantity is an exact decimal (GB-days) rather than a whole count. */
const DECIMAL_QUANTITY_DIMENSIONS: ReadonlySet<string> = new Set(['storage_gb_days']);

/**
 * A summed quantity of one dimension (an exact decimal text from PostgreSQL) as the usage report shows it: a JSON
 * number for whole counts, and for GB-days of storage a decimal string with exactly 9 decimals ("3.500000000").
 * Throws on text that is not a non-negative decimal, which would be a programmer error.
 */
export function reportedQuantity(dimension: string, total: string): number | string {
  const match = /^([0-9]+)(?:\.([0-9]+))?$/.exec(total);
  if (match === null) throw new Error(`not a summed quantity: ${JSON.stringify(total)}`);
  const whole = match[1]!;
  const fraction = match[2] ?? '';
  if (!DECIMAL_QUANTITY_DIMENSIONS.has(dimension)) {
    if (/[1-9]/.test(fraction)) throw new Error(`dimension ${dimension} summed to a fraction: ${total}`);
    return Number(whole);
  }
  // Every stored GB-days quantity has at most 9 decimals, so a sum has no non-zero digit beyond the 9th.
  if (/[1-9]/.test(fraction.slice(STORAGE_GB_DAY_DECIMALS))) {
    throw new Error(`GB-days summed to more than ${STORAGE_GB_DAY_DECIMALS} decimals: ${total}`);
  }
  return `${BigInt(whole).toString()}.${fraction.slice(0, STORAGE_GB_DAY_DECIMALS).padEnd(STORAGE_GB_DAY_DECIMALS, '0')}`;
}

/** How far in the future an event's timestamp may be (clock skew between our users' servers and ours). */
export const MAX_EVENT_CLOCK_SKEW_MS = 5 * 60_000;

export function holdExpiry(now: Date, ttl_seconds: number): Date {
  return new Date(now.getTime() + ttl_seconds * 1000);
}

/** The tokens of a rated usage (every token dimension), which the tokens-per-minute limit counts. */
export function estimatedTokens(rated: RatedUsage): bigint {
  let tokens = 0n;
  for (const line of rated.lines) if (line.kind === 'tokens') tokens += BigInt(line.quantity);
  return tokens;
}
