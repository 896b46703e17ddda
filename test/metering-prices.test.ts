import { formatUsd, usd } from '../billing/money';
import seedJson from '../billing/prices/2026-11-01.json';
import { useHarness } from './support/harness';

/**
 * Prices and quotes through the API: the book is published exactly as seeded, every seed price comes back to the
 * nano from quotes, holds and recorded usage (event result, ledger, usage report), batch and flex halve token
 * prices (rounding half a nano up, once per event), and tool fees are per call and never discounted.
 */
const h = useHarness();

interface SeedModel {
  class: string;
  prices: Record<string, string>;
  provider_cost: Record<string, string>;
}
const seed = seedJson as unknown as {
  version: string;
  effective_from: string;
  processing: { batch: { multiplier: string }; flex: { multiplier: string } };
  models: Record<string, SeedModel>;
  tools: Record<string, { price_per_1k_calls: string; provider_cost_per_1k_calls: string }>;
};

/** Every (model, dimension, seed price per 1M tokens) in the seed file. */
const SEED_PRICES: { model: string; dimension: string; price: string }[] = Object.entries(
  seed.models,
).flatMap(([model, m]) =>
  Object.entries(m.prices).map(([dimension, price]) => ({ model, dimension, price })),
);
const MILLION = 1_000_000n;

const exact = (text: string) => formatUsd(usd(text));

async function quote(model: string, usage: Record<string, unknown>) {
  return h.call('POST', '/v1/quotes', { model, usage });
}

const grant = (customer: string, amount_usd: string) => h.fund(customer, amount_usd);

const usageEventCount = () => h.usageEventCount();

test('the seed file has the prices this suite relies on (every customer token price is whole nanos per token)', () => {
  expect(SEED_PRICES.length).toBeGreaterThanOrEqual(6 * 3);
  for (const { price } of SEED_PRICES) expect(usd(price) % MILLION).toBe(0n);
});

test('GET /v1/prices returns the seed book: every model, dimension, provider cost, tool and multiplier, exactly', async () => {
  const response = await h.call('GET', '/v1/prices');
  expect(response.status).toBe(200);
  expect(response.body).toMatchObject({
    object: 'price_book',
    currency: 'usd',
    token_price_unit: 'usd_per_1m_tokens',
    tool_price_unit: 'usd_per_1k_calls',
  });
  expect(response.body.versions).toHaveLength(1);
  const version = response.body.versions[0];
  expect(version.version).toBe(seed.version);
  expect(version.effective_from).toBe(seed.effective_from);
  expect(version.processing).toEqual({ batch: { multiplier: '0.5' }, flex: { multiplier: '0.5' } });
  const expectedModels = Object.fromEntries(
    Object.entries(seed.models).map(([model, m]) => [
      model,
      {
        class: m.class,
        prices: Object.fromEntries(Object.entries(m.prices).map(([d, p]) => [d, exact(p)])),
        provider_cost: Object.fromEntries(Object.entries(m.provider_cost).map(([d, p]) => [d, exact(p)])),
      },
    ]),
  );
  expect(version.models).toEqual(expectedModels);
  expect(version.tools).toEqual({
    web_search: { price_per_1k_calls: '10.000000000', provider_cost_per_1k_calls: '6.500000000' },
  });
  // Spot checks against the literal seed values, so a wrong normalisation on both sides cannot hide.
  expect(version.models['gpt-5.4'].prices).toMatchObject({
    input_tokens: '2.500000000',
    cached_input_tokens: '0.250000000',
    output_tokens: '15.000000000',
  });
  expect(version.models['gpt-5.4-nano'].prices.cached_input_tokens).toBe('0.020000000');
});

test('POST /v1/quotes prices gpt-5.4 1,500 input + 800 output tokens at exactly 0.015750000 and records nothing', async () => {
  const before = await h.moneySnapshot();
  const response = await quote('gpt-5.4', { input_tokens: 1500, output_tokens: 800 });
  expect(response.status).toBe(200);
  expect(response.body).toEqual({
    object: 'quote',
    model: 'gpt-5.4',
    price_version: '2026-11-01',
    processing: 'standard',
    cost_usd: '0.015750000',
    lines: [
      { dimension: 'input_tokens', quantity: 1500, amount_usd: '0.003750000' },
      { dimension: 'output_tokens', quantity: 800, amount_usd: '0.012000000' },
    ],
  });
  expect(await h.moneySnapshot()).toBe(before);
  expect(await usageEventCount()).toBe(0);
});

test('every seed price is reproduced exactly by quotes of 1M tokens, 1 token and 1,234,567 tokens', async () => {
  for (const { model, dimension, price } of SEED_PRICES) {
    const perMillion = usd(price);
    for (const tokens of [1_000_000, 1, 1_234_567]) {
      const response = await quote(model, { [dimension]: tokens });
      expect(response.status).toBe(200);
      const expected = formatUsd((perMillion * BigInt(tokens)) / MILLION);
      expect({ model, dimension, tokens, cost: response.body.cost_usd }).toEqual({
        model,
        dimension,
        tokens,
        cost: expected,
      });
      if (tokens === 1_000_000) expect(response.body.cost_usd).toBe(exact(price));
      expect(response.body.lines).toEqual([{ dimension, quantity: tokens, amount_usd: expected }]);
    }
  }
});

test('every seed price charged through ingestion comes back exactly in the event result, the ledger and the usage report', async () => {
  await h.customer('cus_mp_seed');
  await grant('cus_mp_seed', '1000.00');
  const events = SEED_PRICES.map(({ model, dimension }) => ({
    event_id: `${model}:${dimension}`,
    customer_id: 'cus_mp_seed',
    model,
    feature: 'seed',
    [dimension]: 1_000_000,
  }));
  const response = await h.call('POST', '/v1/usage-events', { events });
  expect(response.status).toBe(200);
  expect(response.body).toMatchObject({ accepted: SEED_PRICES.length, duplicate: 0, rejected: 0 });
  SEED_PRICES.forEach(({ model, dimension, price }, i) => {
    expect(response.body.data[i]).toEqual({
      event_id: `${model}:${dimension}`,
      status: 'accepted',
      cost_usd: exact(price),
    });
  });

  const total = SEED_PRICES.reduce((sum, { price }) => sum + usd(price), 0n);
  const entries = await h.db('ledger_entries').where({ customer_id: 'cus_mp_seed', kind: 'usage' });
  expect(entries.map((e: { amount_nanos: bigint }) => e.amount_nanos)).toEqual([-total]);
  const balance = await h.call('GET', '/v1/customers/cus_mp_seed/balance');
  expect(balance.body.available_usd).toBe(formatUsd(usd('1000.00') - total));

  const report = await h.call('GET', '/v1/customers/cus_mp_seed/usage?group_by=model,dimension');
  expect(report.status).toBe(200);
  expect(report.body.total_cost_usd).toBe(formatUsd(total));
  expect(report.body.data).toHaveLength(SEED_PRICES.length);
  for (const { model, dimension, price } of SEED_PRICES) {
    expect(report.body.data).toContainEqual({
      model,
      dimension,
      quantity: 1_000_000,
      events: 1,
      cost_usd: exact(price),
    });
  }
});

test('an authorization holds exactly the seed price of its estimate, for every model', async () => {
  await h.customer('cus_mp_holds');
  await grant('cus_mp_holds', '500.00');
  for (const [model, m] of Object.entries(seed.models)) {
    const auth = await h.call('POST', '/v1/authorizations', {
      customer_id: 'cus_mp_holds',
      model,
      estimated_usage: { output_tokens: 1_000_000, input_tokens: 2_000_000 },
    });
    expect(auth.status).toBe(201);
    const expected = usd(m.prices.output_tokens!) + 2n * usd(m.prices.input_tokens!);
    expect({ model, hold: auth.body.hold_usd }).toEqual({ model, hold: formatUsd(expected) });
    const voided = await h.call('POST', `/v1/authorizations/${auth.body.id}/void`);
    expect(voided.body).toMatchObject({ status: 'voided', released_usd: formatUsd(expected) });
  }
  const balance = await h.call('GET', '/v1/customers/cus_mp_holds/balance');
  expect(balance.body).toMatchObject({ available_usd: '500.000000000', held_usd: '0.000000000' });
});

test('batch and flex halve every seed token price exactly', async () => {
  for (const processing of ['batch', 'flex'] as const) {
    for (const { model, dimension, price } of SEED_PRICES) {
      const response = await quote(model, { [dimension]: 1_000_000, processing });
      expect(response.status).toBe(200);
      expect(response.body.processing).toBe(processing);
      expect({ model, dimension, processing, cost: response.body.cost_usd }).toEqual({
        model,
        dimension,
        processing,
        cost: formatUsd(usd(price) / 2n),
      });
    }
  }
});

test('a discounted price that falls on half a nano rounds half up once per event', async () => {
  // gpt-5.4-mini cached input is 75 nanos per token: 37.5 at batch or flex.
  const cases: [number, string][] = [
    [1, '0.000000038'],
    [2, '0.000000075'],
    [3, '0.000000113'],
  ];
  for (const processing of ['batch', 'flex']) {
    for (const [tokens, cost] of cases) {
      const response = await quote('gpt-5.4-mini', { cached_input_tokens: tokens, processing });
      expect(response.body.cost_usd).toBe(cost);
    }
  }
  // With another line, the event is rounded once (1 cached at 37.5 + 1 input at 375 = 412.5 -> 413 nanos) and the
  // lines, each an integer share, still add up to the event exactly.
  const mixed = await quote('gpt-5.4-mini', { cached_input_tokens: 1, input_tokens: 1, processing: 'batch' });
  expect(mixed.body.cost_usd).toBe('0.000000413');
  const lineSum = mixed.body.lines.reduce(
    (s: bigint, l: { amount_usd: string }) => s + usd(l.amount_usd),
    0n,
  );
  expect(formatUsd(lineSum)).toBe('0.000000413');
});

test('batch and flex usage is recorded at the discounted price with its processing mode', async () => {
  await h.customer('cus_mp_batch');
  await grant('cus_mp_batch', '10.00');
  const response = await h.call('POST', '/v1/usage-events', {
    events: [
      { event_id: 'b1', customer_id: 'cus_mp_batch', model: 'o1', output_tokens: 1000, processing: 'batch' },
      { event_id: 'f1', customer_id: 'cus_mp_batch', model: 'o1', output_tokens: 1000, processing: 'flex' },
      { event_id: 's1', customer_id: 'cus_mp_batch', model: 'o1', output_tokens: 1000 },
    ],
  });
  expect(response.body.data.map((r: { cost_usd: string }) => r.cost_usd)).toEqual([
    '0.030000000',
    '0.030000000',
    '0.060000000',
  ]);
  const rows = await h.db('usage_events').where({ customer_id: 'cus_mp_batch' }).orderBy('event_id');
  expect(rows).toEqual([
    expect.objectContaining({ event_id: 'b1', processing: 'batch', cost_nanos: 30_000_000n }),
    expect.objectContaining({ event_id: 'f1', processing: 'flex', cost_nanos: 30_000_000n }),
    expect.objectContaining({ event_id: 's1', processing: 'standard', cost_nanos: 60_000_000n }),
  ]);
  const balance = await h.call('GET', '/v1/customers/cus_mp_batch/balance');
  expect(balance.body.available_usd).toBe('9.880000000');
});

test('tool fees: web_search costs 0.01 per call, is never discounted, and adds to the token cost', async () => {
  expect((await quote('gpt-5.4-nano', { tool_calls: { web_search: 1 } })).body).toMatchObject({
    cost_usd: '0.010000000',
    lines: [{ dimension: 'tool_calls.web_search', quantity: 1, amount_usd: '0.010000000' }],
  });
  expect((await quote('gpt-4o', { tool_calls: { web_search: 1000 } })).body.cost_usd).toBe(
    exact(seed.tools.web_search!.price_per_1k_calls),
  );
  for (const processing of ['standard', 'batch', 'flex']) {
    const calls = await quote('gpt-5.4', { tool_calls: { web_search: 3 }, processing });
    expect(calls.body.cost_usd).toBe('0.030000000');
  }
  // 1,000 input tokens of gpt-5.4 at batch (0.00125) + 3 searches at full price (0.03).
  const mixed = await quote('gpt-5.4', {
    input_tokens: 1000,
    tool_calls: { web_search: 3 },
    processing: 'batch',
  });
  expect(mixed.body).toMatchObject({
    cost_usd: '0.031250000',
    lines: [
      { dimension: 'input_tokens', quantity: 1000, amount_usd: '0.001250000' },
      { dimension: 'tool_calls.web_search', quantity: 3, amount_usd: '0.030000000' },
    ],
  });

  const unknown = await quote('gpt-5.4', { tool_calls: { image_generation: 1 } });
  expect(unknown.status).toBe(400);
  expect(unknown.body.error).toMatchObject({
    type: 'invalid_request',
    code: 'unknown_tool',
    param: 'usage.tool_calls.image_generation',
  });

  await h.customer('cus_mp_tools');
  await grant('cus_mp_tools', '1.00');
  const ingested = await h.call('POST', '/v1/usage-events', {
    events: [
      {
        event_id: 't1',
        customer_id: 'cus_mp_tools',
        model: 'gpt-5.4',
        input_tokens: 1000,
        tool_calls: { web_search: 3 },
        processing: 'flex',
      },
    ],
  });
  expect(ingested.body.data[0]).toEqual({ event_id: 't1', status: 'accepted', cost_usd: '0.031250000' });
  const report = await h.call('GET', '/v1/customers/cus_mp_tools/usage?group_by=dimension');
  expect(report.body.data).toEqual([
    { dimension: 'input_tokens', quantity: 1000, events: 1, cost_usd: '0.001250000' },
    { dimension: 'tool_calls.web_search', quantity: 3, events: 1, cost_usd: '0.030000000' },
  ]);
  expect(report.body.total_cost_usd).toBe('0.031250000');
});

test('quotes refuse unknown models, unpriced dimensions and bad counts with a 400 naming the field, recording nothing', async () => {
  const before = await h.moneySnapshot();
  const eventsBefore = await usageEventCount();
  const cases: { model: string; usage: Record<string, unknown>; code: string; param: string }[] = [
    { model: 'gpt-9', usage: { input_tokens: 1 }, code: 'unknown_model', param: 'model' },
    {
      model: 'gpt-5.4-mini',
      usage: { image_input_tokens: 1 },
      code: 'dimension_not_priced',
      param: 'usage.image_input_tokens',
    },
    { model: 'gpt-5.4', usage: { input_tokens: -1 }, code: 'invalid_request', param: 'usage.input_tokens' },
    { model: 'gpt-5.4', usage: { input_tokens: 1.5 }, code: 'invalid_request', param: 'usage.input_tokens' },
    { model: 'gpt-5.4', usage: { input_tokens: '10' }, code: 'invalid_request', param: 'usage.input_tokens' },
    { model: 'gpt-5.4', usage: { input_tokens: 1e13 }, code: 'invalid_request', param: 'usage.input_tokens' },
    { model: 'gpt-5.4', usage: { processing: 'turbo' }, code: 'invalid_request', param: 'usage.processing' },
    { model: 'gpt-5.4', usage: { tokens: 1 }, code: 'invalid_request', param: 'usage.tokens' },
    {
      model: 'gpt-5.4',
      usage: { tool_calls: { web_search: -2 } },
      code: 'invalid_request',
      param: 'usage.tool_calls.web_search',
    },
  ];
  for (const c of cases) {
    const response = await quote(c.model, c.usage);
    expect({ c, status: response.status, error: response.body.error }).toEqual({
      c,
      status: 400,
      error: expect.objectContaining({ type: 'invalid_request', code: c.code, param: c.param }),
    });
  }
  expect(await h.moneySnapshot()).toBe(before);
  expect(await usageEventCount()).toBe(eventsBefore);
});
