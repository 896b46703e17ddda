import { randomUUID } from 'node:crypto';
import { parsePlanCatalog } from '../billing/plans';
import { effectivePlan, periodWindow } from '../billing/soft-caps';
import { allowanceUsage } from '../db/soft-caps';
import { waitFor } from './support/eventually';
import { useHarness } from './support/harness';

/**
 * Soft caps through `POST /v1/customers/:id/route` on real PostgreSQL: served within an allowance and downgraded past
 * it (never refused), a downgrade chain down to an unlimited model, a limit of 0, the window rolling over on the
 * clock and the `period` window resetting when the subscription's period moves (as a renewal moves it), past due
 * falling back to the Free allowances, an Idempotency-Key counting once, 50 concurrent requests never counting past
 * a limit, and bad input. The plans are this file's own small catalog (validated like a `PLANS_PATH` file), so
 * limits are reached in a few calls.
 */
const flat = { price_usd: '0', interval: 'month', per_seat: false, collection: 'charge' };
const catalog = parsePlanCatalog({
  plans: [
    {
      // Free: 3 gpt-5.4 a UTC day, then 2 gpt-5.4-mini, then gpt-5.4-nano without limit; o1 never (limit 0).
      id: 'free',
      name: 'Free',
      ...flat,
      allowances: [
        { models: ['gpt-5.4'], limit: 3, window: 'P1D', downgrade_to: 'gpt-5.4-mini' },
        { models: ['gpt-5.4-mini'], limit: 2, window: 'P1D', downgrade_to: 'gpt-5.4-nano' },
        { models: ['o1'], limit: 0, window: 'P1D', downgrade_to: 'gpt-5.4-mini' },
      ],
    },
    {
      // A long chain: o1 -> gpt-5.4 -> gpt-5.4-mini -> gpt-5.4-nano (uncovered: unlimited), one of each a period.
      id: 'chain',
      name: 'Chain',
      ...flat,
      allowances: [
        { models: ['o1'], limit: 1, window: 'period', downgrade_to: 'gpt-5.4' },
        { models: ['gpt-5.4'], limit: 1, window: 'period', downgrade_to: 'gpt-5.4-mini' },
        { models: ['gpt-5.4-mini'], limit: 1, window: 'period', downgrade_to: 'gpt-5.4-nano' },
      ],
    },
    {
      // A window short enough to roll over during the test.
      id: 'short',
      name: 'Short',
      ...flat,
      allowances: [{ models: ['gpt-5.4'], limit: 1, window: 'PT2S', downgrade_to: 'gpt-5.4-mini' }],
    },
    {
      // Room for the concurrency test: 20 gpt-5.4 then 10 gpt-5.4-mini a period, then nano.
      id: 'burst',
      name: 'Burst',
      ...flat,
      allowances: [
        { models: ['gpt-5.4'], limit: 20, window: 'period', downgrade_to: 'gpt-5.4-mini' },
        { models: ['gpt-5.4-mini'], limit: 10, window: 'period', downgrade_to: 'gpt-5.4-nano' },
      ],
    },
  ],
});

const h = useHarness({ plans: catalog });

const route = (customer: string, model: string, headers: Record<string, string> = {}) =>
  h.call('POST', `/v1/customers/${customer}/route`, { model }, headers);

/** Routes `n` requests one after another and returns the served models. */
async function routeMany(customer: string, model: string, n: number): Promise<string[]> {
  const served: string[] = [];
  for (let i = 0; i < n; i++) {
    const answer = await route(customer, model);
    expect(answer.status).toBe(200);
    served.push(answer.body.model as string);
  }
  return served;
}

const DAY_MS = 86_400_000;

/** A live subscription row, written as the subscription code writes it (the route only reads it). */
async function subscribe(
  customer: string,
  planId: string,
  status: 'active' | 'past_due' = 'active',
  period_start = new Date(Date.now() - DAY_MS),
) {
  await h.db('subscriptions').insert({
    id: `sub_${randomUUID()}`,
    customer_id: customer,
    plan: planId,
    seats: 1,
    status,
    anchor_at: period_start,
    current_period_start: period_start,
    current_period_end: new Date(period_start.getTime() + 30 * DAY_MS),
  });
}

async function counters(customer: string) {
  return (await h
    .db('allowance_counters')
    .where({ customer_id: customer })
    .orderBy(['counter_key', 'window_start'])) as { counter_key: string; window_start: Date; used: number }[];
}

test('a Free customer is served the requested model within its allowance, then downgraded, never refused', async () => {
  await h.customer('cus_sc_free');
  const first = await route('cus_sc_free', 'gpt-5.4');
  expect(first.status).toBe(200);
  const dayEnd = new Date(Math.floor(Date.now() / DAY_MS) * DAY_MS + DAY_MS).toISOString();
  expect(first.body).toEqual({
    object: 'route',
    customer_id: 'cus_sc_free',
    model: 'gpt-5.4',
    requested_model: 'gpt-5.4',
    downgraded: false,
    reason: null,
    remaining: 2,
    resets_at: dayEnd,
    plan: 'free',
  });
  expect((await route('cus_sc_free', 'gpt-5.4')).body.remaining).toBe(1);
  expect((await route('cus_sc_free', 'gpt-5.4')).body.remaining).toBe(0);
  // The fourth is past the allowance: served as its downgrade and counted there.
  const fourth = await route('cus_sc_free', 'gpt-5.4');
  expect(fourth.status).toBe(200);
  expect(fourth.body).toMatchObject({
    model: 'gpt-5.4-mini',
    requested_model: 'gpt-5.4',
    downgraded: true,
    reason: 'allowance_exhausted',
    remaining: 1,
  });
  // The mini allowance is shared with requests for mini itself; past it, nano is not covered: unlimited.
  expect((await route('cus_sc_free', 'gpt-5.4-mini')).body).toMatchObject({
    model: 'gpt-5.4-mini',
    remaining: 0,
  });
  expect((await route('cus_sc_free', 'gpt-5.4')).body).toMatchObject({
    model: 'gpt-5.4-nano',
    downgraded: true,
    reason: 'allowance_exhausted',
    remaining: null,
    resets_at: null,
  });
  // A model no allowance covers is served as asked, unlimited and uncounted.
  expect((await route('cus_sc_free', 'gpt-4o')).body).toMatchObject({
    model: 'gpt-4o',
    downgraded: false,
    reason: null,
    remaining: null,
  });
  expect((await counters('cus_sc_free')).map((c) => [c.counter_key, c.used])).toEqual([
    ['free:0', 3],
    ['free:1', 2],
  ]);
  // GET .../subscription shows the same counts as usage_this_period (Free: no subscription).
  const subscription = await h.call('GET', '/v1/customers/cus_sc_free/subscription');
  expect(subscription.status).toBe(200);
  const dayStart = new Date(Date.parse(dayEnd) - DAY_MS).toISOString();
  expect(subscription.body.usage_this_period).toEqual([
    {
      models: ['gpt-5.4'],
      limit: 3,
      used: 3,
      remaining: 0,
      window: 'P1D',
      downgrade_to: 'gpt-5.4-mini',
      window_start: dayStart,
      resets_at: dayEnd,
    },
    {
      models: ['gpt-5.4-mini'],
      limit: 2,
      used: 2,
      remaining: 0,
      window: 'P1D',
      downgrade_to: 'gpt-5.4-nano',
      window_start: dayStart,
      resets_at: dayEnd,
    },
    {
      models: ['o1'],
      limit: 0,
      used: 0,
      remaining: 0,
      window: 'P1D',
      downgrade_to: 'gpt-5.4-mini',
      window_start: dayStart,
      resets_at: dayEnd,
    },
  ]);
});

test('a downgrade chain walks each allowance in turn, counting the request where it is served', async () => {
  await h.customer('cus_sc_chain');
  await subscribe('cus_sc_chain', 'chain');
  expect(await routeMany('cus_sc_chain', 'o1', 5)).toEqual([
    'o1',
    'gpt-5.4',
    'gpt-5.4-mini',
    'gpt-5.4-nano',
    'gpt-5.4-nano',
  ]);
  // Each allowance was counted once (by the model routed to), nano nowhere.
  expect((await counters('cus_sc_chain')).map((c) => [c.counter_key, c.used])).toEqual([
    ['chain:0', 1],
    ['chain:1', 1],
    ['chain:2', 1],
  ]);
  // A request for a model further down starts its chain there.
  expect((await route('cus_sc_chain', 'gpt-5.4')).body).toMatchObject({
    model: 'gpt-5.4-nano',
    reason: 'allowance_exhausted',
  });
});

test('a limit of 0 always serves the downgrade, counted against the allowance of the model served', async () => {
  await h.customer('cus_sc_zero');
  expect((await route('cus_sc_zero', 'o1')).body).toMatchObject({
    model: 'gpt-5.4-mini',
    requested_model: 'o1',
    downgraded: true,
    reason: 'allowance_exhausted',
    remaining: 1,
  });
  expect((await counters('cus_sc_zero')).map((c) => [c.counter_key, c.used])).toEqual([['free:1', 1]]);
});

test('a fixed window resets when the clock passes its end (epoch-aligned PT2S)', async () => {
  await h.customer('cus_sc_short');
  await subscribe('cus_sc_short', 'short');
  // Start early in a 2 s window, so the first two requests share it.
  await waitFor('the start of a 2 s window', () => Date.now() % 2_000 < 500, 5_000);
  const first = await route('cus_sc_short', 'gpt-5.4');
  expect(first.body).toMatchObject({ model: 'gpt-5.4', remaining: 0 });
  const resets_at = Date.parse(first.body.resets_at as string);
  expect(resets_at % 2_000).toBe(0);
  expect((await route('cus_sc_short', 'gpt-5.4')).body).toMatchObject({
    model: 'gpt-5.4-mini',
    downgraded: true,
    resets_at: null,
  });
  await waitFor('the window to roll over', () => Date.now() >= resets_at, 5_000);
  const next = await route('cus_sc_short', 'gpt-5.4');
  expect(next.body).toMatchObject({ model: 'gpt-5.4', downgraded: false, remaining: 0 });
  expect(Date.parse(next.body.resets_at as string)).toBeGreaterThanOrEqual(resets_at + 2_000);
  // Two windows, one count each.
  expect((await counters('cus_sc_short')).map((c) => c.used)).toEqual([1, 1]);
});

test('a period window resets when the subscription moves to its next period, as a renewal does', async () => {
  await h.customer('cus_sc_period');
  const period_start = new Date(Date.now() - DAY_MS);
  await subscribe('cus_sc_period', 'chain', 'active', period_start);
  const first = await route('cus_sc_period', 'o1');
  expect(first.body).toMatchObject({
    model: 'o1',
    plan: 'chain',
    remaining: 0,
    resets_at: new Date(period_start.getTime() + 30 * DAY_MS).toISOString(),
  });
  expect((await route('cus_sc_period', 'o1')).body).toMatchObject({ model: 'gpt-5.4', downgraded: true });
  // Renewal: the period moves forward (no job resets anything).
  const next_start = new Date(period_start.getTime() + 30 * DAY_MS);
  await h
    .db('subscriptions')
    .where({ customer_id: 'cus_sc_period' })
    .update({
      current_period_start: next_start,
      current_period_end: new Date(next_start.getTime() + 30 * DAY_MS),
      period_index: 1,
    });
  expect((await route('cus_sc_period', 'o1')).body).toMatchObject({
    model: 'o1',
    downgraded: false,
    remaining: 0,
  });
  const sub = (await h.db('subscriptions').where({ customer_id: 'cus_sc_period' }).first()) as {
    plan: string;
    status: 'active';
    current_period_start: Date;
    current_period_end: Date;
  };
  const usage = await allowanceUsage(
    h.db,
    'cus_sc_period',
    effectivePlan(catalog, sub)!,
    new Date(),
    periodWindow(sub, new Date()),
  );
  expect(usage.map((u) => [u.used, u.window_start.toISOString()])).toEqual([
    [1, next_start.toISOString()],
    [0, next_start.toISOString()],
    [0, next_start.toISOString()],
  ]);
});

test('a past-due subscription falls back to the Free allowances until it is active again', async () => {
  await h.customer('cus_sc_dunning');
  await subscribe('cus_sc_dunning', 'burst', 'past_due');
  expect(await routeMany('cus_sc_dunning', 'gpt-5.4', 4)).toEqual([
    'gpt-5.4',
    'gpt-5.4',
    'gpt-5.4',
    'gpt-5.4-mini',
  ]);
  expect((await route('cus_sc_dunning', 'gpt-5.4')).body.plan).toBe('free');
  // Paid again: the plan's own allowances apply, with their own counters.
  await h.db('subscriptions').where({ customer_id: 'cus_sc_dunning' }).update({ status: 'active' });
  expect((await route('cus_sc_dunning', 'gpt-5.4')).body).toMatchObject({
    model: 'gpt-5.4',
    plan: 'burst',
    remaining: 19,
  });
  // Canceled: no live subscription, Free again (its counters kept).
  await h.db('subscriptions').where({ customer_id: 'cus_sc_dunning' }).update({ status: 'canceled' });
  expect((await route('cus_sc_dunning', 'gpt-5.4')).body).toMatchObject({
    plan: 'free',
    model: 'gpt-5.4-nano',
  });
});

test('an Idempotency-Key makes a retried route answer the first decision and count once', async () => {
  await h.customer('cus_sc_idem');
  const key = { 'Idempotency-Key': `route-${randomUUID()}` };
  const first = await route('cus_sc_idem', 'gpt-5.4', key);
  const retry = await route('cus_sc_idem', 'gpt-5.4', key);
  expect(retry.status).toBe(200);
  expect(retry.headers.get('idempotency-replayed')).toBe('true');
  expect(retry.body).toEqual(first.body);
  expect((await counters('cus_sc_idem')).map((c) => c.used)).toEqual([1]);
  // Without the key, the next request is a new one.
  expect((await route('cus_sc_idem', 'gpt-5.4')).body.remaining).toBe(1);
});

test('50 concurrent routes never count past a limit: exactly 20, then 10 downgraded, then the rest unlimited', async () => {
  await h.customer('cus_sc_burst');
  await subscribe('cus_sc_burst', 'burst');
  const answers = await Promise.all(Array.from({ length: 50 }, () => route('cus_sc_burst', 'gpt-5.4')));
  expect(answers.map((a) => a.status)).toEqual(Array(50).fill(200));
  const served = (model: string) =>
    answers.filter((a) => a.body.model === model).map((a) => a.body.remaining);
  // Each unit of each allowance was handed out exactly once.
  expect(served('gpt-5.4').sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
  expect(served('gpt-5.4-mini').sort((a, b) => a - b)).toEqual(Array.from({ length: 10 }, (_, i) => i));
  expect(served('gpt-5.4-nano')).toEqual(Array(20).fill(null));
  expect((await counters('cus_sc_burst')).map((c) => [c.counter_key, c.used])).toEqual([
    ['burst:0', 20],
    ['burst:1', 10],
  ]);
});

test('bad input: an unknown model is a 400 naming model, an unknown customer a 404; neither counts', async () => {
  await h.customer('cus_sc_bad');
  const unknownModel = await route('cus_sc_bad', 'gpt-nope');
  expect(unknownModel.status).toBe(400);
  expect(unknownModel.body.error).toMatchObject({
    type: 'invalid_request',
    code: 'unknown_model',
    param: 'model',
  });
  const missing = await h.call('POST', '/v1/customers/cus_sc_bad/route', {});
  expect(missing.status).toBe(400);
  expect(missing.body.error.param).toBe('model');
  const extra = await h.call('POST', '/v1/customers/cus_sc_bad/route', { model: 'gpt-5.4', seats: 2 });
  expect(extra.status).toBe(400);
  for (const model of [7, null, ['gpt-5.4'], 'g'.repeat(1_000)]) {
    const bad = await h.call('POST', '/v1/customers/cus_sc_bad/route', { model });
    expect({ model, status: bad.status }).toEqual({ model, status: 400 });
    expect(bad.body.error).toMatchObject({ type: 'invalid_request', param: 'model' });
  }
  const unknownCustomer = await route('cus_sc_nobody', 'gpt-5.4');
  expect(unknownCustomer.status).toBe(404);
  expect(unknownCustomer.body.error).toMatchObject({ type: 'not_found', code: 'resource_missing' });
  expect(await counters('cus_sc_bad')).toEqual([]);
  expect(await counters('cus_sc_nobody')).toEqual([]);
});
