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
  MAX_QUANTITY_PER_DIMENSION,
  ROUNDING_MODES,
  TOKEN_DIMENSIONS,
  divideRounded,
  isValidQuantity,
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
 * The price list this engine must reproduce, in USD per 1M tokens, written out independently of the
 * JSON file. Input, cached input and output are the seed prices; image and audio are illustrative.
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
  o1: { input_tokens: '15.00', cached_input_tokens: '7.50', output_tokens: '60.00' },
};

const PRICE_CASES = Object.entries(EXPECTED_PRICES_USD_PER_MILLION).flatMap(([model, prices]) =>
  TOKEN_DIMENSIONS.flatMap((dimension) => {
    const price = prices[dimension];
    return price === undefined ? [] : [{ model, dimension, price }];
  }),
);

const UNPRICED_CASES = Object.entries(EXPECTED_PRICES_USD_PER_MILLION).flatMap(([model, prices]) =>
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

  test('the expected price list names every model in the book, so none goes untested', () => {
    expect([...(book.versions[0]?.models.keys() ?? [])].sort()).toEqual(
      Object.keys(EXPECTED_PRICES_USD_PER_MILLION).sort(),
    );
  });
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

  test('flex costs exactly 50% of standard: 7,875,000 nanos for the gpt-5.4 example', () => {
    expect(rated('gpt-5.4', { ...usage, processing: 'flex' }).cost_nanos).toBe(7_875_000n);
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

  const badQuantities: [string, unknown][] = [
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
