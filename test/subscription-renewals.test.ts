import { usd } from '../billing/money';
import { accountWorkflowId, dunningWorkflowId } from '../workflows/messages';
import { waitFor } from './support/eventually';
import { useHarness } from './support/harness';

/**
 * Renewals, cancellation at the period end and dunning on a real Temporal server with time as configuration: a
 * billing period of one second (BILLING_PERIOD=PT1S) and a billing day of one second, so a year of monthly renewals
 * takes about twelve seconds and the dunning schedule (1, 3, 5, 7 days) seven. The account workflow's durable timers
 * drive all of it; nothing here sleeps against real time, it waits on conditions with deadlines.
 */
// The account continues as new every 60 history events, so a year of renewals spans several runs.
const h = useHarness({
  settings: {
    billing_period: 'PT1S',
    billing_day_ms: 1_000,
    dunning_retry_days: [1, 3, 5, 7],
    continue_as_new_after_events: 60,
  },
});

async function invoicesOf(customer: string) {
  return h.db('invoices').where({ customer_id: customer }).orderBy('period_start');
}

test('a year of monthly renewals for a Plus subscriber: twelve renewals of exactly 20.00, one charge per period', async () => {
  const customer = 'cus_ren_year';
  await h.customer(customer, 'pm_card_visa');
  const put = await h.call('PUT', `/v1/customers/${customer}/subscription`, { plan: 'plus' });
  expect(put.status).toBe(200);
  const firstRun = (await h.temporal.workflow.getHandle(accountWorkflowId(customer)).describe()).runId;
  await waitFor(
    'twelve renewals',
    async () => (await h.db('subscriptions').where({ customer_id: customer }).first()).period_index >= 12,
    60_000,
  );
  // The renewals spanned more than one run of the account workflow.
  expect((await h.temporal.workflow.getHandle(accountWorkflowId(customer)).describe()).runId).not.toBe(
    firstRun,
  );
  // Stop the clock: cancel now (no more renewals), then read the whole history back.
  expect((await h.call('DELETE', `/v1/customers/${customer}/subscription?at_period_end=false`)).status).toBe(
    200,
  );
  // A renewal charged at the instant of the cancellation still settles its invoice (paid: the money moved).
  await waitFor('no invoice left open', async () => {
    const open = await h.db('invoices').where({ customer_id: customer, status: 'open' });
    return open.length === 0;
  });
  const invoices = await invoicesOf(customer);
  const paid = invoices.filter((i) => i.status === 'paid');
  expect(paid.length).toBeGreaterThanOrEqual(13); // the first period and twelve renewals
  for (const invoice of paid) expect(invoice.total_nanos).toBe(usd('20.00'));
  // Periods follow one another without gap or overlap, and each was invoiced once.
  for (let i = 1; i < paid.length; i += 1) {
    expect(paid[i].period_start.getTime()).toBe(paid[i - 1].period_end.getTime());
  }
  const keys = invoices.map((i) => i.key);
  expect(new Set(keys).size).toBe(keys.length);
  const charges = await h.db('simulated_charges').where({ customer_ref: customer });
  expect(charges).toHaveLength(paid.length);
  expect(charges.every((c) => c.amount_cents === 2000n)).toBe(true);
  // The API pages through the same invoices, newest first, none skipped or repeated.
  const seen: string[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await h.call(
      'GET',
      `/v1/customers/${customer}/invoices?limit=5${after ? `&starting_after=${after}` : ''}`,
    );
    seen.push(...page.body.data.map((i: { id: string }) => i.id));
    if (!page.body.has_more) break;
    after = seen[seen.length - 1];
  }
  const newestFirst = await h
    .db('invoices')
    .where({ customer_id: customer })
    .orderBy([
      { column: 'created_at', order: 'desc' },
      { column: 'id', order: 'desc' },
    ]);
  expect(seen).toEqual(newestFirst.map((i: { id: string }) => i.id));
  // Every period the subscription opened was renewed once (the first was its start).
  const renewed = await h.db('events').where({ customer_id: customer, type: 'subscription.renewed' });
  const { period_index } = await h.db('subscriptions').where({ customer_id: customer }).first();
  expect(renewed).toHaveLength(period_index);
  // Every period opened was paid (the first, then each renewal), plus at most one charged at the cancel's instant.
  expect(paid.length - 1 - period_index).toBeGreaterThanOrEqual(0);
  expect(paid.length - 1 - period_index).toBeLessThanOrEqual(1);
  for (const invoice of invoices) {
    const lines = await h.db('invoice_lines').where({ invoice_id: invoice.id });
    expect(lines.reduce((sum: bigint, l: { amount_nanos: bigint }) => sum + l.amount_nanos, 0n)).toBe(
      invoice.total_nanos,
    );
  }
});

test('cancel at period end: the plan runs to the end, then the subscription ends without a charge and the account is on Free', async () => {
  const customer = 'cus_ren_cancel';
  await h.customer(customer, 'pm_card_visa');
  await h.call('PUT', `/v1/customers/${customer}/subscription`, { plan: 'go' });
  expect((await h.call('DELETE', `/v1/customers/${customer}/subscription`)).body.cancel_at_period_end).toBe(
    true,
  );
  await waitFor('the subscription to end', async () => {
    const sub = await h.call('GET', `/v1/customers/${customer}/subscription`);
    return sub.body.status === 'canceled';
  });
  const sub = await h.call('GET', `/v1/customers/${customer}/subscription`);
  expect(sub.body).toMatchObject({ plan: 'free', status: 'canceled' });
  expect(await h.db('simulated_charges').where({ customer_ref: customer })).toHaveLength(1);
  const events = await h.db('events').where({ customer_id: customer, type: 'subscription.canceled' });
  expect(events).toHaveLength(1);
  expect(events[0].data.reason).toBe('canceled_at_period_end');
});

test('a renewal that fails twice is paid at once after a card update, and the subscription is active again', async () => {
  const customer = 'cus_ren_dunning';
  await h.customer(customer, 'pm_card_visa');
  await h.call('PUT', `/v1/customers/${customer}/subscription`, { plan: 'plus' });
  // The card on file starts declining before the first renewal.
  await h.call('PUT', `/v1/customers/${customer}/payment-method`, {
    payment_method: 'pm_card_chargeDeclined',
  });
  await waitFor('the renewal to fail and the first dunning retry to fail', async () => {
    const open = await h.db('invoices').where({ customer_id: customer, status: 'open' }).first();
    return open !== undefined && (await attemptsOf(open.id)) >= 2;
  });
  const past = await h.call('GET', `/v1/customers/${customer}/subscription`);
  expect(past.body.status).toBe('past_due');
  // Operators find it in the Temporal UI: BillingStatus="past_due".
  const account = h.temporal.workflow.getHandle(accountWorkflowId(customer));
  await waitFor('BillingStatus to be past_due', async () => {
    const attrs = (await account.describe()).searchAttributes as Record<string, unknown[]>;
    return attrs.BillingStatus?.[0] === 'past_due';
  });
  const open = await h.db('invoices').where({ customer_id: customer, status: 'open' }).first();
  // The dunning workflow is named after the invoice, for operators.
  const dunning = h.temporal.workflow.getHandle(dunningWorkflowId(open.id));
  expect((await dunning.describe()).status.name).toBe('RUNNING');

  await h.call('PUT', `/v1/customers/${customer}/payment-method`, { payment_method: 'pm_card_visa' });
  expect(await dunning.result()).toBe('paid');
  const paid = await h.db('invoices').where({ id: open.id }).first();
  expect(paid.status).toBe('paid');
  await waitFor('the subscription to be active again', async () => {
    const sub = await h.call('GET', `/v1/customers/${customer}/subscription`);
    return sub.body.status === 'active';
  });
  expect(await h.db('events').where({ customer_id: customer, type: 'subscription.past_due' })).toHaveLength(
    1,
  );
  const paidEvents = await h.db('events').where({ customer_id: customer, type: 'invoice.paid' });
  expect(paidEvents.map((e) => e.data.invoice_id)).toContain(open.id);
  await h.call('DELETE', `/v1/customers/${customer}/subscription?at_period_end=false`);
});

test('a renewal whose card keeps declining exhausts dunning: invoice uncollectible, subscription canceled, account on Free', async () => {
  const customer = 'cus_ren_exhaust';
  await h.customer(customer, 'pm_card_visa');
  await h.call('PUT', `/v1/customers/${customer}/subscription`, { plan: 'plus' });
  await h.call('PUT', `/v1/customers/${customer}/payment-method`, {
    payment_method: 'pm_card_chargeDeclinedExpiredCard',
  });
  await waitFor('the subscription to be past due', async () => {
    const sub = await h.db('subscriptions').where({ customer_id: customer }).first();
    return sub.status === 'past_due';
  });
  const invoice = await h.db('invoices').where({ customer_id: customer, status: 'open' }).first();
  const dunning = h.temporal.workflow.getHandle(dunningWorkflowId(invoice.id));
  await waitFor('the dunning workflow to start', () =>
    dunning.describe().then(
      () => true,
      () => false,
    ),
  );
  const outcome = await dunning.result();
  expect(outcome).toBe('uncollectible');
  expect((await h.db('invoices').where({ id: invoice.id }).first()).status).toBe('uncollectible');
  // One renewal attempt and four dunning retries, each its own charge attempt.
  expect(await attemptsOf(invoice.id)).toBe(5);
  const sub = await h.call('GET', `/v1/customers/${customer}/subscription`);
  expect(sub.body).toMatchObject({ plan: 'free', status: 'canceled' });
  const canceled = await h.db('events').where({ customer_id: customer, type: 'subscription.canceled' });
  expect(canceled).toHaveLength(1);
  expect(canceled[0].data.reason).toBe('payment_failed');
});

/** Charge attempts made for an invoice (each a payment keyed by invoice and attempt). */
async function attemptsOf(invoice_id: string): Promise<number> {
  const rows = await h.db('payments').where('idempotency_key', 'like', `invoice:${invoice_id}:%`);
  return rows.length;
}

test('enterprise: seats in advance and the period usage in arrears at contract prices, net 30, paid by hand', async () => {
  const customer = 'cus_ren_enterprise';
  await h.customer(customer); // no card: enterprise is invoiced, never charged
  await h.fund(customer, '100.00');
  const contract = await h.call('PUT', `/v1/customers/${customer}/contract`, {
    seat_price_usd: '45.00',
    price_overrides: [{ model: 'gpt-5.4', dimension: 'input_tokens', unit_price_usd: '1.00' }],
  });
  expect(contract.status).toBe(200);
  const put = await h.call('PUT', `/v1/customers/${customer}/subscription`, {
    plan: 'enterprise',
    seats: 10,
  });
  expect(put.status).toBe(200);
  expect(await h.db('simulated_charges').where({ customer_ref: customer })).toHaveLength(0);
  // 2,000,000 input tokens at the contract's 1.00 per million = 2.00, in the first period.
  const usage = await h.call('POST', '/v1/usage-events', {
    events: [{ event_id: 'ent-1', customer_id: customer, model: 'gpt-5.4', input_tokens: 2_000_000 }],
  });
  expect(usage.body.accepted).toBe(1);
  await waitFor('the first renewal', async () => {
    const sub = await h.db('subscriptions').where({ customer_id: customer }).first();
    return sub.period_index >= 1;
  });
  await h.call('DELETE', `/v1/customers/${customer}/subscription?at_period_end=false`);
  const invoices = (await h.call('GET', `/v1/customers/${customer}/invoices?limit=100`)).body.data;
  const usageInvoice = invoices.find((i: { lines: { description: string }[] }) =>
    i.lines.some((l) => l.description.includes('gpt-5.4')),
  );
  expect(usageInvoice).toMatchObject({ collection: 'net_terms', status: 'open', total_usd: '2.000000000' });
  expect(Date.parse(usageInvoice.due_at) - Date.parse(usageInvoice.period_end)).toBe(30 * 86_400_000);
  // The wallet paid that usage at list price as it happened and got it back when it was invoiced: not paid twice.
  const balance = await h.call('GET', `/v1/customers/${customer}/balance`);
  expect(balance.body.available_usd).toBe('100.000000000');
  const back = await h.db('credit_grants').where({ customer_id: customer, source: 'subscription' });
  expect(back).toHaveLength(1);
  expect(back[0].id).toBe(`gr_${usageInvoice.id}`);
  const seatInvoices = invoices.filter((i: { total_usd: string }) => i.total_usd === '450.000000000');
  expect(seatInvoices.length).toBeGreaterThanOrEqual(2); // the first period's and the renewal's
  for (const invoice of seatInvoices) expect(invoice.collection).toBe('net_terms');
  // A bank transfer arrived: the operator records it, once.
  const paid = await h.call('POST', `/v1/invoices/${usageInvoice.id}/pay`);
  expect(paid.status).toBe(200);
  expect(paid.body.status).toBe('paid');
  expect((await h.call('POST', `/v1/invoices/${usageInvoice.id}/pay`)).body.status).toBe('paid');
  expect(await h.db('events').where({ customer_id: customer, type: 'invoice.paid' })).toHaveLength(1);
});

test('an account an operator terminated is woken by the sweep when its renewal is overdue, and renews', async () => {
  const customer = 'cus_ren_terminated';
  await h.customer(customer, 'pm_card_visa');
  await h.call('PUT', `/v1/customers/${customer}/subscription`, { plan: 'go' });
  const account = h.temporal.workflow.getHandle(accountWorkflowId(customer));
  await account.terminate('operator test');
  const before = (await h.db('subscriptions').where({ customer_id: customer }).first()).period_index;
  // Nothing renews while the account is not running, however long the period is past.
  await waitFor('the period to be over', async () => {
    const sub = await h.db('subscriptions').where({ customer_id: customer }).first();
    return sub.current_period_end.getTime() < Date.now() - 1_000;
  });
  expect((await h.db('subscriptions').where({ customer_id: customer }).first()).period_index).toBe(before);

  // The periodic sweep (the release-expired-holds Schedule's workflow) wakes it; it rebuilds and renews.
  expect((await h.sweep()).woken).toBeGreaterThanOrEqual(1);
  await waitFor('a renewal after the wake', async () => {
    const sub = await h.db('subscriptions').where({ customer_id: customer }).first();
    return sub.period_index > before;
  });
  await h.call('DELETE', `/v1/customers/${customer}/subscription?at_period_end=false`);
});
