import { randomUUID } from 'node:crypto';
import { usd } from '../billing/money';
import { roundToCent_nanos } from '../billing/contracts';
import { enterpriseUsageLines, getContract } from '../db/contracts';
import { useHarness } from './support/harness';

/**
 * Enterprise contracts on real PostgreSQL through the HTTP API: PUT and GET round trip (versions, whole
 * replacement), bad input refused with a 400 naming the field and nothing saved, and a period's metered usage priced
 * for the invoice (`enterpriseUsageLines`) from the same aggregation as GET .../usage: with a contract price and
 * graduated tiers to the exact cent worked out by hand, and without a contract at list price, each line equal to GET
 * usage's cost rounded half-up to the cent.
 */
const h = useHarness();

const putContract = (customer: string, body: unknown) =>
  h.call('PUT', `/v1/customers/${customer}/contract`, body);

/** The period the invoice covers; the usage below happens inside it, plus one event after it. */
const WINDOW = { from: new Date('2026-11-05T00:00:00Z'), to: new Date('2026-11-20T00:00:00Z') };

/**
 * One period of usage, the same for every customer (list prices of book 2026-11-01 per 1M tokens: gpt-5.4 input
 * 2.50, cached input 0.25, output 15.00; gpt-5.4-mini input 0.75, output 4.50):
 * - gpt-5.4 input_tokens 3 x 1,111,111 = 3,333,333 (list 8.3333325), output_tokens 1,234,567 (list 18.518505),
 *   cached_input_tokens 100,000 (list 0.025);
 * - gpt-5.4-mini input_tokens 10,000 (list 0.0075), output_tokens 100 (list 0.00045);
 * - and after the window, gpt-5.4 input_tokens 5,000,000, which no line may count.
 */
async function usePeriod(customer: string) {
  const event = (timestamp: string, model: string, usage: Record<string, number>) => ({
    event_id: `ev-${randomUUID()}`,
    customer_id: customer,
    model,
    timestamp,
    ...usage,
  });
  const response = await h.call('POST', '/v1/usage-events', {
    events: [
      event('2026-11-06T10:00:00Z', 'gpt-5.4', {
        input_tokens: 1_111_111,
        output_tokens: 1_234_567,
        cached_input_tokens: 100_000,
      }),
      event('2026-11-10T10:00:00Z', 'gpt-5.4', { input_tokens: 1_111_111 }),
      event('2026-11-19T23:59:59Z', 'gpt-5.4', { input_tokens: 1_111_111 }),
      event('2026-11-12T08:00:00Z', 'gpt-5.4-mini', { input_tokens: 10_000, output_tokens: 100 }),
      event('2026-11-20T00:00:00Z', 'gpt-5.4', { input_tokens: 5_000_000 }),
    ],
  });
  expect(response.status).toBe(200);
  expect(response.body.data.map((r: { status: string }) => r.status)).toEqual(Array(5).fill('accepted'));
}

/** A contract exercising both kinds of price, with prices per 1M tokens. */
const CONTRACT = {
  seat_price_usd: '45.00',
  price_overrides: [{ model: 'gpt-5.4', dimension: 'output_tokens', unit_price_usd: '12.345' }],
  volume_tiers: [
    {
      model: 'gpt-5.4',
      dimension: 'input_tokens',
      tiers: [
        { up_to: 1_000_000, unit_price_usd: '2.00' },
        { up_to: 2_500_000, unit_price_usd: '1.50' },
        { up_to: null, unit_price_usd: '1.00' },
      ],
    },
  ],
};

test('PUT and GET contract: saves and reads back exactly, each price with its unit; a second PUT replaces the whole contract as version 2; the lead reads the seat price as whole-cent nanos', async () => {
  await h.customer('cus_ct_trip');
  const saved = await putContract('cus_ct_trip', CONTRACT);
  expect(saved.status).toBe(200);
  expect(saved.body).toEqual({
    object: 'customer_contract',
    customer_id: 'cus_ct_trip',
    seat_price_usd: '45.000000000',
    price_overrides: [
      {
        model: 'gpt-5.4',
        dimension: 'output_tokens',
        price_unit: '1M tokens',
        unit_price_usd: '12.345000000',
      },
    ],
    volume_tiers: [
      {
        model: 'gpt-5.4',
        dimension: 'input_tokens',
        price_unit: '1M tokens',
        tiers: [
          { up_to: 1_000_000, unit_price_usd: '2.000000000' },
          { up_to: 2_500_000, unit_price_usd: '1.500000000' },
          { up_to: null, unit_price_usd: '1.000000000' },
        ],
      },
    ],
    version: 1,
    updated_at: expect.any(String),
  });
  expect((await h.call('GET', '/v1/customers/cus_ct_trip/contract')).body).toEqual(saved.body);
  expect((await getContract(h.db, 'cus_ct_trip'))?.seat_price_nanos).toBe(usd('45.00'));

  // Other dimensions, in their own units: per image, per audio minute, per GB-day, per 1,000 calls.
  const replaced = await putContract('cus_ct_trip', {
    seat_price_usd: '0',
    price_overrides: [
      { model: 'gpt-image-1', dimension: 'images.1024x1024.high', unit_price_usd: '0.15' },
      { model: 'gpt-5.4', dimension: 'tool_calls.web_search', unit_price_usd: '8.000000001' },
    ],
  });
  expect(replaced.status).toBe(200);
  expect(replaced.body).toMatchObject({
    seat_price_usd: '0.000000000',
    price_overrides: [
      { dimension: 'images.1024x1024.high', price_unit: 'image', unit_price_usd: '0.150000000' },
      { dimension: 'tool_calls.web_search', price_unit: '1,000 calls', unit_price_usd: '8.000000001' },
    ],
    volume_tiers: [],
    version: 2,
  });
  expect((await h.call('GET', '/v1/customers/cus_ct_trip/contract')).body).toEqual(replaced.body);
});

test('bad contracts are a 400 naming the field (shape, units, tier order, duplicates, unknown model, unpriced dimension) and change nothing; unknown customers and missing contracts are 404s', async () => {
  await h.customer('cus_ct_bad');
  expect((await putContract('cus_ct_bad', CONTRACT)).status).toBe(200);
  const tiers = (...list: unknown[]) => ({
    seat_price_usd: '10.00',
    volume_tiers: [{ model: 'gpt-5.4', dimension: 'input_tokens', tiers: list }],
  });
  const override = (fields: Record<string, unknown>) => ({
    seat_price_usd: '10.00',
    price_overrides: [{ model: 'gpt-5.4', dimension: 'input_tokens', unit_price_usd: '1.00', ...fields }],
  });
  const bad: [unknown, string, string?][] = [
    [{}, 'seat_price_usd'],
    [{ seat_price_usd: '45.001' }, 'seat_price_usd'],
    [{ seat_price_usd: 45 }, 'seat_price_usd'],
    [{ seat_price_usd: '-1.00' }, 'seat_price_usd'],
    [{ seat_price_usd: '1000000.01' }, 'seat_price_usd'],
    [{ seat_price_usd: '1.00', discount: '0.1' }, 'discount'],
    [override({ unit_price_usd: '1.0000000001' }), 'price_overrides.0.unit_price_usd'],
    [override({ unit_price_usd: 1 }), 'price_overrides.0.unit_price_usd'],
    [override({ dimension: 'tokens' }), 'price_overrides.0.dimension'],
    [override({ dimension: 'images.big.high' }), 'price_overrides.0.dimension'],
    [override({ model: 'gpt-99' }), 'price_overrides.0.model', 'unknown_model'],
    [
      override({ model: 'gpt-5.4-mini', dimension: 'audio_seconds' }),
      'price_overrides.0.dimension',
      'dimension_not_priced',
    ],
    [
      override({ dimension: 'tool_calls.no_such_tool' }),
      'price_overrides.0.dimension',
      'dimension_not_priced',
    ],
    [override({ per: 'token' }), 'price_overrides.0.per'],
    [tiers(), 'volume_tiers.0.tiers'],
    [tiers({ up_to: 100, unit_price_usd: '1' }), 'volume_tiers.0.tiers.0.up_to'],
    [
      tiers({ up_to: null, unit_price_usd: '1' }, { up_to: null, unit_price_usd: '1' }),
      'volume_tiers.0.tiers.0.up_to',
    ],
    [
      tiers(
        { up_to: 100, unit_price_usd: '1' },
        { up_to: 100, unit_price_usd: '1' },
        { up_to: null, unit_price_usd: '1' },
      ),
      'volume_tiers.0.tiers.1.up_to',
    ],
    [
      tiers({ up_to: 1.5, unit_price_usd: '1' }, { up_to: null, unit_price_usd: '1' }),
      'volume_tiers.0.tiers.0.up_to',
    ],
    [
      tiers({ up_to: 0, unit_price_usd: '1' }, { up_to: null, unit_price_usd: '1' }),
      'volume_tiers.0.tiers.0.up_to',
    ],
    [
      tiers({ up_to: '100', unit_price_usd: '1' }, { up_to: null, unit_price_usd: '1' }),
      'volume_tiers.0.tiers.0.up_to',
    ],
    [tiers({ up_to: null, unit_price_usd: '0.5e1' }), 'volume_tiers.0.tiers.0.unit_price_usd'],
    [
      { ...override({}), volume_tiers: tiers({ up_to: null, unit_price_usd: '1' }).volume_tiers },
      'volume_tiers.0.dimension',
    ],
    [
      {
        seat_price_usd: '1.00',
        price_overrides: [...override({}).price_overrides, ...override({}).price_overrides],
      },
      'price_overrides.1.dimension',
    ],
    // Oversized: more entries or tiers than a contract holds, a quantity past exact integers, over-long names.
    [
      {
        seat_price_usd: '1.00',
        price_overrides: Array.from({ length: 201 }, () => override({}).price_overrides[0]),
      },
      'price_overrides',
    ],
    [
      tiers(...Array.from({ length: 20 }, (_, i) => ({ up_to: (i + 1) * 100, unit_price_usd: '1' })), {
        up_to: null,
        unit_price_usd: '1',
      }),
      'volume_tiers.0.tiers',
    ],
    [
      tiers(
        { up_to: Number.MAX_SAFE_INTEGER + 2, unit_price_usd: '1' },
        { up_to: null, unit_price_usd: '1' },
      ),
      'volume_tiers.0.tiers.0.up_to',
    ],
    [override({ model: 'm'.repeat(101) }), 'price_overrides.0.model'],
    [override({ dimension: 'd'.repeat(201) }), 'price_overrides.0.dimension'],
  ];
  for (const [body, param, code] of bad) {
    const response = await putContract('cus_ct_bad', body);
    expect({ body, status: response.status }).toEqual({ body, status: 400 });
    expect(response.body.error).toMatchObject({ type: 'invalid_request', param, ...(code ? { code } : {}) });
    expect(response.body.error.message).toContain(param);
  }
  expect((await h.call('GET', '/v1/customers/cus_ct_bad/contract')).body.version).toBe(1);

  const ghost = await putContract('cus_ct_ghost', CONTRACT);
  expect(ghost.status).toBe(404);
  expect(ghost.body.error.code).toBe('resource_missing');
  expect((await h.call('GET', '/v1/customers/cus_ct_ghost/contract')).body.error.code).toBe(
    'resource_missing',
  );
  await h.customer('cus_ct_none');
  const none = await h.call('GET', '/v1/customers/cus_ct_none/contract');
  expect(none.status).toBe(404);
  expect(none.body.error.code).toBe('contract_missing');
});

test("a period's usage priced with a contract price and graduated tiers: the lines' amounts are the hand-computed cents, other usage stays at list price, and the lines sum to the total", async () => {
  await h.customer('cus_ct_priced');
  await h.fund('cus_ct_priced', '100.00');
  await usePeriod('cus_ct_priced');
  expect((await putContract('cus_ct_priced', CONTRACT)).status).toBe(200);

  const usage = await enterpriseUsageLines(h.db, 'cus_ct_priced', WINDOW);
  // By hand, per 1M tokens, each line rounded once half-up to the cent:
  // - gpt-5.4 input_tokens, graduated over 3,333,333 tokens: 1,000,000 x 2.00 + 1,500,000 x 1.50 + 833,333 x 1.00
  //   = 2.00 + 2.25 + 0.833333 = 5.083333 -> 5.08 (list would be 8.3333325);
  // - gpt-5.4 output_tokens at the contract price: 1,234,567 x 12.345 / 1M = 15.240729615 -> 15.24;
  // - gpt-5.4 cached_input_tokens at list: 0.025 -> 0.03 (a tie, rounded up);
  // - gpt-5.4-mini input_tokens at list: 0.0075 -> 0.01;
  // - gpt-5.4-mini output_tokens at list: 0.00045 -> 0.00, dropped;
  // - the 5,000,000 tokens of 2026-11-20 fall outside [from, to).
  // Total: 5.08 + 15.24 + 0.03 + 0.01 = 20.36.
  expect(usage.lines).toEqual([
    {
      description: 'gpt-5.4 cached_input_tokens (list price)',
      amount_nanos: usd('0.03'),
      quantity: '100000',
      model: 'gpt-5.4',
      dimension: 'cached_input_tokens',
      pricing: 'list',
    },
    {
      description: 'gpt-5.4 input_tokens (volume tiers)',
      amount_nanos: usd('5.08'),
      quantity: '3333333',
      model: 'gpt-5.4',
      dimension: 'input_tokens',
      pricing: 'volume_tiers',
    },
    {
      description: 'gpt-5.4 output_tokens (contract price)',
      amount_nanos: usd('15.24'),
      quantity: '1234567',
      model: 'gpt-5.4',
      dimension: 'output_tokens',
      pricing: 'contract_price',
    },
    {
      description: 'gpt-5.4-mini input_tokens (list price)',
      amount_nanos: usd('0.01'),
      quantity: '10000',
      model: 'gpt-5.4-mini',
      dimension: 'input_tokens',
      pricing: 'list',
    },
  ]);
  expect(usage.total_nanos).toBe(usd('20.36'));
  expect(usage.lines.reduce((sum, line) => sum + line.amount_nanos, 0n)).toBe(usage.total_nanos);
  expect(usage.contract_version).toBe(1);
  expect(usage.list_cost_nanos).toBe(usd('26.8847875')); // the list price of the same usage, as in the next test
});

test("without a contract every line is list price: GET usage's cost for that model and dimension, rounded half-up to the cent", async () => {
  await h.customer('cus_ct_list');
  await h.fund('cus_ct_list', '100.00');
  await usePeriod('cus_ct_list');

  const usage = await enterpriseUsageLines(h.db, 'cus_ct_list', WINDOW);
  const query = `from=${WINDOW.from.toISOString()}&to=${WINDOW.to.toISOString()}&group_by=model,dimension`;
  const report = await h.call('GET', `/v1/customers/cus_ct_list/usage?${query}`);
  expect(report.status).toBe(200);
  const expected = (
    report.body.data as { model: string; dimension: string; quantity: number; cost_usd: string }[]
  )
    .map((row) => ({
      model: row.model,
      dimension: row.dimension,
      quantity: String(row.quantity),
      amount_nanos: roundToCent_nanos(usd(row.cost_usd)),
    }))
    .filter((row) => row.amount_nanos > 0n);
  expect(expected).toHaveLength(4); // gpt-5.4-mini output_tokens rounds to 0.00 and is dropped
  expect(
    usage.lines.map(({ model, dimension, quantity, amount_nanos }) => ({
      model,
      dimension,
      quantity,
      amount_nanos,
    })),
  ).toEqual(expected);
  expect(usage.lines.every((line) => line.pricing === 'list')).toBe(true);
  // By hand: 8.3333325 -> 8.33, 18.518505 -> 18.52, 0.025 -> 0.03, 0.0075 -> 0.01; total 26.89.
  expect(usage.total_nanos).toBe(usd('26.89'));
  expect(usage.contract_version).toBeNull();
  // What the wallet already paid for the same events, exact: 8.3333325 + 18.518505 + 0.025 + 0.0075 + 0.00045.
  expect(usage.list_cost_nanos).toBe(usd('26.8847875'));
  expect(usage.list_cost_nanos).toBe(usd(report.body.total_cost_usd));
});
