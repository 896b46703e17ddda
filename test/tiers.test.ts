import { readWalletLimits } from '../db/limits';
import { accountStateQuery, accountWorkflowId } from '../workflows/messages';
import { eventually, waitFor } from './support/eventually';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { useHarness } from './support/harness';
import { startApi, startWorker } from './support/processes';

/**
 * Spend tiers end to end on real PostgreSQL and Temporal, with OpenAI's bundled table and a billing day of one
 * second (so "7 days since the first payment" is 7 s): a new customer starts on free with its limits on the wallet,
 * a payment promotes at once, an age rule promotes on the account's durable timer at its instant (not by polling),
 * `tier.promoted` is recorded once per tier, operators override limits, and the `BillingTier` search attribute finds
 * the account.
 */
const BILLING_DAY_MS = 1000;
const h = useHarness({ tiers: 'openai', settings: { billing_day_ms: BILLING_DAY_MS } });

async function tierOf(id: string) {
  const response = await h.call('GET', `/v1/customers/${id}/tier`);
  expect(response.status).toBe(200);
  return response.body;
}

async function topUp(id: string, amount_usd: string): Promise<void> {
  const response = await h.call('POST', `/v1/customers/${id}/top-ups`, { amount_usd });
  expect(response.status).toBe(201);
}

async function promotions(id: string): Promise<{ occurrence_key: string; data: Record<string, unknown> }[]> {
  return h.db('events').where({ customer_id: id, type: 'tier.promoted' }).orderBy('seq');
}

/** The activities the account's runs scheduled, by type, from its history. */
async function scheduledActivities(id: string): Promise<string[]> {
  const history = await h.temporal.workflow.getHandle(accountWorkflowId(id)).fetchHistory();
  return (history.events ?? []).flatMap((e) =>
    e.activityTaskScheduledEventAttributes?.activityType?.name
      ? [e.activityTaskScheduledEventAttributes.activityType.name]
      : [],
  );
}

test('a new customer starts on free with its limits on the wallet, and GET tier says what tier 1 requires', async () => {
  await h.customer('cus_ti_new');
  expect((await h.call('GET', '/v1/customers/cus_ti_new')).body.tier).toBe('free');
  const wallet = await readWalletLimits(h.db, 'cus_ti_new');
  expect(wallet!.tier).toEqual({ rpm: 3n, tpm: 40_000n, monthly_usage_limit_nanos: 100_000_000_000n });
  expect(await tierOf('cus_ti_new')).toMatchObject({
    object: 'customer_tier',
    tier: 'free',
    lifetime_paid_usd: '0.000000000',
    first_payment_at: null,
    limits: { rpm: 3, tpm: 40_000, monthly_usage_limit_usd: '100.000000000' },
    overrides: { rpm: null, tpm: null, monthly_usage_limit_usd: null },
    next_tier: {
      tier: 'tier_1',
      requires: { lifetime_paid_usd: '5.000000000', days_since_first_payment: 0 },
      lifetime_paid_missing_usd: '5.000000000',
      days_rule_met_at: null,
    },
  });
  // The account's first run reviewed the tier (nothing to promote) and shows it.
  const state = await eventually(
    () => h.temporal.workflow.getHandle(accountWorkflowId('cus_ti_new')).query(accountStateQuery),
    (s) => s.tier?.tier === 'free',
  );
  expect(state.tier).toMatchObject({ tier: 'free', next_review_at: null });
  expect(await promotions('cus_ti_new')).toEqual([]);
});

test('the first $5 top-up promotes to tier 1 at once: tier, wallet limits, one tier.promoted, BillingTier', async () => {
  const id = 'cus_ti_first5';
  await h.customer(id, 'pm_card_visa');
  await topUp(id, '5.00');
  const tier = await eventually(
    () => tierOf(id),
    (t) => t.tier === 'tier_1',
  );
  expect(tier).toMatchObject({
    tier: 'tier_1',
    lifetime_paid_usd: '5.000000000',
    limits: { rpm: 500, tpm: 200_000, monthly_usage_limit_usd: '100.000000000' },
    model_limits: { 'gpt-4o': { rpm: 500, tpm: 30_000 } },
    next_tier: { tier: 'tier_2', lifetime_paid_missing_usd: '45.000000000' },
  });
  expect(tier.first_payment_at).not.toBeNull();
  // The days rule counts from the first payment in billing days: 7 s here.
  expect(Date.parse(tier.next_tier.days_rule_met_at)).toBe(
    Date.parse(tier.first_payment_at) + 7 * BILLING_DAY_MS,
  );
  expect((await readWalletLimits(h.db, id))!.tier).toEqual({
    rpm: 500n,
    tpm: 200_000n,
    monthly_usage_limit_nanos: 100_000_000_000n,
  });
  const events = await promotions(id);
  expect(events).toHaveLength(1);
  expect(events[0]).toMatchObject({
    occurrence_key: `tier:${id}:tier_1`,
    data: { tier: 'tier_1', previous_tier: 'free', lifetime_paid_usd: '5.000000000' },
  });

  // Operators find the account by tier in Temporal's visibility store (eventually consistent).
  const found = await eventually(
    async () => {
      const ids: string[] = [];
      for await (const wf of h.temporal.workflow.list({
        query: `BillingTier="tier_1" AND BillingCustomerId="${id}"`,
      })) {
        ids.push(wf.workflowId);
      }
      return ids;
    },
    (ids) => ids.length > 0,
  );
  expect(found).toEqual([accountWorkflowId(id)]);
});

test('$50 paid promotes to tier 2 on the account timer exactly when 7 billing days have passed, once', async () => {
  const id = 'cus_ti_age';
  await h.customer(id, 'pm_card_visa');
  await topUp(id, '50.00');
  const first = await eventually(
    () => tierOf(id),
    (t) => t.tier === 'tier_1',
  );
  const first_payment_ms = Date.parse(first.first_payment_at);
  const due_ms = first_payment_ms + 7 * BILLING_DAY_MS;
  // Money alone is not enough: before the instant, the account is on tier 1 and its workflow sleeps until it.
  expect(Date.now()).toBeLessThan(due_ms);
  expect(first.next_tier).toMatchObject({ tier: 'tier_2', lifetime_paid_missing_usd: '0.000000000' });
  const sleeping = await h.temporal.workflow.getHandle(accountWorkflowId(id)).query(accountStateQuery);
  expect(Date.parse(sleeping.tier!.next_review_at!)).toBe(due_ms);

  const promoted = await eventually(
    () => tierOf(id),
    (t) => t.tier === 'tier_2',
    20_000,
  );
  // Promoted at the instant the rule was met (not before it, and not a polling interval after it).
  const promoted_ms = Date.parse(promoted.tier_since);
  expect(promoted_ms).toBeGreaterThanOrEqual(due_ms);
  expect(promoted_ms - due_ms).toBeLessThan(3_000);
  expect(promoted.limits).toEqual({ rpm: 5000, tpm: 2_000_000, monthly_usage_limit_usd: '500.000000000' });
  expect(promoted.next_tier).toMatchObject({ tier: 'tier_3', lifetime_paid_missing_usd: '50.000000000' });

  const events = await promotions(id);
  expect(events.map((e) => e.occurrence_key)).toEqual([`tier:${id}:tier_1`, `tier:${id}:tier_2`]);
  // Three reviews in all: the run's start, after the payment, and the one timer; no polling in between. With
  // tier 3 needing more money, no timer is left.
  const state = await eventually(
    () => h.temporal.workflow.getHandle(accountWorkflowId(id)).query(accountStateQuery),
    (s) => s.tier?.tier === 'tier_2',
  );
  expect(state.tier).toMatchObject({
    tier: 'tier_2',
    previous_tier: 'tier_1',
    promoted: true,
    next_review_at: null,
  });
  expect((await scheduledActivities(id)).filter((name) => name === 'reviewTier')).toHaveLength(3);
});

test('a terminated account rebuilds its tier from PostgreSQL and still promotes on its timer', async () => {
  const id = 'cus_ti_rebuild';
  await h.customer(id, 'pm_card_visa');
  await topUp(id, '60.00');
  const first = await eventually(
    () => tierOf(id),
    (t) => t.tier === 'tier_1',
  );
  const due_ms = Date.parse(first.first_payment_at) + 7 * BILLING_DAY_MS;
  const handle = h.temporal.workflow.getHandle(accountWorkflowId(id));
  const terminatedRunId = (await handle.describe()).runId;
  await handle.terminate('operator test: terminate');
  // Re-creating the customer starts a fresh run, which has no carried state.
  expect((await h.call('POST', '/v1/customers', { id })).status).toBe(200);
  const rebuilt = await eventually(
    async () => ({
      runId: (await handle.describe()).runId,
      state: await handle.query(accountStateQuery).catch(() => undefined),
    }),
    (r) => r.runId !== terminatedRunId && r.state?.tier?.tier === 'tier_1',
  );
  expect(rebuilt.state!.tier).toMatchObject({
    tier: 'tier_1',
    promoted: false,
    lifetime_paid_usd: '60.000000000',
  });
  expect(Date.parse(rebuilt.state!.tier!.next_review_at!)).toBe(due_ms);
  const promoted = await eventually(
    () => tierOf(id),
    (t) => t.tier === 'tier_2',
    20_000,
  );
  expect(Date.parse(promoted.tier_since)).toBeGreaterThanOrEqual(due_ms);
  expect((await promotions(id)).map((e) => e.occurrence_key)).toEqual([
    `tier:${id}:tier_1`,
    `tier:${id}:tier_2`,
  ]);
});

test('a terminated account whose age rule passes while it is down is promoted when the sweep wakes it', async () => {
  const id = 'cus_ti_sweep';
  await h.customer(id, 'pm_card_visa');
  await topUp(id, '50.00');
  const first = await eventually(
    () => tierOf(id),
    (t) => t.tier === 'tier_1',
  );
  const due_ms = Date.parse(first.first_payment_at) + 7 * BILLING_DAY_MS;
  // The review's instant is in PostgreSQL, where the sweep looks for it.
  const [row] = await h.db('customers').where({ id });
  expect(row.tier_review_at.getTime()).toBe(due_ms);
  await h.temporal.workflow.getHandle(accountWorkflowId(id)).terminate('operator test');
  await waitFor('the age rule to be met', async () => Date.now() > due_ms + 1_000);
  // Nothing promotes it while its account is down.
  expect((await tierOf(id)).tier).toBe('tier_1');

  expect((await h.sweep()).woken).toBeGreaterThanOrEqual(1);
  const promoted = await eventually(
    () => tierOf(id),
    (t) => t.tier === 'tier_2',
  );
  expect(promoted.next_tier).toMatchObject({ tier: 'tier_3' });
  expect((await h.db('customers').where({ id }))[0].tier_review_at).toBeNull();
  expect((await promotions(id)).map((e) => e.occurrence_key)).toEqual([
    `tier:${id}:tier_1`,
    `tier:${id}:tier_2`,
  ]);
});

test("the hot path enforces the tier's limits: free allows 3 authorizations a minute, an override lifts it", async () => {
  const id = 'cus_ti_rpm';
  await h.customer(id);
  await h.fund(id, '10.00');
  const authorize = () =>
    h.call('POST', '/v1/authorizations', {
      customer_id: id,
      model: 'gpt-5.4',
      estimated_usage: { input_tokens: 100, output_tokens: 100 },
    });
  const answers = [];
  for (let i = 0; i < 4; i += 1) answers.push(await authorize());
  expect(answers.map((a) => a.status)).toEqual([201, 201, 201, 429]);
  expect(answers[3]!.body.error).toMatchObject({ code: 'rate_limit_exceeded' });
  expect((await h.call('PUT', `/v1/customers/${id}/limits`, { rpm: 1000 })).body.limits.rpm).toBe(1000);
  expect((await authorize()).status).toBe(201);
});

test('a declined card and an operator grant promote nothing', async () => {
  const id = 'cus_ti_declined';
  await h.customer(id, 'pm_card_chargeDeclined');
  expect((await h.call('POST', `/v1/customers/${id}/top-ups`, { amount_usd: '500.00' })).status).toBe(402);
  await h.fund(id, '500.00');
  const tier = await tierOf(id);
  expect(tier).toMatchObject({ tier: 'free', lifetime_paid_usd: '0.000000000', first_payment_at: null });
  expect(await promotions(id)).toEqual([]);
});

test('PUT limits overrides the tier per field, null goes back to the tier, absent leaves a field alone', async () => {
  const id = 'cus_ti_limits';
  await h.customer(id);
  const set = await h.call('PUT', `/v1/customers/${id}/limits`, {
    rpm: 1_000_000_000_000,
    monthly_usage_limit_usd: '25000.50',
  });
  expect(set.status).toBe(200);
  expect(set.body).toMatchObject({
    tier: 'free',
    limits: { rpm: 1_000_000_000_000, tpm: 40_000, monthly_usage_limit_usd: '25000.500000000' },
    tier_limits: { rpm: 3, tpm: 40_000, monthly_usage_limit_usd: '100.000000000' },
    overrides: { rpm: 1_000_000_000_000, tpm: null, monthly_usage_limit_usd: '25000.500000000' },
  });
  expect((await readWalletLimits(h.db, id))!.override).toEqual({
    rpm: 1_000_000_000_000n,
    tpm: null,
    monthly_usage_limit_nanos: 25_000_500_000_000n,
  });

  const reset = await h.call('PUT', `/v1/customers/${id}/limits`, { rpm: null, tpm: 7 });
  expect(reset.status).toBe(200);
  expect(reset.body.limits).toEqual({ rpm: 3, tpm: 7, monthly_usage_limit_usd: '25000.500000000' });
  expect((await tierOf(id)).overrides).toEqual({
    rpm: null,
    tpm: 7,
    monthly_usage_limit_usd: '25000.500000000',
  });
});

test.each([
  [{ rpm: 0 }, 'rpm'],
  [{ rpm: 1.5 }, 'rpm'],
  [{ tpm: '100' }, 'tpm'],
  [{ tpm: 1_000_000_000_001 }, 'tpm'],
  [{ monthly_usage_limit_usd: 100 }, 'monthly_usage_limit_usd'],
  [{ monthly_usage_limit_usd: '0' }, 'monthly_usage_limit_usd'],
  [{ monthly_usage_limit_usd: '-5.00' }, 'monthly_usage_limit_usd'],
  [{ monthly_usage_limit_usd: '1000000000.000000001' }, 'monthly_usage_limit_usd'],
  [{ burst: 5 }, 'burst'],
])('PUT limits %j is a 400 naming %s and changes nothing', async (body, param) => {
  const id = 'cus_ti_badlimits';
  if ((await h.call('GET', `/v1/customers/${id}`)).status === 404) await h.customer(id);
  const before = await readWalletLimits(h.db, id);
  const response = await h.call('PUT', `/v1/customers/${id}/limits`, body);
  expect(response.status).toBe(400);
  expect(response.body.error).toMatchObject({ type: 'invalid_request' });
  expect(response.body.error.param).toBe(param);
  expect(await readWalletLimits(h.db, id)).toEqual(before);
});

test('tier and limits of an unknown customer are 404', async () => {
  expect((await h.call('GET', '/v1/customers/cus_ti_nobody/tier')).status).toBe(404);
  expect((await h.call('PUT', '/v1/customers/cus_ti_nobody/limits', { rpm: 5 })).status).toBe(404);
});

test('a bad TIERS_PATH stops `npm run api` and `npm run worker` at startup, naming the file and the fault', async () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tiers-')), 'tiers.json');
  fs.writeFileSync(
    file,
    JSON.stringify({
      tiers: [
        {
          id: 'free',
          requires: { lifetime_paid_usd: '0', days_since_first_payment: 0 },
          limits: { rpm: 0, tpm: null, monthly_usage_limit_usd: null },
        },
      ],
    }),
  );
  const fault = new RegExp(
    `TIERS_PATH ${file}: invalid tier table:\\n\\s*tiers\\.0\\.limits\\.rpm: must be at least 1`,
  );
  await expect(startApi(h, { TIERS_PATH: file })).rejects.toThrow(fault);
  await expect(startWorker(h, { TIERS_PATH: file })).rejects.toThrow(fault);
});
