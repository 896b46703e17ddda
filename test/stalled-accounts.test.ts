import { noteWakes, stalledAccounts } from '../db/stalled-accounts';
import { recordSubscriptionChange } from '../db/subscriptions';
import { recordTopUp } from '../db/top-ups';
import { accountWorkflowId } from '../workflows/messages';
import { useHarness } from './support/harness';
import { waitFor } from './support/eventually';

/**
 * The periodic sweep (the `release-expired-holds` Schedule's workflow) wakes accounts whose work is overdue in
 * PostgreSQL, so an account an operator terminated, or one that missed a signal, does not keep expired credit
 * spendable or a request unrun until the customer happens to call again. Each test shows the work stalled first,
 * then one sweep finishing it, once.
 */
const h = useHarness();

/** The longest backoff between two wakes of an account in these tests (ACCOUNT_WAKE_MAX_BACKOFF's default). */
const HOUR = 3_600_000;

async function reasonsOf(customer: string): Promise<string[] | undefined> {
  const stalled = await stalledAccounts(h.db, new Date(), { overdue_by_ms: 0, max_backoff_ms: HOUR }, 10_000);
  return stalled.find((s) => s.customer_id === customer)?.reasons;
}

test('a terminated account does not keep expired credit: the sweep wakes it and the grant is written off', async () => {
  const customer = 'cus_stall_expiry';
  await h.customer(customer);
  const expires_at = new Date(Date.now() + 4_000).toISOString();
  const grant = await h.call('POST', `/v1/customers/${customer}/credit-grants`, {
    amount_usd: '3.00',
    reason: 'trial',
    expires_at,
  });
  expect(grant.status).toBe(201);
  await h.temporal.workflow.getHandle(accountWorkflowId(customer)).terminate('operator test');

  // Past its expiry, nothing retires it while the account is down: the credit would still be spendable.
  await waitFor('the expiry to pass', async () => Date.now() > Date.parse(expires_at) + 500);
  const still = await h.db('credit_grants').where({ id: grant.body.id }).first();
  expect(still.closed_reason).toBeNull();
  expect(await reasonsOf(customer)).toEqual(['expiry_overdue']);

  const swept = await h.sweep();
  expect(swept.woken).toBeGreaterThanOrEqual(1);
  await waitFor(
    'the expired grant to be written off',
    async () =>
      (await h.call('GET', `/v1/customers/${customer}/balance`)).body.available_usd === '0.000000000',
  );
  const balance = await h.call('GET', `/v1/customers/${customer}/balance`);
  expect(balance.body.grants).toContainEqual(
    expect.objectContaining({ id: grant.body.id, status: 'expired', remaining_usd: '0.000000000' }),
  );
  const writeOffs = await h.db('ledger_entries').where({ customer_id: customer, kind: 'expiry' });
  expect(writeOffs).toHaveLength(1);
  expect(await reasonsOf(customer)).toBeUndefined();
  // The rebuilt account is running again (it will expire the next grant on its own timer).
  const described = await h.temporal.workflow.getHandle(accountWorkflowId(customer)).describe();
  expect(described.status.name).toBe('RUNNING');
});

test('a top-up whose signal was lost runs when the sweep wakes its running account, not at its next run', async () => {
  const customer = 'cus_stall_topup';
  await h.customer(customer, 'pm_card_visa');
  expect((await h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd: '1.00' })).status).toBe(
    201,
  );
  const handle = h.temporal.workflow.getHandle(accountWorkflowId(customer));
  const runId = (await handle.describe()).runId;
  // What an API process leaves behind if it dies between recording a top-up and signalling it.
  await recordTopUp(h.db, { id: 'tu_stall_lost', customer_id: customer, amount_nanos: 7_000_000_000n });
  expect(await reasonsOf(customer)).toEqual(['request_pending']);
  expect((await h.call('GET', '/v1/top-ups/tu_stall_lost')).body.status).toBe('pending');

  await h.sweep();
  await waitFor(
    'the lost top-up to settle',
    async () => (await h.call('GET', '/v1/top-ups/tu_stall_lost')).body.status === 'succeeded',
  );
  // The same run did it, charging once and granting once.
  expect((await handle.describe()).runId).toBe(runId);
  expect(await h.db('simulated_charges').where({ idempotency_key: 'top_up:tu_stall_lost' })).toHaveLength(1);
  expect(await h.db('credit_grants').where({ id: 'gr_tu_stall_lost' })).toHaveLength(1);
  expect((await h.call('GET', `/v1/customers/${customer}/balance`)).body.available_usd).toBe('8.000000000');

  // A second sweep finds nothing of this account to do and charges nothing more.
  await h.sweep();
  expect(await reasonsOf(customer)).toBeUndefined();
  expect(await h.db('simulated_charges').where({ idempotency_key: 'top_up:tu_stall_lost' })).toHaveLength(1);
});

test('a subscription change whose signal was lost is decided and charged once when the sweep wakes the account', async () => {
  const customer = 'cus_stall_sub';
  await h.customer(customer, 'pm_card_visa');
  await recordSubscriptionChange(h.db, {
    id: 'sc_stall_lost',
    customer_id: customer,
    plan: 'plus',
    seats: null,
  });
  expect(await reasonsOf(customer)).toEqual(['request_pending']);

  await h.sweep();
  await waitFor('the subscription to start', async () => {
    const change = await h.db('subscription_changes').where({ id: 'sc_stall_lost' }).first();
    return change.status !== 'pending';
  });
  expect(await h.db('subscription_changes').where({ id: 'sc_stall_lost' }).first()).toMatchObject({
    status: 'applied',
  });
  const subscription = await h.call('GET', `/v1/customers/${customer}/subscription`);
  expect(subscription.body).toMatchObject({ plan: 'plus', status: 'active' });
  const invoices = await h.db('invoices').where({ customer_id: customer });
  expect(invoices).toHaveLength(1);
  expect(invoices[0]).toMatchObject({ status: 'paid', total_nanos: 20_000_000_000n });
  expect(await reasonsOf(customer)).toBeUndefined();
  await h.call('DELETE', `/v1/customers/${customer}/subscription?at_period_end=false`);
});

test('what is not overdue wakes nobody: a grant before its expiry, a request younger than the margin', async () => {
  const customer = 'cus_stall_none';
  await h.customer(customer);
  const grant = await h.call('POST', `/v1/customers/${customer}/credit-grants`, {
    amount_usd: '1.00',
    reason: 'trial',
    expires_at: new Date(Date.now() + 3_600_000).toISOString(),
  });
  expect(grant.status).toBe(201);
  await recordTopUp(h.db, { id: 'tu_stall_young', customer_id: customer, amount_nanos: 5_000_000_000n });
  // With the sweep's default margin (a minute), a request recorded just now is not overdue.
  const stalled = await stalledAccounts(
    h.db,
    new Date(),
    { overdue_by_ms: 60_000, max_backoff_ms: HOUR },
    10_000,
  );
  expect(stalled.map((s) => s.customer_id)).not.toContain(customer);
  // Let the account run it, so the file ends with nothing pending.
  await h.call('PUT', `/v1/customers/${customer}/payment-method`, { payment_method: 'pm_card_visa' });
  await h.sweep();
  await waitFor(
    'the young top-up to settle',
    async () => (await h.call('GET', '/v1/top-ups/tu_stall_young')).body.status !== 'pending',
  );
});

test('an account whose work stays overdue is woken again only after a doubling backoff, and never-woken ones go first', async () => {
  const [stuck, fresh] = ['cus_stall_backoff', 'cus_stall_backoff_new'];
  await h.customer(stuck);
  await h.customer(fresh);
  // Requests recorded, never signalled and never run in this test: only the query and the wake log are exercised.
  await recordTopUp(h.db, { id: 'tu_stall_backoff', customer_id: stuck, amount_nanos: 5_000_000_000n });
  await recordTopUp(h.db, { id: 'tu_stall_backoff_new', customer_id: fresh, amount_nanos: 5_000_000_000n });
  const MARGIN = 60_000;
  const t0 = Date.now() + 2 * MARGIN; // both requests are overdue by then
  const at = (ms: number) => new Date(t0 + ms);
  const listed = async (ms: number) =>
    (await stalledAccounts(h.db, at(ms), { overdue_by_ms: MARGIN, max_backoff_ms: HOUR }, 10_000))
      .map((s) => s.customer_id)
      .filter((id) => id === stuck || id === fresh);
  const wakes = async () => (await h.db('account_wakes').where({ customer_id: stuck }).first())?.wakes;

  expect((await listed(0)).sort()).toEqual([fresh, stuck].sort());
  await noteWakes(h.db, [stuck], at(0), HOUR);
  expect(await wakes()).toBe(1);
  // Woken at 0: not again before the margin has passed, and then behind the account never woken.
  expect(await listed(MARGIN - 1_000)).toEqual([fresh]);
  expect(await listed(MARGIN)).toEqual([fresh, stuck]);
  // Woken again at MARGIN: the next wait is twice as long.
  await noteWakes(h.db, [stuck], at(MARGIN), HOUR);
  expect(await wakes()).toBe(2);
  expect(await listed(MARGIN + 2 * MARGIN - 1_000)).toEqual([fresh]);
  expect(await listed(MARGIN + 2 * MARGIN)).toEqual([fresh, stuck]);
  // The backoff is capped at an hour, however many wakes in a row.
  for (let i = 0; i < 10; i++) await noteWakes(h.db, [stuck], at(3 * MARGIN), HOUR);
  expect(await wakes()).toBe(12);
  expect(await listed(3 * MARGIN + HOUR - 1_000)).toEqual([fresh]);
  expect(await listed(3 * MARGIN + HOUR)).toEqual([fresh, stuck]);
  // A wake long after the last one starts a new row of wakes.
  await noteWakes(h.db, [stuck], at(3 * MARGIN + 3 * HOUR), HOUR);
  expect(await wakes()).toBe(1);
});
