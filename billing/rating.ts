/**
 * Rating: the exact cost of one usage event under the price book. Pure integer arithmetic on
 * `bigint`; no float ever touches a price or an amount.
 *
 * Every line of an event is kept as an exact fraction of a nano over one common denominator
 * (1M tokens x the processing multiplier's denominator). The event total is rounded to the nano once,
 * with a named rounding mode, and then allocated back to the lines so that the line amounts add up
 * to the total exactly. Rounding per line instead would make an event's cost depend on how its
 * usage happens to be split across dimensions.
 */
import { MAX_NANOS } from './money';
import {
  CALLS_PER_PRICE_UNIT,
  PROCESSING_MODES,
  TOKEN_DIMENSIONS,
  TOKENS_PER_PRICE_UNIT,
  priceAt,
  type PriceBook,
  type ProcessingMode,
  type Ratio,
  type TokenDimension,
} from './price-book';

export { PROCESSING_MODES, TOKEN_DIMENSIONS };
export type { ProcessingMode, TokenDimension };

// ---------------------------------------------------------------------------------------------------
// Rounding.

/**
 * Rounding modes: `half_up` rounds ties away from zero (2.5 -> 3, -2.5 -> -3); `half_even` rounds
 * ties to the even neighbour (2.5 -> 2, 3.5 -> 4); `ceil` rounds toward +infinity; `floor` toward
 * -infinity.
 */
export const ROUNDING_MODES = ['half_up', 'half_even', 'ceil', 'floor'] as const;
export type RoundingMode = (typeof ROUNDING_MODES)[number];

/** Usage is rated with this mode unless a caller names another. */
export const DEFAULT_ROUNDING_MODE: RoundingMode = 'half_up';

/**
 * Divides two integers and rounds the exact quotient to an integer with `mode` (default `half_up`).
 * Works for any signs. Throws a RangeError when `denominator` is zero.
 */
export function divideRounded(
  numerator: bigint,
  denominator: bigint,
  mode: RoundingMode = DEFAULT_ROUNDING_MODE,
): bigint {
  if (denominator === 0n) throw new RangeError('divideRounded: division by zero');
  // Normalise to a positive denominator so that the sign of the quotient is the sign of the numerator.
  const n = denominator < 0n ? -numerator : numerator;
  const d = denominator < 0n ? -denominator : denominator;
  const truncated = n / d; // BigInt division truncates toward zero.
  const remainder = n % d; // Has the sign of n.
  if (remainder === 0n) return truncated;
  const awayFromZero = truncated + (n < 0n ? -1n : 1n);
  const twiceRemainder = remainder < 0n ? -2n * remainder : 2n * remainder;
  switch (mode) {
    case 'floor':
      return n < 0n ? awayFromZero : truncated;
    case 'ceil':
      return n > 0n ? awayFromZero : truncated;
    case 'half_up':
      return twiceRemainder >= d ? awayFromZero : truncated;
    case 'half_even':
      if (twiceRemainder > d) return awayFromZero;
      if (twiceRemainder < d) return truncated;
      return truncated % 2n === 0n ? truncated : awayFromZero;
  }
}

// ---------------------------------------------------------------------------------------------------
// Inputs and results.

/** The most units of one dimension (or calls of one tool) a single event may carry. */
export const MAX_QUANTITY_PER_DIMENSION = 1_000_000_000_000;

/**
 * One usage to rate. Counts are non-negative safe integers of at most `MAX_QUANTITY_PER_DIMENSION`;
 * an absent count is zero. `processing` defaults to `standard`.
 */
export type RatableUsage = { readonly [D in TokenDimension]?: number } & {
  readonly tool_calls?: Readonly<Record<string, number>>;
  readonly processing?: ProcessingMode;
};

export interface RateUsageInput {
  readonly model: string;
  readonly usage: RatableUsage;
  /** When the usage happened; selects the price version in force. */
  readonly at: Date;
  readonly rounding?: RoundingMode;
}

interface RatedLineAmounts {
  readonly quantity: number;
  /** This line's share of the event's rounded `cost_nanos`; the lines add up to it exactly. */
  readonly amount_nanos: bigint;
  /** This line's share of the event's rounded `provider_cost_nanos`; the lines add up to it exactly. */
  readonly provider_cost_nanos: bigint;
  /** Exact amount in nanos = this / the event's `exact_nanos_denominator`, multiplier included. */
  readonly exact_amount_nanos_numerator: bigint;
  /** Exact provider cost in nanos = this / the event's `exact_nanos_denominator`. */
  readonly exact_provider_cost_nanos_numerator: bigint;
}

export interface RatedTokenLine extends RatedLineAmounts {
  readonly kind: 'tokens';
  readonly dimension: TokenDimension;
  readonly unit_price_nanos_per_million: bigint;
  readonly unit_provider_cost_nanos_per_million: bigint;
}

export interface RatedToolLine extends RatedLineAmounts {
  readonly kind: 'tool_calls';
  readonly dimension: 'tool_calls';
  readonly tool: string;
  readonly unit_price_nanos_per_thousand_calls: bigint;
  readonly unit_provider_cost_nanos_per_thousand_calls: bigint;
}

export type RatedLine = RatedTokenLine | RatedToolLine;

export interface RatedUsage {
  readonly ok: true;
  readonly model: string;
  readonly price_version: string;
  readonly processing: ProcessingMode;
  /** Applied to token lines only: tool calls cost the same however the request was processed. */
  readonly processing_multiplier: Ratio;
  /** What the customer pays, rounded once to the nano with `rounding`. */
  readonly cost_nanos: bigint;
  /** What the provider charges us, rounded once to the nano with `rounding`. */
  readonly provider_cost_nanos: bigint;
  readonly exact_nanos_denominator: bigint;
  /** Token lines in `TOKEN_DIMENSIONS` order, then tool lines by tool name; zero quantities omitted. */
  readonly lines: readonly RatedLine[];
  readonly rounding: RoundingMode;
}

export type RatingErrorCode =
  'unknown_model' | 'no_price_in_force' | 'dimension_not_priced' | 'unknown_tool' | 'invalid_quantity';

export interface RatingFailure {
  readonly ok: false;
  readonly code: RatingErrorCode;
  /** The offending field relative to the usage object (`output_tokens`, `tool_calls.web_search`, `model`). */
  readonly param: string;
  readonly message: string;
}

export type RatingResult = RatedUsage | RatingFailure;

// ---------------------------------------------------------------------------------------------------
// Rating.

/** True for counts we accept: safe integers in [0, MAX_QUANTITY_PER_DIMENSION]. Rejects NaN and floats. */
export function isValidQuantity(quantity: unknown): quantity is number {
  return (
    typeof quantity === 'number' &&
    Number.isSafeInteger(quantity) &&
    quantity >= 0 &&
    quantity <= MAX_QUANTITY_PER_DIMENSION
  );
}

function invalidQuantity(param: string, quantity: unknown): RatingFailure {
  return {
    ok: false,
    code: 'invalid_quantity',
    param,
    message: `${param} must be a whole number from 0 to ${MAX_QUANTITY_PER_DIMENSION}, got ${String(quantity)}`,
  };
}

interface Quantities {
  readonly tokens: readonly { dimension: TokenDimension; quantity: number }[];
  readonly tools: readonly { tool: string; quantity: number }[];
}

/** Checks every count and keeps the non-zero ones; zero counts never need a price. */
function readQuantities(usage: RatableUsage): Quantities | RatingFailure {
  const tokens: { dimension: TokenDimension; quantity: number }[] = [];
  for (const dimension of TOKEN_DIMENSIONS) {
    const quantity: unknown = usage[dimension];
    if (quantity === undefined) continue;
    if (!isValidQuantity(quantity)) return invalidQuantity(dimension, quantity);
    if (quantity > 0) tokens.push({ dimension, quantity });
  }
  const tools: { tool: string; quantity: number }[] = [];
  const toolCalls: unknown = usage.tool_calls;
  if (toolCalls !== undefined) {
    if (typeof toolCalls !== 'object' || toolCalls === null || Array.isArray(toolCalls)) {
      return invalidQuantity('tool_calls', toolCalls);
    }
    // Sorted so that the same usage always yields the same lines, whatever the key order of the JSON.
    const entries = Object.entries(toolCalls as Record<string, unknown>).sort(([a], [b]) =>
      a < b ? -1 : a > b ? 1 : 0,
    );
    for (const [tool, quantity] of entries) {
      if (!isValidQuantity(quantity)) return invalidQuantity(`tool_calls.${tool}`, quantity);
      if (quantity > 0) tools.push({ tool, quantity });
    }
  }
  return { tokens, tools };
}

function isFailure(value: Quantities | RatingFailure): value is RatingFailure {
  return 'ok' in value;
}

/**
 * Splits `total_nanos` (the once-rounded sum of `numerators / denominator`) across lines: each line
 * gets the floor of its exact amount, and the nanos left over go one each to the lines with the
 * largest remainders (earlier lines first on ties). The result always adds up to `total_nanos`.
 */
function allocateRounded(numerators: readonly bigint[], denominator: bigint, total_nanos: bigint): bigint[] {
  const floors = numerators.map((numerator) => numerator / denominator);
  let leftover_nanos = total_nanos - floors.reduce((sum, amount) => sum + amount, 0n);
  // The exact sum exceeds the sum of the floors by less than one nano per line with a remainder, and
  // every rounding mode stays between the floor and the ceiling of the exact sum, so the leftover lies
  // between 0 and that number of lines. Anything else means the arithmetic above is wrong.
  const withRemainder = numerators.filter((numerator) => numerator % denominator !== 0n).length;
  if (leftover_nanos < 0n || leftover_nanos > BigInt(withRemainder)) {
    throw new Error(`allocation leftover ${leftover_nanos} outside [0, ${withRemainder}]`);
  }
  const order = numerators
    .map((numerator, index) => ({ index, remainder: numerator % denominator }))
    .sort((a, b) => (a.remainder === b.remainder ? a.index - b.index : a.remainder > b.remainder ? -1 : 1));
  for (const { index } of order) {
    if (leftover_nanos === 0n) break;
    floors[index] = (floors[index] ?? 0n) + 1n;
    leftover_nanos -= 1n;
  }
  return floors;
}

function sum(values: readonly bigint[]): bigint {
  return values.reduce((total, value) => total + value, 0n);
}

/**
 * Rates one usage event: its exact cost to the customer and to us, in nanos, under the price
 * version in force at `at`.
 *
 * Token amounts are `tokens x price_nanos_per_million / 1M`, scaled by the processing multiplier
 * (`batch`, `flex`); tool amounts are `calls x price_nanos_per_thousand_calls / 1000`, not scaled.
 * The exact sum is rounded once to the nano with `rounding` (default `half_up`). Zero quantities cost
 * zero and need no price.
 *
 * Expected outcomes are returned, not thrown: `invalid_quantity` (a count that is negative, not a
 * whole number, NaN or above `MAX_QUANTITY_PER_DIMENSION`, or a cost beyond `MAX_NANOS`),
 * `no_price_in_force` (before the first price version), `unknown_model`, `dimension_not_priced` and
 * `unknown_tool`. Throws only on programmer errors: an invalid Date or an unknown processing mode.
 */
export function rateUsage(book: PriceBook, input: RateUsageInput): RatingResult {
  const rounding = input.rounding ?? DEFAULT_ROUNDING_MODE;
  const processing = input.usage.processing ?? 'standard';
  if (!PROCESSING_MODES.includes(processing))
    throw new Error(`unknown processing mode ${String(processing)}`);

  const quantities = readQuantities(input.usage);
  if (isFailure(quantities)) return quantities;

  const lookup = priceAt(book, input.model, input.at);
  if (!lookup.ok) return { ok: false, code: lookup.code, param: 'model', message: lookup.message };
  const { version, price } = lookup;
  const multiplier = version.processing_multipliers[processing];

  // Common denominator of every line: amounts are nanos x 1M (per-million prices) x the multiplier's
  // denominator. Tool prices are per 1,000 calls, so their numerators are scaled up by 1M / 1,000.
  const exact_nanos_denominator = TOKENS_PER_PRICE_UNIT * multiplier.denominator;
  const toolScale = (TOKENS_PER_PRICE_UNIT / CALLS_PER_PRICE_UNIT) * multiplier.denominator;

  type UnroundedLine =
    | Omit<RatedTokenLine, 'amount_nanos' | 'provider_cost_nanos'>
    | Omit<RatedToolLine, 'amount_nanos' | 'provider_cost_nanos'>;
  const unrounded: UnroundedLine[] = [];
  for (const { dimension, quantity } of quantities.tokens) {
    const unitPrice = price.price_nanos_per_million[dimension];
    const unitCost = price.provider_cost_nanos_per_million[dimension];
    if (unitPrice === undefined || unitCost === undefined) {
      return {
        ok: false,
        code: 'dimension_not_priced',
        param: dimension,
        message: `model ${JSON.stringify(input.model)} does not price ${dimension} in price book version ${version.version}`,
      };
    }
    unrounded.push({
      kind: 'tokens',
      dimension,
      quantity,
      unit_price_nanos_per_million: unitPrice,
      unit_provider_cost_nanos_per_million: unitCost,
      exact_amount_nanos_numerator: BigInt(quantity) * unitPrice * multiplier.numerator,
      exact_provider_cost_nanos_numerator: BigInt(quantity) * unitCost * multiplier.numerator,
    });
  }
  for (const { tool, quantity } of quantities.tools) {
    const toolPrice = version.tools.get(tool);
    if (toolPrice === undefined) {
      return {
        ok: false,
        code: 'unknown_tool',
        param: `tool_calls.${tool}`,
        message: `tool ${JSON.stringify(tool)} is not in price book version ${version.version}`,
      };
    }
    unrounded.push({
      kind: 'tool_calls',
      dimension: 'tool_calls',
      tool,
      quantity,
      unit_price_nanos_per_thousand_calls: toolPrice.price_nanos_per_thousand_calls,
      unit_provider_cost_nanos_per_thousand_calls: toolPrice.provider_cost_nanos_per_thousand_calls,
      exact_amount_nanos_numerator: BigInt(quantity) * toolPrice.price_nanos_per_thousand_calls * toolScale,
      exact_provider_cost_nanos_numerator:
        BigInt(quantity) * toolPrice.provider_cost_nanos_per_thousand_calls * toolScale,
    });
  }

  const amountNumerators = unrounded.map((line) => line.exact_amount_nanos_numerator);
  const costNumerators = unrounded.map((line) => line.exact_provider_cost_nanos_numerator);
  const cost_nanos = divideRounded(sum(amountNumerators), exact_nanos_denominator, rounding);
  const provider_cost_nanos = divideRounded(sum(costNumerators), exact_nanos_denominator, rounding);
  if (cost_nanos > MAX_NANOS || provider_cost_nanos > MAX_NANOS) {
    return {
      ok: false,
      code: 'invalid_quantity',
      param: 'usage',
      message: 'the usage costs more than the largest amount the ledger can hold',
    };
  }

  const amounts = allocateRounded(amountNumerators, exact_nanos_denominator, cost_nanos);
  const costs = allocateRounded(costNumerators, exact_nanos_denominator, provider_cost_nanos);
  const lines: RatedLine[] = unrounded.map((line, index) => ({
    ...line,
    amount_nanos: amounts[index] ?? 0n,
    provider_cost_nanos: costs[index] ?? 0n,
  }));
  // The lines are what reports group by; they must add up to the event exactly.
  if (sum(lines.map((line) => line.amount_nanos)) !== cost_nanos)
    throw new Error('rated lines do not sum to cost');
  if (sum(lines.map((line) => line.provider_cost_nanos)) !== provider_cost_nanos) {
    throw new Error('rated lines do not sum to provider cost');
  }

  return {
    ok: true,
    model: input.model,
    price_version: version.version,
    processing,
    processing_multiplier: multiplier,
    cost_nanos,
    provider_cost_nanos,
    exact_nanos_denominator,
    lines,
    rounding,
  };
}
