import { formatUsd, usd } from '../billing/money';
import { useHarness } from './support/harness';

/**
 * Usage ingestion and aggregation through the API on real PostgreSQL: per-event results, the bad-event matrix,
 * request-level refusals that move nothing, a full 1,000-event batch to the nano, and usage reports that equal
 * the ledger and add up for every grouping.
 */
// A full batch of 1,000 events (and 1,001 for the limit) is larger than the default 64 KiB body limit.
const h = useHarness({ body_limit_bytes: 1024 * 1024 });

const ingest = (events: unknown[]) => h.call('POST', '/v1/usage-events', { events });

const grant = (customer: string, amount_usd: string) => h.fund(customer, amount_usd);

const usageEventCount = () => h.usageEventCount();

async function available(customer: string): Promise<bigint> {
  const [row] = await h.db('wallets').where({ customer_id: customer }).select('available_nanos');
  return row.available_nanos;
}

const sumUsd = (values: string[]) => formatUsd(values.reduce((s, v) => s + usd(v), 0n));

test('ingestion answers each event in order: accepted with its cost, duplicate within and across batches', async () => {
  await h.customer('cus_ue_ingest');
  await grant('cus_ue_ingest', '1.00');
  const e = (event_id: string, extra: Record<string, unknown> = {}) => ({
    event_id,
    customer_id: 'cus_ue_ingest',
    model: 'gpt-4o',
    input_tokens: 1000,
    ...extra,
  });
  const first = await ingest([e('a'), e('b', { output_tokens: 10 }), e('a'), e('c', { feature: 'chat' })]);
  expect(first.status).toBe(200);
  expect(first.body).toEqual({
    data: [
      { event_id: 'a', status: 'accepted', cost_usd: '0.002500000' },
      { event_id: 'b', status: 'accepted', cost_usd: '0.002600000' },
      { event_id: 'a', status: 'duplicate' },
      { event_id: 'c', status: 'accepted', cost_usd: '0.002500000' },
    ],
    accepted: 3,
    duplicate: 1,
    rejected: 0,
  });
  const after = await available('cus_ue_ingest');
  expect(after).toBe(usd('1.00') - usd('0.0076'));
  // The same ids again, even with other counts, are duplicates forever and charge nothing.
  const before = await h.moneySnapshot();
  const again = await ingest([e('a', { input_tokens: 5 }), e('c')]);
  expect(again.body).toMatchObject({ accepted: 0, duplicate: 2, rejected: 0 });
  expect(await h.moneySnapshot()).toBe(before);
  const rows = await h.db('usage_events').where({ customer_id: 'cus_ue_ingest' }).orderBy('event_id');
  expect(rows).toEqual([
    expect.objectContaining({
      event_id: 'a',
      cost_nanos: usd('0.0025'),
      feature: null,
      processing: 'standard',
    }),
    expect.objectContaining({ event_id: 'b', cost_nanos: usd('0.0026') }),
    expect.objectContaining({ event_id: 'c', cost_nanos: usd('0.0025'), feature: 'chat' }),
  ]);
  // One ledger entry for the batch, charging exactly its accepted events.
  const entries = await h.db('ledger_entries').where({ customer_id: 'cus_ue_ingest', kind: 'usage' });
  expect(entries.map((x: { amount_nanos: bigint }) => x.amount_nanos)).toEqual([-usd('0.0076')]);
});

test('a keyed batch whose bad event has a NUL in its id is 200, echoes that id as null, and replays', async () => {
  // Found by the HTTP fuzzer: the rejected event's id was echoed into the response stored under the
  // Idempotency-Key, and PostgreSQL's jsonb refuses a NUL, so the whole batch answered 500.
  await h.customer('cus_ue_nul');
  await grant('cus_ue_nul', '1.00');
  const body = {
    events: [
      { event_id: 'nul-ok', customer_id: 'cus_ue_nul', model: 'gpt-5.4', input_tokens: 1000 },
      { event_id: 'bad\u0000id', customer_id: 'cus_ue_nul', model: 'gpt-5.4', input_tokens: 1 },
      { event_id: 'bad\ud800id', customer_id: 'cus_ue_nul', model: 'gpt-5.4', input_tokens: 1 },
    ],
  };
  const first = await h.call('POST', '/v1/usage-events', body, { 'Idempotency-Key': 'ue-nul-1' });
  expect(first.status).toBe(200);
  expect(first.body).toMatchObject({ accepted: 1, rejected: 2 });
  expect(first.body.data[1]).toMatchObject({
    event_id: null,
    status: 'rejected',
    error: { code: 'invalid_event', param: 'events[1].event_id' },
  });
  expect(first.body.data[2]).toMatchObject({ event_id: null, status: 'rejected' });
  const replay = await h.call('POST', '/v1/usage-events', body, { 'Idempotency-Key': 'ue-nul-1' });
  expect(replay.headers.get('Idempotency-Replayed')).toBe('true');
  expect(replay.body).toEqual(first.body);
  expect(await available('cus_ue_nul')).toBe(usd('1.00') - usd('0.0025'));
});

test('bad events are rejected one by one with a code and the field, and a batch of only bad events touches nothing', async () => {
  await h.customer('cus_ue_bad');
  await grant('cus_ue_bad', '1.00');
  const ok = { customer_id: 'cus_ue_bad', model: 'gpt-5.4' };
  const future = new Date(Date.now() + 3_600_000).toISOString();
  const cases: { event: unknown; event_id: string | null; code: string; param: string }[] = [
    {
      event: { event_id: 'neg', ...ok, input_tokens: -1 },
      event_id: 'neg',
      code: 'invalid_event',
      param: 'input_tokens',
    },
    {
      event: { event_id: 'frac', ...ok, output_tokens: 1.5 },
      event_id: 'frac',
      code: 'invalid_event',
      param: 'output_tokens',
    },
    {
      event: { event_id: 'str', ...ok, input_tokens: '10' },
      event_id: 'str',
      code: 'invalid_event',
      param: 'input_tokens',
    },
    {
      event: { event_id: 'big', ...ok, input_tokens: 1e13 },
      event_id: 'big',
      code: 'invalid_event',
      param: 'input_tokens',
    },
    {
      event: { event_id: 'tool-neg', ...ok, tool_calls: { web_search: -1 } },
      event_id: 'tool-neg',
      code: 'invalid_event',
      param: 'tool_calls.web_search',
    },
    {
      event: { event_id: 'model', customer_id: 'cus_ue_bad', model: 'gpt-9', input_tokens: 1 },
      event_id: 'model',
      code: 'unknown_model',
      param: 'model',
    },
    {
      event: { event_id: 'dim', customer_id: 'cus_ue_bad', model: 'o1', audio_input_tokens: 1 },
      event_id: 'dim',
      code: 'dimension_not_priced',
      param: 'audio_input_tokens',
    },
    {
      event: { event_id: 'tool', ...ok, tool_calls: { code_interpreter: 1 } },
      event_id: 'tool',
      code: 'unknown_tool',
      param: 'tool_calls.code_interpreter',
    },
    { event: { ...ok, input_tokens: 1 }, event_id: null, code: 'invalid_event', param: 'event_id' },
    {
      event: { event_id: '', ...ok, input_tokens: 1 },
      event_id: '',
      code: 'invalid_event',
      param: 'event_id',
    },
    {
      event: { event_id: 'has space', ...ok, input_tokens: 1 },
      event_id: 'has space',
      code: 'invalid_event',
      param: 'event_id',
    },
    {
      event: { event_id: 'nocus', model: 'gpt-5.4', input_tokens: 1 },
      event_id: 'nocus',
      code: 'invalid_event',
      param: 'customer_id',
    },
    {
      event: { event_id: 'nomodel', customer_id: 'cus_ue_bad', input_tokens: 1 },
      event_id: 'nomodel',
      code: 'invalid_event',
      param: 'model',
    },
    {
      event: { event_id: 'ghost', customer_id: 'cus_ue_ghost', model: 'gpt-5.4', input_tokens: 1 },
      event_id: 'ghost',
      code: 'unknown_customer',
      param: 'customer_id',
    },
    {
      event: { event_id: 'future', ...ok, input_tokens: 1, timestamp: future },
      event_id: 'future',
      code: 'timestamp_in_future',
      param: 'timestamp',
    },
    {
      event: { event_id: 'old', ...ok, input_tokens: 1, timestamp: '2026-10-31T23:59:59Z' },
      event_id: 'old',
      code: 'no_price_in_force',
      param: 'model',
    },
    {
      event: { event_id: 'when', ...ok, input_tokens: 1, timestamp: 'yesterday' },
      event_id: 'when',
      code: 'invalid_event',
      param: 'timestamp',
    },
    {
      event: { event_id: 'mode', ...ok, input_tokens: 1, processing: 'turbo' },
      event_id: 'mode',
      code: 'invalid_event',
      param: 'processing',
    },
    {
      event: { event_id: 'extra', ...ok, input_tokens: 1, tokens: 5 },
      event_id: 'extra',
      code: 'invalid_event',
      param: 'tokens',
    },
    {
      event: { event_id: 'feat', ...ok, input_tokens: 1, feature: '' },
      event_id: 'feat',
      code: 'invalid_event',
      param: 'feature',
    },
    { event: null, event_id: null, code: 'invalid_event', param: '' },
    { event: 'an event', event_id: null, code: 'invalid_event', param: '' },
  ];
  const before = await h.moneySnapshot();
  const eventsBefore = await usageEventCount();
  const response = await ingest(cases.map((c) => c.event));
  expect(response.status).toBe(200);
  expect(response.body).toMatchObject({ accepted: 0, duplicate: 0, rejected: cases.length });
  cases.forEach((c, i) => {
    const param = c.param === '' ? `events[${i}]` : `events[${i}].${c.param}`;
    expect(response.body.data[i]).toEqual({
      event_id: c.event_id,
      status: 'rejected',
      error: { code: c.code, message: expect.any(String), param },
    });
  });
  expect(await h.moneySnapshot()).toBe(before);
  expect(await usageEventCount()).toBe(eventsBefore);

  // Mixed with good events, the bad ones still charge nothing: one entry charges exactly the good ones.
  const mixed = await ingest([
    { event_id: 'good-1', ...ok, input_tokens: 1000 },
    ...cases.map((c) => c.event),
    { event_id: 'good-2', ...ok, output_tokens: 1000 },
  ]);
  expect(mixed.body).toMatchObject({ accepted: 2, rejected: cases.length });
  expect(await available('cus_ue_bad')).toBe(usd('1.00') - usd('0.0175'));
  const entries = await h
    .db('ledger_entries')
    .where({ customer_id: 'cus_ue_bad' })
    .whereNot({ kind: 'credit_grant' });
  expect(entries.map((x: { kind: string; amount_nanos: bigint }) => [x.kind, x.amount_nanos])).toEqual([
    ['usage', -usd('0.0175')],
  ]);
  expect(await h.db('usage_events').where({ customer_id: 'cus_ue_bad' }).pluck('event_id')).toEqual(
    expect.arrayContaining(['good-1', 'good-2']),
  );
  expect(await usageEventCount()).toBe(eventsBefore + 2);

  // A rejected event was never recorded, so its id is free: sent again correctly, it is accepted.
  const fixed = await ingest([{ event_id: 'model', ...ok, input_tokens: 1 }]);
  expect(fixed.body.data[0]).toEqual({ event_id: 'model', status: 'accepted', cost_usd: '0.000002500' });
});

test('more than 1,000 events, no events, or a malformed request is a 400 that records and moves nothing', async () => {
  await h.customer('cus_ue_limit');
  await grant('cus_ue_limit', '1.00');
  const event = (i: number) => ({
    event_id: `lim-${i}`,
    customer_id: 'cus_ue_limit',
    model: 'gpt-5.4-nano',
    input_tokens: 1,
  });
  const before = await h.moneySnapshot();
  const eventsBefore = await usageEventCount();
  const tooMany = await ingest(Array.from({ length: 1001 }, (_, i) => event(i)));
  expect(tooMany.status).toBe(400);
  expect(tooMany.body.error).toMatchObject({ type: 'invalid_request', param: 'events' });
  expect(tooMany.body.error.message).toMatch(/1000/);
  const bodies: unknown[] = [
    { events: [] },
    {},
    { events: 'lim-1' },
    { events: event(1) },
    { events: [event(1)], dry_run: true },
    [event(1)],
  ];
  for (const body of bodies) {
    const response = await h.call('POST', '/v1/usage-events', body);
    expect({ body, status: response.status, type: response.body.error?.type }).toEqual({
      body,
      status: 400,
      type: 'invalid_request',
    });
  }
  expect(await h.moneySnapshot()).toBe(before);
  expect(await usageEventCount()).toBe(eventsBefore);
});

test('1,000 events of 100 cached gpt-5.4-nano tokens in one batch total exactly 0.002000000 in usage and ledger', async () => {
  await h.customer('cus_ue_nano');
  await grant('cus_ue_nano', '1.00');
  const events = Array.from({ length: 1000 }, (_, i) => ({
    event_id: `nano-${i}`,
    customer_id: 'cus_ue_nano',
    model: 'gpt-5.4-nano',
    cached_input_tokens: 100,
  }));
  const response = await ingest(events);
  expect(response.status).toBe(200);
  expect(response.body).toMatchObject({ accepted: 1000, duplicate: 0, rejected: 0 });
  expect(response.body.data.every((r: { cost_usd: string }) => r.cost_usd === '0.000002000')).toBe(true);

  const usage = await h.call('GET', '/v1/customers/cus_ue_nano/usage?group_by=model,dimension');
  expect(usage.body).toMatchObject({ total_cost_usd: '0.002000000', total_events: 1000 });
  expect(usage.body.data).toEqual([
    {
      model: 'gpt-5.4-nano',
      dimension: 'cached_input_tokens',
      quantity: 100_000,
      events: 1000,
      cost_usd: '0.002000000',
    },
  ]);
  const entries = await h.db('ledger_entries').where({ customer_id: 'cus_ue_nano', kind: 'usage' });
  expect(entries.map((e: { amount_nanos: bigint }) => formatUsd(-e.amount_nanos))).toEqual(['0.002000000']);
  const balance = await h.call('GET', '/v1/customers/cus_ue_nano/balance');
  expect(balance.body.available_usd).toBe('0.998000000');
});

const GROUPS = ['model', 'dimension', 'feature', 'day'] as const;
/** Every non-empty subset of the groupings, in declaration order. */
const COMBINATIONS = Array.from({ length: 15 }, (_, mask) =>
  GROUPS.filter((_, bit) => ((mask + 1) >> bit) & 1),
);

test('usage aggregation equals the ledger usage and capture debits for the window, and group sums add up for every group_by', async () => {
  await h.customer('cus_ue_agg');
  await h.customer('cus_ue_other');
  await grant('cus_ue_agg', '100.00');
  await grant('cus_ue_other', '100.00');
  const day = (d: number, hour = 12) =>
    `2026-11-${String(d).padStart(2, '0')}T${String(hour).padStart(2, '0')}:30:00Z`;
  // Models that price cached input (o1 does not: the seed gives it no cached-input price).
  const models = ['gpt-5.4', 'gpt-5.4-mini', 'gpt-4o', 'gpt-4o-mini'];
  const features = ['chat', 'search', undefined];
  const events = Array.from({ length: 60 }, (_, i) => ({
    event_id: `agg-${i}`,
    customer_id: 'cus_ue_agg',
    model: models[i % models.length]!,
    input_tokens: 1000 + 37 * i,
    ...(i % 2 === 0 ? { output_tokens: 300 + 11 * i } : {}),
    ...(i % 3 === 0 ? { cached_input_tokens: 777 } : {}),
    ...(i % 5 === 0 ? { tool_calls: { web_search: 1 + (i % 3) } } : {}),
    ...(i % 7 === 0 ? { processing: 'batch' } : {}),
    ...(features[i % 3] ? { feature: features[i % 3] } : {}),
    ...(i % 4 === 3 ? {} : { timestamp: day(2 + (i % 6), i % 24) }),
  }));
  // A usage with nothing in it (zero cost), and another customer's events in the same batches.
  events.push({ event_id: 'agg-empty', customer_id: 'cus_ue_agg', model: 'gpt-5.4', input_tokens: 0 });
  const others = Array.from({ length: 10 }, (_, i) => ({
    event_id: `agg-${i}`,
    customer_id: 'cus_ue_other',
    model: 'gpt-5.4',
    input_tokens: 5000,
  }));
  const first = await ingest([...events.slice(0, 30), ...others]);
  const second = await ingest(events.slice(30));
  expect(first.body.rejected + second.body.rejected).toBe(0);
  // Captured usage counts too (occurred now, as does the ledger entry).
  for (const usage of [{ input_tokens: 2000, output_tokens: 100, feature: 'chat' }, { output_tokens: 50 }]) {
    const auth = await h.call('POST', '/v1/authorizations', {
      customer_id: 'cus_ue_agg',
      model: 'gpt-5.4-mini',
      estimated_usage: { input_tokens: 2000, output_tokens: 1000 },
    });
    const captured = await h.call('POST', `/v1/authorizations/${auth.body.id}/capture`, { usage });
    expect(captured.status).toBe(200);
  }
  const voided = await h.call('POST', '/v1/authorizations', {
    customer_id: 'cus_ue_agg',
    model: 'gpt-5.4',
    estimated_usage: { input_tokens: 10 },
  });
  await h.call('POST', `/v1/authorizations/${voided.body.id}/void`);

  const from = '2026-11-01T00:00:00Z';
  const to = new Date(Date.now() + 3_600_000).toISOString();
  const [ledger] = (
    await h.db.raw(
      `SELECT -COALESCE(sum(p.amount_nanos), 0)::bigint AS debits,
              (SELECT COALESCE(sum(r.amount_nanos), 0)::bigint FROM ledger_postings r JOIN ledger_entries re
                 ON re.id = r.entry_id WHERE r.account = 'revenue' AND re.customer_id = ?
                 AND re.kind IN ('usage', 'capture') AND re.created_at >= ? AND re.created_at < ?) AS revenue
       FROM ledger_entries e JOIN ledger_postings p ON p.entry_id = e.id AND p.account IN ('available', 'held')
       WHERE e.customer_id = ? AND e.kind IN ('usage', 'capture') AND e.created_at >= ? AND e.created_at < ?`,
      ['cus_ue_agg', from, to, 'cus_ue_agg', from, to],
    )
  ).rows as { debits: bigint; revenue: bigint }[];
  expect(ledger!.debits).toBeGreaterThan(0n);
  expect(ledger!.revenue).toBe(ledger!.debits);
  const eventCount = events.length + 2;

  const query = (params: Record<string, string>) =>
    h.call('GET', `/v1/customers/cus_ue_agg/usage?${new URLSearchParams({ from, to, ...params })}`);
  const totals = await query({});
  expect(totals.status).toBe(200);
  expect(totals.body).toMatchObject({
    object: 'usage',
    customer_id: 'cus_ue_agg',
    total_cost_usd: formatUsd(ledger!.debits),
    total_events: eventCount,
    group_by: [],
    data: [],
  });
  // The default window is this UTC month (by when the usage occurred), whatever month the suite runs in.
  const now = new Date();
  const monthStart = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)).toISOString();
  const thisMonth = await h.call('GET', '/v1/customers/cus_ue_agg/usage');
  expect(thisMonth.body).toMatchObject({ from: monthStart });
  expect(thisMonth.body.total_cost_usd).toBe(
    (await query({ from: monthStart, to: thisMonth.body.to })).body.total_cost_usd,
  );

  for (const groups of COMBINATIONS) {
    const response = await query({ group_by: groups.join(',') });
    expect(response.status).toBe(200);
    const { body } = response;
    expect(body.group_by).toEqual(groups);
    expect(body.total_cost_usd).toBe(formatUsd(ledger!.debits));
    expect(body.total_events).toBe(eventCount);
    expect({ groups, sum: sumUsd(body.data.map((g: { cost_usd: string }) => g.cost_usd)) }).toEqual({
      groups,
      sum: body.total_cost_usd,
    });
    // Without dimension each event is in exactly one group; with it, in one group per dimension it used.
    if (!groups.includes('dimension')) {
      expect(body.data.reduce((s: number, g: { events: number }) => s + g.events, 0)).toBe(eventCount);
    }
    const keys = body.data.map((g: Record<string, unknown>) => JSON.stringify(groups.map((k) => g[k])));
    expect(new Set(keys).size).toBe(keys.length);
    for (const g of body.data)
      expect(Object.keys(g).sort()).toEqual(
        [...groups, 'events', 'cost_usd', ...(groups.includes('dimension') ? ['quantity'] : [])].sort(),
      );
  }
  // Order of group_by does not change the groups.
  const reversed = await query({ group_by: 'day,feature,model' });
  const forward = await query({ group_by: 'model,feature,day' });
  expect(new Set(reversed.body.data.map((g: object) => JSON.stringify(g, Object.keys(g).sort())))).toEqual(
    new Set(forward.body.data.map((g: object) => JSON.stringify(g, Object.keys(g).sort()))),
  );

  // Groups carry the right keys: per day and per feature (with untagged usage as null), and per dimension the
  // quantities are the tokens sent.
  const byDay = await query({ group_by: 'day' });
  const today = new Date().toISOString().slice(0, 10);
  expect(byDay.body.data.map((g: { day: string }) => g.day)).toEqual(
    [...new Set([...[2, 3, 4, 5, 6, 7].map((d) => day(d).slice(0, 10)), today])].sort(),
  );
  const byFeature = await query({ group_by: 'feature' });
  expect(byFeature.body.data.map((g: { feature: string | null }) => g.feature)).toEqual([
    'chat',
    'search',
    null,
  ]);
  const byDimension = await query({ group_by: 'dimension' });
  const inputTokens =
    events.reduce((s, e) => s + ((e as { input_tokens?: number }).input_tokens ?? 0), 0) + 2000;
  expect(
    byDimension.body.data.find((g: { dimension: string }) => g.dimension === 'input_tokens').quantity,
  ).toBe(inputTokens);

  // A narrower window holds exactly the events that occurred in it.
  const narrow = await query({ from: '2026-11-03T00:00:00Z', to: '2026-11-05T00:00:00Z', group_by: 'day' });
  const [inWindow] = (
    await h.db.raw(
      `SELECT count(*)::int AS n, COALESCE(sum(cost_nanos), 0)::bigint AS total FROM usage_events
       WHERE customer_id = 'cus_ue_agg' AND occurred_at >= '2026-11-03T00:00:00Z' AND occurred_at < '2026-11-05T00:00:00Z'`,
    )
  ).rows as { n: number; total: bigint }[];
  expect(inWindow!.n).toBeGreaterThan(0);
  expect(narrow.body).toMatchObject({
    total_cost_usd: formatUsd(inWindow!.total),
    total_events: inWindow!.n,
  });
  expect(narrow.body.data.map((g: { day: string }) => g.day)).toEqual(['2026-11-03', '2026-11-04']);
  expect(usd(narrow.body.total_cost_usd)).toBeLessThan(ledger!.debits);

  // Bad queries are 400s; an unknown customer is a 404.
  for (const q of [
    'group_by=customer',
    'group_by=model,',
    `from=${to}&to=${from}`,
    'from=yesterday',
    'page=2',
  ]) {
    expect((await h.call('GET', `/v1/customers/cus_ue_agg/usage?${q}`)).status).toBe(400);
  }
  expect((await h.call('GET', '/v1/customers/cus_ue_ghost/usage')).status).toBe(404);
});
