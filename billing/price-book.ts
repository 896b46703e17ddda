/**
 * The price book: what each model, metered dimension and tool costs, in force from a given instant.
 *
 * A book holds several versions, each with its own `effective_from`. Usage is always priced by the
 * version in force at the usage timestamp, so publishing a new version never reprices recorded usage.
 *
 * Each modality has its own unit, the same in the file, in memory and at the API:
 *
 * | priced as (file key under `prices`)        | unit of the price     | usage quantity                        |
 * | ------------------------------------------ | --------------------- | ------------------------------------- |
 * | `input_tokens` ... `embedding_tokens`      | USD per 1M tokens     | whole tokens                          |
 * | `images.<size>.<quality>`                  | USD per image         | whole images of that size and quality |
 * | `audio_minutes`                            | USD per audio minute  | whole seconds (`audio_seconds`)       |
 * | `storage_gb_days`                          | USD per GB-day        | exact decimal GB-days, 9 decimals     |
 * | tools (`tools.<name>.price_per_1k_calls`)  | USD per 1,000 calls   | whole calls                           |
 *
 * Prices live in files as decimal USD strings and in memory as exact `bigint` nanos with the unit in
 * the name (`price_nanos_per_million`, `audio_price_nanos_per_minute`). Nothing here uses a float.
 * This module is pure apart from the bundled default book, which is imported, not read at runtime.
 */
import { z } from 'zod';

import { formatUsd, parseUsd } from './money';
import defaultVersionJson from './prices/2026-11-01.json';

/** Token dimensions a model can price; the order here is the order of rating lines. */
export const TOKEN_DIMENSIONS = [
  'input_tokens',
  'cached_input_tokens',
  'output_tokens',
  'image_input_tokens',
  'image_output_tokens',
  'audio_input_tokens',
  'audio_output_tokens',
  // Embedding models price their input under a dimension of its own, so that usage grouped by dimension never
  // mixes embeddings with chat input.
  'embedding_tokens',
] as const;
export type TokenDimension = (typeof TOKEN_DIMENSIONS)[number];

/** How a request was processed; `batch` and `flex` carry a discount multiplier in each version. */
export const PROCESSING_MODES = ['standard', 'batch', 'flex'] as const;
export type ProcessingMode = (typeof PROCESSING_MODES)[number];

/** Token prices are quoted per this many tokens. */
export const TOKENS_PER_PRICE_UNIT = 1_000_000n;
/** Tool prices are quoted per this many calls. */
export const CALLS_PER_PRICE_UNIT = 1_000n;
/** Transcription prices are quoted per audio minute; usage counts whole seconds. */
export const SECONDS_PER_AUDIO_MINUTE = 60n;
/** Storage usage is an exact decimal of GB-days with at most this many decimals (1e-9 GB-day, one byte-day). */
export const STORAGE_GB_DAY_DECIMALS = 9;
/** Storage quantities are held as an integer count of 1e-9 GB-days: this many make one GB-day. */
export const STORAGE_UNITS_PER_GB_DAY = 10n ** BigInt(STORAGE_GB_DAY_DECIMALS);

/** An exact non-negative rational, such as a processing discount of 1/2. */
export interface Ratio {
  readonly numerator: bigint;
  readonly denominator: bigint;
}

/** Nanos per image, by size (`1024x1024`) and then quality (`high`); maps, so no key can hit a prototype. */
export type ImagePrices = ReadonlyMap<string, ReadonlyMap<string, bigint>>;

/**
 * The price of one model. Every kind of price comes twice, for the customer and for the provider's cost to us,
 * and the two always price exactly the same things (the file schema checks it). Anything absent (a token
 * dimension, an image size or quality, audio, storage) is not priced, and usage of it is refused when rated.
 */
export interface ModelPrice {
  readonly model: string;
  /** A free-form grouping such as `flagship` or `mini`, for plans and reports. */
  readonly class: string;
  /** Where the prices come from (`seed: ...`, `assumed: ...`), as written in the file. */
  readonly note: string | null;
  /** Price per 1M tokens in nanos; a dimension the model does not price is absent. */
  readonly price_nanos_per_million: Readonly<Partial<Record<TokenDimension, bigint>>>;
  /** What the provider charges us per 1M tokens in nanos; has exactly the dimensions of the price. */
  readonly provider_cost_nanos_per_million: Readonly<Partial<Record<TokenDimension, bigint>>>;
  /** Price per generated image in nanos by size and quality; empty for a model that makes no images. */
  readonly image_price_nanos_per_image: ImagePrices;
  readonly image_provider_cost_nanos_per_image: ImagePrices;
  /** Price per minute of transcribed audio in nanos, or null. */
  readonly audio_price_nanos_per_minute: bigint | null;
  readonly audio_provider_cost_nanos_per_minute: bigint | null;
  /** Price per GB-day of storage in nanos, or null. */
  readonly storage_price_nanos_per_gb_day: bigint | null;
  readonly storage_provider_cost_nanos_per_gb_day: bigint | null;
}

export interface ToolPrice {
  readonly tool: string;
  readonly price_nanos_per_thousand_calls: bigint;
  readonly provider_cost_nanos_per_thousand_calls: bigint;
}

export interface PriceVersion {
  readonly version: string;
  /** The ISO-8601 UTC instant from which this version prices usage, as written in the file. */
  readonly effective_from: string;
  readonly effective_from_ms: number;
  readonly notes: string | null;
  /** Multiplier on token amounts per processing mode; `standard` is always exactly 1. */
  readonly processing_multipliers: Readonly<Record<ProcessingMode, Ratio>>;
  /** Where each discounted mode's multiplier comes from (`seed: ...`, `assumed: ...`), as written in the file. */
  readonly processing_notes: Readonly<Record<Exclude<ProcessingMode, 'standard'>, string | null>>;
  /** Maps rather than plain objects, so that a model named `constructor` cannot hit a prototype. */
  readonly models: ReadonlyMap<string, ModelPrice>;
  readonly tools: ReadonlyMap<string, ToolPrice>;
}

export interface PriceBook {
  /** Sorted by `effective_from_ms` ascending; no two versions share an instant or a name. */
  readonly versions: readonly PriceVersion[];
}

/** One problem in a price book file, with the path of the bad field (`models["gpt-5.4"].prices`). */
export interface PriceBookIssue {
  readonly path: string;
  readonly message: string;
}

/** Thrown when a price book file is invalid; the message names the path of every bad field. */
export class PriceBookError extends Error {
  readonly issues: readonly PriceBookIssue[];

  constructor(issues: readonly PriceBookIssue[]) {
    super(`invalid price book: ${issues.map((issue) => `${issue.path}: ${issue.message}`).join('; ')}`);
    this.name = 'PriceBookError';
    this.issues = issues;
  }
}

// ---------------------------------------------------------------------------------------------------
// Parsing decimal strings.

/** The largest number of fractional digits a multiplier may have, like money. */
const MULTIPLIER_MAX_DECIMALS = 9;
const DECIMAL = /^(0|[1-9][0-9]*)(\.[0-9]+)?$/;

export type ParseMultiplierResult = { ok: true; ratio: Ratio } | { ok: false; reason: string };

/**
 * Parses a processing multiplier such as "0.5" into an exact ratio with a power-of-ten denominator
 * (5/10), which keeps it printable as the same decimal. Refuses values that are not in (0, 1], since
 * processing modes are discounts and a zero multiplier would give usage away silently.
 */
export function parseMultiplier(text: string): ParseMultiplierResult {
  const match = DECIMAL.exec(text);
  if (match === null) return { ok: false, reason: 'must be a decimal string such as "0.5"' };
  const whole = match[1] ?? '0';
  const fraction = (match[2] ?? '.').slice(1);
  if (fraction.length > MULTIPLIER_MAX_DECIMALS) {
    return { ok: false, reason: `has more than ${MULTIPLIER_MAX_DECIMALS} decimal places` };
  }
  const denominator = 10n ** BigInt(fraction.length);
  const numerator = BigInt(whole) * denominator + BigInt(fraction === '' ? '0' : fraction);
  if (numerator === 0n) return { ok: false, reason: 'must be greater than 0' };
  if (numerator > denominator) return { ok: false, reason: 'must be at most 1' };
  return { ok: true, ratio: { numerator, denominator } };
}

/** Formats a ratio whose denominator is a power of ten ("0.5"); the inverse of `parseMultiplier`. */
export function formatMultiplier(ratio: Ratio): string {
  const decimals = ratio.denominator.toString().length - 1;
  if (ratio.denominator !== 10n ** BigInt(decimals)) {
    throw new Error(`multiplier denominator ${ratio.denominator} is not a power of ten`);
  }
  const whole = ratio.numerator / ratio.denominator;
  if (decimals === 0) return whole.toString();
  const fraction = (ratio.numerator % ratio.denominator).toString().padStart(decimals, '0');
  return `${whole}.${fraction}`;
}

const ISO_UTC_INSTANT = /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3})?Z$/;

/**
 * Parses an ISO-8601 UTC instant into epoch milliseconds, or null. The round trip through
 * `toISOString` rejects impossible dates such as February 30, which `Date.parse` would roll over.
 */
function parseUtcInstantMs(text: string): number | null {
  if (!ISO_UTC_INSTANT.test(text)) return null;
  const ms = Date.parse(text);
  if (!Number.isFinite(ms)) return null;
  const canonical = new Date(ms).toISOString();
  const withMillis = text.length === 20 ? `${text.slice(0, 19)}.000Z` : text;
  return canonical === withMillis ? ms : null;
}

// ---------------------------------------------------------------------------------------------------
// The file schema. Every object is strict, so a misspelt key is an error rather than a free model.

const usdNanosString = z.string().transform((text, ctx) => {
  const parsed = parseUsd(text);
  if (!parsed.ok) {
    ctx.addIssue({ code: 'custom', message: parsed.reason });
    return z.NEVER;
  }
  return parsed.nanos;
});

const multiplierString = z.string().transform((text, ctx) => {
  const parsed = parseMultiplier(text);
  if (!parsed.ok) {
    ctx.addIssue({ code: 'custom', message: parsed.reason });
    return z.NEVER;
  }
  return parsed.ratio;
});

const instantString = z.string().transform((text, ctx) => {
  const ms = parseUtcInstantMs(text);
  if (ms === null) {
    ctx.addIssue({
      code: 'custom',
      message: 'must be an ISO-8601 UTC instant such as "2026-11-01T00:00:00Z"',
    });
    return z.NEVER;
  }
  return { text, ms };
});

/** A note on where a price comes from, e.g. `"assumed: ..."`; free text, one line or a few. */
const noteString = z.string().min(1).max(500);

/** An image size, width x height in pixels ("1024x1536"); the price book and the API both check it. */
export const IMAGE_SIZE = /^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$/;
/** An image quality ("low", "hd"); the price book and the API both check it. */
export const IMAGE_QUALITY = /^[a-z][a-z0-9_]{0,31}$/;

const imagePricesSchema = z
  .record(
    z.string().regex(IMAGE_SIZE, 'is not an image size such as "1024x1024"'),
    z
      .record(z.string().regex(IMAGE_QUALITY, 'is not an image quality such as "high"'), usdNanosString)
      .refine((qualities) => Object.keys(qualities).length > 0, 'must price at least one quality'),
  )
  .refine((sizes) => Object.keys(sizes).length > 0, 'must price at least one size');

/** One side of a model's prices (the customer's price or the provider's cost), each entry in its own unit. */
const unitPricesSchema = z.strictObject({
  ...(Object.fromEntries(
    TOKEN_DIMENSIONS.map((dimension) => [dimension, usdNanosString.optional()]),
  ) as Record<TokenDimension, z.ZodOptional<typeof usdNanosString>>),
  images: imagePricesSchema.optional(),
  audio_minutes: usdNanosString.optional(),
  storage_gb_days: usdNanosString.optional(),
});
type UnitPricesDocument = z.output<typeof unitPricesSchema>;

/** The path of every price one side gives (`["input_tokens"]`, `["images", "1024x1024", "high"]`). */
function pricedPaths(prices: UnitPricesDocument): string[][] {
  const paths: string[][] = TOKEN_DIMENSIONS.filter((dimension) => prices[dimension] !== undefined).map(
    (dimension) => [dimension],
  );
  for (const [size, qualities] of Object.entries(prices.images ?? {})) {
    for (const quality of Object.keys(qualities)) paths.push(['images', size, quality]);
  }
  if (prices.audio_minutes !== undefined) paths.push(['audio_minutes']);
  if (prices.storage_gb_days !== undefined) paths.push(['storage_gb_days']);
  return paths;
}

const modelSchema = z
  .strictObject({
    class: z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, 'must be a lower-case identifier such as "flagship"'),
    note: noteString.optional(),
    prices: unitPricesSchema,
    provider_cost: unitPricesSchema,
  })
  .superRefine((model, ctx) => {
    const priced = pricedPaths(model.prices);
    const costed = pricedPaths(model.provider_cost);
    if (priced.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['prices'], message: 'must price at least one dimension' });
    }
    // Margin reports need the provider cost of everything we charge for, and a cost for something we
    // never charge is almost certainly a typo, so the two sides must price exactly the same things.
    const pricedKeys = new Set(priced.map((path) => path.join('.')));
    const costedKeys = new Set(costed.map((path) => path.join('.')));
    for (const path of priced) {
      if (!costedKeys.has(path.join('.'))) {
        ctx.addIssue({
          code: 'custom',
          path: ['provider_cost', ...path],
          message: 'is missing for a priced dimension',
        });
      }
    }
    for (const path of costed) {
      if (!pricedKeys.has(path.join('.'))) {
        ctx.addIssue({
          code: 'custom',
          path: ['provider_cost', ...path],
          message: 'is given for an unpriced dimension',
        });
      }
    }
  });

const toolSchema = z.strictObject({
  price_per_1k_calls: usdNanosString,
  provider_cost_per_1k_calls: usdNanosString,
});

/** A discount and where it comes from: a seed fact or an assumption, said in `note`. */
const processingModeSchema = z.strictObject({ multiplier: multiplierString, note: noteString.optional() });

const processingSchema = z.strictObject({
  batch: processingModeSchema,
  flex: processingModeSchema,
});

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;
/** A tool name in the price book (`web_search`); also the `<tool>` of a `tool_calls.<tool>` usage dimension. */
export const TOOL_NAME = /^[a-z][a-z0-9_]{0,63}$/;

const priceVersionSchema = z.strictObject({
  version: z
    .string()
    .regex(/^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$/, 'must be a short identifier such as "2026-11-01"'),
  effective_from: instantString,
  notes: z.string().max(2000).optional(),
  processing: processingSchema,
  models: z
    .record(z.string().regex(MODEL_NAME, 'is not a valid model name'), modelSchema)
    .refine((models) => Object.keys(models).length > 0, 'must contain at least one model'),
  tools: z.record(z.string().regex(TOOL_NAME, 'is not a valid tool name'), toolSchema),
});

type PriceVersionDocument = z.output<typeof priceVersionSchema>;

// ---------------------------------------------------------------------------------------------------
// Building the in-memory book.

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Renders a zod path as `models["gpt-5.4"].prices.input_tokens`, so an operator can find the field. */
function formatPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else if (typeof segment === 'string' && IDENTIFIER.test(segment))
      text += text === '' ? segment : `.${segment}`;
    else text += `[${JSON.stringify(String(segment))}]`;
  }
  return text === '' ? '(root)' : text;
}

function issuesFromZod(error: z.ZodError, prefix: readonly PropertyKey[]): PriceBookIssue[] {
  return error.issues.flatMap((issue): PriceBookIssue[] => {
    const path = [...prefix, ...issue.path];
    // Name each unknown key in the path itself: "models.o1.pricez: unknown key" is easier to act on
    // than zod's message on the parent object.
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ path: formatPath([...path, key]), message: 'unknown key' }));
    }
    if (issue.code === 'invalid_key') {
      return [{ path: formatPath(path), message: issue.issues.map((inner) => inner.message).join('; ') }];
    }
    return [{ path: formatPath(path), message: issue.message }];
  });
}

function buildDimensionPrices(prices: UnitPricesDocument): Readonly<Partial<Record<TokenDimension, bigint>>> {
  const result: Partial<Record<TokenDimension, bigint>> = {};
  for (const dimension of TOKEN_DIMENSIONS) {
    const nanos = prices[dimension];
    if (nanos !== undefined) result[dimension] = nanos;
  }
  return Object.freeze(result);
}

function buildImagePrices(prices: UnitPricesDocument): ImagePrices {
  const sizes = new Map<string, ReadonlyMap<string, bigint>>();
  for (const [size, qualities] of Object.entries(prices.images ?? {})) {
    sizes.set(size, new Map(Object.entries(qualities)));
  }
  return sizes;
}

function buildPriceVersion(document: PriceVersionDocument): PriceVersion {
  const models = new Map<string, ModelPrice>();
  for (const [model, entry] of Object.entries(document.models)) {
    models.set(
      model,
      Object.freeze({
        model,
        class: entry.class,
        note: entry.note ?? null,
        price_nanos_per_million: buildDimensionPrices(entry.prices),
        provider_cost_nanos_per_million: buildDimensionPrices(entry.provider_cost),
        image_price_nanos_per_image: buildImagePrices(entry.prices),
        image_provider_cost_nanos_per_image: buildImagePrices(entry.provider_cost),
        audio_price_nanos_per_minute: entry.prices.audio_minutes ?? null,
        audio_provider_cost_nanos_per_minute: entry.provider_cost.audio_minutes ?? null,
        storage_price_nanos_per_gb_day: entry.prices.storage_gb_days ?? null,
        storage_provider_cost_nanos_per_gb_day: entry.provider_cost.storage_gb_days ?? null,
      }),
    );
  }
  const tools = new Map<string, ToolPrice>();
  for (const [tool, entry] of Object.entries(document.tools)) {
    tools.set(
      tool,
      Object.freeze({
        tool,
        price_nanos_per_thousand_calls: entry.price_per_1k_calls,
        provider_cost_nanos_per_thousand_calls: entry.provider_cost_per_1k_calls,
      }),
    );
  }
  return Object.freeze({
    version: document.version,
    effective_from: document.effective_from.text,
    effective_from_ms: document.effective_from.ms,
    notes: document.notes ?? null,
    processing_multipliers: Object.freeze({
      standard: Object.freeze({ numerator: 1n, denominator: 1n }),
      batch: Object.freeze(document.processing.batch.multiplier),
      flex: Object.freeze(document.processing.flex.multiplier),
    }),
    processing_notes: Object.freeze({
      batch: document.processing.batch.note ?? null,
      flex: document.processing.flex.note ?? null,
    }),
    models,
    tools,
  });
}

/**
 * Validates one price version document (the contents of one `billing/prices/*.json` file).
 * Throws `PriceBookError` naming the path of each bad field; `pathPrefix` prefixes those paths.
 */
export function parsePriceVersion(json: unknown, pathPrefix: readonly PropertyKey[] = []): PriceVersion {
  const parsed = priceVersionSchema.safeParse(json);
  if (!parsed.success) throw new PriceBookError(issuesFromZod(parsed.error, pathPrefix));
  return buildPriceVersion(parsed.data);
}

/**
 * Assembles versions into a book sorted by `effective_from`. Throws `PriceBookError` if there are
 * none, or if two versions share a name or an effective instant (which would make the price in force
 * at that instant ambiguous).
 */
export function createPriceBook(versions: readonly PriceVersion[]): PriceBook {
  if (versions.length === 0)
    throw new PriceBookError([{ path: '(root)', message: 'must contain at least one version' }]);
  const sorted = [...versions].sort((a, b) => a.effective_from_ms - b.effective_from_ms);
  const issues: PriceBookIssue[] = [];
  for (let index = 1; index < sorted.length; index += 1) {
    const previous = sorted[index - 1];
    const current = sorted[index];
    if (previous === undefined || current === undefined) throw new Error('unreachable: index within bounds');
    if (previous.effective_from_ms === current.effective_from_ms) {
      issues.push({
        path: `versions["${current.version}"].effective_from`,
        message: `is the same instant as version "${previous.version}"`,
      });
    }
  }
  const names = new Set<string>();
  for (const version of sorted) {
    if (names.has(version.version)) {
      issues.push({
        path: `versions["${version.version}"].version`,
        message: 'is used by more than one version',
      });
    }
    names.add(version.version);
  }
  if (issues.length > 0) throw new PriceBookError(issues);
  return Object.freeze({ versions: Object.freeze(sorted) });
}

/**
 * Validates a price book: either one version document, or an array of them (one per file).
 * Throws `PriceBookError` whose message names the path of each bad field, e.g.
 * `[1].models["gpt-5.4"].prices.input_tokens: has more than 9 decimal places`.
 */
export function parsePriceBook(json: unknown): PriceBook {
  if (!Array.isArray(json)) return createPriceBook([parsePriceVersion(json)]);
  const versions: PriceVersion[] = [];
  const issues: PriceBookIssue[] = [];
  json.forEach((document: unknown, index) => {
    try {
      versions.push(parsePriceVersion(document, [index]));
    } catch (error) {
      if (!(error instanceof PriceBookError)) throw error;
      issues.push(...error.issues);
    }
  });
  if (issues.length > 0) throw new PriceBookError(issues);
  return createPriceBook(versions);
}

let defaultPriceBook: PriceBook | null = null;

/**
 * The bundled default book (`billing/prices/*.json`), parsed once and then shared; it is frozen.
 * Throws `PriceBookError` only if a bundled file is invalid, which the unit tests rule out.
 */
export function loadDefaultPriceBook(): PriceBook {
  defaultPriceBook ??= parsePriceBook([defaultVersionJson]);
  return defaultPriceBook;
}

// ---------------------------------------------------------------------------------------------------
// Lookups.

/**
 * The version in force at `at`: the one with the latest `effective_from` that is not after `at`.
 * Returns null before the first version. Throws a RangeError for an invalid Date (a programmer error:
 * timestamps are validated at the edge).
 */
export function versionAt(book: PriceBook, at: Date): PriceVersion | null {
  const at_ms = at.getTime();
  if (!Number.isFinite(at_ms)) throw new RangeError('price lookup with an invalid Date');
  for (let index = book.versions.length - 1; index >= 0; index -= 1) {
    const version = book.versions[index];
    if (version !== undefined && version.effective_from_ms <= at_ms) return version;
  }
  return null;
}

export type PriceLookup =
  | { ok: true; version: PriceVersion; price: ModelPrice }
  | { ok: false; code: 'no_price_in_force' | 'unknown_model'; message: string };

/**
 * The price of `model` in the version in force at `at` (the usage timestamp, not the time of rating),
 * so that a later version never reprices recorded usage. Returns `no_price_in_force` when `at` is
 * before the first version, and `unknown_model` when the version in force does not list the model.
 */
export function priceAt(book: PriceBook, model: string, at: Date): PriceLookup {
  const version = versionAt(book, at);
  if (version === null) {
    return {
      ok: false,
      code: 'no_price_in_force',
      message: `no price book version is in force at ${at.toISOString()}`,
    };
  }
  const price = version.models.get(model);
  if (price === undefined) {
    return {
      ok: false,
      code: 'unknown_model',
      message: `model ${JSON.stringify(model)} is not in price book version ${version.version}`,
    };
  }
  return { ok: true, version, price };
}

// ---------------------------------------------------------------------------------------------------
// Serialising for `GET /v1/prices`.

type DimensionPricesJson = Partial<Record<TokenDimension, string>> & {
  images?: Record<string, Record<string, string>>;
  audio_minutes?: string;
  storage_gb_days?: string;
};

type ProcessingModeJson = { multiplier: string; note?: string };

/** One version in the file format, with money as 9-decimal USD strings; `parsePriceBook` accepts it. */
export interface PriceVersionJson {
  version: string;
  effective_from: string;
  notes?: string;
  processing: { batch: ProcessingModeJson; flex: ProcessingModeJson };
  models: Record<
    string,
    { class: string; note?: string; prices: DimensionPricesJson; provider_cost: DimensionPricesJson }
  >;
  tools: Record<string, { price_per_1k_calls: string; provider_cost_per_1k_calls: string }>;
}

export interface PriceBookJson {
  object: 'price_book';
  currency: 'usd';
  token_price_unit: 'usd_per_1m_tokens';
  tool_price_unit: 'usd_per_1k_calls';
  /** `prices.images.<size>.<quality>`. */
  image_price_unit: 'usd_per_image';
  /** `prices.audio_minutes`; usage counts whole seconds (`audio_seconds`). */
  audio_price_unit: 'usd_per_audio_minute';
  /** `prices.storage_gb_days`. */
  storage_price_unit: 'usd_per_gb_day';
  /** Oldest first, so the last entry is the newest (possibly not yet in force). */
  versions: PriceVersionJson[];
}

function unitPricesToJson(
  tokens: Readonly<Partial<Record<TokenDimension, bigint>>>,
  images: ImagePrices,
  audio_nanos_per_minute: bigint | null,
  storage_nanos_per_gb_day: bigint | null,
): DimensionPricesJson {
  const result: DimensionPricesJson = {};
  for (const dimension of TOKEN_DIMENSIONS) {
    const nanos = tokens[dimension];
    if (nanos !== undefined) result[dimension] = formatUsd(nanos);
  }
  if (images.size > 0) {
    result.images = Object.fromEntries(
      [...images].map(([size, qualities]) => [
        size,
        Object.fromEntries([...qualities].map(([quality, nanos]) => [quality, formatUsd(nanos)])),
      ]),
    );
  }
  if (audio_nanos_per_minute !== null) result.audio_minutes = formatUsd(audio_nanos_per_minute);
  if (storage_nanos_per_gb_day !== null) result.storage_gb_days = formatUsd(storage_nanos_per_gb_day);
  return result;
}

function processingModeToJson(multiplier: Ratio, note: string | null): ProcessingModeJson {
  return { multiplier: formatMultiplier(multiplier), ...(note === null ? {} : { note }) };
}

function priceVersionToJson(version: PriceVersion): PriceVersionJson {
  const models: PriceVersionJson['models'] = {};
  for (const price of version.models.values()) {
    models[price.model] = {
      class: price.class,
      ...(price.note === null ? {} : { note: price.note }),
      prices: unitPricesToJson(
        price.price_nanos_per_million,
        price.image_price_nanos_per_image,
        price.audio_price_nanos_per_minute,
        price.storage_price_nanos_per_gb_day,
      ),
      provider_cost: unitPricesToJson(
        price.provider_cost_nanos_per_million,
        price.image_provider_cost_nanos_per_image,
        price.audio_provider_cost_nanos_per_minute,
        price.storage_provider_cost_nanos_per_gb_day,
      ),
    };
  }
  const tools: PriceVersionJson['tools'] = {};
  for (const price of version.tools.values()) {
    tools[price.tool] = {
      price_per_1k_calls: formatUsd(price.price_nanos_per_thousand_calls),
      provider_cost_per_1k_calls: formatUsd(price.provider_cost_nanos_per_thousand_calls),
    };
  }
  return {
    version: version.version,
    effective_from: version.effective_from,
    ...(version.notes === null ? {} : { notes: version.notes }),
    processing: {
      batch: processingModeToJson(version.processing_multipliers.batch, version.processing_notes.batch),
      flex: processingModeToJson(version.processing_multipliers.flex, version.processing_notes.flex),
    },
    models,
    tools,
  };
}

/**
 * The body of `GET /v1/prices`: every version with prices and provider costs as exact decimal USD
 * strings (9 decimals), processing multipliers as decimal strings, and effective dates. JSON-safe:
 * it contains no bigint and no number.
 */
export function priceBookToJson(book: PriceBook): PriceBookJson {
  return {
    object: 'price_book',
    currency: 'usd',
    token_price_unit: 'usd_per_1m_tokens',
    tool_price_unit: 'usd_per_1k_calls',
    image_price_unit: 'usd_per_image',
    audio_price_unit: 'usd_per_audio_minute',
    storage_price_unit: 'usd_per_gb_day',
    versions: book.versions.map(priceVersionToJson),
  };
}
