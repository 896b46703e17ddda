import { waitFor } from './support/eventually';
import { useHarness } from './support/harness';
import { exited, startCrashWorker } from './support/processes';

/**
 * A worker process is SIGKILLed right after a renewal's charge succeeded at the gateway and before the account
 * heard of it (the new period not opened yet). Another worker resumes the renewal: the charge step, keyed by the
 * invoice and attempt, finds the recorded payment instead of charging again; the period opens once and is paid.
 */
const h = useHarness({
  worker: false,
  settings: { billing_period: 'PT2S', activity_timeout_ms: 2_000, payment_activity_timeout_ms: 2_000 },
});

afterEach(() => h.stopWorker());

test('a worker killed in the middle of a renewal: exactly one charge for the period once another worker takes over', async () => {
  const customer = 'cus_subcrash_renewal';
  const child = await startCrashWorker(h, 'renewal_after_charge');
  const died = exited(child);
  await h.customer(customer, 'pm_card_visa');
  const put = await h.call('PUT', `/v1/customers/${customer}/subscription`, { plan: 'plus' });
  expect(put.status).toBe(200);
  expect(await died).toBe('SIGKILL');

  // The dangerous window: the gateway charged the renewal, our subscription still shows the first period.
  const [renewal] = await h
    .db('invoices')
    .where('key', 'like', 'period:%')
    .andWhere({ customer_id: customer });
  expect(renewal.status).toBe('open');
  expect(await h.db('simulated_charges').where({ customer_ref: customer })).toHaveLength(2);
  expect((await h.db('subscriptions').where({ customer_id: customer }).first()).period_index).toBe(0);

  await h.startWorker();
  await waitFor('the renewal to complete', async () => {
    const invoice = await h.db('invoices').where({ id: renewal.id }).first();
    return invoice.status === 'paid';
  });
  // Stop further renewals before counting.
  await h.call('DELETE', `/v1/customers/${customer}/subscription?at_period_end=false`);
  const renewalCharges = await h
    .db('simulated_charges')
    .where('idempotency_key', 'like', `invoice:${renewal.id}:%`);
  expect(renewalCharges).toHaveLength(1);
  const payments = await h.db('payments').where('idempotency_key', 'like', `invoice:${renewal.id}:%`);
  expect(payments).toHaveLength(1);
  expect(await h.db('events').where({ customer_id: customer, type: 'subscription.renewed' })).toHaveLength(
    (await h.db('subscriptions').where({ customer_id: customer }).first()).period_index,
  );
});
