import { randomUUID } from 'node:crypto';
import { useHarness } from './support/harness';
import { waitFor } from './support/eventually';

/**
 * Credit expiry end to end: the account workflow sleeps until a grant's expiry, then writes off what is left of
 * it (an `expiry` ledger entry to breakage) and closes the grant; other grants are untouched.
 */
const h = useHarness();

test('an expiring promotion is written off at its expiry by the workflow timer, leaving paid credit alone', async () => {
  const customer = 'cus_expiry';
  await h.customer(customer, 'pm_card_visa');
  expect((await h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd: '10.00' })).status).toBe(
    201,
  );
  // Soon enough to wait for, late enough that the API (which refuses a past expiry) accepts it on a busy machine.
  const expires_at = new Date(Date.now() + 5_000).toISOString();
  const grant = await h.call('POST', `/v1/customers/${customer}/credit-grants`, {
    amount_usd: '2.500000001',
    reason: 'trial credit',
    expires_at,
  });
  expect(grant.status).toBe(201);
  // The grant was credited before it expired: the ledger says so, whenever this line runs (no race with the timer).
  const credited = await h.call('GET', `/v1/customers/${customer}/ledger`);
  expect(credited.body.data).toContainEqual(
    expect.objectContaining({ kind: 'credit_grant', ref: grant.body.id, balance_after_usd: '12.500000001' }),
  );

  // No one calls the API: the workflow's own timer fires at expires_at. Waited for as a condition with a deadline.
  await waitFor(
    'the expiry write-off',
    async () =>
      (await h.call('GET', `/v1/customers/${customer}/balance`)).body.available_usd === '10.000000000',
    30_000,
  );
  const balance = await h.call('GET', `/v1/customers/${customer}/balance`);
  expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(expires_at));
  const expired = balance.body.grants.find((g: { id: string }) => g.id === grant.body.id);
  expect(expired).toMatchObject({
    status: 'expired',
    remaining_usd: '0.000000000',
    amount_usd: '2.500000001',
  });
  const paid = balance.body.grants.find((g: { source: string }) => g.source === 'top_up');
  expect(paid).toMatchObject({ status: 'active', remaining_usd: '10.000000000' });

  const ledger = await h.call('GET', `/v1/customers/${customer}/ledger`);
  expect(ledger.body.data[0]).toMatchObject({
    kind: 'expiry',
    ref: grant.body.id,
    amount_usd: '-2.500000001',
    balance_after_usd: '10.000000000',
  });
  const breakage = await h
    .db('ledger_postings')
    .where({ account: 'breakage' })
    .sum<{ sum: string }[]>('amount_nanos');
  expect(BigInt(breakage[0]!.sum)).toBe(2_500_000_001n);
});

// ---- Expiry with holds open: a hold open at the expiry instant is paid once ----

/** gpt-5.4 output tokens cost 0.015 per 1,000 (0.000015 each): 200,000 of them are exactly 3.00. */
const outputTokensFor = (amount_usd: string): { output_tokens: number } => ({
  output_tokens: Number((usdNanos(amount_usd) / 15_000n).toString()),
});

function usdNanos(amount_usd: string): bigint {
  const [whole, fraction = ''] = amount_usd.split('.');
  return BigInt(whole!) * 1_000_000_000n + BigInt(fraction.padEnd(9, '0'));
}

async function authorizeUsd(customer_id: string, amount_usd: string, ttl_seconds?: number) {
  const response = await h.call('POST', '/v1/authorizations', {
    customer_id,
    model: 'gpt-5.4',
    estimated_usage: outputTokensFor(amount_usd),
    ...(ttl_seconds === undefined ? {} : { ttl_seconds }),
  });
  expect(response.status).toBe(201);
  expect(response.body.hold_usd).toBe(formatMoney(amount_usd));
  return response.body as { id: string; expires_at: string };
}

const formatMoney = (amount_usd: string) => {
  const nanos = usdNanos(amount_usd);
  return `${nanos / 1_000_000_000n}.${(nanos % 1_000_000_000n).toString().padStart(9, '0')}`;
};

async function captureUsd(authorization_id: string, amount_usd: string) {
  const response = await h.call('POST', `/v1/authorizations/${authorization_id}/capture`, {
    usage: outputTokensFor(amount_usd),
  });
  expect(response.status).toBe(200);
  return response.body as { cost_usd: string; released_usd: string };
}

/** Runs the hold sweep once (the `release-expired-holds` schedule's workflow), as the schedule would. */
async function sweep(): Promise<void> {
  await h.temporal.workflow.execute('releaseExpiredHoldsWorkflow', {
    taskQueue: h.taskQueue,
    workflowId: `sweep-${randomUUID()}`,
  });
}

interface GrantView {
  id: string;
  status: string;
  remaining_usd: string;
}

async function grantOf(customer: string, grant_id: string): Promise<GrantView> {
  const balance = await h.call('GET', `/v1/customers/${customer}/balance`);
  return balance.body.grants.find((g: GrantView) => g.id === grant_id);
}

async function money(customer: string) {
  const sum = async (account: string) => {
    const rows = await h
      .db('ledger_postings')
      .where({ account })
      .whereIn('entry_id', h.db('ledger_entries').select('id').where({ customer_id: customer }))
      .sum<{ sum: string | null }[]>('amount_nanos');
    return BigInt(rows[0]!.sum ?? '0');
  };
  const balance = await h.call('GET', `/v1/customers/${customer}/balance`);
  return {
    available_usd: balance.body.available_usd as string,
    held_usd: balance.body.held_usd as string,
    revenue_nanos: await sum('revenue'),
    breakage_nanos: await sum('breakage'),
  };
}

/**
 * A customer with a 5.00 promotion expiring in a few seconds and 10.00 that never expires, and a 3.00 hold taken
 * before the expiry. The promotion pays first (soonest expiry), so the hold is its credit: at expiry only 2.00 is
 * written off and 3.00 stays with the grant for the hold.
 */
async function promotionExpiringUnderAHold(customer: string, hold_ttl_seconds?: number) {
  await h.customer(customer);
  await h.fund(customer, '10.00');
  const expires_at = new Date(Date.now() + 4_000).toISOString();
  const promo = await h.call('POST', `/v1/customers/${customer}/credit-grants`, {
    amount_usd: '5.00',
    reason: 'trial',
    expires_at,
  });
  expect(promo.status).toBe(201);
  const hold = await authorizeUsd(customer, '3.00', hold_ttl_seconds);
  // Proves the hold was open before the expiry instant (the API refuses nothing here; the clock decides).
  expect(Date.now()).toBeLessThan(Date.parse(expires_at));
  await waitFor(
    'the expiry of the unheld part',
    async () => (await grantOf(customer, promo.body.id)).status === 'expired',
    30_000,
  );
  expect(await grantOf(customer, promo.body.id)).toMatchObject({
    status: 'expired',
    remaining_usd: '3.000000000',
  });
  const ledger = await h.call('GET', `/v1/customers/${customer}/ledger`);
  expect(ledger.body.data[0]).toMatchObject({
    kind: 'expiry',
    ref: promo.body.id,
    amount_usd: '-2.000000000',
  });
  // 15 - 3 held - 2 written off: the held 3.00 is not written off while the hold may still capture it.
  expect(await money(customer)).toMatchObject({ available_usd: '10.000000000', held_usd: '3.000000000' });
  return { grant_id: promo.body.id as string, hold };
}

test('a hold open at expiry and then captured in full is paid once: the grant pays it, nothing more is written off', async () => {
  const customer = 'cus_gx_capture';
  // The hold lives 12 s: the account workflow wakes when it would have settled at the latest, with no sweep at all.
  const { grant_id, hold } = await promotionExpiringUnderAHold(customer, 12);
  expect(await captureUsd(hold.id, '3.00')).toMatchObject({
    cost_usd: '3.000000000',
    released_usd: '0.000000000',
  });
  await waitFor(
    'the workflow to settle the grant at the hold expiry',
    async () =>
      (await h.db('credit_grants').where({ id: grant_id }).first<{ closed_at: Date | null }>())!.closed_at !==
      null,
    40_000,
  );
  // Paid once: 3.00 of revenue, 2.00 written off, the 10.00 that never expires untouched.
  expect(await money(customer)).toEqual({
    available_usd: '10.000000000',
    held_usd: '0.000000000',
    revenue_nanos: 3_000_000_000n,
    breakage_nanos: 2_000_000_000n,
  });
  expect(await grantOf(customer, grant_id)).toMatchObject({
    status: 'expired',
    remaining_usd: '0.000000000',
  });
  const events = await h.db('events').where({ customer_id: customer, type: 'credit.expired' });
  expect(events.map((e: { data: unknown }) => e.data)).toEqual([
    { grant_id, amount_usd: '2.000000000', held_usd: '3.000000000', expired_at: expect.any(String) },
  ]);
});

test('a hold open at expiry, captured for less: the grant pays the capture and the rest of the hold is written off', async () => {
  const customer = 'cus_gx_partial';
  const { grant_id, hold } = await promotionExpiringUnderAHold(customer);
  expect(await captureUsd(hold.id, '1.20')).toMatchObject({
    cost_usd: '1.200000000',
    released_usd: '1.800000000',
  });
  await sweep();
  expect(await grantOf(customer, grant_id)).toMatchObject({
    status: 'expired',
    remaining_usd: '0.000000000',
  });
  // 1.20 paid from the expired grant, 2.00 + 1.80 written off; the 10.00 untouched.
  expect(await money(customer)).toEqual({
    available_usd: '10.000000000',
    held_usd: '0.000000000',
    revenue_nanos: 1_200_000_000n,
    breakage_nanos: 3_800_000_000n,
  });
  const events = await h.db('events').where({ customer_id: customer, type: 'credit.expired' }).orderBy('seq');
  expect(events.map((e: { data: { amount_usd: string } }) => e.data.amount_usd)).toEqual([
    '2.000000000',
    '1.800000000',
  ]);
  await sweep(); // a second run finds nothing to settle and moves nothing
  expect((await money(customer)).breakage_nanos).toBe(3_800_000_000n);
});

test('a hold open at expiry and then voided: what it gives back of the expired grant is written off by the void itself', async () => {
  const customer = 'cus_gx_void';
  const { grant_id, hold } = await promotionExpiringUnderAHold(customer);
  expect((await h.call('POST', `/v1/authorizations/${hold.id}/void`)).status).toBe(200);
  // The void itself settled the claim: the expired 3.00 was written off before the answer, so it was never
  // spendable (the sweep that follows finds nothing more to do).
  expect(await money(customer)).toMatchObject({
    available_usd: '10.000000000',
    breakage_nanos: 5_000_000_000n,
  });
  await sweep();
  expect(await grantOf(customer, grant_id)).toMatchObject({
    status: 'expired',
    remaining_usd: '0.000000000',
  });
  expect(await money(customer)).toEqual({
    available_usd: '10.000000000',
    held_usd: '0.000000000',
    revenue_nanos: 0n,
    breakage_nanos: 5_000_000_000n,
  });
});

test('a hold taken after the expiry spends only live credit, never what the expired grant keeps for older holds', async () => {
  const customer = 'cus_gx_later';
  const { grant_id, hold } = await promotionExpiringUnderAHold(customer);
  const later = await authorizeUsd(customer, '4.50');
  await captureUsd(later.id, '4.50');
  await sweep(); // the later hold's capture settles no claim: the grant still keeps 3.00 for the older hold
  expect(await grantOf(customer, grant_id)).toMatchObject({
    status: 'expired',
    remaining_usd: '3.000000000',
  });
  expect((await h.call('POST', `/v1/authorizations/${hold.id}/void`)).status).toBe(200);
  await sweep();
  // The 4.50 came out of the 10.00; all 5.00 of the promotion was written off (2.00 at expiry, 3.00 released).
  expect(await money(customer)).toEqual({
    available_usd: '5.500000000',
    held_usd: '0.000000000',
    revenue_nanos: 4_500_000_000n,
    breakage_nanos: 5_000_000_000n,
  });
  const balance = await h.call('GET', `/v1/customers/${customer}/balance`);
  expect(
    balance.body.grants.find((g: { source: string; status: string }) => g.status === 'active'),
  ).toMatchObject({
    remaining_usd: '5.500000000',
  });
});
