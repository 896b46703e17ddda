/**
 * Rating: the exact cost of one usage event under the price book. Pure integer arithmetic on
 * `bigint`; no float ever touches a price, a quantity or an amount.
 *
 * Every line of an event (a token dimension, an image size and quality, seconds of audio, GB-days
 * of storage, a tool) is kept as an exact fraction of a nano over one common denominator: the
 * least common multiple of the lines' own denominators (1M tokens x the processing multiplier's
 * denominator, 1,000 calls, 60 seconds, 1e9 storage units). The event total is rounded to the nano
 * once, with a named rounding mode, and then allocated back to the lines so that the line amounts
 * add up to the total exactly. Rounding per line instead would make an event's cost depend on how
 * its usage happens to be split across dimensions.
 */
import { MAX_NANOS } from './money';
import {
  CALLS_PER_PRICE_UNIT,
  PROCESSING_MODES,
  SECONDS_PER_AUDIO_MINUTE,
  STORAGE_GB_DAY_DECIMALS,
  STORAGE_UNITS_PER_GB_DAY,
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
const DEFAULT_ROUNDING_MODE: RoundingMode = 'half_up';

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

/**
 * The most units of one dimension (tokens, calls of one tool, images of one size and quality,
 * seconds of audio, whole GB-days of storage) a single event may carry.
 */
export const MAX_QUANTITY_PER_DIMENSION = 1_000_000_000_000;

/** The most (size, quality) entries one usage may list under `images`. */
export const MAX_IMAGE_ENTRIES = 20;

/** Images generated at one size and quality. */
export interface ImageUsage {
  readonly size: string;
  readonly quality: string;
  readonly count: number;
}

/**
 * One usage to rate. Counts are non-negative safe integers of at most `MAX_QUANTITY_PER_DIMENSION`;
 * an absent count is zero. `processing` defaults to `standard`.
 */
export type RatableUsage = { readonly [D in TokenDimension]?: number } & {
  readonly tool_calls?: Readonly<Record<string, number>>;
  /** Generated images, one entry per (size, quality), priced per image; no (size, quality) twice. */
  readonly images?: readonly ImageUsage[];
  /** Whole seconds of transcribed audio, priced per minute (60 seconds). */
  readonly audio_seconds?: number;
  /** GB-days of storage as an exact decimal string with at most 9 decimals, e.g. "1.5"; priced per GB-day. */
  readonly storage_gb_days?: string;
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
  /** Tokens. */
  readonly quantity: number;
  readonly unit_price_nanos_per_million: bigint;
  readonly unit_provider_cost_nanos_per_million: bigint;
}

export interface RatedImageLine extends RatedLineAmounts {
  readonly kind: 'images';
  readonly dimension: 'images';
  readonly size: string;
  readonly quality: string;
  /** Images of this size and quality. */
  readonly quantity: number;
  readonly unit_price_nanos_per_image: bigint;
  readonly unit_provider_cost_nanos_per_image: bigint;
}

export interface RatedAudioLine extends RatedLineAmounts {
  readonly kind: 'audio';
  readonly dimension: 'audio_seconds';
  /** Whole seconds of audio. */
  readonly quantity: number;
  readonly unit_price_nanos_per_minute: bigint;
  readonly unit_provider_cost_nanos_per_minute: bigint;
}

export interface RatedStorageLine extends RatedLineAmounts {
  readonly kind: 'storage';
  readonly dimension: 'storage_gb_days';
  /** GB-days as a decimal string with exactly 9 decimals ("1.500000000"), so that it stays exact in JSON. */
  readonly quantity: string;
  /** The same quantity as an integer count of 1e-9 GB-days. */
  readonly quantity_units: bigint;
  readonly unit_price_nanos_per_gb_day: bigint;
  readonly unit_provider_cost_nanos_per_gb_day: bigint;
}

export interface RatedToolLine extends RatedLineAmounts {
  readonly kind: 'tool_calls';
  readonly dimension: 'tool_calls';
  readonly tool: string;
  /** Calls of this tool. */
  readonly quantity: number;
  readonly unit_price_nanos_per_thousand_calls: bigint;
  readonly unit_provider_cost_nanos_per_thousand_calls: bigint;
}

export type RatedLine = RatedTokenLine | RatedImageLine | RatedAudioLine | RatedStorageLine | RatedToolLine;

export interface RatedUsage {
  readonly ok: true;
  readonly model: string;
  readonly price_version: string;
  readonly processing: ProcessingMode;
  /** Applied to token lines only: images, audio, storage and tool calls cost the same in every mode. */
  readonly processing_multiplier: Ratio;
  /** What the customer pays, rounded once to the nano with `rounding`. */
  readonly cost_nanos: bigint;
  /** What the provider charges us, rounded once to the nano with `rounding`. */
  readonly provider_cost_nanos: bigint;
  readonly exact_nanos_denominator: bigint;
  /**
   * Token lines in `TOKEN_DIMENSIONS` order, then image lines by size and quality, then audio, then
   * storage, then tool lines by tool name; zero quantities omitted.
   */
  readonly lines: readonly RatedLine[];
  readonly rounding: RoundingMode;
}

export type RatingErrorCode =
  'unknown_model' | 'no_price_in_force' | 'dimension_not_priced' | 'unknown_tool' | 'invalid_quantity';

export interface RatingFailure {
  readonly ok: false;
  readonly code: RatingErrorCode;
  /** The offending field relative to the usage object (`output_tokens`, `tool_calls.web_search`, `images.0`, `model`). */
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

function invalidField(param: string, message: string): RatingFailure {
  return { ok: false, code: 'invalid_quantity', param, message: `${param} ${message}` };
}

/** GB-days: a decimal without sign or exponent, at most 12 whole digits (below 1e12) and 9 decimals. */
const STORAGE_GB_DAYS = new RegExp(`^(0|[1-9][0-9]{0,11})(?:\\.([0-9]{1,${STORAGE_GB_DAY_DECIMALS}}))?$`);

export type ParseStorageResult =
  { ok: true; units: bigint; canonical: string } | { ok: false; reason: string };

/**
 * Parses GB-days of storage ("1.5", "0.000000001") into an exact count of 1e-9 GB-days and its canonical form
 * with exactly 9 decimals ("1.500000000"). Refuses numbers, signs, exponents, more than 9 decimals and 1e12 or more.
 */
export function parseStorageGbDays(text: unknown): ParseStorageResult {
  const match = typeof text === 'string' ? STORAGE_GB_DAYS.exec(text) : null;
  if (match === null) {
    return {
      ok: false,
      reason: `must be a decimal string of GB-days below 1e12 with at most ${STORAGE_GB_DAY_DECIMALS} decimals, such as "1.5"`,
    };
  }
  const whole = match[1] ?? '0';
  const fraction = (match[2] ?? '').padEnd(STORAGE_GB_DAY_DECIMALS, '0');
  return {
    ok: true,
    units: BigInt(whole) * STORAGE_UNITS_PER_GB_DAY + BigInt(fraction),
    canonical: `${whole}.${fraction}`,
  };
}

interface Quantities {
  readonly tokens: readonly { dimension: TokenDimension; quantity: number }[];
  /** Sorted by size, then quality; `index` is the entry's place in the usage, for error messages. */
  readonly images: readonly { size: string; quality: string; quantity: number; index: number }[];
  readonly audio_seconds: number;
  readonly storage: { units: bigint; canonical: string } | null;
  readonly tools: readonly { tool: string; quantity: number }[];
}

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function readImages(images: unknown): Quantities['images'] | RatingFailure {
  if (images === undefined) return [];
  if (!Array.isArray(images)) return invalidField('images', 'must be a list of {size, quality, count}');
  if (images.length > MAX_IMAGE_ENTRIES) {
    return invalidField('images', `must list at most ${MAX_IMAGE_ENTRIES} (size, quality) entries`);
  }
  const result: { size: string; quality: string; quantity: number; index: number }[] = [];
  const seen = new Set<string>();
  for (const [index, entry] of (images as unknown[]).entries()) {
    const param = `images.${index}`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      return invalidField(param, 'must be an object {size, quality, count}');
    }
    const { size, quality, count } = entry as Record<string, unknown>;
    if (typeof size !== 'string')
      return invalidField(`${param}.size`, 'must be a string such as "1024x1024"');
    if (typeof quality !== 'string')
      return invalidField(`${param}.quality`, 'must be a string such as "high"');
    if (!isValidQuantity(count)) return invalidQuantity(`${param}.count`, count);
    // One entry per (size, quality), so that the same images always make the same lines.
    const key = `${size}\u0000${quality}`;
    if (seen.has(key)) return invalidField(param, `repeats size ${size} at quality ${quality}`);
    seen.add(key);
    if (count > 0) result.push({ size, quality, quantity: count, index });
  }
  return result.sort((a, b) => byText(a.size, b.size) || byText(a.quality, b.quality));
}

/** Checks every quantity and keeps the non-zero ones; zero quantities never need a price. */
function readQuantities(usage: RatableUsage): Quantities | RatingFailure {
  const tokens: { dimension: TokenDimension; quantity: number }[] = [];
  for (const dimension of TOKEN_DIMENSIONS) {
    const quantity: unknown = usage[dimension];
    if (quantity === undefined) continue;
    if (!isValidQuantity(quantity)) return invalidQuantity(dimension, quantity);
    if (quantity > 0) tokens.push({ dimension, quantity });
  }
  const images = readImages(usage.images);
  if ('ok' in images) return images;
  const audio: unknown = usage.audio_seconds === undefined ? 0 : usage.audio_seconds;
  if (!isValidQuantity(audio)) return invalidQuantity('audio_seconds', audio);
  let storage: Quantities['storage'] = null;
  if (usage.storage_gb_days !== undefined) {
    const parsed = parseStorageGbDays(usage.storage_gb_days);
    if (!parsed.ok) return invalidField('storage_gb_days', parsed.reason);
    if (parsed.units > 0n) storage = { units: parsed.units, canonical: parsed.canonical };
  }
  const tools: { tool: string; quantity: number }[] = [];
  const toolCalls: unknown = usage.tool_calls;
  if (toolCalls !== undefined) {
    if (typeof toolCalls !== 'object' || toolCalls === null || Array.isArray(toolCalls)) {
      return invalidQuantity('tool_calls', toolCalls);
    }
    // Sorted so that the same usage always yields the same lines, whatever the key order of the JSON.
    const entries = Object.entries(toolCalls as Record<string, unknown>).sort(([a], [b]) => byText(a, b));
    for (const [tool, quantity] of entries) {
      if (!isValidQuantity(quantity)) return invalidQuantity(`tool_calls.${tool}`, quantity);
      if (quantity > 0) tools.push({ tool, quantity });
    }
  }
  return { tokens, images, audio_seconds: audio, storage, tools };
}

function isFailure(value: Quantities | RatingFailure): value is RatingFailure {
  return 'ok' in value;
}

function greatestCommonDivisor(a: bigint, b: bigint): bigint {
  let [x, y] = [a, b];
  while (y !== 0n) [x, y] = [y, x % y];
  return x;
}

function leastCommonMultiple(a: bigint, b: bigint): bigint {
  return (a / greatestCommonDivisor(a, b)) * b;
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
 * (`batch`, `flex`). Not scaled: images (`count x price_nanos_per_image`), audio
 * (`seconds x price_nanos_per_minute / 60`), storage (`GB-days x price_nanos_per_gb_day`, GB-days
 * exact to 1e-9) and tools (`calls x price_nanos_per_thousand_calls / 1000`). The exact sum is
 * rounded once to the nano with `rounding` (default `half_up`). Zero quantities cost zero and need
 * no price.
 *
 * Expected outcomes are returned, not thrown: `invalid_quantity` (a count that is negative, not a
 * whole number, NaN or above `MAX_QUANTITY_PER_DIMENSION`, a malformed image entry or storage
 * decimal, or a cost beyond `MAX_NANOS`), `no_price_in_force` (before the first price version),
 * `unknown_model`, `dimension_not_priced` (a token dimension, image size and quality, audio or
 * storage the model does not price) and `unknown_tool`. Throws only on programmer errors: an invalid Date or an unknown processing mode.
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
  const notPriced = (param: string, what: string): RatingFailure => ({
    ok: false,
    code: 'dimension_not_priced',
    param,
    message: `model ${JSON.stringify(input.model)} does not price ${what} in price book version ${version.version}`,
  });

  // Each line first as its own exact fraction: amount = numerator / denominator nanos.
  type Fraction = { amount_numerator: bigint; cost_numerator: bigint; denominator: bigint };
  type LineFacts =
    | Omit<RatedTokenLine, keyof RatedLineAmounts>
    | Omit<RatedImageLine, keyof RatedLineAmounts>
    | Omit<RatedAudioLine, keyof RatedLineAmounts>
    | Omit<RatedStorageLine, keyof RatedLineAmounts>
    | Omit<RatedToolLine, keyof RatedLineAmounts>;
  const unrounded: { facts: LineFacts; fraction: Fraction }[] = [];

  const tokenDenominator = TOKENS_PER_PRICE_UNIT * multiplier.denominator;
  for (const { dimension, quantity } of quantities.tokens) {
    const unitPrice = price.price_nanos_per_million[dimension];
    const unitCost = price.provider_cost_nanos_per_million[dimension];
    if (unitPrice === undefined || unitCost === undefined) return notPriced(dimension, dimension);
    unrounded.push({
      facts: {
        kind: 'tokens',
        dimension,
        quantity,
        unit_price_nanos_per_million: unitPrice,
        unit_provider_cost_nanos_per_million: unitCost,
      },
      fraction: {
        amount_numerator: BigInt(quantity) * unitPrice * multiplier.numerator,
        cost_numerator: BigInt(quantity) * unitCost * multiplier.numerator,
        denominator: tokenDenominator,
      },
    });
  }
  for (const { size, quality, quantity, index } of quantities.images) {
    const unitPrice = price.image_price_nanos_per_image.get(size)?.get(quality);
    const unitCost = price.image_provider_cost_nanos_per_image.get(size)?.get(quality);
    if (unitPrice === undefined || unitCost === undefined) {
      return notPriced(`images.${index}`, `images of size ${size} at quality ${quality}`);
    }
    unrounded.push({
      facts: {
        kind: 'images',
        dimension: 'images',
        size,
        quality,
        quantity,
        unit_price_nanos_per_image: unitPrice,
        unit_provider_cost_nanos_per_image: unitCost,
      },
      fraction: {
        amount_numerator: BigInt(quantity) * unitPrice,
        cost_numerator: BigInt(quantity) * unitCost,
        denominator: 1n,
      },
    });
  }
  if (quantities.audio_seconds > 0) {
    const unitPrice = price.audio_price_nanos_per_minute;
    const unitCost = price.audio_provider_cost_nanos_per_minute;
    if (unitPrice === null || unitCost === null) return notPriced('audio_seconds', 'audio minutes');
    const seconds = BigInt(quantities.audio_seconds);
    unrounded.push({
      facts: {
        kind: 'audio',
        dimension: 'audio_seconds',
        quantity: quantities.audio_seconds,
        unit_price_nanos_per_minute: unitPrice,
        unit_provider_cost_nanos_per_minute: unitCost,
      },
      fraction: {
        amount_numerator: seconds * unitPrice,
        cost_numerator: seconds * unitCost,
        denominator: SECONDS_PER_AUDIO_MINUTE,
      },
    });
  }
  if (quantities.storage !== null) {
    const unitPrice = price.storage_price_nanos_per_gb_day;
    const unitCost = price.storage_provider_cost_nanos_per_gb_day;
    if (unitPrice === null || unitCost === null) return notPriced('storage_gb_days', 'storage GB-days');
    const { units, canonical } = quantities.storage;
    unrounded.push({
      facts: {
        kind: 'storage',
        dimension: 'storage_gb_days',
        quantity: canonical,
        quantity_units: units,
        unit_price_nanos_per_gb_day: unitPrice,
        unit_provider_cost_nanos_per_gb_day: unitCost,
      },
      fraction: {
        amount_numerator: units * unitPrice,
        cost_numerator: units * unitCost,
        denominator: STORAGE_UNITS_PER_GB_DAY,
      },
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
      facts: {
        kind: 'tool_calls',
        dimension: 'tool_calls',
        tool,
        quantity,
        unit_price_nanos_per_thousand_calls: toolPrice.price_nanos_per_thousand_calls,
        unit_provider_cost_nanos_per_thousand_calls: toolPrice.provider_cost_nanos_per_thousand_calls,
      },
      fraction: {
        amount_numerator: BigInt(quantity) * toolPrice.price_nanos_per_thousand_calls,
        cost_numerator: BigInt(quantity) * toolPrice.provider_cost_nanos_per_thousand_calls,
        denominator: CALLS_PER_PRICE_UNIT,
      },
    });
  }

  // One common denominator for the event: the token denominator (so that token and tool events keep the
  // denominator they always had), widened to a multiple of every other line's denominator.
  const exact_nanos_denominator = unrounded.reduce(
    (common, { fraction }) => leastCommonMultiple(common, fraction.denominator),
    tokenDenominator,
  );
  const scaled = unrounded.map(({ facts, fraction }) => {
    const scale = exact_nanos_denominator / fraction.denominator;
    return {
      ...facts,
      exact_amount_nanos_numerator: fraction.amount_numerator * scale,
      exact_provider_cost_nanos_numerator: fraction.cost_numerator * scale,
    };
  });

  const amountNumerators = scaled.map((line) => line.exact_amount_nanos_numerator);
  const costNumerators = scaled.map((line) => line.exact_provider_cost_nanos_numerator);
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
  const lines: RatedLine[] = scaled.map((line, index) => ({
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
