import { usd } from '../billing/money';
import { prorate_nanos } from '../billing/periods';
import { accountStateQuery, accountWorkflowId } from '../workflows/messages';
import type { AccountView } from '../billing/account';
import { waitFor } from './support/eventually';
import { useHarness } from './support/harness';
import { subscriptionActivities } from '../activities/subscriptions';
import { recordSubscriptionChange } from '../db/subscriptions';
import { SimulatedGateway } from '../payments/simulated-gateway';

/**
 * Subscriptions with calendar-month periods (BILLING_PERIOD's default P1M): starting one charges the first period at
 * once on a paid invoice; a decline starts nothing; an upgrade mid-period is charged the prorated difference on its
 * own invoice; a seat increase likewise; a downgrade waits for the period end; cancelling at the period end keeps the
 * plan until then and blocks changes (409); cancelling now lands the account on Free; bad input is refused with
 * nothing charged. Invoices are read back from PostgreSQL to prove their lines sum to their totals.
 */
const h = useHarness();

async function charges(customer: string) {
  return h.db('simulated_charges').where({ customer_ref: customer }).orderBy('created_at');
}

/** Every invoice of a customer read straight from the database: its lines sum to its total. */
async function expectInvoicesBalance(customer: string): Promise<void> {
  const invoices = await h.db('invoices').where({ customer_id: customer });
  for (const invoice of invoices) {
    const lines = await h.db('invoice_lines').where({ invoice_id: invoice.id });
    const sum = lines.reduce(
      (total: bigint, line: { amount_nanos: bigint }) => total + line.amount_nanos,
      0n,
    );
    expect(sum).toBe(invoice.total_nanos);
  }
}

test('Plus starts with the first month charged at once on a paid invoice, and GET shows the period', async () => {
  const customer = 'cus_sub_plus';
  await h.customer(customer, 'pm_card_visa');
  const put = await h.call('PUT', `/v1/customers/${customer}/subscription`, { plan: 'plus' });
  expect(put.status).toBe(200);
  expect(put.body).toMatchObject({ plan: 'plus', seats: 1, status: 'active', cancel_at_period_end: false });
  const start = Date.parse(put.body.current_period_start);
  const end = new Date(start);
  end.setUTCMonth(end.getUTCMonth() + 1);
  // A calendar month, unless the start is on a day the next month lacks (then its last day): never longer.
  expect(Date.parse(put.body.current_period_end)).toBeLessThanOrEqual(end.getTime());
  expect(Date.parse(put.body.current_period_end) - start).toBeGreaterThanOrEqual(28 * 86_400_000);

  const [charge] = await charges(customer);
  expect(charge.amount_cents).toBe(2000n);
  const invoices = await h.call('GET', `/v1/customers/${customer}/invoices`);
  expect(invoices.body.data).toHaveLength(1);
  expect(invoices.body.data[0]).toMatchObject({
    status: 'paid',
    total_usd: '20.000000000',
    collection: 'charge',
    lines: [{ amount_usd: '20.000000000', quantity: '1' }],
  });
  const one = await h.call('GET', `/v1/invoices/${invoices.body.data[0].id}`);
  expect(one.body).toEqual(invoices.body.data[0]);
  expect(await h.db('events').where({ customer_id: customer, type: 'invoice.paid' })).toHaveLength(1);

  // Operators see the plan on the account: its query and the BillingPlan search attribute.
  const handle = h.temporal.workflow.getHandle(accountWorkflowId(customer));
  await waitFor('the account to show the plan', async () => {
    const view = await handle.query<AccountView>(accountStateQuery);
    return view.subscription?.plan === 'plus';
  });
  await waitFor('BillingPlan to be plus', async () => {
    const attrs = (await handle.describe()).searchAttributes as Record<string, unknown[]>;
    return attrs.BillingPlan?.[0] === 'plus';
  });
  await expectInvoicesBalance(customer);
});

test('a declined card starts nothing: 402 with the decline code, a void invoice, the account still on Free', async () => {
  const customer = 'cus_sub_declined';
  await h.customer(customer, 'pm_card_chargeDeclinedInsufficientFunds');
  const put = await h.call('PUT', `/v1/customers/${customer}/subscription`, { plan: 'pro' });
  expect(put.status).toBe(402);
  expect(put.body.error).toMatchObject({
    type: 'card_error',
    code: 'card_declined',
    decline_code: 'insufficient_funds',
  });
  const get = await h.call('GET', `/v1/customers/${customer}/subscription`);
  expect(get.body).toMatchObject({ plan: 'free', id: null });
  expect(await h.db('subscriptions').where({ customer_id: customer })).toHaveLength(0);
  const [invoice] = await h.db('invoices').where({ customer_id: customer });
  expect(invoice.status).toBe('void');
});

test('an upgrade Plus -> Pro mid-period is charged the prorated difference on its own invoice, rounded half-up', async () => {
  const customer = 'cus_sub_upgrade';
  await h.customer(customer, 'pm_card_visa');
  const started = await h.call('PUT', `/v1/customers/${customer}/subscription`, { plan: 'plus' });
  expect(started.status).toBe(200);
  const upgraded = await h.call('PUT', `/v1/customers/${customer}/subscription`, { plan: 'pro' });
  expect(upgraded.status).toBe(200);
  expect(upgraded.body).toMatchObject({ plan: 'pro', status: 'active' });
  // The period does not move: the upgrade is charged for what is left of it.
  expect(upgraded.body.current_period_end).toBe(started.body.current_period_end);

  const invoices = (await h.call('GET', `/v1/customers/${customer}/invoices`)).body.data;
  expect(invoices).toHaveLength(2);
  const proration = invoices[0];
  expect(proration.status).toBe('paid');
  const line = proration.lines[0];
  // (200.00 - 20.00) x remaining / period. Upgraded a moment after the start, remaining is nearly the whole month:
  // e.g. a 30-day period with 2,591,999,000 ms left is 180 x 0.99999961... = 179.99993 -> 180.00 (half-up to cents).
  const remaining_ms = Date.parse(line.period.end) - Date.parse(line.period.start);
  const period_ms =
    Date.parse(started.body.current_period_end) - Date.parse(started.body.current_period_start);
  const expected = prorate_nanos({
    new_price_nanos: usd('200'),
    old_price_nanos: usd('20'),
    remaining_ms,
    period_ms,
  });
  expect(usd(proration.total_usd)).toBe(expected);
  expect(expected).toBeGreaterThanOrEqual(usd('179.99'));
  expect(expected).toBeLessThanOrEqual(usd('180.00'));
  const amounts = (await charges(customer)).map((c) => c.amount_cents);
  expect(amounts).toEqual([2000n, BigInt(expected / 10_000_000n)]);
  await expectInvoicesBalance(customer);
});

test('Business seats: more seats now (prorated), fewer seats at the period end', async () => {
  const customer = 'cus_sub_seats';
  await h.customer(customer, 'pm_card_visa');
  const started = await h.call('PUT', `/v1/customers/${customer}/subscription`, {
    plan: 'business',
    seats: 3,
  });
  expect(started.status).toBe(200);
  expect((await charges(customer))[0].amount_cents).toBe(9000n); // 3 x 30.00

  const more = await h.call('PUT', `/v1/customers/${customer}/subscription`, { plan: 'business', seats: 5 });
  expect(more.body).toMatchObject({ seats: 5, pending_change: null });
  const proration = (await charges(customer))[1].amount_cents;
  // 2 more seats x 30.00 for (nearly) the whole period.
  expect(proration).toBeGreaterThanOrEqual(5999n);
  expect(proration).toBeLessThanOrEqual(6000n);

  const fewer = await h.call('PUT', `/v1/customers/${customer}/subscription`, { plan: 'business', seats: 2 });
  expect(fewer.status).toBe(200);
  expect(fewer.body).toMatchObject({
    seats: 5,
    pending_change: { plan: 'business', seats: 2, at: started.body.current_period_end },
  });
  expect(await charges(customer)).toHaveLength(2);
  // Asking for the current seats again drops the waiting change.
  const again = await h.call('PUT', `/v1/customers/${customer}/subscription`, { plan: 'business', seats: 5 });
  expect(again.body.pending_change).toBeNull();
  await expectInvoicesBalance(customer);
});

test('a downgrade waits for the period end and charges nothing now', async () => {
  const customer = 'cus_sub_down';
  await h.customer(customer, 'pm_card_visa');
  await h.call('PUT', `/v1/customers/${customer}/subscription`, { plan: 'pro' });
  const down = await h.call('PUT', `/v1/customers/${customer}/subscription`, { plan: 'go' });
  expect(down.status).toBe(200);
  expect(down.body).toMatchObject({ plan: 'pro', pending_change: { plan: 'go', seats: 1 } });
  expect(await charges(customer)).toHaveLength(1);
});

test('cancel at period end keeps the plan, refuses changes with 409, and a second cancel changes nothing', async () => {
  const customer = 'cus_sub_cancel';
  await h.customer(customer, 'pm_card_visa');
  await h.call('PUT', `/v1/customers/${customer}/subscription`, { plan: 'plus' });
  const canceled = await h.call('DELETE', `/v1/customers/${customer}/subscription`);
  expect(canceled.status).toBe(200);
  expect(canceled.body).toMatchObject({ plan: 'plus', status: 'active', cancel_at_period_end: true });
  const change = await h.call('PUT', `/v1/customers/${customer}/subscription`, { plan: 'pro' });
  expect(change.status).toBe(409);
  expect(change.body.error.code).toBe('subscription_canceled');
  expect(await charges(customer)).toHaveLength(1);
  expect((await h.call('DELETE', `/v1/customers/${customer}/subscription`)).body.cancel_at_period_end).toBe(
    true,
  );
});

test('cancel now lands the account on Free at once; a new PUT starts a new subscription', async () => {
  const customer = 'cus_sub_now';
  await h.customer(customer, 'pm_card_visa');
  const first = await h.call('PUT', `/v1/customers/${customer}/subscription`, { plan: 'go' });
  const now = await h.call('DELETE', `/v1/customers/${customer}/subscription?at_period_end=false`);
  expect(now.status).toBe(200);
  expect(now.body).toMatchObject({ plan: 'free', status: 'canceled', id: first.body.id });
  expect(await h.db('events').where({ customer_id: customer, type: 'subscription.canceled' })).toHaveLength(
    1,
  );
  const handle = h.temporal.workflow.getHandle(accountWorkflowId(customer));
  await waitFor('BillingPlan to be free', async () => {
    const attrs = (await handle.describe()).searchAttributes as Record<string, unknown[]>;
    return attrs.BillingPlan?.[0] === 'free';
  });
  const again = await h.call('PUT', `/v1/customers/${customer}/subscription`, { plan: 'go' });
  expect(again.status).toBe(200);
  expect(again.body.id).not.toBe(first.body.id);
  expect(await charges(customer)).toHaveLength(2);
});

test('an upgrade decided before a cancel-now is not charged after it: its proration invoice is voided, the change refused', async () => {
  const customer = 'cus_sub_cancel_race';
  await h.customer(customer, 'pm_card_visa');
  expect((await h.call('PUT', `/v1/customers/${customer}/subscription`, { plan: 'plus' })).status).toBe(200);
  // The upgrade's steps run here, by hand, so the cancel lands between its decision and its charge: what a cancel
  // during a worker's restart looks like. (Recorded, never signalled: the account itself does not run it.)
  const steps = subscriptionActivities({ db: h.db, gateway: new SimulatedGateway(h.db) });
  await recordSubscriptionChange(h.db, {
    id: 'sc_cancel_race',
    customer_id: customer,
    plan: 'pro',
    seats: null,
  });
  const prepared = await steps.prepareSubscriptionChange({
    change_id: 'sc_cancel_race',
    billing_period: 'P1M',
  });
  expect(prepared.status).toBe('charge');
  const invoice_id = (prepared as { invoice_id: string }).invoice_id;
  expect((await h.call('DELETE', `/v1/customers/${customer}/subscription?at_period_end=false`)).status).toBe(
    200,
  );

  const charge = await steps.chargeInvoice({ invoice_id, attempt: 1 });
  expect(charge).toEqual({ status: 'closed' });
  await steps.completeSubscriptionChange({ change_id: 'sc_cancel_race', charge });
  expect(await h.db('invoices').where({ id: invoice_id }).first()).toMatchObject({ status: 'void' });
  expect(await h.db('subscription_changes').where({ id: 'sc_cancel_race' }).first()).toMatchObject({
    status: 'refused',
    failure_code: 'subscription_canceled',
  });
  // Only the Plus start was ever charged.
  expect(await charges(customer)).toHaveLength(1);
});

test('bad input: unknown plan, seats on a flat plan, seats below 1 are 400s naming the field, nothing charged', async () => {
  const customer = 'cus_sub_bad';
  await h.customer(customer, 'pm_card_visa');
  const cases: [unknown, string][] = [
    [{ plan: 'platinum' }, 'plan'],
    [{ plan: 'plus', seats: 2 }, 'seats'],
    [{ plan: 'business', seats: 0 }, 'seats'],
    [{ plan: 'business', seats: 1.5 }, 'seats'],
    [{ plan: 'business', seats: '3' }, 'seats'],
    [{}, 'plan'],
  ];
  for (const [body, param] of cases) {
    const response = await h.call('PUT', `/v1/customers/${customer}/subscription`, body);
    expect(response.status).toBe(400);
    expect(response.body.error.param).toBe(param);
  }
  expect(await charges(customer)).toHaveLength(0);
  expect((await h.call('PUT', '/v1/customers/cus_nobody/subscription', { plan: 'plus' })).status).toBe(404);
  expect((await h.call('DELETE', `/v1/customers/${customer}/subscription`)).status).toBe(404);
  expect((await h.call('GET', '/v1/invoices/in_nothing')).status).toBe(404);
});

test('a retried PUT with the same Idempotency-Key charges once and answers the same', async () => {
  const customer = 'cus_sub_idem';
  await h.customer(customer, 'pm_card_visa');
  const headers = { 'idempotency-key': 'sub-once' };
  const first = await h.call('PUT', `/v1/customers/${customer}/subscription`, { plan: 'plus' }, headers);
  const retry = await h.call('PUT', `/v1/customers/${customer}/subscription`, { plan: 'plus' }, headers);
  expect(first.status).toBe(200);
  expect(retry.status).toBe(200);
  expect(retry.body.id).toBe(first.body.id);
  expect(await charges(customer)).toHaveLength(1);
});

test('invoice and cancel input: unknown invoice 404, paying a card invoice by hand 409, a malformed at_period_end 400, an unknown cursor 400', async () => {
  const customer = 'cus_sub_inv_input';
  await h.customer(customer, 'pm_card_visa');
  await h.call('PUT', `/v1/customers/${customer}/subscription`, { plan: 'go' });
  const [invoice] = (await h.call('GET', `/v1/customers/${customer}/invoices`)).body.data;
  const byHand = await h.call('POST', `/v1/invoices/${invoice.id}/pay`);
  expect(byHand.status).toBe(409);
  expect(byHand.body.error.code).toBe('invoice_not_net_terms');
  expect((await h.call('POST', '/v1/invoices/in_missing/pay')).status).toBe(404);
  for (const query of ['at_period_end=maybe', 'at_period_end=', 'refund=true']) {
    const response = await h.call('DELETE', `/v1/customers/${customer}/subscription?${query}`);
    expect(response.status).toBe(400);
    expect(response.body.error.type).toBe('invalid_request');
  }
  // Nothing was cancelled by the refused requests.
  expect((await h.call('GET', `/v1/customers/${customer}/subscription`)).body.cancel_at_period_end).toBe(
    false,
  );
  for (const query of ['limit=0', 'limit=101', 'limit=-1', 'limit=1.5']) {
    expect((await h.call('GET', `/v1/customers/${customer}/invoices?${query}`)).status).toBe(400);
  }
  const unknown = await h.call('GET', `/v1/customers/${customer}/invoices?starting_after=in_nope`);
  expect(unknown.status).toBe(400);
  expect(unknown.body.error.param).toBe('starting_after');
  expect(await charges(customer)).toHaveLength(1);
});
