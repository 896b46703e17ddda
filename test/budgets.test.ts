import { randomUUID } from 'node:crypto';
import { usd } from '../billing/money';
import { setLimitOverrides } from '../db/limits';
import { accountStateQuery, accountWorkflowId } from '../workflows/messages';
import { eventually } from './support/eventually';
import { useHarness } from './support/harness';

/**
 * Budgets, usage limits and rate limits, enforced by the authorization statement itself on real PostgreSQL: the
 * monthly limit with open holds counted under 50 concurrent authorizations, the alert and the limit crossing once
 * per month, the UTC month rollover, usage recorded past the limit, and the requests / tokens per minute buckets
 * answering 429 with a Retry-After that is enough.
 */
const h = useHarness();

/** gpt-5.4: 1,000 input (0.0025) + 1,000 output (0.015) tokens = 0.0175 held, 2,000 estimated tokens. */
const ESTIMATE = { input_tokens: 1000, output_tokens: 1000 };
const HOLD = usd('0.0175');

const authorize = (customer_id: string, estimated_usage: Record<string, unknown> = ESTIMATE) =>
  h.call('POST', '/v1/authorizations', { customer_id, model: 'gpt-5.4', estimated_usage });
const putBudget = (customer: string, body: unknown) =>
  h.call('PUT', `/v1/customers/${customer}/budget`, body);

async function budgetCrossings(customer: string) {
  return h
    .db('threshold_crossings')
    .where({ customer_id: customer })
    .whereIn('kind', ['budget_alert', 'budget_limit'])
    .orderBy('id') as Promise<{ kind: string; threshold_nanos: bigint; month_spend_nanos: bigint }[]>;
}

/** Usage events for `customer`, each `input_tokens` of gpt-5.4 (0.0000025 per token). */
async function use(customer: string, ...input_tokens: number[]) {
  const response = await h.call('POST', '/v1/usage-events', {
    events: input_tokens.map((n) => ({
      event_id: `ev-${randomUUID()}`,
      customer_id: customer,
      model: 'gpt-5.4',
      input_tokens: n,
    })),
  });
  expect(response.status).toBe(200);
  return response.body;
}

/** Moves the wallet's month bookkeeping one month back, as if everything so far happened last month. */
async function pretendLastMonth(customer: string) {
  await h.db.raw(
    `UPDATE wallets SET spend_month = (spend_month - interval '1 month')::date,
       budget_alert_month = (budget_alert_month - interval '1 month')::date,
       budget_limit_month = (budget_limit_month - interval '1 month')::date
     WHERE customer_id = ?`,
    [customer],
  );
}

test('PUT and GET budget: saves, keeps absent fields, clears with null, shows the spend; refuses bad input and unknown customers', async () => {
  await h.customer('cus_bu_put');
  const saved = await putBudget('cus_bu_put', { monthly_alert_usd: '5.00', monthly_limit_usd: '10.00' });
  expect(saved.status).toBe(200);
  expect(saved.body).toMatchObject({
    object: 'budget',
    customer_id: 'cus_bu_put',
    monthly_alert_usd: '5.000000000',
    monthly_limit_usd: '10.000000000',
    spent_this_month_usd: '0.000000000',
    held_usd: '0.000000000',
  });
  expect(saved.body.month).toMatch(/^\d{4}-\d{2}$/);
  expect(Date.parse(saved.body.resets_at)).toBeGreaterThan(Date.now());
  const kept = await putBudget('cus_bu_put', { monthly_limit_usd: '12.50' });
  expect(kept.body).toMatchObject({ monthly_alert_usd: '5.000000000', monthly_limit_usd: '12.500000000' });
  const cleared = await putBudget('cus_bu_put', { monthly_alert_usd: null });
  expect(cleared.body).toMatchObject({ monthly_alert_usd: null, monthly_limit_usd: '12.500000000' });
  expect((await h.call('GET', '/v1/customers/cus_bu_put/budget')).body).toEqual(cleared.body);
  expect((await h.call('GET', '/v1/customers/cus_bu_put')).body.budget).toEqual({
    monthly_alert_usd: null,
    monthly_limit_usd: '12.500000000',
    spent_this_month_usd: '0.000000000',
  });

  const bad: [unknown, string][] = [
    [{ monthly_limit_usd: '0' }, 'monthly_limit_usd'],
    [{ monthly_limit_usd: '-1.00' }, 'monthly_limit_usd'],
    [{ monthly_limit_usd: 10 }, 'monthly_limit_usd'],
    [{ monthly_alert_usd: '1e3' }, 'monthly_alert_usd'],
    [{ monthly_alert_usd: '1000000000.01' }, 'monthly_alert_usd'],
    [{ monthly_limit_usd: '1.0000000001' }, 'monthly_limit_usd'],
    [{ monthly_limit_usd: '' }, 'monthly_limit_usd'],
    [{ monthly_alert_usd: ' 1.00' }, 'monthly_alert_usd'],
    [{ monthly_limit_usd: true }, 'monthly_limit_usd'],
    [{ monthly_limit_usd: '1.00', currency: 'eur' }, 'currency'],
  ];
  for (const [body, param] of bad) {
    const response = await putBudget('cus_bu_put', body);
    expect(response.status).toBe(400);
    expect(response.body.error).toMatchObject({ type: 'invalid_request', param });
  }
  expect((await h.call('GET', '/v1/customers/cus_bu_put/budget')).body).toEqual(cleared.body);
  expect((await putBudget('cus_bu_ghost', { monthly_limit_usd: '1.00' })).status).toBe(404);
  expect((await h.call('GET', '/v1/customers/cus_bu_ghost/budget')).status).toBe(404);
});

test('50 concurrent authorizations never reserve past the budget limit, whatever the balance; the limit crosses once a month, at the first refusal', async () => {
  await h.customer('cus_bu_race');
  await h.fund('cus_bu_race', '100.00');
  // 20 holds of 0.0175 fit in 0.35 exactly.
  await putBudget('cus_bu_race', { monthly_limit_usd: '0.35' });
  const answers = await Promise.all(Array.from({ length: 50 }, () => authorize('cus_bu_race')));
  const held = answers.filter((a) => a.status === 201);
  const refused = answers.filter((a) => a.status === 402);
  expect(held).toHaveLength(20);
  expect(refused).toHaveLength(30);
  for (const r of refused) {
    expect(r.body.error).toMatchObject({
      type: 'budget_limit_reached',
      code: 'budget_limit_reached',
      limit_usd: '0.350000000',
    });
  }
  const budget = (await h.call('GET', '/v1/customers/cus_bu_race/budget')).body;
  expect(budget).toMatchObject({ held_usd: '0.350000000', spent_this_month_usd: '0.000000000' });
  // The first refusal blocked the customer: the month's budget_limit crossing is recorded once, by the refusals (spend
  // alone is still zero), however many of the 30 raced.
  const fired = await budgetCrossings('cus_bu_race');
  expect(fired).toMatchObject([{ kind: 'budget_limit', threshold_nanos: usd('0.35') }]);
  expect(fired[0]!.month_spend_nanos).toBe(0n);

  // Captured at their estimate, they become spend: the capture that reaches 0.35 crosses the limit, once.
  await Promise.all(
    held.map((a) =>
      h.call('POST', `/v1/authorizations/${a.body.id}/capture`, { usage: ESTIMATE }).then((r) => {
        expect(r.status).toBe(200);
      }),
    ),
  );
  const after = (await h.call('GET', '/v1/customers/cus_bu_race/budget')).body;
  expect(after).toMatchObject({ held_usd: '0.000000000', spent_this_month_usd: '0.350000000' });
  // Spend reaching the limit in the same month adds no second crossing.
  expect(await budgetCrossings('cus_bu_race')).toHaveLength(1);
  // Still refused with 99.65 available; raising the limit lets the next one through.
  expect((await authorize('cus_bu_race')).status).toBe(402);
  expect((await putBudget('cus_bu_race', { monthly_limit_usd: '0.40' })).status).toBe(200);
  expect((await authorize('cus_bu_race')).status).toBe(201);
});

test('a hold larger than the whole limit is refused without marking the month: the limit reached later still fires', async () => {
  await h.customer('cus_bu_oversized');
  await h.fund('cus_bu_oversized', '100.00');
  await putBudget('cus_bu_oversized', { monthly_limit_usd: '0.05' });
  // 100,000 output tokens of gpt-5.4 hold 1.50, thirty times the limit: refused, but nothing was spent or held.
  const oversized = await authorize('cus_bu_oversized', { input_tokens: 0, output_tokens: 100_000 });
  expect(oversized.status).toBe(402);
  expect(oversized.body.error.code).toBe('budget_limit_reached');
  expect(await budgetCrossings('cus_bu_oversized')).toEqual([]);
  // Ordinary calls still pass; the one that no longer fits (0.0175 x 3 = 0.0525 > 0.05) records the crossing, once.
  expect((await authorize('cus_bu_oversized')).status).toBe(201);
  expect((await authorize('cus_bu_oversized')).status).toBe(201);
  expect((await authorize('cus_bu_oversized')).status).toBe(402);
  expect((await authorize('cus_bu_oversized')).status).toBe(402);
  expect(await budgetCrossings('cus_bu_oversized')).toMatchObject([{ kind: 'budget_limit' }]);

  // Once open holds fill the limit (2 x 0.0175 = 0.035), even an oversized request finds it reached: it fires.
  await h.customer('cus_bu_oversized_full');
  await h.fund('cus_bu_oversized_full', '100.00');
  await putBudget('cus_bu_oversized_full', { monthly_limit_usd: '0.035' });
  expect((await authorize('cus_bu_oversized_full')).status).toBe(201);
  expect((await authorize('cus_bu_oversized_full')).status).toBe(201);
  expect((await authorize('cus_bu_oversized_full', { input_tokens: 0, output_tokens: 100_000 })).status).toBe(
    402,
  );
  expect(await budgetCrossings('cus_bu_oversized_full')).toMatchObject([{ kind: 'budget_limit' }]);
});

test('usage past the limit is recorded (it happened) and the next authorization is refused; a new UTC month starts from zero', async () => {
  await h.customer('cus_bu_past');
  await h.fund('cus_bu_past', '10.00');
  await putBudget('cus_bu_past', { monthly_limit_usd: '0.10' });
  // 0.25 of usage, past the 0.10 limit: every event is recorded.
  const body = await use('cus_bu_past', 50_000, 50_000);
  expect(body.accepted).toBe(2);
  expect((await h.call('GET', '/v1/customers/cus_bu_past/budget')).body.spent_this_month_usd).toBe(
    '0.250000000',
  );
  const refused = await authorize('cus_bu_past');
  expect(refused.status).toBe(402);
  expect(refused.body.error.code).toBe('budget_limit_reached');
  expect(await budgetCrossings('cus_bu_past')).toMatchObject([{ kind: 'budget_limit' }]);

  // The month rolls over (the wallet's bookkeeping says all of it was last month): spend reads zero, calls pass, and
  // reaching the limit again this month crosses again.
  await pretendLastMonth('cus_bu_past');
  expect((await h.call('GET', '/v1/customers/cus_bu_past/budget')).body.spent_this_month_usd).toBe(
    '0.000000000',
  );
  const allowed = await authorize('cus_bu_past');
  expect(allowed.status).toBe(201);
  await use('cus_bu_past', 40_000);
  expect((await h.call('GET', '/v1/customers/cus_bu_past/budget')).body.spent_this_month_usd).toBe(
    '0.100000000',
  );
  expect(await budgetCrossings('cus_bu_past')).toMatchObject([
    { kind: 'budget_limit' },
    { kind: 'budget_limit' },
  ]);
});

test('the budget alert crosses once per month, however many debits pass it', async () => {
  await h.customer('cus_bu_alert');
  await h.fund('cus_bu_alert', '10.00');
  await putBudget('cus_bu_alert', { monthly_alert_usd: '0.05' });
  await use('cus_bu_alert', 10_000); // 0.025
  expect(await budgetCrossings('cus_bu_alert')).toEqual([]);
  // Ten concurrent batches race past 0.05: one crossing.
  await Promise.all(Array.from({ length: 10 }, () => use('cus_bu_alert', 10_000)));
  const crossings = await budgetCrossings('cus_bu_alert');
  expect(crossings).toHaveLength(1);
  expect(crossings[0]).toMatchObject({ kind: 'budget_alert', threshold_nanos: usd('0.05') });
  expect(crossings[0]!.month_spend_nanos).toBeGreaterThanOrEqual(usd('0.05'));
  await use('cus_bu_alert', 10_000);
  expect(await budgetCrossings('cus_bu_alert')).toHaveLength(1);
  // Raised above the spend, it fires again when reached; the next month it fires again too.
  await putBudget('cus_bu_alert', { monthly_alert_usd: '0.40' });
  await use('cus_bu_alert', 100_000);
  expect(await budgetCrossings('cus_bu_alert')).toHaveLength(2);
  await pretendLastMonth('cus_bu_alert');
  await use('cus_bu_alert', 200_000);
  expect(await budgetCrossings('cus_bu_alert')).toHaveLength(3);
});

test('the usage limit in effect (an override here) is enforced like the budget, with its own code', async () => {
  await h.customer('cus_bu_usage');
  await h.fund('cus_bu_usage', '10.00');
  await setLimitOverrides(h.db, 'cus_bu_usage', { monthly_usage_limit_nanos: HOLD * 2n });
  expect((await authorize('cus_bu_usage')).status).toBe(201);
  expect((await authorize('cus_bu_usage')).status).toBe(201);
  const refused = await authorize('cus_bu_usage');
  expect(refused.status).toBe(402);
  expect(refused.body.error).toMatchObject({
    type: 'budget_limit_reached',
    code: 'usage_limit_reached',
    limit_usd: '0.035000000',
  });
  await setLimitOverrides(h.db, 'cus_bu_usage', { monthly_usage_limit_nanos: null });
  expect((await authorize('cus_bu_usage')).status).toBe(201);
});

test('requests per minute: past the bucket, 429 with a Retry-After after which the call passes; nothing is held', async () => {
  await h.customer('cus_bu_rpm');
  await h.fund('cus_bu_rpm', '10.00');
  // 60 a minute: a full bucket of 60, refilling one a second.
  await setLimitOverrides(h.db, 'cus_bu_rpm', { rpm: 60n });
  const answers = await Promise.all(Array.from({ length: 70 }, () => authorize('cus_bu_rpm')));
  const limited = answers.filter((a) => a.status === 429);
  // The bucket refills during the burst, so a few more than 60 may pass; never all of them.
  expect(answers.filter((a) => a.status === 201).length).toBeGreaterThanOrEqual(60);
  expect(limited.length).toBeGreaterThan(0);
  for (const r of limited) {
    expect(r.body.error).toMatchObject({ type: 'rate_limit_exceeded', code: 'rate_limit_exceeded' });
    expect(r.headers.get('retry-after')).toBe('1');
  }
  const { held_usd } = (await h.call('GET', '/v1/customers/cus_bu_rpm/budget')).body;
  expect(usd(held_usd)).toBe(HOLD * BigInt(answers.length - limited.length));
  // The advertised wait is enough: within a couple of seconds a call passes again.
  const again = await eventually(
    () => authorize('cus_bu_rpm'),
    (r) => r.status === 201,
    5_000,
  );
  expect(again.status).toBe(201);
});

test('tokens per minute: a call needing more tokens than are left is told how long until they are', async () => {
  await h.customer('cus_bu_tpm');
  await h.fund('cus_bu_tpm', '10.00');
  // 3,000 tokens a minute (50 a second); each call estimates 2,000.
  await setLimitOverrides(h.db, 'cus_bu_tpm', { tpm: 3_000n });
  expect((await authorize('cus_bu_tpm')).status).toBe(201);
  const limited = await authorize('cus_bu_tpm');
  expect(limited.status).toBe(429);
  // 1,000 left, 2,000 needed: 1,000 more at 50 a second is 20 s (a hair less has passed since).
  const retryAfter_s = Number(limited.headers.get('retry-after'));
  expect(retryAfter_s).toBeGreaterThanOrEqual(19);
  expect(retryAfter_s).toBeLessThanOrEqual(20);
  expect(limited.body.error.retry_after_s).toBe(retryAfter_s);
  // A call estimating fewer tokens fits what is left.
  expect((await authorize('cus_bu_tpm', { input_tokens: 500 })).status).toBe(201);
  // Limits lifted: the bucket no longer applies.
  await setLimitOverrides(h.db, 'cus_bu_tpm', { tpm: null });
  expect((await authorize('cus_bu_tpm')).status).toBe(201);
});

test('the account workflow shows the budget and the month its limit fired, also after a terminate rebuilds it', async () => {
  await h.customer('cus_bu_state');
  await h.fund('cus_bu_state', '10.00');
  await putBudget('cus_bu_state', { monthly_alert_usd: '0.01', monthly_limit_usd: '0.02' });
  await use('cus_bu_state', 10_000); // 0.025: past both
  const month = new Date().toISOString().slice(0, 7);
  const expected = {
    monthly_alert_usd: '0.010000000',
    monthly_limit_usd: '0.020000000',
    alert_fired_month: month,
    limit_reached_month: month,
  };
  const handle = h.temporal.workflow.getHandle(accountWorkflowId('cus_bu_state'));
  const state = await eventually(
    () => handle.query(accountStateQuery),
    (s) => s.budget?.limit_reached_month === month && s.budget?.alert_fired_month === month,
  );
  expect(state.budget).toEqual(expected);
  await handle.terminate('operator test');
  await putBudget('cus_bu_state', { monthly_alert_usd: '0.01' }); // starts a new run, which rebuilds from the database
  const rebuilt = await eventually(
    () => h.temporal.workflow.getHandle(accountWorkflowId('cus_bu_state')).query(accountStateQuery),
    (s) => s.budget?.limit_reached_month === month,
  );
  expect(rebuilt.budget).toEqual(expected);
});
