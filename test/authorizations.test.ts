import { randomUUID } from 'node:crypto';
import { formatUsd, usd } from '../billing/money';
import { eventually } from './support/eventually';
import { useHarness } from './support/harness';

/**
 * Authorizations end to end on real PostgreSQL and Temporal: holds, captures (less, equal and more than held),
 * voids, idempotent retries, expiry by the sweep workflow, duplicate event ids, and the negative balance that
 * usage-only events and excess captures may leave behind.
 */
const h = useHarness();

/** gpt-5.4: 1,000 input (0.0025) + 1,000 output (0.015) tokens. */
const ESTIMATE = { input_tokens: 1000, output_tokens: 1000 };
const HOLD = usd('0.0175');

const grant = (customer: string, amount_usd: string) => h.fund(customer, amount_usd);

async function balanceOf(customer: string): Promise<{ available: bigint; held: bigint }> {
  const response = await h.call('GET', `/v1/customers/${customer}/balance`);
  if (response.status !== 200) throw new Error(`balance: ${response.status}`);
  return { available: parseSigned(response.body.available_usd), held: usd(response.body.held_usd) };
}

/** The API formats negative balances with a leading minus; `usd` only parses non-negative input. */
function parseSigned(text: string): bigint {
  return text.startsWith('-') ? -usd(text.slice(1)) : usd(text);
}

async function authorize(
  customer_id: string,
  estimated_usage: Record<string, unknown> = ESTIMATE,
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {},
) {
  return h.call(
    'POST',
    '/v1/authorizations',
    { customer_id, model: 'gpt-5.4', estimated_usage, ...extra },
    headers,
  );
}

const capture = (id: string, body: Record<string, unknown>) =>
  h.call('POST', `/v1/authorizations/${id}/capture`, body);
const voidAuth = (id: string) => h.call('POST', `/v1/authorizations/${id}/void`);

async function entries(customer: string) {
  return h.db('ledger_entries').where({ customer_id: customer }).orderBy('id') as Promise<
    { kind: string; ref: string; amount_nanos: bigint; balance_after_nanos: bigint }[]
  >;
}

test('an authorization holds the estimate; a retry with the same Idempotency-Key holds nothing more', async () => {
  await h.customer('cus_au_hold');
  await grant('cus_au_hold', '1.00');
  const headers = { 'Idempotency-Key': `auth-${randomUUID()}` };
  const first = await authorize('cus_au_hold', ESTIMATE, {}, headers);
  expect(first.status).toBe(201);
  expect(first.body).toMatchObject({
    id: expect.stringMatching(/^auth_/),
    object: 'authorization',
    customer_id: 'cus_au_hold',
    model: 'gpt-5.4',
    status: 'held',
    hold_usd: '0.017500000',
    cost_usd: null,
    released_usd: null,
  });
  const ttl_ms = Date.parse(first.body.expires_at) - Date.parse(first.body.created_at);
  expect(ttl_ms).toBe(600_000);
  const retry = await authorize('cus_au_hold', ESTIMATE, {}, headers);
  expect(retry.status).toBe(201);
  expect(retry.headers.get('idempotency-replayed')).toBe('true');
  expect(retry.body.id).toBe(first.body.id);
  expect(await balanceOf('cus_au_hold')).toEqual({ available: usd('1.00') - HOLD, held: HOLD });
  const stored = await h.call('GET', `/v1/authorizations/${first.body.id}`);
  expect(stored.body).toMatchObject({ id: first.body.id, status: 'held', hold_usd: '0.017500000' });
  const ledger = await entries('cus_au_hold');
  expect(ledger.filter((e) => e.kind === 'hold')).toEqual([
    expect.objectContaining({
      ref: first.body.id,
      amount_nanos: -HOLD,
      balance_after_nanos: usd('1.00') - HOLD,
    }),
  ]);
});

test('authorize refuses an unknown model (400), an unknown customer (404) and a short balance (402), holding nothing', async () => {
  await h.customer('cus_au_short');
  await grant('cus_au_short', '0.0175');
  const before = await h.moneySnapshot();
  const unknownModel = await h.call('POST', '/v1/authorizations', {
    customer_id: 'cus_au_short',
    model: 'gpt-9',
    estimated_usage: ESTIMATE,
  });
  expect(unknownModel.status).toBe(400);
  expect(unknownModel.body.error).toMatchObject({ code: 'unknown_model', param: 'model' });
  const ghost = await authorize('cus_au_ghost');
  expect(ghost.status).toBe(404);
  expect(ghost.body.error).toMatchObject({ type: 'not_found', param: 'customer_id' });
  const short = await authorize('cus_au_short', { input_tokens: 1000, output_tokens: 1001 });
  expect(short.status).toBe(402);
  expect(short.body.error).toMatchObject({
    type: 'insufficient_balance',
    code: 'insufficient_balance',
    available_usd: '0.017500000',
    required_usd: '0.017515000',
  });
  expect(await h.moneySnapshot()).toBe(before);
  expect(await h.db('authorizations').where({ customer_id: 'cus_au_short' })).toEqual([]);
  // Exactly the balance is enough.
  const exact = await authorize('cus_au_short');
  expect(exact.status).toBe(201);
  expect(await balanceOf('cus_au_short')).toEqual({ available: 0n, held: HOLD });
});

test('capture charges the actual cost and releases the rest (less than, equal to and zero of the hold)', async () => {
  await h.customer('cus_au_cap');
  await grant('cus_au_cap', '1.00');
  const cases: { usage: Record<string, number>; cost: string; released: string }[] = [
    { usage: { input_tokens: 1000, output_tokens: 500 }, cost: '0.010000000', released: '0.007500000' },
    { usage: ESTIMATE, cost: '0.017500000', released: '0.000000000' },
    { usage: {}, cost: '0.000000000', released: '0.017500000' },
  ];
  let spent = 0n;
  for (const c of cases) {
    const auth = await authorize('cus_au_cap');
    const captured = await capture(auth.body.id, { usage: c.usage });
    expect(captured.status).toBe(200);
    expect(captured.body).toMatchObject({
      id: auth.body.id,
      status: 'captured',
      hold_usd: '0.017500000',
      cost_usd: c.cost,
      released_usd: c.released,
      event_id: auth.body.id,
    });
    spent += usd(c.cost);
    expect(await balanceOf('cus_au_cap')).toEqual({ available: usd('1.00') - spent, held: 0n });
  }
  const events = await h.db('usage_events').where({ customer_id: 'cus_au_cap' });
  expect(events).toHaveLength(3);
  expect(events.reduce((s: bigint, e: { cost_nanos: bigint }) => s + e.cost_nanos, 0n)).toBe(spent);
});

test('a second capture returns the stored result and charges nothing more, even with other usage', async () => {
  await h.customer('cus_au_twice');
  await grant('cus_au_twice', '1.00');
  const auth = await authorize('cus_au_twice');
  const first = await capture(auth.body.id, { usage: { input_tokens: 1000, output_tokens: 800 } });
  expect(first.status).toBe(200);
  expect(first.body.cost_usd).toBe('0.014500000');
  const before = await h.moneySnapshot();
  const second = await capture(auth.body.id, { usage: { output_tokens: 100_000 } });
  expect(second.status).toBe(200);
  expect(second.body).toEqual(first.body);
  expect(await h.moneySnapshot()).toBe(before);
  expect(await balanceOf('cus_au_twice')).toEqual({ available: usd('1.00') - usd('0.0145'), held: 0n });
});

test('capture after void is 409 authorization_voided; void after capture is 409 authorization_captured; a second void returns the stored result', async () => {
  await h.customer('cus_au_settled');
  await grant('cus_au_settled', '1.00');
  const voided = await authorize('cus_au_settled');
  const v1 = await voidAuth(voided.body.id);
  expect(v1.status).toBe(200);
  expect(v1.body).toMatchObject({ status: 'voided', cost_usd: '0.000000000', released_usd: '0.017500000' });
  const before = await h.moneySnapshot();
  const v2 = await voidAuth(voided.body.id);
  expect(v2.status).toBe(200);
  expect(v2.body).toEqual(v1.body);
  const captureAfterVoid = await capture(voided.body.id, { usage: ESTIMATE });
  expect(captureAfterVoid.status).toBe(409);
  expect(captureAfterVoid.body.error).toMatchObject({ type: 'conflict', code: 'authorization_voided' });
  expect(await h.moneySnapshot()).toBe(before);

  const captured = await authorize('cus_au_settled');
  await capture(captured.body.id, { usage: ESTIMATE });
  const afterCapture = await h.moneySnapshot();
  const voidAfterCapture = await voidAuth(captured.body.id);
  expect(voidAfterCapture.status).toBe(409);
  expect(voidAfterCapture.body.error).toMatchObject({ type: 'conflict', code: 'authorization_captured' });
  expect(await h.moneySnapshot()).toBe(afterCapture);
  expect(await balanceOf('cus_au_settled')).toEqual({ available: usd('1.00') - HOLD, held: 0n });

  const missing = await capture('auth_missing', { usage: ESTIMATE });
  expect(missing.status).toBe(404);
  expect((await voidAuth('auth_missing')).status).toBe(404);
});

test('a capture with bad usage is a 400 and the hold stays as it was', async () => {
  await h.customer('cus_au_badcap');
  await grant('cus_au_badcap', '1.00');
  const auth = await authorize('cus_au_badcap');
  const before = await h.moneySnapshot();
  for (const usage of [{ input_tokens: -1 }, { input_tokens: 2.5 }, { image_output_tokens: 1, nope: 1 }]) {
    const response = await capture(auth.body.id, { usage });
    expect(response.status).toBe(400);
  }
  expect(await h.moneySnapshot()).toBe(before);
  expect((await h.call('GET', `/v1/authorizations/${auth.body.id}`)).body.status).toBe('held');
});

test('capturing more than was held charges the excess: the balance dips below zero by exactly the excess', async () => {
  await h.customer('cus_au_excess');
  await grant('cus_au_excess', '0.0175');
  const auth = await authorize('cus_au_excess');
  expect(auth.status).toBe(201);
  expect(await balanceOf('cus_au_excess')).toEqual({ available: 0n, held: HOLD });
  // 1,000 input (0.0025) + 2,000 output (0.03) = 0.0325: 0.015 more than held.
  const captured = await capture(auth.body.id, { usage: { input_tokens: 1000, output_tokens: 2000 } });
  expect(captured.status).toBe(200);
  expect(captured.body).toMatchObject({ cost_usd: '0.032500000', released_usd: '0.000000000' });
  const excess = usd('0.0325') - HOLD;
  expect(await balanceOf('cus_au_excess')).toEqual({ available: -excess, held: 0n });
  const capEntry = (await entries('cus_au_excess')).find((e) => e.kind === 'capture');
  expect(capEntry).toMatchObject({ amount_nanos: -excess, balance_after_nanos: -excess });
  const revenue = await h
    .db('ledger_postings')
    .where({ account: 'revenue' })
    .join('ledger_entries', 'ledger_entries.id', 'ledger_postings.entry_id')
    .where('ledger_entries.ref', auth.body.id)
    .select('ledger_postings.amount_nanos');
  expect(revenue).toEqual([{ amount_nanos: usd('0.0325') }]);
  // Below zero, nothing more is authorized.
  const refused = await authorize('cus_au_excess', { input_tokens: 1 });
  expect(refused.status).toBe(402);

  // With other money available, the excess comes out of it and the balance stays positive.
  await h.customer('cus_au_excess2');
  await grant('cus_au_excess2', '1.00');
  const other = await authorize('cus_au_excess2');
  await capture(other.body.id, { usage: { input_tokens: 1000, output_tokens: 2000 } });
  expect(await balanceOf('cus_au_excess2')).toEqual({ available: usd('1.00') - usd('0.0325'), held: 0n });
});

test('a capture whose event_id was already ingested is 409 duplicate_event, charges nothing and keeps the hold', async () => {
  await h.customer('cus_au_dupcap');
  await grant('cus_au_dupcap', '1.00');
  const ingested = await h.call('POST', '/v1/usage-events', {
    events: [{ event_id: 'evt-shared', customer_id: 'cus_au_dupcap', model: 'gpt-5.4', input_tokens: 100 }],
  });
  expect(ingested.body.data[0].status).toBe('accepted');
  const auth = await authorize('cus_au_dupcap');
  const before = await h.moneySnapshot();
  const dup = await capture(auth.body.id, { event_id: 'evt-shared', usage: ESTIMATE });
  expect(dup.status).toBe(409);
  expect(dup.body.error).toMatchObject({ type: 'conflict', code: 'duplicate_event', param: 'event_id' });
  expect(await h.moneySnapshot()).toBe(before);
  expect((await h.call('GET', `/v1/authorizations/${auth.body.id}`)).body.status).toBe('held');
  const events = await h.db('usage_events').where({ customer_id: 'cus_au_dupcap' });
  expect(events).toHaveLength(1);
  expect(events[0]).toMatchObject({
    event_id: 'evt-shared',
    cost_nanos: usd('0.00025'),
    authorization_id: null,
  });

  // A fresh event id captures; then that id is taken for the customer, by a second capture too.
  const ok = await capture(auth.body.id, { event_id: 'evt-cap-1', usage: ESTIMATE });
  expect(ok.status).toBe(200);
  expect(ok.body).toMatchObject({ status: 'captured', event_id: 'evt-cap-1' });
  const second = await authorize('cus_au_dupcap');
  const dup2 = await capture(second.body.id, { event_id: 'evt-cap-1', usage: ESTIMATE });
  expect(dup2.status).toBe(409);
  expect(dup2.body.error.code).toBe('duplicate_event');
  // And ingestion sees the captured event id as a duplicate.
  const replay = await h.call('POST', '/v1/usage-events', {
    events: [{ event_id: 'evt-cap-1', customer_id: 'cus_au_dupcap', model: 'gpt-5.4', input_tokens: 100 }],
  });
  expect(replay.body.data[0].status).toBe('duplicate');
  expect(await balanceOf('cus_au_dupcap')).toEqual({
    available: usd('1.00') - usd('0.00025') - HOLD - HOLD,
    held: HOLD,
  });
});

test('holds expire: after ttl_seconds the sweep workflow releases them, and capture or void is then 409 authorization_expired', async () => {
  await h.customer('cus_au_ttl');
  await grant('cus_au_ttl', '1.00');
  const a = await authorize('cus_au_ttl', ESTIMATE, { ttl_seconds: 1 });
  const b = await authorize('cus_au_ttl', ESTIMATE, { ttl_seconds: 1 });
  const lasting = await authorize('cus_au_ttl');
  expect([a.status, b.status, lasting.status]).toEqual([201, 201, 201]);
  expect(Date.parse(a.body.expires_at) - Date.parse(a.body.created_at)).toBe(1000);
  // Wait until the database's own clock has both holds past their expiry (the condition capture and the sweep
  // check), not for a fixed time.
  const expiredNow = await eventually(
    () => h.hotPath.expiredHolds(100),
    (ids) => ids.includes(a.body.id) && ids.includes(b.body.id),
    10_000,
  );
  expect(expiredNow).toEqual(expect.arrayContaining([a.body.id, b.body.id]));

  // Past its expiry but not yet swept: capture is refused and nothing moves.
  const before = await h.moneySnapshot();
  const early = await capture(a.body.id, { usage: ESTIMATE });
  expect(early.status).toBe(409);
  expect(early.body.error.code).toBe('authorization_expired');
  expect(await h.moneySnapshot()).toBe(before);
  expect(await balanceOf('cus_au_ttl')).toEqual({ available: usd('1.00') - 3n * HOLD, held: 3n * HOLD });

  const result = await h.temporal.workflow.execute('releaseExpiredHoldsWorkflow', {
    taskQueue: h.taskQueue,
    workflowId: `sweep-${randomUUID()}`,
  });
  expect(result).toEqual({ released: 2 });
  expect(await balanceOf('cus_au_ttl')).toEqual({ available: usd('1.00') - HOLD, held: HOLD });
  for (const id of [a.body.id, b.body.id]) {
    const stored = await h.call('GET', `/v1/authorizations/${id}`);
    expect(stored.body).toMatchObject({
      status: 'expired',
      cost_usd: '0.000000000',
      released_usd: '0.017500000',
    });
  }
  expect((await h.call('GET', `/v1/authorizations/${lasting.body.id}`)).body.status).toBe('held');
  const releases = (await entries('cus_au_ttl')).filter((e) => e.kind === 'release');
  expect(releases.map((e) => [e.ref, e.amount_nanos]).sort()).toEqual(
    [
      [a.body.id, HOLD],
      [b.body.id, HOLD],
    ].sort(),
  );

  const afterSweep = await h.moneySnapshot();
  const late = await capture(b.body.id, { usage: ESTIMATE });
  expect(late.status).toBe(409);
  expect(late.body.error).toMatchObject({ type: 'conflict', code: 'authorization_expired' });
  const lateVoid = await voidAuth(a.body.id);
  expect(lateVoid.status).toBe(409);
  expect(lateVoid.body.error.code).toBe('authorization_expired');
  expect(await h.moneySnapshot()).toBe(afterSweep);

  // A second sweep has nothing left to release.
  const again = await h.temporal.workflow.execute('releaseExpiredHoldsWorkflow', {
    taskQueue: h.taskQueue,
    workflowId: `sweep-${randomUUID()}`,
  });
  expect(again).toEqual({ released: 0 });
});

test('usage-only events may take the balance below zero; authorizations are then refused (402) until it is positive again', async () => {
  await h.customer('cus_au_neg', 'pm_card_visa');
  await grant('cus_au_neg', '0.01');
  const event = (event_id: string) => ({
    event_id,
    customer_id: 'cus_au_neg',
    model: 'gpt-5.4',
    ...ESTIMATE,
  });
  const first = await h.call('POST', '/v1/usage-events', { events: [event('n1')] });
  expect(first.body.data[0]).toEqual({ event_id: 'n1', status: 'accepted', cost_usd: '0.017500000' });
  expect(await balanceOf('cus_au_neg')).toEqual({ available: usd('0.01') - HOLD, held: 0n });
  const balance = await h.call('GET', '/v1/customers/cus_au_neg/balance');
  expect(balance.body.available_usd).toBe('-0.007500000');

  for (const estimated_usage of [{}, { input_tokens: 1 }, ESTIMATE]) {
    const refused = await authorize('cus_au_neg', estimated_usage);
    expect(refused.status).toBe(402);
    expect(refused.body.error).toMatchObject({ code: 'insufficient_balance', available_usd: '-0.007500000' });
  }
  // Still below zero: usage keeps being recorded, authorizations keep being refused.
  const second = await h.call('POST', '/v1/usage-events', { events: [event('n2')] });
  expect(second.body.data[0].status).toBe('accepted');
  expect(await balanceOf('cus_au_neg')).toEqual({ available: usd('0.01') - 2n * HOLD, held: 0n });
  expect((await authorize('cus_au_neg', {})).status).toBe(402);

  const topUp = await h.call('POST', '/v1/customers/cus_au_neg/top-ups', { amount_usd: '1.00' });
  expect(topUp.status).toBe(201);
  expect(topUp.body.status).toBe('succeeded');
  const positive = usd('1.01') - 2n * HOLD;
  expect(await balanceOf('cus_au_neg')).toEqual({ available: positive, held: 0n });
  const allowed = await authorize('cus_au_neg');
  expect(allowed.status).toBe(201);
  expect(await balanceOf('cus_au_neg')).toEqual({ available: positive - HOLD, held: HOLD });
});

test('at exactly zero available even a zero-cost authorization is refused; above zero it is held at zero', async () => {
  await h.customer('cus_au_zero');
  await grant('cus_au_zero', '0.0175');
  const used = await h.call('POST', '/v1/usage-events', {
    events: [{ event_id: 'z1', customer_id: 'cus_au_zero', model: 'gpt-5.4', ...ESTIMATE }],
  });
  expect(used.body.data[0].status).toBe('accepted');
  expect(await balanceOf('cus_au_zero')).toEqual({ available: 0n, held: 0n });
  const before = await h.moneySnapshot();
  const refused = await authorize('cus_au_zero', {});
  expect(refused.status).toBe(402);
  expect(refused.body.error).toMatchObject({ code: 'insufficient_balance', available_usd: '0.000000000' });
  expect(await h.moneySnapshot()).toBe(before);

  await grant('cus_au_zero', '0.000000001');
  const free = await authorize('cus_au_zero', {});
  expect(free.status).toBe(201);
  expect(free.body.hold_usd).toBe('0.000000000');
  expect(await balanceOf('cus_au_zero')).toEqual({ available: 1n, held: 0n });
  const captured = await capture(free.body.id, { usage: { input_tokens: 1 } });
  expect(captured.body).toMatchObject({ cost_usd: formatUsd(2500n), released_usd: '0.000000000' });
  expect(await balanceOf('cus_au_zero')).toEqual({ available: 1n - 2500n, held: 0n });
});

test('a retried authorization whose hold took the whole balance answers with that hold, not a 402', async () => {
  await h.customer('cus_au_retry_drained');
  await grant('cus_au_retry_drained', '0.0175');
  const key = { 'Idempotency-Key': 'drain-1' };
  const first = await authorize('cus_au_retry_drained', ESTIMATE, {}, key);
  expect(first.status).toBe(201);
  // As if the process died before storing its response: the retry runs the request again.
  await h.db('idempotency_keys').where({ key: 'drain-1' }).delete();
  const retry = await authorize('cus_au_retry_drained', ESTIMATE, {}, key);
  expect(retry.status).toBe(201);
  expect(retry.body.id).toBe(first.body.id);
  expect(await balanceOf('cus_au_retry_drained')).toEqual({ available: 0n, held: HOLD });
});

test('a usage costing more than $1,000,000 in one event or authorization is refused, so no sum can overflow', async () => {
  await h.customer('cus_au_huge');
  await grant('cus_au_huge', '1.00');
  const huge = { tool_calls: { web_search: 900_000_000_000 } }; // $9,000,000,000 at $10 per 1,000 calls
  const held = await authorize('cus_au_huge', huge);
  expect(held.status).toBe(400);
  expect(held.body.error).toMatchObject({ code: 'invalid_quantity', param: 'estimated_usage' });
  const ingested = await h.call('POST', '/v1/usage-events', {
    events: [{ event_id: 'huge-1', customer_id: 'cus_au_huge', model: 'gpt-5.4', ...huge }],
  });
  expect(ingested.body.data[0]).toMatchObject({ status: 'rejected', error: { code: 'invalid_quantity' } });
  expect(await balanceOf('cus_au_huge')).toEqual({ available: usd('1.00'), held: 0n });
});
