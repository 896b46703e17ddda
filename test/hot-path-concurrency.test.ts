import { formatUsd, usd } from '../billing/money';
import { useHarness } from './support/harness';

/**
 * The hot path under real concurrency on real PostgreSQL, through HTTP: simultaneous authorizations never
 * overdraw, simultaneous captures, voids and ingestion on one customer charge everything exactly once, and
 * simultaneous replays of one event id charge it once.
 */
const h = useHarness();

/** gpt-5.4: 1,000 input (0.0025) + 1,000 output (0.015) tokens. */
const ESTIMATE = { input_tokens: 1000, output_tokens: 1000 };
const HOLD = usd('0.0175');

const grant = (customer: string, amount_nanos: bigint) => h.fund(customer, formatUsd(amount_nanos));

async function wallet(customer: string): Promise<{ available: bigint; held: bigint }> {
  const [row] = await h
    .db('wallets')
    .where({ customer_id: customer })
    .select('available_nanos', 'held_nanos');
  return { available: row.available_nanos, held: row.held_nanos };
}

const authorize = (customer_id: string, estimated_usage: Record<string, unknown> = ESTIMATE) =>
  h.call('POST', '/v1/authorizations', { customer_id, model: 'gpt-5.4', estimated_usage });
const capture = (id: string, usage: Record<string, unknown>, event_id?: string) =>
  h.call('POST', `/v1/authorizations/${id}/capture`, { usage, ...(event_id ? { event_id } : {}) });
const ingest = (events: Record<string, unknown>[]) => h.call('POST', '/v1/usage-events', { events });

type Entry = { id: bigint; kind: string; amount_nanos: bigint; balance_after_nanos: bigint | null };

async function entriesOf(customer: string): Promise<Entry[]> {
  return h.db('ledger_entries').where({ customer_id: customer }).orderBy('id');
}

/**
 * The customer's entries, in id order, form one unbroken chain (each balance_after is the previous one plus the
 * entry's amount): every movement saw the one before it, so no two interleaved on the wallet.
 */
function expectUnbrokenChain(entries: Entry[]): void {
  let balance = 0n;
  const breaks: string[] = [];
  for (const e of entries) {
    balance += e.amount_nanos;
    if (e.balance_after_nanos !== balance)
      breaks.push(`${e.id} ${e.kind}: ${e.balance_after_nanos} vs ${balance}`);
    balance = e.balance_after_nanos ?? balance;
  }
  expect(breaks).toEqual([]);
}

function countBy<T>(items: T[], key: (item: T) => string | number): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1;
  return counts;
}

const N = 137;
const RACERS = 500;
let raceIds: string[] = [];

test(`500 simultaneous authorizations against a balance covering exactly ${N} yield exactly ${N} holds and never overdraw`, async () => {
  await h.customer('cus_hp_race');
  // One nano short of N + 1 holds.
  const funded = BigInt(N) * HOLD + HOLD - 1n;
  await grant('cus_hp_race', funded);

  const responses = await Promise.all(Array.from({ length: RACERS }, () => authorize('cus_hp_race')));

  expect(countBy(responses, (r) => r.status)).toEqual({ 201: N, 402: RACERS - N });
  const held = responses.filter((r) => r.status === 201);
  const refused = responses.filter((r) => r.status === 402);
  for (const r of held) expect(r.body).toMatchObject({ status: 'held', hold_usd: formatUsd(HOLD) });
  for (const r of refused) {
    expect(r.body.error).toMatchObject({ type: 'insufficient_balance', code: 'insufficient_balance' });
    // A refusal saw less than one hold left, and never a negative balance.
    const available = usd(r.body.error.available_usd);
    expect(available >= 0n && available < HOLD).toBe(true);
  }
  raceIds = held.map((r) => r.body.id as string);
  expect(new Set(raceIds).size).toBe(N);

  expect(await wallet('cus_hp_race')).toEqual({ available: HOLD - 1n, held: BigInt(N) * HOLD });
  const rows = await h
    .db('authorizations')
    .where({ customer_id: 'cus_hp_race' })
    .select('id', 'status', 'hold_nanos');
  expect(rows).toHaveLength(N);
  expect(new Set(rows.map((r: { id: string }) => r.id))).toEqual(new Set(raceIds));
  const entries = await entriesOf('cus_hp_race');
  const holds = entries.filter((e) => e.kind === 'hold');
  expect(holds).toHaveLength(N);
  // Each hold saw the previous one: the balances after them are exactly funded - k * HOLD, k = 1..N, all >= 0.
  expect(holds.map((e) => e.balance_after_nanos)).toEqual(
    Array.from({ length: N }, (_, k) => funded - BigInt(k + 1) * HOLD),
  );
  expect(holds.every((e) => e.balance_after_nanos !== null && e.balance_after_nanos >= 0n)).toBe(true);
  expectUnbrokenChain(entries);
});

test('concurrent captures (each sent twice) and capture-versus-void races on one customer settle every hold exactly once', async () => {
  expect(raceIds).toHaveLength(N);
  const before = await wallet('cus_hp_race');
  // Less than, equal to and more than the hold; every fourth authorization is captured and voided at once.
  const usages = [
    { usage: { input_tokens: 1000, output_tokens: 500 }, cost: usd('0.01') },
    { usage: ESTIMATE, cost: HOLD },
    { usage: { input_tokens: 1000, output_tokens: 2000 }, cost: usd('0.0325') },
  ];
  const plan = raceIds.map((id, i) => ({ id, race: i % 4 === 3, ...usages[i % 3]! }));
  const requests = plan.flatMap((p) =>
    p.race
      ? [capture(p.id, p.usage), h.call('POST', `/v1/authorizations/${p.id}/void`)]
      : [capture(p.id, p.usage), capture(p.id, p.usage)],
  );
  const responses = await Promise.all(requests);

  let expectedDelta = 0n;
  for (let i = 0; i < plan.length; i++) {
    const p = plan[i]!;
    const [first, second] = [responses[2 * i]!, responses[2 * i + 1]!];
    const stored = await h.call('GET', `/v1/authorizations/${p.id}`);
    if (!p.race) {
      // Both captures answer with the one stored result.
      expect([first.status, second.status]).toEqual([200, 200]);
      expect(second.body).toEqual(first.body);
      expect(stored.body).toEqual(first.body);
      expect(first.body.cost_usd).toBe(formatUsd(p.cost));
      expectedDelta += HOLD - p.cost;
    } else if (stored.body.status === 'captured') {
      expect([first.status, second.status, second.body.error?.code]).toEqual([
        200,
        409,
        'authorization_captured',
      ]);
      expectedDelta += HOLD - p.cost;
    } else {
      expect(stored.body.status).toBe('voided');
      expect([first.status, first.body.error?.code, second.status]).toEqual([
        409,
        'authorization_voided',
        200,
      ]);
      expectedDelta += HOLD;
    }
  }
  expect(await wallet('cus_hp_race')).toEqual({ available: before.available + expectedDelta, held: 0n });
  const entries = await entriesOf('cus_hp_race');
  expect(countBy(entries, (e) => e.kind)).toMatchObject({
    hold: N,
    ...countBy(await h.db('authorizations').where({ customer_id: 'cus_hp_race' }), (a: { status: string }) =>
      a.status === 'captured' ? 'capture' : 'release',
    ),
  });
  const events = await h.db('usage_events').where({ customer_id: 'cus_hp_race' });
  expect(events.length).toBe(entries.filter((e) => e.kind === 'capture').length);
  expectUnbrokenChain(entries);
});

test('concurrent ingestion batches on one customer (some shared with another) charge every event exactly once', async () => {
  await h.customer('cus_hp_ing_a');
  await h.customer('cus_hp_ing_b');
  await grant('cus_hp_ing_a', usd('100.00'));
  await grant('cus_hp_ing_b', usd('100.00'));
  const BATCHES = 40;
  const PER_BATCH = 25;
  const expected: Record<string, bigint> = { cus_hp_ing_a: 0n, cus_hp_ing_b: 0n };
  const batches = Array.from({ length: BATCHES }, (_, b) =>
    Array.from({ length: PER_BATCH }, (_, k) => {
      // Odd batches put B first, so batches lock the two wallets in different request orders.
      const customer_id =
        b % 2 === 0 ? (k < 5 ? 'cus_hp_ing_b' : 'cus_hp_ing_a') : k < 20 ? 'cus_hp_ing_b' : 'cus_hp_ing_a';
      const tokens = b * PER_BATCH + k + 1;
      expected[customer_id]! += BigInt(tokens) * 200n + 10_000_000n * BigInt(k % 2); // nano input + a search
      return {
        event_id: `ing-${b}-${k}`,
        customer_id,
        model: 'gpt-5.4-nano',
        input_tokens: tokens,
        ...(k % 2 === 1 ? { tool_calls: { web_search: 1 } } : {}),
      };
    }),
  );
  const responses = await Promise.all(batches.map((events) => ingest(events)));
  for (const r of responses) {
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ accepted: PER_BATCH, duplicate: 0, rejected: 0 });
  }
  for (const customer of ['cus_hp_ing_a', 'cus_hp_ing_b']) {
    expect(await wallet(customer)).toEqual({ available: usd('100.00') - expected[customer]!, held: 0n });
    const entries = await entriesOf(customer);
    expect(entries.filter((e) => e.kind === 'usage')).toHaveLength(BATCHES);
    expectUnbrokenChain(entries);
    const [sum] = await h
      .db('usage_events')
      .where({ customer_id: customer })
      .select(h.db.raw('count(*)::int AS n, sum(cost_nanos)::bigint AS total'));
    expect(sum.total).toBe(expected[customer]);
  }
});

test('captures, ingestion and new authorizations racing on one customer all land exactly', async () => {
  await h.customer('cus_hp_mix');
  await grant('cus_hp_mix', usd('100.00'));
  const pre = await Promise.all(Array.from({ length: 100 }, () => authorize('cus_hp_mix')));
  expect(pre.every((r) => r.status === 201)).toBe(true);

  const captures = pre.map((r) => capture(r.body.id, { input_tokens: 1000, output_tokens: 500 }));
  // Each request: five events of 1,000 gpt-4o-mini output tokens (0.0006 each).
  const ingests = Array.from({ length: 100 }, (_, i) =>
    ingest(
      Array.from({ length: 5 }, (_, k) => ({
        event_id: `mix-${i}-${k}`,
        customer_id: 'cus_hp_mix',
        model: 'gpt-4o-mini',
        output_tokens: 1000,
      })),
    ),
  );
  const holds = Array.from({ length: 100 }, () => authorize('cus_hp_mix'));
  const [captured, ingested, held] = await Promise.all([
    Promise.all(captures),
    Promise.all(ingests),
    Promise.all(holds),
  ]);
  expect(captured.every((r) => r.status === 200 && r.body.cost_usd === '0.010000000')).toBe(true);
  expect(ingested.every((r) => r.status === 200 && r.body.accepted === 5)).toBe(true);
  expect(held.every((r) => r.status === 201)).toBe(true);

  // 100 - 1.00 captured - 0.30 ingested - 1.75 newly held.
  expect(await wallet('cus_hp_mix')).toEqual({ available: usd('96.95'), held: 100n * HOLD });
  const entries = await entriesOf('cus_hp_mix');
  expect(countBy(entries, (e) => e.kind)).toEqual({ credit_grant: 1, hold: 200, capture: 100, usage: 100 });
  expectUnbrokenChain(entries);
});

test('concurrent replays of one event_id in separate requests charge it exactly once', async () => {
  await h.customer('cus_hp_replay');
  await grant('cus_hp_replay', usd('10.00'));
  const REPLAYS = 50;
  // Every request carries the replayed event (with a different count each time) and one event of its own.
  const responses = await Promise.all(
    Array.from({ length: REPLAYS }, (_, i) =>
      ingest([
        { event_id: 'evt-replayed', customer_id: 'cus_hp_replay', model: 'gpt-5.4', input_tokens: 1000 + i },
        { event_id: `own-${i}`, customer_id: 'cus_hp_replay', model: 'gpt-5.4', output_tokens: 100 },
      ]),
    ),
  );
  expect(responses.every((r) => r.status === 200)).toBe(true);
  const replayed = responses.map((r) => r.body.data[0]);
  expect(countBy(replayed, (d: { status: string }) => d.status)).toEqual({
    accepted: 1,
    duplicate: REPLAYS - 1,
  });
  for (const r of responses)
    expect(r.body.data[1]).toMatchObject({ status: 'accepted', cost_usd: '0.001500000' });
  const winner = replayed.find((d: { status: string }) => d.status === 'accepted');
  const [row] = await h.db('usage_events').where({ customer_id: 'cus_hp_replay', event_id: 'evt-replayed' });
  expect(formatUsd(row.cost_nanos)).toBe(winner.cost_usd);
  expect(await wallet('cus_hp_replay')).toEqual({
    available: usd('10.00') - row.cost_nanos - BigInt(REPLAYS) * usd('0.0015'),
    held: 0n,
  });
  expect(await h.db('usage_events').where({ customer_id: 'cus_hp_replay' })).toHaveLength(REPLAYS + 1);
  expectUnbrokenChain(await entriesOf('cus_hp_replay'));
});

test('an event_id raced between a capture and an ingestion is recorded by exactly one of them', async () => {
  await h.customer('cus_hp_race_evt');
  await grant('cus_hp_race_evt', usd('10.00'));
  const PAIRS = 20;
  const auths = await Promise.all(Array.from({ length: PAIRS }, () => authorize('cus_hp_race_evt')));
  const results = await Promise.all(
    auths.map(async (a, i) => {
      const event_id = `shared-${i}`;
      const [cap, ing] = await Promise.all([
        capture(a.body.id, ESTIMATE, event_id),
        ingest([{ event_id, customer_id: 'cus_hp_race_evt', model: 'gpt-5.4', input_tokens: 1000 }]),
      ]);
      return { cap, ing };
    }),
  );
  let expectedAvailable = usd('10.00') - BigInt(PAIRS) * HOLD;
  let expectedHeld = BigInt(PAIRS) * HOLD;
  for (const { cap, ing } of results) {
    const ingested = ing.body.data[0].status;
    if (cap.status === 200) {
      // The capture won: it charged exactly its hold (nothing released), and the ingested copy was a duplicate.
      expect(ingested).toBe('duplicate');
      expectedHeld -= HOLD;
    } else {
      expect([cap.status, cap.body.error.code, ingested]).toEqual([409, 'duplicate_event', 'accepted']);
      expectedAvailable -= usd('0.0025');
    }
  }
  expect(await wallet('cus_hp_race_evt')).toEqual({ available: expectedAvailable, held: expectedHeld });
  expect(await h.db('usage_events').where({ customer_id: 'cus_hp_race_evt' })).toHaveLength(PAIRS);
  expectUnbrokenChain(await entriesOf('cus_hp_race_evt'));
});
