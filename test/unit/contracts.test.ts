/**
 * Unit tests for enterprise contract pricing (billing/contracts.ts): dimension units, tier table rules, graduated
 * cost (exhaustive edge cases and fast-check properties: monotone in the quantity, a single tier is the flat price,
 * the per-tier split adds up to the quantity and the cost), the one rounding to the cent of each invoice line, the
 * list-price fallback, and the jsonb codec. Pure; no server needed.
 *
 * Units: 1 USD = 1e9 nanos, 1 cent = 1e7 nanos; token prices per 1M tokens.
 */
import fc from 'fast-check';
import {
  type Contract,
  decodeOverrides,
  decodeVolumeTiers,
  dimensionPriced,
  encodeOverrides,
  encodeVolumeTiers,
  graduatedCost_nanos,
  graduatedCostNumerator,
  graduatedSplit,
  meterOf,
  modelKnown,
  priceUsageGroups,
  roundToCent_nanos,
  type Tier,
  tierTableProblem,
  USAGE_DIMENSION,
  type UsageGroup,
} from '../../billing/contracts';
import { NANOS_PER_CENT, usd } from '../../billing/money';
import { loadDefaultPriceBook } from '../../billing/price-book';
import { divideRounded } from '../../billing/rating';

const tier = (up_to: number | null, price_usd: string): Tier => ({
  up_to: up_to === null ? null : BigInt(up_to),
  unit_price_nanos: usd(price_usd),
});

/** 1,000 units at $3, up to 5,000 at $2, the rest at $1 (per unit). */
const THREE_TIERS = [tier(1000, '3'), tier(5000, '2'), tier(null, '1')];

/** A valid tier table: 1..6 tiers, increasing bounds from random gaps, the last open; prices 0..$100 in nanos. */
const tierTable = fc
  .array(
    fc.record({
      gap: fc.bigInt({ min: 1n, max: 10_000_000n }),
      price: fc.bigInt({ min: 0n, max: 100_000_000_000n }),
    }),
    { minLength: 1, maxLength: 6 },
  )
  .map((parts) => {
    let bound = 0n;
    return parts.map(({ gap, price }, i): Tier => {
      bound += gap;
      return { up_to: i === parts.length - 1 ? null : bound, unit_price_nanos: price };
    });
  });
const quantity = fc.bigInt({ min: 0n, max: 100_000_000n });

describe('dimensions and their units', () => {
  test('each dimension of usage_events.lines has the price book’s unit', () => {
    expect(meterOf('input_tokens')).toEqual({
      price_unit: '1M tokens',
      units_per_quantity: 1n,
      units_per_price_unit: 1_000_000n,
    });
    expect(meterOf('embedding_tokens')?.price_unit).toBe('1M tokens');
    expect(meterOf('images.1024x1024.high')).toEqual({
      price_unit: 'image',
      units_per_quantity: 1n,
      units_per_price_unit: 1n,
    });
    expect(meterOf('audio_seconds')).toEqual({
      price_unit: 'audio minute',
      units_per_quantity: 1n,
      units_per_price_unit: 60n,
    });
    expect(meterOf('storage_gb_days')).toEqual({
      price_unit: 'GB-day',
      units_per_quantity: 1_000_000_000n,
      units_per_price_unit: 1_000_000_000n,
    });
    expect(meterOf('tool_calls.web_search')).toEqual({
      price_unit: '1,000 calls',
      units_per_quantity: 1n,
      units_per_price_unit: 1000n,
    });
  });

  test('names that are no dimension have no meter, and the published pattern accepts exactly the names with one', () => {
    for (const name of [
      '',
      'tokens',
      'images',
      'images.1024x1024',
      'images.big.high',
      'tool_calls.',
      'tool_calls.Web',
      '__proto__',
      'input_tokens ',
    ]) {
      expect({ name, meter: meterOf(name) }).toEqual({ name, meter: null });
    }
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.stringMatching(USAGE_DIMENSION),
          fc.constantFrom('input_tokens', 'audio_seconds', 'images.1x1.a', 'tool_calls.x'),
        ),
        (name) => (meterOf(name) !== null) === USAGE_DIMENSION.test(name),
      ),
    );
  });

  test('a dimension is priced when some version prices it for that model; tools for every model', () => {
    const book = loadDefaultPriceBook();
    expect(modelKnown(book, 'gpt-5.4')).toBe(true);
    expect(modelKnown(book, 'gpt-99')).toBe(false);
    expect(dimensionPriced(book, 'gpt-5.4', 'output_tokens')).toBe(true);
    expect(dimensionPriced(book, 'gpt-5.4', 'embedding_tokens')).toBe(false);
    expect(dimensionPriced(book, 'gpt-5.4', 'tool_calls.web_search')).toBe(true);
    expect(dimensionPriced(book, 'gpt-5.4', 'tool_calls.teleport')).toBe(false);
    expect(dimensionPriced(book, 'gpt-image-1', 'images.1024x1024.high')).toBe(true);
    expect(dimensionPriced(book, 'gpt-image-1', 'images.1024x1024.ultra')).toBe(false);
    expect(dimensionPriced(book, 'gpt-5.4-mini', 'audio_seconds')).toBe(false);
    expect(dimensionPriced(book, 'gpt-99', 'input_tokens')).toBe(false);
  });
});

describe('tier tables', () => {
  test('valid: one open tier, or strictly increasing bounds from 1 with only the last open', () => {
    expect(tierTableProblem([tier(null, '1')])).toBeNull();
    expect(tierTableProblem([tier(1, '1'), tier(2, '1'), tier(null, '0')])).toBeNull();
  });

  test('each fault names the tier', () => {
    expect(tierTableProblem([])).toEqual({ index: -1, message: 'must list at least one tier' });
    expect(tierTableProblem([tier(10, '1')])?.index).toBe(0);
    expect(tierTableProblem([tier(null, '1'), tier(null, '1')])?.index).toBe(0);
    expect(tierTableProblem([tier(0, '1'), tier(null, '1')])?.index).toBe(0);
    expect(tierTableProblem([tier(10, '1'), tier(10, '1'), tier(null, '1')])?.index).toBe(1);
    expect(tierTableProblem([tier(10, '1'), tier(5, '1'), tier(null, '1')])?.index).toBe(1);
    expect(tierTableProblem([{ up_to: null, unit_price_nanos: -1n }])?.index).toBe(0);
    expect(() => graduatedSplit(5n, [tier(10, '1')])).toThrow(RangeError);
    expect(() => graduatedSplit(-1n, [tier(null, '1')])).toThrow(RangeError);
  });
});

describe('graduated cost', () => {
  test('each unit at the price of the tier its position falls in, boundaries included', () => {
    const cost = (q: number) => graduatedCost_nanos(BigInt(q), THREE_TIERS);
    expect(cost(0)).toBe(0n);
    expect(cost(1)).toBe(usd('3'));
    expect(cost(1000)).toBe(usd('3000')); // the 1,000th unit is still in the first tier
    expect(cost(1001)).toBe(usd('3002'));
    expect(cost(5000)).toBe(usd('11000')); // 1,000 x 3 + 4,000 x 2
    expect(cost(5001)).toBe(usd('11001'));
    expect(cost(7500)).toBe(usd('13500')); // + 2,500 x 1
    expect(graduatedSplit(7500n, THREE_TIERS).map((p) => p.quantity)).toEqual([1000n, 4000n, 2500n]);
    expect(graduatedSplit(10n, THREE_TIERS).map((p) => p.quantity)).toEqual([10n, 0n, 0n]);
  });

  test('per 1M tokens: the exact sum over tiers is rounded once, half-up, to the nano', () => {
    // 1 token at $0.0000005 per 1M is 0.0000000000005 USD = 0.0005 nanos -> 0; 1,000 tokens = 0.5 nanos -> 1 (a tie).
    const tiny = [tier(null, '0.0000005')];
    expect(graduatedCost_nanos(1n, tiny, 1_000_000n)).toBe(0n);
    expect(graduatedCost_nanos(1000n, tiny, 1_000_000n)).toBe(1n);
    // Two tiers each worth 0.4 nanos: rounded per tier they would be 0 + 0; rounded once, 0.8 -> 1.
    const split = [tier(400, '0.000001'), tier(null, '0.000001')];
    expect(graduatedCost_nanos(800n, split, 1_000_000n)).toBe(1n);
    // 3,333,333 tokens on the README's tiers: 2.00 + 2.25 + 0.833333 = 5.083333 USD exactly.
    const readme = [tier(1_000_000, '2.00'), tier(2_500_000, '1.50'), tier(null, '1.00')];
    expect(graduatedCost_nanos(3_333_333n, readme, 1_000_000n)).toBe(usd('5.083333'));
  });

  test('property: the cost never falls as the quantity grows', () => {
    fc.assert(
      fc.property(tierTable, quantity, quantity, (tiers, a, b) => {
        const [low, high] = a <= b ? [a, b] : [b, a];
        return (
          graduatedCostNumerator(low, tiers) <= graduatedCostNumerator(high, tiers) &&
          graduatedCost_nanos(low, tiers, 1_000_000n) <= graduatedCost_nanos(high, tiers, 1_000_000n)
        );
      }),
    );
  });

  test('property: one open tier is the flat price, rounded once like rating', () => {
    fc.assert(
      fc.property(
        quantity,
        fc.bigInt({ min: 0n, max: 100_000_000_000n }),
        fc.constantFrom(1n, 60n, 1000n, 1_000_000n),
        (q, price, per) => {
          const flat = [{ up_to: null, unit_price_nanos: price }];
          return graduatedCost_nanos(q, flat, per) === divideRounded(q * price, per, 'half_up');
        },
      ),
    );
  });

  test('property: the split adds up to the quantity and its parts’ costs to the total; a quantity cut in two costs the first part plus the rest at the later positions', () => {
    fc.assert(
      fc.property(tierTable, quantity, quantity, (tiers, q, extra) => {
        const split = graduatedSplit(q, tiers);
        const quantities = split.reduce((s, p) => s + p.quantity, 0n);
        const cost = split.reduce((s, p) => s + p.quantity * p.unit_price_nanos, 0n);
        // Units q+1 .. q+extra priced where they sit: the cost of q+extra minus the cost of q, tier by tier.
        const whole = graduatedSplit(q + extra, tiers);
        const rest = whole.reduce(
          (s, p, i) => s + (p.quantity - split[i]!.quantity) * p.unit_price_nanos,
          0n,
        );
        return (
          split.every((p) => p.quantity >= 0n) &&
          quantities === q &&
          cost === graduatedCostNumerator(q, tiers) &&
          graduatedCostNumerator(q + extra, tiers) === cost + rest
        );
      }),
    );
  });
});

describe('pricing a period’s usage', () => {
  const group = (model: string, dimension: string, quantity: string, cost_usd: string): UsageGroup => ({
    model,
    dimension,
    quantity,
    cost_nanos: usd(cost_usd),
  });
  const contract = (parts: Partial<Contract>): Contract => ({
    seat_price_nanos: 0n,
    price_overrides: [],
    volume_tiers: [],
    ...parts,
  });

  test('without a contract every line is list price rounded half-up to the cent (ties up), and zero lines are dropped', () => {
    const lines = priceUsageGroups(
      [
        group('gpt-5.4', 'cached_input_tokens', '100000', '0.025'),
        group('gpt-5.4', 'input_tokens', '1000', '0.0024999'),
        group('gpt-5.4-mini', 'output_tokens', '100', '0.00045'),
        group('gpt-5.4', 'storage_gb_days', '3.500000000', '0.35'),
      ],
      null,
    );
    // 0.025 -> 0.03 (a tie, up); 0.0024999 -> 0.00 and 0.00045 -> 0.00, dropped; 0.35 stays.
    expect(lines).toEqual([
      {
        description: 'gpt-5.4 cached_input_tokens (list price)',
        amount_nanos: usd('0.03'),
        quantity: '100000',
        model: 'gpt-5.4',
        dimension: 'cached_input_tokens',
        pricing: 'list',
      },
      expect.objectContaining({ dimension: 'storage_gb_days', amount_nanos: usd('0.35'), quantity: '3.5' }),
    ]);
  });

  test('a contract price reprices its model and dimension only, in the dimension’s unit, rounded once to the cent', () => {
    const lines = priceUsageGroups(
      [
        group('gpt-5.4', 'output_tokens', '1234567', '18.518505'),
        group('gpt-5.4-mini', 'output_tokens', '1234567', '5.5555515'),
        group('gpt-5.4', 'audio_seconds', '90', '0.009'),
        group('gpt-5.4', 'tool_calls.web_search', '1500', '15.00'),
        group('gpt-5.4', 'images.1024x1024.high', '3', '0.501'),
      ],
      contract({
        price_overrides: [
          { model: 'gpt-5.4', dimension: 'output_tokens', unit_price_nanos: usd('12.345') },
          { model: 'gpt-5.4', dimension: 'audio_seconds', unit_price_nanos: usd('0.01') },
          { model: 'gpt-5.4', dimension: 'tool_calls.web_search', unit_price_nanos: usd('8.00') },
          { model: 'gpt-5.4', dimension: 'images.1024x1024.high', unit_price_nanos: usd('0.125') },
        ],
      }),
    );
    expect(lines.map((l) => [l.model, l.dimension, l.pricing, l.amount_nanos])).toEqual([
      ['gpt-5.4', 'output_tokens', 'contract_price', usd('15.24')], // 1,234,567 x 12.345 / 1M = 15.240729615
      ['gpt-5.4-mini', 'output_tokens', 'list', usd('5.56')], // another model: list, 5.5555515 -> 5.56
      ['gpt-5.4', 'audio_seconds', 'contract_price', usd('0.02')], // 90 s = 1.5 min x 0.01 = 0.015 -> 0.02 (tie)
      ['gpt-5.4', 'tool_calls.web_search', 'contract_price', usd('12.00')], // 1,500 calls x 8.00 / 1,000
      ['gpt-5.4', 'images.1024x1024.high', 'contract_price', usd('0.38')], // 3 x 0.125 = 0.375 -> 0.38
    ]);
  });

  test('volume tiers on GB-days count whole GB-days in the bounds and exact 1e-9 GB-days in the quantity', () => {
    const lines = priceUsageGroups(
      [group('gpt-5.4', 'storage_gb_days', '12.000000001', '1.20')],
      contract({
        volume_tiers: [
          { model: 'gpt-5.4', dimension: 'storage_gb_days', tiers: [tier(10, '0.10'), tier(null, '0.05')] },
        ],
      }),
    );
    // 10 x 0.10 + 2.000000001 x 0.05 = 1.00 + 0.10000000005 -> 1.10
    expect(lines).toEqual([
      expect.objectContaining({
        pricing: 'volume_tiers',
        amount_nanos: usd('1.10'),
        quantity: '12.000000001',
      }),
    ]);
  });

  test('a repriced line rounds its exact amount once: half a cent rounds up, just under stays down', () => {
    const price = (tokens: string) =>
      priceUsageGroups(
        [group('gpt-5.4', 'input_tokens', tokens, '1')],
        contract({
          volume_tiers: [
            { model: 'gpt-5.4', dimension: 'input_tokens', tiers: [tier(1000, '5'), tier(null, '5')] },
          ],
        }),
      )[0]?.amount_nanos ?? 0n;
    expect(price('1000')).toBe(usd('0.01')); // 1,000 x 5 / 1M = 0.005: a tie, up
    expect(price('999')).toBe(0n); // 0.004995: down, and dropped
    expect(price('3000')).toBe(usd('0.02')); // 0.015 -> 0.02
  });

  test('property: every line is whole cents above zero, and a list line is its cost rounded half-up to the cent', () => {
    const groups = fc.array(
      fc.record({
        model: fc.constantFrom('gpt-5.4', 'gpt-5.4-mini'),
        dimension: fc.constantFrom('input_tokens', 'output_tokens', 'tool_calls.web_search'),
        quantity: fc.bigInt({ min: 0n, max: 10_000_000_000n }).map(String),
        cost_nanos: fc.bigInt({ min: 0n, max: 100_000_000_000n }),
      }),
      { maxLength: 6 },
    );
    fc.assert(
      fc.property(groups, tierTable, (usage, tiers) => {
        const priced = priceUsageGroups(
          usage,
          contract({ volume_tiers: [{ model: 'gpt-5.4', dimension: 'input_tokens', tiers }] }),
        );
        const listed = usage.filter((g) => !(g.model === 'gpt-5.4' && g.dimension === 'input_tokens'));
        const expectedList = listed.map((g) => roundToCent_nanos(g.cost_nanos)).filter((a) => a > 0n);
        return (
          priced.every((l) => l.amount_nanos > 0n && l.amount_nanos % NANOS_PER_CENT === 0n) &&
          priced
            .filter((l) => l.pricing === 'list')
            .map((l) => l.amount_nanos)
            .join() === expectedList.join()
        );
      }),
    );
  });
});

describe('the stored form', () => {
  test('overrides and tier tables round-trip through JSON exactly, bigints as decimal strings', () => {
    const overrides = [
      { model: 'gpt-5.4', dimension: 'input_tokens', unit_price_nanos: 9_223_372_036_854_775_807n },
    ];
    const tables = [
      {
        model: 'gpt-5.4',
        dimension: 'output_tokens',
        tiers: [tier(9_007_199_254_740_991, '1'), tier(null, '0.000000001')],
      },
    ];
    const storedOverrides = JSON.parse(JSON.stringify(encodeOverrides(overrides))) as ReturnType<
      typeof encodeOverrides
    >;
    const storedTables = JSON.parse(JSON.stringify(encodeVolumeTiers(tables))) as ReturnType<
      typeof encodeVolumeTiers
    >;
    expect(storedOverrides[0]!.unit_price_nanos).toBe('9223372036854775807');
    expect(decodeOverrides(storedOverrides)).toEqual(overrides);
    expect(decodeVolumeTiers(storedTables)).toEqual(tables);
  });
});
