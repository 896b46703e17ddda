/**
 * Unit tests for rating: exact costs in nanos under the bundled price book, one rounding per event,
 * the rounding modes, and every way a usage can fail to rate. Pure; no server needed.
 *
 * Reminder of the units: 1 USD = 1e9 nanos, and a price of $P per 1M tokens is P x 1e9 nanos per
 * million tokens, i.e. P x 1000 nanos per token.
 */
import { MAX_NANOS, formatUsd, usd } from '../../billing/money';
import { loadDefaultPriceBook, parsePriceBook, type PriceBook } from '../../billing/price-book';
import { at, bundledDocument } from '../support/price-documents';
import {
  MAX_IMAGE_ENTRIES,
  MAX_QUANTITY_PER_DIMENSION,
  ROUNDING_MODES,
  TOKEN_DIMENSIONS,
  divideRounded,
  isValidQuantity,
  parseStorageGbDays,
  rateUsage,
  type RatableUsage,
  type RatedUsage,
  type RatingResult,
  type RoundingMode,
  type TokenDimension,
} from '../../billing/rating';

const book = loadDefaultPriceBook();
const IN_FORCE = new Date('2026-12-01T12:00:00Z');

/**
 * The token price list this engine must reproduce, in USD per 1M tokens, written out independently of
 * the JSON file. Input, cached input and output are the seed prices (o1 has no cached-input price in
 * the seed, so none here); image and audio tokens and embeddings are assumed. The legacy models are
 * priced per 1K tokens in the seed; their tests below check those per-1K values directly.
 */
const EXPECTED_PRICES_USD_PER_MILLION: Record<string, Partial<Record<TokenDimension, string>>> = {
  'gpt-5.4': {
    input_tokens: '2.50',
    cached_input_tokens: '0.25',
    output_tokens: '15.00',
    image_input_tokens: '2.50',
    image_output_tokens: '40.00',
    audio_input_tokens: '32.00',
    audio_output_tokens: '64.00',
  },
  'gpt-5.4-mini': { input_tokens: '0.75', cached_input_tokens: '0.075', output_tokens: '4.50' },
  'gpt-5.4-nano': { input_tokens: '0.20', cached_input_tokens: '0.02', output_tokens: '1.25' },
  'gpt-4o': {
    input_tokens: '2.50',
    cached_input_tokens: '1.25',
    output_tokens: '10.00',
    image_input_tokens: '2.50',
    audio_input_tokens: '40.00',
    audio_output_tokens: '80.00',
  },
  'gpt-4o-mini': { input_tokens: '0.15', cached_input_tokens: '0.075', output_tokens: '0.60' },
  o1: { input_tokens: '15.00', output_tokens: '60.00' },
  'gpt-3.5-turbo-4k': { input_tokens: '1.50', output_tokens: '2.00' },
  'gpt-3.5-turbo-16k': { input_tokens: '3.00', output_tokens: '5.00' },
  'gpt-4-8k': { input_tokens: '30.00', output_tokens: '60.00' },
  'gpt-4-32k': { input_tokens: '60.00', output_tokens: '120.00' },
  'text-embedding-3-small': { embedding_tokens: '0.02' },
  'text-embedding-3-large': { embedding_tokens: '0.13' },
};

/** Models priced per image (USD, by size then quality), per audio minute and per GB-day; all assumed. */
const EXPECTED_IMAGE_PRICES_USD: Record<string, Record<string, Record<string, string>>> = {
  'gpt-image-1': {
    '1024x1024': { low: '0.011', medium: '0.042', high: '0.167' },
    '1024x1536': { low: '0.016', medium: '0.063', high: '0.25' },
    '1536x1024': { low: '0.016', medium: '0.063', high: '0.25' },
  },
  'dall-e-3': {
    '1024x1024': { standard: '0.04', hd: '0.08' },
    '1024x1792': { standard: '0.08', hd: '0.12' },
    '1792x1024': { standard: '0.08', hd: '0.12' },
  },
};
const EXPECTED_AUDIO_PRICES_USD_PER_MINUTE: Record<string, string> = {
  'whisper-1': '0.006',
  'gpt-4o-transcribe': '0.006',
  'gpt-4o-mini-transcribe': '0.003',
};
const EXPECTED_STORAGE_PRICES_USD_PER_GB_DAY: Record<string, string> = { 'vector-storage': '0.10' };

const IMAGE_CASES = Object.entries(EXPECTED_IMAGE_PRICES_USD).flatMap(([model, sizes]) =>
  Object.entries(sizes).flatMap(([size, qualities]) =>
    Object.entries(qualities).map(([quality, price]) => ({ model, size, quality, price })),
  ),
);

const PRICE_CASES = Object.entries(EXPECTED_PRICES_USD_PER_MILLION).flatMap(([model, prices]) =>
  TOKEN_DIMENSIONS.flatMap((dimension) => {
    const price = prices[dimension];
    return price === undefined ? [] : [{ model, dimension, price }];
  }),
);

const UNPRICED_CASES = Object.entries({
  ...EXPECTED_PRICES_USD_PER_MILLION,
  ...Object.fromEntries(
    [
      ...Object.keys(EXPECTED_IMAGE_PRICES_USD),
      ...Object.keys(EXPECTED_AUDIO_PRICES_USD_PER_MINUTE),
      ...Object.keys(EXPECTED_STORAGE_PRICES_USD_PER_GB_DAY),
    ].map((model) => [model, {}]),
  ),
} as Record<string, Partial<Record<TokenDimension, string>>>).flatMap(([model, prices]) =>
  TOKEN_DIMENSIONS.filter((dimension) => prices[dimension] === undefined).map((dimension) => ({
    model,
    dimension,
  })),
);

function rate(
  model: string,
  usage: RatableUsage,
  options: { at?: Date; rounding?: RoundingMode; priceBook?: PriceBook } = {},
): RatingResult {
  return rateUsage(options.priceBook ?? book, {
    model,
    usage,
    at: options.at ?? IN_FORCE,
    ...(options.rounding ? { rounding: options.rounding } : {}),
  });
}

/** Rates a usage that must succeed, failing the test with the refusal otherwise. */
function rated(
  model: string,
  usage: RatableUsage,
  options: { at?: Date; rounding?: RoundingMode; priceBook?: PriceBook } = {},
): RatedUsage {
  const result = rate(model, usage, options);
  if (!result.ok) throw new Error(`expected ${model} to rate, got ${result.code}: ${result.message}`);
  return result;
}

/** Quantities every whole-count field refuses, with a label for the test name. */
function badQuantityValues(): [string, unknown][] {
  return [
    ['negative', -1],
    ['fractional', 1.5],
    ['tiny fraction', 0.000001],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['above 1e12', MAX_QUANTITY_PER_DIMENSION + 1],
    ['above 2^53', 2 ** 53],
    ['a numeric string', '5'],
    ['a bigint', 5n],
    ['null', null],
    ['negative fraction', -0.5],
  ];
}

describe('divideRounded', () => {
  // Each row: numerator / denominator, then the expected result per mode.
  const cases: [bigint, bigint, Record<RoundingMode, bigint>][] = [
    // Ties (exactly .5).
    [5n, 2n, { half_up: 3n, half_even: 2n, ceil: 3n, floor: 2n }],
    [7n, 2n, { half_up: 4n, half_even: 4n, ceil: 4n, floor: 3n }],
    [1n, 2n, { half_up: 1n, half_even: 0n, ceil: 1n, floor: 0n }],
    [-1n, 2n, { half_up: -1n, half_even: 0n, ceil: 0n, floor: -1n }],
    [-5n, 2n, { half_up: -3n, half_even: -2n, ceil: -2n, floor: -3n }],
    [-7n, 2n, { half_up: -4n, half_even: -4n, ceil: -3n, floor: -4n }],
    // Below and above a half.
    [7n, 3n, { half_up: 2n, half_even: 2n, ceil: 3n, floor: 2n }],
    [8n, 3n, { half_up: 3n, half_even: 3n, ceil: 3n, floor: 2n }],
    [-7n, 3n, { half_up: -2n, half_even: -2n, ceil: -2n, floor: -3n }],
    [-8n, 3n, { half_up: -3n, half_even: -3n, ceil: -2n, floor: -3n }],
    // Exact quotients and zero are never moved.
    [6n, 3n, { half_up: 2n, half_even: 2n, ceil: 2n, floor: 2n }],
    [-6n, 3n, { half_up: -2n, half_even: -2n, ceil: -2n, floor: -2n }],
    [0n, 7n, { half_up: 0n, half_even: 0n, ceil: 0n, floor: 0n }],
    // A negative denominator behaves like a negative numerator.
    [5n, -2n, { half_up: -3n, half_even: -2n, ceil: -2n, floor: -3n }],
    [-5n, -2n, { half_up: 3n, half_even: 2n, ceil: 3n, floor: 2n }],
    // Far beyond 2^53, where a float would already have lost the half.
    [
      2n * 10n ** 30n + 1n,
      2n,
      { half_up: 10n ** 30n + 1n, half_even: 10n ** 30n, ceil: 10n ** 30n + 1n, floor: 10n ** 30n },
    ],
  ];

  for (const [numerator, denominator, expected] of cases) {
    for (const mode of ROUNDING_MODES) {
      test(`${numerator} / ${denominator} rounds to ${expected[mode]} with ${mode}`, () => {
        expect(divideRounded(numerator, denominator, mode)).toBe(expected[mode]);
      });
    }
  }

  test('defaults to half_up (ties away from zero)', () => {
    expect(divideRounded(5n, 2n)).toBe(3n);
    expect(divideRounded(-5n, 2n)).toBe(-3n);
  });

  test('throws a RangeError on division by zero', () => {
    expect(() => divideRounded(1n, 0n)).toThrow(RangeError);
  });

  test('never moves a result by more than one from the truncated quotient, over a sweep of inputs', () => {
    for (let numerator = -50n; numerator <= 50n; numerator += 1n) {
      for (const denominator of [1n, 2n, 3n, 7n, 10n]) {
        const low = numerator >= 0n ? numerator / denominator : (numerator - denominator + 1n) / denominator;
        for (const mode of ROUNDING_MODES) {
          const result = divideRounded(numerator, denominator, mode);
          expect(result === low || result === low + 1n).toBe(true);
          // floor <= result <= ceil, and |result - exact| <= 1/2 for the half modes.
          if (mode === 'half_up' || mode === 'half_even') {
            const twiceError = 2n * (result * denominator - numerator);
            expect(twiceError <= denominator && twiceError >= -denominator).toBe(true);
          }
        }
      }
    }
  });
});

describe('every price in the book is reproduced exactly', () => {
  test.each(PRICE_CASES)(
    '1M $model $dimension tokens cost exactly $$$price',
    ({ model, dimension, price }) => {
      const result = rated(model, { [dimension]: 1_000_000 });
      expect(result.cost_nanos).toBe(usd(price));
      expect(result.lines).toHaveLength(1);
      expect(result.lines[0]).toMatchObject({
        kind: 'tokens',
        dimension,
        quantity: 1_000_000,
        amount_nanos: usd(price),
      });
    },
  );

  test.each(PRICE_CASES)(
    '1 $model $dimension token costs exactly $$$price / 1e6',
    ({ model, dimension, price }) => {
      const result = rated(model, { [dimension]: 1 });
      // Every price is a whole number of nanos per token, so 1 token is exact with no rounding at all.
      expect(usd(price) % 1_000_000n).toBe(0n);
      expect(result.cost_nanos).toBe(usd(price) / 1_000_000n);
      expect(result.lines[0]?.exact_amount_nanos_numerator).toBe(usd(price));
      expect(result.exact_nanos_denominator).toBe(1_000_000n);
    },
  );

  test.each(UNPRICED_CASES)(
    '$model does not price $dimension: dimension_not_priced',
    ({ model, dimension }) => {
      expect(rate(model, { [dimension]: 1 })).toEqual({
        ok: false,
        code: 'dimension_not_priced',
        param: dimension,
        message: expect.stringContaining(dimension) as string,
      });
    },
  );

  test('the expected price lists name every model in the book, so none goes untested', () => {
    expect([...(book.versions[0]?.models.keys() ?? [])].sort()).toEqual(
      [
        ...Object.keys(EXPECTED_PRICES_USD_PER_MILLION),
        ...Object.keys(EXPECTED_IMAGE_PRICES_USD),
        ...Object.keys(EXPECTED_AUDIO_PRICES_USD_PER_MINUTE),
        ...Object.keys(EXPECTED_STORAGE_PRICES_USD_PER_GB_DAY),
      ].sort(),
    );
  });

  test.each(IMAGE_CASES)('1 $model image of $size at $quality costs exactly $$$price', (c) => {
    const result = rated(c.model, { images: [{ size: c.size, quality: c.quality, count: 1 }] });
    expect(result.cost_nanos).toBe(usd(c.price));
    expect(result.lines).toEqual([
      expect.objectContaining({
        kind: 'images',
        size: c.size,
        quality: c.quality,
        quantity: 1,
        amount_nanos: usd(c.price),
      }),
    ]);
  });

  test.each(Object.entries(EXPECTED_AUDIO_PRICES_USD_PER_MINUTE))(
    '60 seconds of %s audio cost exactly $%s',
    (model, price) => {
      expect(rated(model, { audio_seconds: 60 }).cost_nanos).toBe(usd(price));
    },
  );

  test.each(Object.entries(EXPECTED_STORAGE_PRICES_USD_PER_GB_DAY))(
    '1 GB-day of %s costs exactly $%s',
    (model, price) => {
      expect(rated(model, { storage_gb_days: '1' }).cost_nanos).toBe(usd(price));
    },
  );
});

describe('worked examples', () => {
  test('gpt-5.4 with 1,500 input + 800 output tokens costs exactly 15,750,000 nanos ($0.01575)', () => {
    // 1,500 x $2.50/1M = $0.00375 and 800 x $15.00/1M = $0.012; together $0.01575.
    const result = rated('gpt-5.4', { input_tokens: 1_500, output_tokens: 800 });
    expect(result.cost_nanos).toBe(15_750_000n);
    expect(result.cost_nanos).toBe(usd('0.01575'));
    expect(result.lines.map((line) => [line.dimension, line.amount_nanos])).toEqual([
      ['input_tokens', 3_750_000n],
      ['output_tokens', 12_000_000n],
    ]);
  });

  test('the same gpt-5.4 usage costs us exactly 65%: 10,237,500 nanos of provider cost', () => {
    // 1,500 x $1.625/1M = $0.0024375 and 800 x $9.75/1M = $0.0078; together $0.0102375.
    expect(rated('gpt-5.4', { input_tokens: 1_500, output_tokens: 800 }).provider_cost_nanos).toBe(
      10_237_500n,
    );
  });

  test('1,000 events of 100 cached gpt-5.4-nano tokens cost 2,000 nanos each, exactly $0.002 in total', () => {
    // 100 x $0.02/1M = $0.000002 = 2,000 nanos per event, with nothing rounded away.
    let total_nanos = 0n;
    for (let event = 0; event < 1_000; event += 1) {
      const result = rated('gpt-5.4-nano', { cached_input_tokens: 100 });
      expect(result.cost_nanos).toBe(2_000n);
      total_nanos += result.cost_nanos;
    }
    expect(total_nanos).toBe(usd('0.002'));
  });
});

describe('legacy models, priced per 1K tokens in the seed', () => {
  // One test per seed price. A seed price of $P per 1K tokens is P x 1e9 / 1,000 = P x 1e6 nanos per
  // token, so 1,000 tokens cost exactly $P and 1,234 tokens exactly 1.234 x $P.
  const cases: { model: string; dimension: TokenDimension; per_1k: string; nanos_for_1234: bigint }[] = [
    // 1,234 x $0.0015 / 1,000 = 1,234 x 1,500 nanos = 1,851,000 nanos.
    { model: 'gpt-3.5-turbo-4k', dimension: 'input_tokens', per_1k: '0.0015', nanos_for_1234: 1_851_000n },
    // 1,234 x $0.002 / 1,000 = 1,234 x 2,000 nanos = 2,468,000 nanos.
    { model: 'gpt-3.5-turbo-4k', dimension: 'output_tokens', per_1k: '0.002', nanos_for_1234: 2_468_000n },
    // 1,234 x $0.003 / 1,000 = 1,234 x 3,000 nanos = 3,702,000 nanos.
    { model: 'gpt-3.5-turbo-16k', dimension: 'input_tokens', per_1k: '0.003', nanos_for_1234: 3_702_000n },
    // 1,234 x $0.005 / 1,000 = 1,234 x 5,000 nanos = 6,170,000 nanos.
    { model: 'gpt-3.5-turbo-16k', dimension: 'output_tokens', per_1k: '0.005', nanos_for_1234: 6_170_000n },
    // 1,234 x $0.03 / 1,000 = 1,234 x 30,000 nanos = 37,020,000 nanos.
    { model: 'gpt-4-8k', dimension: 'input_tokens', per_1k: '0.03', nanos_for_1234: 37_020_000n },
    // 1,234 x $0.06 / 1,000 = 1,234 x 60,000 nanos = 74,040,000 nanos.
    { model: 'gpt-4-8k', dimension: 'output_tokens', per_1k: '0.06', nanos_for_1234: 74_040_000n },
    // 1,234 x $0.06 / 1,000 = 1,234 x 60,000 nanos = 74,040,000 nanos.
    { model: 'gpt-4-32k', dimension: 'input_tokens', per_1k: '0.06', nanos_for_1234: 74_040_000n },
    // 1,234 x $0.12 / 1,000 = 1,234 x 120,000 nanos = 148,080,000 nanos.
    { model: 'gpt-4-32k', dimension: 'output_tokens', per_1k: '0.12', nanos_for_1234: 148_080_000n },
  ];

  test.each(cases)(
    '$model $dimension: 1,000 tokens cost exactly $$$per_1k, 1,234 tokens $nanos_for_1234 nanos',
    ({ model, dimension, per_1k, nanos_for_1234 }) => {
      expect(rated(model, { [dimension]: 1_000 }).cost_nanos).toBe(usd(per_1k));
      expect(rated(model, { [dimension]: 1_234 }).cost_nanos).toBe(nanos_for_1234);
      expect(rated(model, { [dimension]: 1 }).cost_nanos).toBe(usd(per_1k) / 1_000n);
    },
  );

  test('a GPT-4 8K call of 6,000 input and 2,000 output tokens costs exactly $0.30', () => {
    // 6,000 x $0.03 / 1K = $0.18 and 2,000 x $0.06 / 1K = $0.12; together $0.30.
    expect(rated('gpt-4-8k', { input_tokens: 6_000, output_tokens: 2_000 }).cost_nanos).toBe(usd('0.30'));
  });

  test('legacy models price no cached input: dimension_not_priced', () => {
    for (const model of ['gpt-3.5-turbo-4k', 'gpt-3.5-turbo-16k', 'gpt-4-8k', 'gpt-4-32k']) {
      expect(rate(model, { cached_input_tokens: 1 })).toMatchObject({
        ok: false,
        code: 'dimension_not_priced',
        param: 'cached_input_tokens',
      });
    }
  });
});

describe('o1 cached input', () => {
  test('is refused as dimension_not_priced, because the seed gives no price for it', () => {
    expect(rate('o1', { input_tokens: 100, cached_input_tokens: 50 })).toEqual({
      ok: false,
      code: 'dimension_not_priced',
      param: 'cached_input_tokens',
      message: 'model "o1" does not price cached_input_tokens in price book version 2026-11-01',
    });
  });

  test('zero cached tokens still rate, since a zero quantity needs no price', () => {
    // 100 x $15.00/1M = $0.0015.
    expect(rated('o1', { input_tokens: 100, cached_input_tokens: 0 }).cost_nanos).toBe(usd('0.0015'));
  });
});

describe('embeddings, per token', () => {
  test('1,000 text-embedding-3-small tokens cost exactly 20,000 nanos, in a dimension of their own', () => {
    // 1,000 x $0.02/1M = $0.00002 = 20,000 nanos.
    const result = rated('text-embedding-3-small', { embedding_tokens: 1_000 });
    expect(result.cost_nanos).toBe(20_000n);
    expect(result.lines).toEqual([
      expect.objectContaining({ kind: 'tokens', dimension: 'embedding_tokens' }),
    ]);
  });

  test('embeddings are tokens, so batch applies to them: 1,000 large tokens at batch cost 65,000 nanos', () => {
    // 1,000 x $0.13/1M = 130,000 nanos; x 0.5 (batch) = 65,000 nanos.
    expect(rated('text-embedding-3-large', { embedding_tokens: 1_000, processing: 'batch' }).cost_nanos).toBe(
      65_000n,
    );
  });

  test('chat input on an embedding model, and embedding tokens on a chat model, are not priced', () => {
    expect(rate('text-embedding-3-small', { input_tokens: 1 })).toMatchObject({
      code: 'dimension_not_priced',
      param: 'input_tokens',
    });
    expect(rate('gpt-5.4', { embedding_tokens: 1 })).toMatchObject({
      code: 'dimension_not_priced',
      param: 'embedding_tokens',
    });
  });
});

describe('image generation, per image by size and quality', () => {
  test('2 high 1024x1024 and 3 low 1536x1024 gpt-image-1 images cost exactly $0.382', () => {
    // 2 x $0.167 = $0.334 and 3 x $0.016 = $0.048; together $0.382. Provider cost: 2 x $0.10855 +
    // 3 x $0.0104 = $0.2171 + $0.0312 = $0.2483.
    const result = rated('gpt-image-1', {
      images: [
        { size: '1536x1024', quality: 'low', count: 3 },
        { size: '1024x1024', quality: 'high', count: 2 },
      ],
    });
    expect(result.cost_nanos).toBe(usd('0.382'));
    expect(result.provider_cost_nanos).toBe(usd('0.2483'));
    // Lines come sorted by size, then quality, whatever the order of the request.
    expect(result.lines.map((line) => [line.kind, line.quantity, line.amount_nanos])).toEqual([
      ['images', 2, usd('0.334')],
      ['images', 3, usd('0.048')],
    ]);
    // Per-image prices have denominator 1; the event keeps the token denominator of 1M.
    expect(result.exact_nanos_denominator).toBe(1_000_000n);
  });

  test('batch and flex do not discount images', () => {
    for (const processing of ['standard', 'batch', 'flex'] as const) {
      const usage: RatableUsage = { images: [{ size: '1024x1024', quality: 'hd', count: 1 }], processing };
      expect(rated('dall-e-3', usage).cost_nanos).toBe(usd('0.08'));
    }
  });

  test('a size or quality the model does not price is dimension_not_priced naming the entry', () => {
    const usage: RatableUsage = {
      images: [
        { size: '1024x1024', quality: 'standard', count: 1 },
        { size: '512x512', quality: 'standard', count: 1 },
      ],
    };
    expect(rate('dall-e-3', usage)).toMatchObject({
      ok: false,
      code: 'dimension_not_priced',
      param: 'images.1',
      message: expect.stringContaining('512x512') as string,
    });
    expect(rate('dall-e-3', { images: [{ size: '1024x1024', quality: 'low', count: 1 }] })).toMatchObject({
      code: 'dimension_not_priced',
      param: 'images.0',
    });
    expect(rate('gpt-5.4', { images: [{ size: '1024x1024', quality: 'high', count: 1 }] })).toMatchObject({
      code: 'dimension_not_priced',
      param: 'images.0',
    });
  });

  test('zero images of an unpriced size cost nothing and need no price', () => {
    expect(rated('dall-e-3', { images: [{ size: '256x256', quality: 'x', count: 0 }] }).lines).toEqual([]);
  });

  test('malformed image usage is invalid_quantity naming the field', () => {
    const entry = { size: '1024x1024', quality: 'hd', count: 1 };
    const cases: [unknown, string][] = [
      [[{ size: '1024x1024', quality: 'hd' }], 'images.0.count'],
      [{ size: '1024x1024', quality: 'hd', count: 1 }, 'images'],
      [[{ ...entry, count: 1.5 }], 'images.0.count'],
      [[{ ...entry, count: -1 }], 'images.0.count'],
      [[{ ...entry, size: 1024 }], 'images.0.size'],
      [[{ ...entry, quality: null }], 'images.0.quality'],
      [[entry, 'hd'], 'images.1'],
      [[entry, { ...entry, count: 2 }], 'images.1'],
      [
        Array.from({ length: MAX_IMAGE_ENTRIES + 1 }, (_, i) => ({ ...entry, size: `${100 + i}x100` })),
        'images',
      ],
    ];
    for (const [images, param] of cases) {
      expect({ images, result: rate('dall-e-3', { images } as unknown as RatableUsage) }).toEqual({
        images,
        result: expect.objectContaining({ ok: false, code: 'invalid_quantity', param }) as unknown,
      });
    }
  });
});

describe('transcription, per audio minute', () => {
  test('45 seconds of whisper-1 cost exactly 4,500,000 nanos ($0.0045)', () => {
    // $0.006 per minute = 6,000,000 nanos per 60 seconds; 45 x 6,000,000 / 60 = 4,500,000 nanos.
    const result = rated('whisper-1', { audio_seconds: 45 });
    expect(result.cost_nanos).toBe(4_500_000n);
    // Provider cost $0.0039 per minute: 45 x 3,900,000 / 60 = 2,925,000 nanos.
    expect(result.provider_cost_nanos).toBe(2_925_000n);
    expect(result.lines).toEqual([
      expect.objectContaining({ kind: 'audio', dimension: 'audio_seconds', quantity: 45 }),
    ]);
    // The common denominator is the least common multiple of 1M (tokens) and 60 (seconds per minute).
    expect(result.exact_nanos_denominator).toBe(3_000_000n);
  });

  test('1 second of gpt-4o-mini-transcribe costs exactly 50,000 nanos; an hour costs $0.18', () => {
    // $0.003 per minute = 3,000,000 nanos / 60 = 50,000 nanos per second; 3,600 s = 60 min x $0.003.
    expect(rated('gpt-4o-mini-transcribe', { audio_seconds: 1 }).cost_nanos).toBe(50_000n);
    expect(rated('gpt-4o-mini-transcribe', { audio_seconds: 3_600 }).cost_nanos).toBe(usd('0.18'));
  });

  test('a per-minute price that does not divide into seconds rounds once per event, half up', () => {
    const document = bundledDocument();
    at(document, 'models', 'whisper-1', 'prices').audio_minutes = '0.000000007';
    const priceBook = parsePriceBook(document);
    // 7 nanos per minute: 30 s = 3.5 nanos -> 4; 1 s = 0.1166... -> 0; 90 s = 10.5 -> 11.
    expect(rated('whisper-1', { audio_seconds: 30 }, { priceBook }).cost_nanos).toBe(4n);
    expect(rated('whisper-1', { audio_seconds: 1 }, { priceBook }).cost_nanos).toBe(0n);
    expect(rated('whisper-1', { audio_seconds: 90 }, { priceBook }).cost_nanos).toBe(11n);
    expect(rated('whisper-1', { audio_seconds: 30 }, { priceBook, rounding: 'half_even' }).cost_nanos).toBe(
      4n,
    );
    expect(rated('whisper-1', { audio_seconds: 90 }, { priceBook, rounding: 'floor' }).cost_nanos).toBe(10n);
  });

  test('batch does not discount audio minutes', () => {
    expect(rated('whisper-1', { audio_seconds: 60, processing: 'batch' }).cost_nanos).toBe(usd('0.006'));
  });

  test('audio seconds on a model without a per-minute price are dimension_not_priced', () => {
    expect(rate('gpt-5.4', { audio_seconds: 10 })).toMatchObject({
      code: 'dimension_not_priced',
      param: 'audio_seconds',
    });
  });

  test.each(badQuantityValues())('a %s count of seconds is invalid_quantity', (_label, quantity) => {
    expect(rate('whisper-1', { audio_seconds: quantity } as unknown as RatableUsage)).toMatchObject({
      code: 'invalid_quantity',
      param: 'audio_seconds',
    });
  });
});

describe('storage, per GB-day', () => {
  test('1.5 GB-days of vector storage cost exactly $0.15', () => {
    // 1.5 x $0.10 = $0.15; provider cost 1.5 x $0.065 = $0.0975.
    const result = rated('vector-storage', { storage_gb_days: '1.5' });
    expect(result.cost_nanos).toBe(usd('0.15'));
    expect(result.provider_cost_nanos).toBe(usd('0.0975'));
    expect(result.lines).toEqual([
      expect.objectContaining({
        kind: 'storage',
        dimension: 'storage_gb_days',
        quantity: '1.500000000',
        quantity_units: 1_500_000_000n,
      }),
    ]);
    expect(result.exact_nanos_denominator).toBe(1_000_000_000n);
  });

  test('a byte-day (1e-9 GB-day) is exact before the one rounding: 5 of them cost half a nano, rounded up', () => {
    // $0.10 per GB-day = 1e8 nanos; 1e-9 GB-day costs 0.1 nano -> 0; 5e-9 costs 0.5 -> 1 (half up).
    expect(rated('vector-storage', { storage_gb_days: '0.000000001' }).cost_nanos).toBe(0n);
    expect(rated('vector-storage', { storage_gb_days: '0.000000005' }).cost_nanos).toBe(1n);
    expect(
      rated('vector-storage', { storage_gb_days: '0.000000005' }, { rounding: 'half_even' }).cost_nanos,
    ).toBe(0n);
    // 30 days of 2.25 GB = 67.5 GB-days = $6.75.
    expect(rated('vector-storage', { storage_gb_days: '67.5' }).cost_nanos).toBe(usd('6.75'));
  });

  test('"0" and "0.000" GB-days cost nothing and need no price', () => {
    expect(rated('gpt-5.4', { storage_gb_days: '0' }).lines).toEqual([]);
    expect(rated('gpt-5.4', { storage_gb_days: '0.000' }).cost_nanos).toBe(0n);
  });

  test('storage on a model without a GB-day price is dimension_not_priced', () => {
    expect(rate('gpt-5.4', { storage_gb_days: '1' })).toMatchObject({
      code: 'dimension_not_priced',
      param: 'storage_gb_days',
    });
  });

  test.each([1.5, '1.5e3', '-1', '01', '1.', '.5', '1.0000000001', '1000000000000', ' 1', '', null])(
    'GB-days of %p are invalid_quantity',
    (storage_gb_days) => {
      expect(rate('vector-storage', { storage_gb_days } as unknown as RatableUsage)).toMatchObject({
        code: 'invalid_quantity',
        param: 'storage_gb_days',
      });
    },
  );

  test('parseStorageGbDays gives exact units and a canonical 9-decimal form', () => {
    expect(parseStorageGbDays('999999999999.999999999')).toEqual({
      ok: true,
      units: 999_999_999_999_999_999_999n,
      canonical: '999999999999.999999999',
    });
    expect(parseStorageGbDays('2')).toEqual({ ok: true, units: 2_000_000_000n, canonical: '2.000000000' });
    expect(parseStorageGbDays(2)).toMatchObject({ ok: false });
  });
});

describe('every modality in one event', () => {
  // A test book in which gpt-5.4 also prices audio minutes and GB-days, so one event has every kind of line.
  const document = bundledDocument();
  at(document, 'models', 'gpt-5.4', 'prices').audio_minutes = '0.006';
  at(document, 'models', 'gpt-5.4', 'provider_cost').audio_minutes = '0.0039';
  at(document, 'models', 'gpt-5.4', 'prices').storage_gb_days = '0.10';
  at(document, 'models', 'gpt-5.4', 'provider_cost').storage_gb_days = '0.065';
  at(document, 'models', 'gpt-5.4', 'prices').images = { '1024x1024': { high: '0.167' } };
  at(document, 'models', 'gpt-5.4', 'provider_cost').images = { '1024x1024': { high: '0.10855' } };
  const priceBook = parsePriceBook(document);

  test('is rounded once over the sum of its exact lines, and the lines add up to it', () => {
    const result = rated(
      'gpt-5.4',
      {
        input_tokens: 1,
        images: [{ size: '1024x1024', quality: 'high', count: 1 }],
        audio_seconds: 1,
        storage_gb_days: '0.000000005',
        tool_calls: { web_search: 1 },
        processing: 'batch',
      },
      { priceBook },
    );
    // 1 input token at batch: 2,500 x 0.5 = 1,250; 1 image: 167,000,000; 1 second: 6,000,000 / 60 = 100,000;
    // 5e-9 GB-day: 0.5; 1 search: 10,000,000. Sum 177,101,250.5 -> 177,101,251 (half up, once).
    expect(result.cost_nanos).toBe(177_101_251n);
    expect(result.lines.map((line) => line.kind)).toEqual([
      'tokens',
      'images',
      'audio',
      'storage',
      'tool_calls',
    ]);
    expect(result.lines.reduce((sum, line) => sum + line.amount_nanos, 0n)).toBe(result.cost_nanos);
    expect(result.lines.reduce((sum, line) => sum + line.provider_cost_nanos, 0n)).toBe(
      result.provider_cost_nanos,
    );
    // lcm(1M x 10 for the batch multiplier, 60, 1e9) = 3e9.
    expect(result.exact_nanos_denominator).toBe(3_000_000_000n);
  });
});

describe('processing modes', () => {
  const usage = { input_tokens: 1_500, output_tokens: 800 };

  test('standard is the default and has no discount', () => {
    const result = rated('gpt-5.4', usage);
    expect(result.processing).toBe('standard');
    expect(rated('gpt-5.4', { ...usage, processing: 'standard' }).cost_nanos).toBe(result.cost_nanos);
  });

  test('batch costs exactly 50% of standard: 7,875,000 nanos for the gpt-5.4 example', () => {
    const result = rated('gpt-5.4', { ...usage, processing: 'batch' });
    expect(result.cost_nanos).toBe(7_875_000n);
    expect(result.provider_cost_nanos).toBe(5_118_750n);
    expect(result.processing).toBe('batch');
  });

  test("flex costs the book's flex multiplier times standard, whatever that assumed multiplier is", () => {
    // The flex multiplier is an assumption noted in the book, not a seed fact: read it, do not restate it.
    const flex = book.versions[0]!.processing_multipliers.flex;
    const standard = rated('gpt-5.4', usage).cost_nanos;
    expect(rated('gpt-5.4', { ...usage, processing: 'flex' }).cost_nanos).toBe(
      divideRounded(standard * flex.numerator, flex.denominator),
    );
    // And another multiplier in the book changes flex prices, so the rating does read it from there.
    const document = bundledDocument();
    at(document, 'processing', 'flex').multiplier = '0.75';
    const priceBook = parsePriceBook(document);
    // 15,750,000 x 0.75 = 11,812,500 nanos.
    expect(rated('gpt-5.4', { ...usage, processing: 'flex' }, { priceBook }).cost_nanos).toBe(11_812_500n);
  });

  test('batch halves every seed price of 1M tokens exactly', () => {
    for (const { model, dimension, price } of PRICE_CASES) {
      expect(rated(model, { [dimension]: 1_000_000, processing: 'batch' }).cost_nanos).toBe(usd(price) / 2n);
    }
  });

  test('batch does not discount tool calls: 1 web_search costs $0.01 in every mode', () => {
    for (const processing of ['standard', 'batch', 'flex'] as const) {
      expect(rated('gpt-5.4', { tool_calls: { web_search: 1 }, processing }).cost_nanos).toBe(usd('0.01'));
    }
  });

  test('batch applies the multiplier to the exact sum, so the half of an odd nano rounds once', () => {
    // 1 gpt-4o-mini cached token is 75 nanos; half of it is 37.5, rounded half_up to 38.
    const result = rated('gpt-4o-mini', { cached_input_tokens: 1, processing: 'batch' });
    // The multiplier "0.5" is kept as 5/10, so the common denominator is 1M x 10.
    expect(result.exact_nanos_denominator).toBe(10_000_000n);
    expect(result.cost_nanos).toBe(38n);
  });
});

describe('tool fees', () => {
  test('1 web_search call costs exactly $0.01 and $0.0065 of provider cost', () => {
    const result = rated('gpt-5.4', { tool_calls: { web_search: 1 } });
    expect(result.cost_nanos).toBe(usd('0.01'));
    expect(result.provider_cost_nanos).toBe(usd('0.0065'));
    expect(result.lines).toEqual([
      {
        kind: 'tool_calls',
        dimension: 'tool_calls',
        tool: 'web_search',
        quantity: 1,
        unit_price_nanos_per_thousand_calls: usd('10.00'),
        unit_provider_cost_nanos_per_thousand_calls: usd('6.50'),
        amount_nanos: usd('0.01'),
        provider_cost_nanos: usd('0.0065'),
        exact_amount_nanos_numerator: usd('0.01') * 1_000_000n,
        exact_provider_cost_nanos_numerator: usd('0.0065') * 1_000_000n,
      },
    ]);
  });

  test('1,000 web_search calls cost exactly $10.00', () => {
    expect(rated('o1', { tool_calls: { web_search: 1_000 } }).cost_nanos).toBe(usd('10.00'));
  });

  test('tool calls add to token costs: gpt-5.4 example + 2 searches = $0.03575', () => {
    const result = rated('gpt-5.4', {
      input_tokens: 1_500,
      output_tokens: 800,
      tool_calls: { web_search: 2 },
    });
    expect(result.cost_nanos).toBe(usd('0.03575'));
    expect(result.lines.map((line) => line.dimension)).toEqual([
      'input_tokens',
      'output_tokens',
      'tool_calls',
    ]);
  });

  test('zero calls of an unknown tool cost nothing and are not an error', () => {
    expect(rated('gpt-5.4', { tool_calls: { code_interpreter: 0 } }).cost_nanos).toBe(0n);
  });

  test('an unknown tool is refused with unknown_tool naming it', () => {
    expect(rate('gpt-5.4', { tool_calls: { web_search: 1, code_interpreter: 1 } })).toMatchObject({
      ok: false,
      code: 'unknown_tool',
      param: 'tool_calls.code_interpreter',
    });
  });

  test('a prototype name is an unknown tool, not a price', () => {
    expect(rate('gpt-5.4', { tool_calls: { constructor: 1 } })).toMatchObject({
      ok: false,
      code: 'unknown_tool',
    });
  });
});

describe('rounding once per event', () => {
  test('half of an odd nano lands exactly on .5 and each mode rounds it its own way', () => {
    // 3 gpt-4o-mini cached tokens at batch: 3 x 75 / 2 = 112.5 nanos exactly.
    const usage: RatableUsage = { cached_input_tokens: 3, processing: 'batch' };
    const exact = rated('gpt-4o-mini', usage);
    expect(2n * (exact.lines[0]?.exact_amount_nanos_numerator ?? 0n)).toBe(
      225n * exact.exact_nanos_denominator,
    );
    const expected: Record<RoundingMode, bigint> = {
      half_up: 113n,
      half_even: 112n,
      ceil: 113n,
      floor: 112n,
    };
    for (const mode of ROUNDING_MODES) {
      const result = rated('gpt-4o-mini', usage, { rounding: mode });
      expect({ mode, cost_nanos: result.cost_nanos, rounding: result.rounding }).toEqual({
        mode,
        cost_nanos: expected[mode],
        rounding: mode,
      });
    }
  });

  test('half_up is the default rounding mode and is reported on the result', () => {
    const result = rated('gpt-4o-mini', { cached_input_tokens: 3, processing: 'batch' });
    expect(result.rounding).toBe('half_up');
    expect(result.cost_nanos).toBe(113n);
  });

  test('provider cost of 48.75 nanos per token rounds once per event, not per token', () => {
    // gpt-4o-mini cached provider cost is $0.04875/1M = 48.75 nanos per token.
    expect(rated('gpt-4o-mini', { cached_input_tokens: 1 }).provider_cost_nanos).toBe(49n);
    expect(rated('gpt-4o-mini', { cached_input_tokens: 2 }).provider_cost_nanos).toBe(98n); // 97.5 -> 98
    expect(rated('gpt-4o-mini', { cached_input_tokens: 4 }).provider_cost_nanos).toBe(195n); // exact
    expect(rated('gpt-4o-mini', { cached_input_tokens: 1_000 }).provider_cost_nanos).toBe(48_750n);
  });

  test('fractions from several lines are summed before rounding, not rounded line by line', () => {
    // gpt-5.4-mini cached provider cost 48.75 nanos/token and gpt-5.4-mini input 487.5 nanos/token at
    // provider cost: 1 cached (48.75) + 1 input (487.5) = 536.25 -> 536. Rounding each line first
    // would give 49 + 488 = 537.
    const result = rated('gpt-5.4-mini', { input_tokens: 1, cached_input_tokens: 1 });
    expect(result.provider_cost_nanos).toBe(536n);
  });

  test('line amounts are allocated so that they add up exactly to the rounded event total', () => {
    const result = rated('gpt-5.4-mini', {
      input_tokens: 1,
      cached_input_tokens: 1,
      output_tokens: 3,
      tool_calls: { web_search: 1 },
      processing: 'batch',
    });
    const lineCost = result.lines.reduce((sum, line) => sum + line.amount_nanos, 0n);
    const lineProviderCost = result.lines.reduce((sum, line) => sum + line.provider_cost_nanos, 0n);
    expect(lineCost).toBe(result.cost_nanos);
    expect(lineProviderCost).toBe(result.provider_cost_nanos);
    // And the exact numerators reproduce the unrounded total: within half a nano of the rounded total.
    const exact = result.lines.reduce((sum, line) => sum + line.exact_amount_nanos_numerator, 0n);
    expect(2n * (result.cost_nanos * result.exact_nanos_denominator - exact)).toBeLessThanOrEqual(
      result.exact_nanos_denominator,
    );
  });
});

describe('zero usage', () => {
  test('an empty usage costs zero and has no lines', () => {
    const result = rated('gpt-5.4', {});
    expect(result.cost_nanos).toBe(0n);
    expect(result.provider_cost_nanos).toBe(0n);
    expect(result.lines).toEqual([]);
  });

  test('explicit zeros in every dimension, priced or not, cost zero without an error', () => {
    const zeros = Object.fromEntries(TOKEN_DIMENSIONS.map((dimension) => [dimension, 0]));
    const result = rated('gpt-4o-mini', { ...zeros, tool_calls: { web_search: 0 }, processing: 'batch' });
    expect(result.cost_nanos).toBe(0n);
    expect(result.lines).toEqual([]);
  });
});

describe('refusals', () => {
  test('an unknown model is unknown_model with param "model"', () => {
    expect(rate('gpt-9', { input_tokens: 1 })).toEqual({
      ok: false,
      code: 'unknown_model',
      param: 'model',
      message: expect.stringContaining('gpt-9') as string,
    });
  });

  test('an unknown model is refused even with zero usage', () => {
    expect(rate('gpt-9', {})).toMatchObject({ ok: false, code: 'unknown_model' });
  });

  test('an unpriced dimension is dimension_not_priced (gpt-4o-mini has no audio)', () => {
    expect(rate('gpt-4o-mini', { input_tokens: 10, audio_input_tokens: 10 })).toMatchObject({
      ok: false,
      code: 'dimension_not_priced',
      param: 'audio_input_tokens',
    });
  });

  const badQuantities = badQuantityValues();

  test.each(badQuantities)('a %s count of images is invalid_quantity naming the entry', (_label, count) => {
    expect(
      rate('dall-e-3', { images: [{ size: '1024x1024', quality: 'hd', count }] } as unknown as RatableUsage),
    ).toMatchObject({
      ok: false,
      code: 'invalid_quantity',
      param: 'images.0.count',
    });
  });

  test.each(badQuantities)(
    'a %s token count is invalid_quantity naming the dimension',
    (_label, quantity) => {
      expect(rate('gpt-5.4', { output_tokens: quantity } as unknown as RatableUsage)).toMatchObject({
        ok: false,
        code: 'invalid_quantity',
        param: 'output_tokens',
      });
    },
  );

  test.each(badQuantities)('a %s tool call count is invalid_quantity naming the tool', (_label, quantity) => {
    expect(
      rate('gpt-5.4', { tool_calls: { web_search: quantity } } as unknown as RatableUsage),
    ).toMatchObject({
      ok: false,
      code: 'invalid_quantity',
      param: 'tool_calls.web_search',
    });
  });

  test('tool_calls that is not an object is invalid_quantity', () => {
    for (const toolCalls of [null, 3, 'web_search', ['web_search']]) {
      expect(rate('gpt-5.4', { tool_calls: toolCalls } as unknown as RatableUsage)).toMatchObject({
        ok: false,
        code: 'invalid_quantity',
        param: 'tool_calls',
      });
    }
  });

  test('exactly 1e12 tokens is accepted: o1 output costs exactly $60,000,000', () => {
    expect(isValidQuantity(MAX_QUANTITY_PER_DIMENSION)).toBe(true);
    expect(rated('o1', { output_tokens: MAX_QUANTITY_PER_DIMENSION }).cost_nanos).toBe(usd('60000000'));
  });

  test('a cost beyond the largest amount the ledger holds is invalid_quantity, not an overflow', () => {
    // The largest price the book accepts is MAX_NANOS per 1M tokens; one nano more is refused.
    const tooExpensive = bundledDocument();
    at(tooExpensive, 'models', 'o1', 'prices').output_tokens = formatUsd(MAX_NANOS + 1n);
    expect(() => parsePriceBook(tooExpensive)).toThrow('is larger than the ledger can hold');
    const document = bundledDocument();
    at(document, 'models', 'o1', 'prices').output_tokens = formatUsd(MAX_NANOS);
    const priceBook = parsePriceBook(document);
    // 1M tokens at that price cost exactly MAX_NANOS, which the ledger holds.
    expect(rated('o1', { output_tokens: 1_000_000 }, { priceBook }).cost_nanos).toBe(MAX_NANOS);
    // One token more, and anything up to the 1e12 limit (about 1e6 x MAX_NANOS), is beyond it.
    for (const output_tokens of [1_000_001, MAX_QUANTITY_PER_DIMENSION - 1, MAX_QUANTITY_PER_DIMENSION]) {
      expect(rate('o1', { output_tokens }, { priceBook })).toEqual({
        ok: false,
        code: 'invalid_quantity',
        param: 'usage',
        message: 'the usage costs more than the largest amount the ledger can hold',
      });
    }
  });

  test('a provider cost beyond the largest amount the ledger holds is invalid_quantity too', () => {
    const document = bundledDocument();
    at(document, 'models', 'o1', 'provider_cost').output_tokens = formatUsd(MAX_NANOS);
    const priceBook = parsePriceBook(document);
    expect(rated('o1', { output_tokens: 1_000_000 }, { priceBook }).provider_cost_nanos).toBe(MAX_NANOS);
    expect(rate('o1', { output_tokens: MAX_QUANTITY_PER_DIMENSION }, { priceBook })).toMatchObject({
      ok: false,
      code: 'invalid_quantity',
      param: 'usage',
    });
  });

  test('quantities are checked before the model, so a bad count is reported even for an unknown model', () => {
    expect(rate('gpt-9', { input_tokens: -1 })).toMatchObject({ code: 'invalid_quantity' });
  });

  test('an invalid Date and an unknown processing mode are programmer errors and throw', () => {
    expect(() => rate('gpt-5.4', { input_tokens: 1 }, { at: new Date(Number.NaN) })).toThrow(RangeError);
    expect(() => rate('gpt-5.4', { processing: 'priority' } as unknown as RatableUsage)).toThrow(
      'processing',
    );
  });
});

describe('price versions', () => {
  // Version 2027-01-01 raises gpt-5.4 input from $2.50 to $3.00 per 1M tokens.
  const twoVersions = (() => {
    const later = bundledDocument();
    later.version = '2027-01-01';
    later.effective_from = '2027-01-01T00:00:00Z';
    at(later, 'models', 'gpt-5.4', 'prices').input_tokens = '3.00';
    at(later, 'models', 'gpt-5.4', 'provider_cost').input_tokens = '1.95';
    return parsePriceBook([bundledDocument(), later]);
  })();

  test('a later version does not reprice usage recorded before it took effect', () => {
    const before = rated(
      'gpt-5.4',
      { input_tokens: 1_000_000 },
      { at: new Date('2026-12-31T23:59:59.999Z'), priceBook: twoVersions },
    );
    expect(before.cost_nanos).toBe(usd('2.50'));
    expect(before.price_version).toBe('2026-11-01');
  });

  test('usage from the effective instant on is priced by the later version', () => {
    const after = rated(
      'gpt-5.4',
      { input_tokens: 1_000_000 },
      { at: new Date('2027-01-01T00:00:00Z'), priceBook: twoVersions },
    );
    expect(after.cost_nanos).toBe(usd('3.00'));
    expect(after.provider_cost_nanos).toBe(usd('1.95'));
    expect(after.price_version).toBe('2027-01-01');
  });

  test('usage before the first version is no_price_in_force (distinct from unknown_model)', () => {
    expect(rate('gpt-5.4', { input_tokens: 1 }, { at: new Date('2026-10-31T23:59:59.999Z') })).toMatchObject({
      ok: false,
      code: 'no_price_in_force',
      param: 'model',
    });
  });

  test('the result names the price version used', () => {
    expect(rated('gpt-5.4', { input_tokens: 1 }).price_version).toBe('2026-11-01');
  });
});
