import { formatUsd, usd } from '../billing/money';
import { TOKEN_DIMENSIONS } from '../billing/price-book';
import { divideRounded } from '../billing/rating';
import seedJson from '../billing/prices/2026-11-01.json';
import { useHarness } from './support/harness';

/**
 * Prices and quotes through the API: the book is published exactly as written, every token price comes back to the
 * nano from quotes, holds and recorded usage (event result, ledger, usage report), batch halves token prices and
 * flex applies the book's own (assumed) multiplier (rounding half a nano up, once per event), tool fees are per call
 * and never discounted, a dimension the book does not price (o1 cached input) is a 400 everywhere, and embeddings,
 * images, transcription and storage are rated, recorded and reported in their own units.
 */
const h = useHarness();

/** A side of a model's prices in the file: token prices, then images by size and quality, audio, storage. */
type FilePrices = Record<string, string | Record<string, Record<string, string>>>;
interface SeedModel {
  class: string;
  note?: string;
  prices: FilePrices;
  provider_cost: FilePrices;
}
interface FileMode {
  multiplier: string;
  note?: string;
}
const seed = seedJson as unknown as {
  version: string;
  effective_from: string;
  processing: { batch: FileMode; flex: FileMode };
  models: Record<string, SeedModel>;
  tools: Record<string, { price_per_1k_calls: string; provider_cost_per_1k_calls: string }>;
};

const TOKEN_KEYS: readonly string[] = TOKEN_DIMENSIONS;

/** Every (model, token dimension, price per 1M tokens) in the bundled book. */
const SEED_PRICES: { model: string; dimension: string; price: string }[] = Object.entries(
  seed.models,
).flatMap(([model, m]) =>
  Object.entries(m.prices).flatMap(([dimension, price]) =>
    TOKEN_KEYS.includes(dimension) && typeof price === 'string' ? [{ model, dimension, price }] : [],
  ),
);
const MILLION = 1_000_000n;

const exact = (text: string) => formatUsd(usd(text));

/** Every price leaf of a file side as the API writes it (9-decimal strings), images included. */
const exactPrices = (prices: FilePrices) =>
  Object.fromEntries(
    Object.entries(prices).map(([key, value]) => [
      key,
      typeof value === 'string'
        ? exact(value)
        : Object.fromEntries(
            Object.entries(value).map(([size, qualities]) => [
              size,
              Object.fromEntries(Object.entries(qualities).map(([q, p]) => [q, exact(p)])),
            ]),
          ),
    ]),
  );

/** The flex multiplier the book assumes, as an exact fraction; read from the book, never restated here. */
const FLEX = (() => {
  const [whole = '0', fraction = ''] = seed.processing.flex.multiplier.split('.');
  const denominator = 10n ** BigInt(fraction.length);
  return { numerator: BigInt(whole) * denominator + BigInt(fraction || '0'), denominator };
})();
/** What a standard cost of `nanos` costs at flex, rounded half up once, as the engine does. */
const atFlex = (nanos: bigint) => divideRounded(nanos * FLEX.numerator, FLEX.denominator);

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
    image_price_unit: 'usd_per_image',
    audio_price_unit: 'usd_per_audio_minute',
    storage_price_unit: 'usd_per_gb_day',
  });
  expect(response.body.versions).toHaveLength(1);
  const version = response.body.versions[0];
  expect(version.version).toBe(seed.version);
  expect(version.effective_from).toBe(seed.effective_from);
  // The modifiers exactly as the book writes them, each with its provenance note.
  expect(version.processing).toEqual(seed.processing);
  expect(version.processing.batch).toMatchObject({
    multiplier: '0.5',
    note: expect.stringMatching(/^seed: /),
  });
  expect(version.processing.flex.note).toMatch(/^assumed: /);
  const expectedModels = Object.fromEntries(
    Object.entries(seed.models).map(([model, m]) => [
      model,
      {
        class: m.class,
        ...(m.note === undefined ? {} : { note: m.note }),
        prices: exactPrices(m.prices),
        provider_cost: exactPrices(m.provider_cost),
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
  expect(version.models['gpt-3.5-turbo-4k'].prices).toEqual({
    input_tokens: '1.500000000',
    output_tokens: '2.000000000',
  });
  expect(version.models.o1.prices).toEqual({ input_tokens: '15.000000000', output_tokens: '60.000000000' });
  expect(version.models['gpt-image-1'].prices.images['1024x1024'].high).toBe('0.167000000');
  expect(version.models['whisper-1'].prices).toEqual({ audio_minutes: '0.006000000' });
  expect(version.models['vector-storage'].prices).toEqual({ storage_gb_days: '0.100000000' });
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

test('an authorization holds exactly the book price of its estimate, for every chat model', async () => {
  await h.customer('cus_mp_holds');
  await grant('cus_mp_holds', '500.00');
  const chatModels = Object.entries(seed.models).filter(
    ([, m]) => m.prices.input_tokens !== undefined && m.prices.output_tokens !== undefined,
  );
  expect(chatModels.length).toBeGreaterThanOrEqual(10);
  for (const [model, m] of chatModels) {
    const auth = await h.call('POST', '/v1/authorizations', {
      customer_id: 'cus_mp_holds',
      model,
      estimated_usage: { output_tokens: 1_000_000, input_tokens: 2_000_000 },
    });
    expect(auth.status).toBe(201);
    const expected = usd(m.prices.output_tokens as string) + 2n * usd(m.prices.input_tokens as string);
    expect({ model, hold: auth.body.hold_usd }).toEqual({ model, hold: formatUsd(expected) });
    const voided = await h.call('POST', `/v1/authorizations/${auth.body.id}/void`);
    expect(voided.body).toMatchObject({ status: 'voided', released_usd: formatUsd(expected) });
  }
  const balance = await h.call('GET', '/v1/customers/cus_mp_holds/balance');
  expect(balance.body).toMatchObject({ available_usd: '500.000000000', held_usd: '0.000000000' });
});

test("batch halves every token price exactly (the seed's discount), and flex applies the book's multiplier", async () => {
  for (const processing of ['batch', 'flex'] as const) {
    for (const { model, dimension, price } of SEED_PRICES) {
      const response = await quote(model, { [dimension]: 1_000_000, processing });
      expect(response.status).toBe(200);
      expect(response.body.processing).toBe(processing);
      const expected = processing === 'batch' ? usd(price) / 2n : atFlex(usd(price));
      expect({ model, dimension, processing, cost: response.body.cost_usd }).toEqual({
        model,
        dimension,
        processing,
        cost: formatUsd(expected),
      });
    }
  }
});

test('a discounted price that falls on half a nano rounds half up once per event', async () => {
  // gpt-5.4-mini cached input is 75 nanos per token: 37.5 at batch.
  const cases: [number, string][] = [
    [1, '0.000000038'],
    [2, '0.000000075'],
    [3, '0.000000113'],
  ];
  for (const [tokens, cost] of cases) {
    const response = await quote('gpt-5.4-mini', { cached_input_tokens: tokens, processing: 'batch' });
    expect(response.body.cost_usd).toBe(cost);
    // Flex: whatever the book assumes, 75 x tokens x multiplier rounded once, half up.
    const flex = await quote('gpt-5.4-mini', { cached_input_tokens: tokens, processing: 'flex' });
    expect(flex.body.cost_usd).toBe(formatUsd(atFlex(75n * BigInt(tokens))));
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
  // 1,000 o1 output tokens: $0.06 standard, half at batch, and the book's multiplier at flex.
  const flex_nanos = atFlex(60_000_000n);
  expect(response.body.data.map((r: { cost_usd: string }) => r.cost_usd)).toEqual([
    '0.030000000',
    formatUsd(flex_nanos),
    '0.060000000',
  ]);
  const rows = await h.db('usage_events').where({ customer_id: 'cus_mp_batch' }).orderBy('event_id');
  expect(rows).toEqual([
    expect.objectContaining({ event_id: 'b1', processing: 'batch', cost_nanos: 30_000_000n }),
    expect.objectContaining({ event_id: 'f1', processing: 'flex', cost_nanos: flex_nanos }),
    expect.objectContaining({ event_id: 's1', processing: 'standard', cost_nanos: 60_000_000n }),
  ]);
  const balance = await h.call('GET', '/v1/customers/cus_mp_batch/balance');
  expect(balance.body.available_usd).toBe(formatUsd(usd('10.00') - 90_000_000n - flex_nanos));
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
        processing: 'batch',
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
    // The seed gives o1 no cached-input price, so the book gives none and the usage is refused.
    {
      model: 'o1',
      usage: { input_tokens: 1, cached_input_tokens: 1 },
      code: 'dimension_not_priced',
      param: 'usage.cached_input_tokens',
    },
    {
      model: 'dall-e-3',
      usage: { images: [{ size: '512x512', quality: 'standard', count: 1 }] },
      code: 'dimension_not_priced',
      param: 'usage.images.0',
    },
    {
      model: 'gpt-5.4',
      usage: { audio_seconds: 1 },
      code: 'dimension_not_priced',
      param: 'usage.audio_seconds',
    },
    {
      model: 'whisper-1',
      usage: { storage_gb_days: '1' },
      code: 'dimension_not_priced',
      param: 'usage.storage_gb_days',
    },
    {
      model: 'text-embedding-3-small',
      usage: { input_tokens: 1 },
      code: 'dimension_not_priced',
      param: 'usage.input_tokens',
    },
    {
      model: 'dall-e-3',
      usage: { images: [{ size: '1024 x 1024', quality: 'hd', count: 1 }] },
      code: 'invalid_request',
      param: 'usage.images.0.size',
    },
    {
      model: 'dall-e-3',
      usage: { images: [{ size: '1024x1024', quality: 'hd', count: 1.5 }] },
      code: 'invalid_request',
      param: 'usage.images.0.count',
    },
    {
      model: 'dall-e-3',
      usage: {
        images: [
          { size: '1024x1024', quality: 'hd', count: 1 },
          { size: '1024x1024', quality: 'hd', count: 2 },
        ],
      },
      code: 'invalid_request',
      param: 'usage.images.1',
    },
    {
      model: 'dall-e-3',
      usage: { images: [{ size: '1024x1024', quality: 'hd', count: 1, style: 'vivid' }] },
      code: 'invalid_request',
      param: 'usage.images.0.style',
    },
    {
      model: 'whisper-1',
      usage: { audio_seconds: 1.5 },
      code: 'invalid_request',
      param: 'usage.audio_seconds',
    },
    {
      model: 'vector-storage',
      usage: { storage_gb_days: 1.5 },
      code: 'invalid_request',
      param: 'usage.storage_gb_days',
    },
    {
      model: 'vector-storage',
      usage: { storage_gb_days: '1.0000000001' },
      code: 'invalid_request',
      param: 'usage.storage_gb_days',
    },
    {
      model: 'vector-storage',
      usage: { storage_gb_days: '1e3' },
      code: 'invalid_request',
      param: 'usage.storage_gb_days',
    },
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

test('the legacy models are quoted at exactly the seed price per 1K tokens', async () => {
  // The seed's prices per 1K tokens; 1,000 tokens must cost exactly that, and 1 token exactly a thousandth.
  const per1k: [string, string, string][] = [
    ['gpt-3.5-turbo-4k', 'input_tokens', '0.0015'],
    ['gpt-3.5-turbo-4k', 'output_tokens', '0.002'],
    ['gpt-3.5-turbo-16k', 'input_tokens', '0.003'],
    ['gpt-3.5-turbo-16k', 'output_tokens', '0.005'],
    ['gpt-4-8k', 'input_tokens', '0.03'],
    ['gpt-4-8k', 'output_tokens', '0.06'],
    ['gpt-4-32k', 'input_tokens', '0.06'],
    ['gpt-4-32k', 'output_tokens', '0.12'],
  ];
  for (const [model, dimension, price] of per1k) {
    const thousand = await quote(model, { [dimension]: 1_000 });
    const one = await quote(model, { [dimension]: 1 });
    expect({ model, dimension, thousand: thousand.body.cost_usd, one: one.body.cost_usd }).toEqual({
      model,
      dimension,
      thousand: exact(price),
      one: formatUsd(usd(price) / 1_000n),
    });
  }
});

test('o1 cached input is refused everywhere: quote, authorization, capture and usage event, recording nothing', async () => {
  await h.customer('cus_mp_o1');
  await grant('cus_mp_o1', '5.00');
  const refused = {
    type: 'invalid_request',
    code: 'dimension_not_priced',
    message: expect.stringContaining('cached_input_tokens') as string,
  };

  const auth = await h.call('POST', '/v1/authorizations', {
    customer_id: 'cus_mp_o1',
    model: 'o1',
    estimated_usage: { input_tokens: 1000, cached_input_tokens: 1000 },
  });
  expect(auth.status).toBe(400);
  expect(auth.body.error).toEqual({ ...refused, param: 'estimated_usage.cached_input_tokens' });

  const held = await h.call('POST', '/v1/authorizations', {
    customer_id: 'cus_mp_o1',
    model: 'o1',
    estimated_usage: { input_tokens: 1000 },
  });
  expect(held.status).toBe(201);
  const capture = await h.call('POST', `/v1/authorizations/${held.body.id}/capture`, {
    usage: { input_tokens: 1000, cached_input_tokens: 10 },
  });
  expect(capture.status).toBe(400);
  expect(capture.body.error).toEqual({ ...refused, param: 'usage.cached_input_tokens' });
  // The hold is untouched by the refused capture: still held, and a correct capture then succeeds.
  expect((await h.call('GET', `/v1/authorizations/${held.body.id}`)).body.status).toBe('held');
  const fixed = await h.call('POST', `/v1/authorizations/${held.body.id}/capture`, {
    usage: { input_tokens: 1000 },
  });
  expect(fixed.body).toMatchObject({ status: 'captured', cost_usd: '0.015000000' });

  const events = await h.call('POST', '/v1/usage-events', {
    events: [
      { event_id: 'o1-cached', customer_id: 'cus_mp_o1', model: 'o1', cached_input_tokens: 1 },
      { event_id: 'o1-plain', customer_id: 'cus_mp_o1', model: 'o1', input_tokens: 1000 },
    ],
  });
  expect(events.body).toMatchObject({ accepted: 1, rejected: 1 });
  expect(events.body.data[0]).toEqual({
    event_id: 'o1-cached',
    status: 'rejected',
    error: {
      code: 'dimension_not_priced',
      message: expect.stringContaining('cached_input_tokens') as string,
      param: 'events[0].cached_input_tokens',
    },
  });
  expect(await h.db('usage_events').where({ customer_id: 'cus_mp_o1', event_id: 'o1-cached' })).toEqual([]);
  // $5.00 - $0.015 (capture) - $0.015 (o1-plain).
  const balance = await h.call('GET', '/v1/customers/cus_mp_o1/balance');
  expect(balance.body).toMatchObject({ available_usd: '4.970000000', held_usd: '0.000000000' });
});

test('quotes rate embeddings, images, transcription and storage in their own units, exactly', async () => {
  // 10,000 embedding tokens x $0.13/1M = $0.0013.
  expect((await quote('text-embedding-3-large', { embedding_tokens: 10_000 })).body).toMatchObject({
    cost_usd: '0.001300000',
    lines: [{ dimension: 'embedding_tokens', quantity: 10_000, amount_usd: '0.001300000' }],
  });
  // 4 medium 1024x1536 images x $0.063 + 1 low 1024x1024 x $0.011 = $0.252 + $0.011 = $0.263.
  const images = await quote('gpt-image-1', {
    images: [
      { size: '1024x1536', quality: 'medium', count: 4 },
      { size: '1024x1024', quality: 'low', count: 1 },
    ],
  });
  expect(images.body).toMatchObject({
    cost_usd: '0.263000000',
    lines: [
      { dimension: 'images.1024x1024.low', quantity: 1, amount_usd: '0.011000000' },
      { dimension: 'images.1024x1536.medium', quantity: 4, amount_usd: '0.252000000' },
    ],
  });
  // 125 seconds x $0.006 / 60 s = $0.0125.
  expect((await quote('gpt-4o-transcribe', { audio_seconds: 125 })).body).toMatchObject({
    cost_usd: '0.012500000',
    lines: [{ dimension: 'audio_seconds', quantity: 125, amount_usd: '0.012500000' }],
  });
  // 12.25 GB-days x $0.10 = $1.225; the quantity stays an exact decimal string.
  expect((await quote('vector-storage', { storage_gb_days: '12.25' })).body).toMatchObject({
    cost_usd: '1.225000000',
    lines: [{ dimension: 'storage_gb_days', quantity: '12.250000000', amount_usd: '1.225000000' }],
  });
});

test('authorizations, captures and usage events rate every modality, and the usage report groups them by dimension', async () => {
  await h.customer('cus_mp_modal');
  await grant('cus_mp_modal', '10.00');

  // Hold 2 hd 1024x1024 dall-e-3 images (2 x $0.08 = $0.16), then capture the 1 that was made ($0.08).
  const auth = await h.call('POST', '/v1/authorizations', {
    customer_id: 'cus_mp_modal',
    model: 'dall-e-3',
    estimated_usage: { images: [{ size: '1024x1024', quality: 'hd', count: 2 }] },
  });
  expect(auth.status).toBe(201);
  expect(auth.body.hold_usd).toBe('0.160000000');
  const captured = await h.call('POST', `/v1/authorizations/${auth.body.id}/capture`, {
    event_id: 'img-capture',
    usage: { images: [{ size: '1024x1024', quality: 'hd', count: 1 }], feature: 'art' },
  });
  expect(captured.body).toMatchObject({
    status: 'captured',
    cost_usd: '0.080000000',
    released_usd: '0.080000000',
  });

  // Hold a minute of transcription ($0.006), capture 90 seconds: 90 x $0.006 / 60 = $0.009 (the excess is charged).
  const audioAuth = await h.call('POST', '/v1/authorizations', {
    customer_id: 'cus_mp_modal',
    model: 'whisper-1',
    estimated_usage: { audio_seconds: 60 },
  });
  expect(audioAuth.body.hold_usd).toBe('0.006000000');
  const audioCapture = await h.call('POST', `/v1/authorizations/${audioAuth.body.id}/capture`, {
    usage: { audio_seconds: 90 },
  });
  expect(audioCapture.body).toMatchObject({ status: 'captured', cost_usd: '0.009000000' });

  const events = await h.call('POST', '/v1/usage-events', {
    events: [
      // 50,000 x $0.02/1M = $0.001.
      {
        event_id: 'emb',
        customer_id: 'cus_mp_modal',
        model: 'text-embedding-3-small',
        embedding_tokens: 50_000,
      },
      // 1.5 x $0.10 = $0.15 and 0.25 x $0.10 = $0.025.
      { event_id: 'st1', customer_id: 'cus_mp_modal', model: 'vector-storage', storage_gb_days: '1.5' },
      { event_id: 'st2', customer_id: 'cus_mp_modal', model: 'vector-storage', storage_gb_days: '0.25' },
      // 30 seconds x $0.003 / 60 = $0.0015.
      { event_id: 'au', customer_id: 'cus_mp_modal', model: 'gpt-4o-mini-transcribe', audio_seconds: 30 },
      // 3 high 1536x1024 gpt-image-1 images x $0.25 = $0.75.
      {
        event_id: 'img',
        customer_id: 'cus_mp_modal',
        model: 'gpt-image-1',
        images: [{ size: '1536x1024', quality: 'high', count: 3 }],
      },
      // A bad event is rejected alone.
      { event_id: 'bad', customer_id: 'cus_mp_modal', model: 'vector-storage', storage_gb_days: 2 },
    ],
  });
  expect(events.status).toBe(200);
  expect(events.body.data.map((r: { status: string; cost_usd?: string }) => [r.status, r.cost_usd])).toEqual([
    ['accepted', '0.001000000'],
    ['accepted', '0.150000000'],
    ['accepted', '0.025000000'],
    ['accepted', '0.001500000'],
    ['accepted', '0.750000000'],
    ['rejected', undefined],
  ]);
  expect(events.body.data[5].error).toMatchObject({
    code: 'invalid_event',
    param: 'events[5].storage_gb_days',
  });

  // Stored per dimension, each in its own unit: GB-days as an exact decimal string.
  const stored = await h.db('usage_events').where({ customer_id: 'cus_mp_modal', event_id: 'st1' }).first();
  expect(stored.lines).toEqual({ storage_gb_days: ['1.500000000', '150000000'] });

  // $0.08 + $0.009 + $0.001 + $0.15 + $0.025 + $0.0015 + $0.75 = $1.0165.
  const total = '1.016500000';
  const report = await h.call('GET', '/v1/customers/cus_mp_modal/usage?group_by=dimension');
  expect(report.status).toBe(200);
  expect(report.body.total_cost_usd).toBe(total);
  expect(report.body.data).toEqual([
    { dimension: 'audio_seconds', quantity: 120, events: 2, cost_usd: '0.010500000' },
    { dimension: 'embedding_tokens', quantity: 50_000, events: 1, cost_usd: '0.001000000' },
    { dimension: 'images.1024x1024.hd', quantity: 1, events: 1, cost_usd: '0.080000000' },
    { dimension: 'images.1536x1024.high', quantity: 3, events: 1, cost_usd: '0.750000000' },
    { dimension: 'storage_gb_days', quantity: '1.750000000', events: 2, cost_usd: '0.175000000' },
  ]);
  const byModel = await h.call('GET', '/v1/customers/cus_mp_modal/usage?group_by=model,dimension');
  expect(byModel.body.data).toContainEqual({
    model: 'whisper-1',
    dimension: 'audio_seconds',
    quantity: 90,
    events: 1,
    cost_usd: '0.009000000',
  });
  // The report equals the ledger: $10.00 granted, $1.0165 used.
  const balance = await h.call('GET', '/v1/customers/cus_mp_modal/balance');
  expect(balance.body).toMatchObject({ available_usd: '8.983500000', held_usd: '0.000000000' });
});
