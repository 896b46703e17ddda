/**
 * Enterprise contracts: a customer's own seat price, and its own prices for metered usage (a flat per-unit
 * override, or graduated volume tiers), applied when its period invoice lists the period's usage.
 *
 * Units. A contract price is quoted in the price book's unit for its dimension, and tier bounds count the
 * dimension's quantity as the usage report shows it:
 *
 * | dimension (as `usage_events.lines` keys it) | contract price per | `up_to` and quantities count |
 * | -------------------------------------------- | ------------------ | ---------------------------- |
 * | a token dimension (`input_tokens`, ...)      | 1M tokens          | tokens                       |
 * | `images.<size>.<quality>`                    | image              | images                       |
 * | `audio_seconds`                              | audio minute       | seconds                      |
 * | `storage_gb_days`                            | GB-day             | whole GB-days (the quantity is exact to 1e-9) |
 * | `tool_calls.<tool>`                          | 1,000 calls        | calls                        |
 *
 * Rounding, once per invoice line: a repriced line's exact amount (the sum over its tiers of units x price, divided
 * by the units in one price unit) is rounded half-up to the whole cent in one step, never per tier or per unit. A
 * list-price line is the aggregation's `cost_nanos` (already rated, to the nano, once per event at ingestion) rounded
 * half-up to the whole cent. Invoice totals are therefore whole cents, and a tier boundary never adds a rounding.
 *
 * A contract price replaces the list price of every unit of its model and dimension in the period, whatever the
 * processing mode (batch and flex discounts are list-price rules; the usage aggregation does not split by mode).
 *
 * Pure: no I/O. `db/contracts.ts` stores contracts and prices a period's usage with `priceUsageGroups`.
 */
import { MAX_NANOS, NANOS_PER_CENT } from './money';
import {
  CALLS_PER_PRICE_UNIT,
  IMAGE_QUALITY,
  IMAGE_SIZE,
  SECONDS_PER_AUDIO_MINUTE,
  STORAGE_UNITS_PER_GB_DAY,
  TOKEN_DIMENSIONS,
  TOKENS_PER_PRICE_UNIT,
  TOOL_NAME,
  type PriceBook,
} from './price-book';
import { divideRounded } from './rating';

// ---------------------------------------------------------------------------------------------------
// Dimensions and their units.

/** How one usage dimension is counted and priced, in integer units. */
export interface DimensionMeter {
  /** What one price is for, in words ("1M tokens"), for schemas, views and invoice descriptions. */
  readonly price_unit: string;
  /** Integer units in one reported unit of quantity: 1e9 for GB-days (exact to 1e-9), 1 for every count. */
  readonly units_per_quantity: bigint;
  /** Integer units in one price unit: 1M tokens, 1 image, 60 seconds, 1e9 (one GB-day), 1,000 calls. */
  readonly units_per_price_unit: bigint;
}

const TOKEN_METER: DimensionMeter = {
  price_unit: '1M tokens',
  units_per_quantity: 1n,
  units_per_price_unit: TOKENS_PER_PRICE_UNIT,
};
const IMAGE_METER: DimensionMeter = { price_unit: 'image', units_per_quantity: 1n, units_per_price_unit: 1n };
const AUDIO_METER: DimensionMeter = {
  price_unit: 'audio minute',
  units_per_quantity: 1n,
  units_per_price_unit: SECONDS_PER_AUDIO_MINUTE,
};
const STORAGE_METER: DimensionMeter = {
  price_unit: 'GB-day',
  units_per_quantity: STORAGE_UNITS_PER_GB_DAY,
  units_per_price_unit: STORAGE_UNITS_PER_GB_DAY,
};
const TOOL_METER: DimensionMeter = {
  price_unit: '1,000 calls',
  units_per_quantity: 1n,
  units_per_price_unit: CALLS_PER_PRICE_UNIT,
};

const TOKEN_DIMENSION_SET: ReadonlySet<string> = new Set(TOKEN_DIMENSIONS);

const inner = (pattern: RegExp) => pattern.source.replace(/^\^/, '').replace(/\$$/, '');
/**
 * Every name `meterOf` knows, as one pattern (also published in the OpenAPI document): a token dimension,
 * `images.<size>.<quality>`, `audio_seconds`, `storage_gb_days` or `tool_calls.<tool>`.
 */
export const USAGE_DIMENSION = new RegExp(
  `^(${[...TOKEN_DIMENSIONS, 'audio_seconds', 'storage_gb_days'].join('|')}|` +
    `images\\.${inner(IMAGE_SIZE)}\\.${inner(IMAGE_QUALITY)}|tool_calls\\.${inner(TOOL_NAME)})$`,
);

/**
 * The meter of a usage dimension as the usage aggregation names it (`input_tokens`, `images.1024x1024.high`,
 * `audio_seconds`, `storage_gb_days`, `tool_calls.web_search`), or null for a name that is no dimension.
 */
export function meterOf(dimension: string): DimensionMeter | null {
  if (TOKEN_DIMENSION_SET.has(dimension)) return TOKEN_METER;
  if (dimension === 'audio_seconds') return AUDIO_METER;
  if (dimension === 'storage_gb_days') return STORAGE_METER;
  if (dimension.startsWith('tool_calls.')) {
    return TOOL_NAME.test(dimension.slice('tool_calls.'.length)) ? TOOL_METER : null;
  }
  const image = /^images\.([^.]+)\.([^.]+)$/.exec(dimension);
  if (image && IMAGE_SIZE.test(image[1]!) && IMAGE_QUALITY.test(image[2]!)) return IMAGE_METER;
  return null;
}

/**
 * Whether some version of the book prices `dimension` for `model` (tools are priced for every model), so that a
 * contract cannot name usage that can never be recorded. False for an unknown model or dimension.
 */
export function dimensionPriced(book: PriceBook, model: string, dimension: string): boolean {
  return book.versions.some((version) => {
    const price = version.models.get(model);
    if (price === undefined) return false;
    if (TOKEN_DIMENSION_SET.has(dimension)) {
      return (
        price.price_nanos_per_million[dimension as keyof typeof price.price_nanos_per_million] !== undefined
      );
    }
    if (dimension === 'audio_seconds') return price.audio_price_nanos_per_minute !== null;
    if (dimension === 'storage_gb_days') return price.storage_price_nanos_per_gb_day !== null;
    if (dimension.startsWith('tool_calls.')) return version.tools.has(dimension.slice('tool_calls.'.length));
    const image = /^images\.([^.]+)\.([^.]+)$/.exec(dimension);
    return image !== null && price.image_price_nanos_per_image.get(image[1]!)?.has(image[2]!) === true;
  });
}

/** Whether any version of the book lists `model`. */
export function modelKnown(book: PriceBook, model: string): boolean {
  return book.versions.some((version) => version.models.has(model));
}

// ---------------------------------------------------------------------------------------------------
// Contracts.

/** One tier: units up to `up_to` (inclusive, counted from the period's first unit), or every further unit (null). */
export interface Tier {
  readonly up_to: bigint | null;
  /** Nanos per price unit of the dimension (per 1M tokens, per image, ...). */
  readonly unit_price_nanos: bigint;
}

export interface PriceOverride {
  readonly model: string;
  readonly dimension: string;
  /** Nanos per price unit of the dimension. */
  readonly unit_price_nanos: bigint;
}

export interface VolumeTiers {
  readonly model: string;
  readonly dimension: string;
  /** Bounds strictly increasing in the dimension's reported unit (tokens, images, seconds, GB-days, calls); the last null. */
  readonly tiers: readonly Tier[];
}

export interface Contract {
  /** The per-seat price of the enterprise plan, whole cents. */
  readonly seat_price_nanos: bigint;
  readonly price_overrides: readonly PriceOverride[];
  readonly volume_tiers: readonly VolumeTiers[];
}

/** What is wrong with a tier table, or null: at least one tier, bounds above 0 and strictly increasing, last null. */
export function tierTableProblem(tiers: readonly Tier[]): { index: number; message: string } | null {
  if (tiers.length === 0) return { index: -1, message: 'must list at least one tier' };
  let previous = 0n;
  for (const [index, tier] of tiers.entries()) {
    const last = index === tiers.length - 1;
    if (tier.unit_price_nanos < 0n) return { index, message: 'unit price must not be negative' };
    if (tier.up_to === null) {
      if (!last) return { index, message: 'only the last tier may be open-ended (up_to null)' };
      continue;
    }
    if (last) return { index, message: 'the last tier must be open-ended (up_to null)' };
    if (tier.up_to <= previous) {
      return {
        index,
        message: index === 0 ? 'up_to must be at least 1' : 'up_to must be greater than the previous tier’s',
      };
    }
    previous = tier.up_to;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------
// Graduated pricing.

/**
 * How many of `quantity` units fall in each tier, in order (each unit in the tier its position falls in: units
 * 1..up_to of the first tier, then up_to+1.. of the next). The parts add up to `quantity`. Throws on a negative
 * quantity or an invalid table (see `tierTableProblem`): programmer errors, the edge refuses both.
 */
export function graduatedSplit(
  quantity: bigint,
  tiers: readonly Tier[],
): { quantity: bigint; unit_price_nanos: bigint }[] {
  if (quantity < 0n) throw new RangeError(`graduated quantity ${quantity} is negative`);
  const problem = tierTableProblem(tiers);
  if (problem) throw new RangeError(`invalid tier table: tier ${problem.index}: ${problem.message}`);
  let below = 0n;
  return tiers.map((tier) => {
    const ceiling = tier.up_to === null ? quantity : tier.up_to < quantity ? tier.up_to : quantity;
    const inTier = ceiling > below ? ceiling - below : 0n;
    below += inTier;
    return { quantity: inTier, unit_price_nanos: tier.unit_price_nanos };
  });
}

/**
 * The exact graduated cost of `quantity` units, times `units_per_price_unit`: the sum over tiers of units in the
 * tier x the tier's price per price unit. An integer, so no rounding happens before the caller's one rounding.
 */
export function graduatedCostNumerator(quantity: bigint, tiers: readonly Tier[]): bigint {
  return graduatedSplit(quantity, tiers).reduce(
    (sum, part) => sum + part.quantity * part.unit_price_nanos,
    0n,
  );
}

/**
 * The graduated cost of `quantity` units in nanos: each unit at its tier's price per `units_per_price_unit` units
 * (1M for tokens, 1 for images, ...), the exact sum rounded once, half-up, to the nano. `up_to` bounds count the same
 * units as `quantity`. One tier with `up_to` null is a flat price.
 */
export function graduatedCost_nanos(
  quantity: bigint,
  tiers: readonly Tier[],
  units_per_price_unit: bigint = 1n,
): bigint {
  if (units_per_price_unit <= 0n) throw new RangeError('units_per_price_unit must be positive');
  return divideRounded(graduatedCostNumerator(quantity, tiers), units_per_price_unit, 'half_up');
}

/** Rounds nanos half-up to the whole cent: the boundary of every invoice line. */
export function roundToCent_nanos(nanos: bigint): bigint {
  return divideRounded(nanos, NANOS_PER_CENT, 'half_up') * NANOS_PER_CENT;
}

// ---------------------------------------------------------------------------------------------------
// Pricing a period's usage.

/** A row of the usage aggregation grouped by model and dimension (db/usage.ts `aggregateUsage`). */
export interface UsageGroup {
  readonly model: string;
  readonly dimension: string;
  /** The period's exact summed quantity, decimal text ("1500000", "3.500000000" GB-days). */
  readonly quantity: string;
  /** Its cost at list price, as rated at ingestion. */
  readonly cost_nanos: bigint;
}

export type LinePricing = 'list' | 'contract_price' | 'volume_tiers';

/** One invoice line of metered usage. */
export interface UsageLine {
  readonly description: string;
  /** Whole cents, above zero. */
  readonly amount_nanos: bigint;
  /** The period's quantity in the dimension's reported unit, exact decimal text ("1500000", "3.5"). */
  readonly quantity: string;
  readonly model: string;
  readonly dimension: string;
  readonly pricing: LinePricing;
}

/** A quantity's decimal text as an integer count of the meter's units (1e-9 GB-days for storage). */
function quantityUnits(quantity: string, meter: DimensionMeter): bigint {
  const match = /^([0-9]+)(?:\.([0-9]*))?$/.exec(quantity);
  if (match === null) throw new Error(`not a usage quantity: ${JSON.stringify(quantity)}`);
  const decimals = meter.units_per_quantity.toString().length - 1;
  const fraction = match[2] ?? '';
  if (/[1-9]/.test(fraction.slice(decimals))) {
    throw new Error(`usage quantity ${quantity} is finer than the dimension's unit`);
  }
  return (
    BigInt(match[1]!) * meter.units_per_quantity +
    BigInt(fraction.slice(0, decimals).padEnd(decimals, '0') || '0')
  );
}

/** The quantity as an invoice shows it: no trailing fractional zeros ("3.5", "1500000"). */
function canonicalQuantity(quantity: string): string {
  if (!quantity.includes('.')) return BigInt(quantity).toString();
  const [whole = '0', fraction = ''] = quantity.split('.');
  const trimmed = fraction.replace(/0+$/, '');
  return trimmed === '' ? BigInt(whole).toString() : `${BigInt(whole)}.${trimmed}`;
}

const keyOf = (model: string, dimension: string) => `${model}\u0000${dimension}`;

/**
 * The invoice lines of a period's metered usage, one per (model, dimension) in the order given: a contract price
 * or a volume tier table for that model and dimension reprices the whole quantity (one rounding, half-up to the
 * cent, see the module comment); otherwise the line is the list-price `cost_nanos` rounded half-up to the cent.
 * Lines that round to zero are dropped. `contract` null prices everything at list price. Throws on a group whose
 * dimension has no meter or a line beyond MAX_NANOS (programmer errors: contracts and usage are checked on entry).
 */
export function priceUsageGroups(groups: readonly UsageGroup[], contract: Contract | null): UsageLine[] {
  const tables = new Map<string, { tiers: readonly Tier[]; pricing: LinePricing }>();
  for (const override of contract?.price_overrides ?? []) {
    tables.set(keyOf(override.model, override.dimension), {
      tiers: [{ up_to: null, unit_price_nanos: override.unit_price_nanos }],
      pricing: 'contract_price',
    });
  }
  for (const table of contract?.volume_tiers ?? []) {
    tables.set(keyOf(table.model, table.dimension), { tiers: table.tiers, pricing: 'volume_tiers' });
  }
  const lines: UsageLine[] = [];
  for (const group of groups) {
    const table = tables.get(keyOf(group.model, group.dimension));
    let amount_nanos: bigint;
    if (table === undefined) {
      amount_nanos = roundToCent_nanos(group.cost_nanos);
    } else {
      const meter = meterOf(group.dimension);
      if (meter === null) throw new Error(`usage dimension ${group.dimension} has no meter`);
      // Bounds count reported units; the arithmetic counts the meter's integer units (1e-9 GB-days for storage).
      const tiers = table.tiers.map((tier) => ({
        up_to: tier.up_to === null ? null : tier.up_to * meter.units_per_quantity,
        unit_price_nanos: tier.unit_price_nanos,
      }));
      const numerator = graduatedCostNumerator(quantityUnits(group.quantity, meter), tiers);
      amount_nanos =
        divideRounded(numerator, meter.units_per_price_unit * NANOS_PER_CENT, 'half_up') * NANOS_PER_CENT;
    }
    if (amount_nanos > MAX_NANOS)
      throw new RangeError(`usage line ${group.model} ${group.dimension} is too large`);
    if (amount_nanos === 0n) continue;
    const pricing = table?.pricing ?? 'list';
    const priced =
      pricing === 'list' ? 'list price' : pricing === 'contract_price' ? 'contract price' : 'volume tiers';
    lines.push({
      description: `${group.model} ${group.dimension} (${priced})`,
      amount_nanos,
      quantity: canonicalQuantity(group.quantity),
      model: group.model,
      dimension: group.dimension,
      pricing,
    });
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------------
// The stored form (jsonb): bigints as decimal strings, so nothing passes through a float.

export interface StoredTier {
  up_to: string | null;
  unit_price_nanos: string;
}
export interface StoredOverride {
  model: string;
  dimension: string;
  unit_price_nanos: string;
}
export interface StoredVolumeTiers {
  model: string;
  dimension: string;
  tiers: StoredTier[];
}

export function encodeOverrides(overrides: readonly PriceOverride[]): StoredOverride[] {
  return overrides.map((o) => ({
    model: o.model,
    dimension: o.dimension,
    unit_price_nanos: o.unit_price_nanos.toString(),
  }));
}

export function encodeVolumeTiers(tables: readonly VolumeTiers[]): StoredVolumeTiers[] {
  return tables.map((t) => ({
    model: t.model,
    dimension: t.dimension,
    tiers: t.tiers.map((tier) => ({
      up_to: tier.up_to === null ? null : tier.up_to.toString(),
      unit_price_nanos: tier.unit_price_nanos.toString(),
    })),
  }));
}

export function decodeOverrides(stored: readonly StoredOverride[]): PriceOverride[] {
  return stored.map((o) => ({
    model: o.model,
    dimension: o.dimension,
    unit_price_nanos: BigInt(o.unit_price_nanos),
  }));
}

export function decodeVolumeTiers(stored: readonly StoredVolumeTiers[]): VolumeTiers[] {
  return stored.map((t) => ({
    model: t.model,
    dimension: t.dimension,
    tiers: t.tiers.map((tier) => ({
      up_to: tier.up_to === null ? null : BigInt(tier.up_to),
      unit_price_nanos: BigInt(tier.unit_price_nanos),
    })),
  }));
}
