import { usd } from '../billing/money';
import { accountStateQuery, accountWorkflowId } from '../workflows/messages';
import { waitFor } from './support/eventually';
import { useHarness } from './support/harness';
import { exited, startCrashWorker } from './support/processes';

/**
 * Crash safety of auto-recharge: a worker process is SIGKILLed between charging the card for a crossing and granting
 * the credit, and a second worker finishes it; and a run terminated before it acted on a delivered crossing is
 * rebuilt from PostgreSQL and recharges then; and recharges that span continue-as-new runs, with every crossing
 * delivered again afterwards. Every way: exactly one charge and one grant per crossing.
 */
const h = useHarness({
  worker: false,
  settings: { activity_timeout_ms: 2_000, payment_activity_timeout_ms: 2_000 },
});

// Each test starts the worker it needs (a crashing one, the harness's, or one with other settings).
afterEach(() => h.stopWorker());

/** A customer with 30.00 of credit and auto-recharge of 15.00 below 29.50: 1.00 of usage crosses it. */
async function customerAboutToRecharge(id: string): Promise<void> {
  await h.customer(id, 'pm_card_visa');
  const granted = await h.call('POST', `/v1/customers/${id}/credit-grants`, {
    amount_usd: '30.00',
    reason: 'test funds',
  });
  expect(granted.status).toBe(201);
  const put = await h.call('PUT', `/v1/customers/${id}/auto-recharge`, {
    enabled: true,
    threshold_usd: '29.50',
    amount_usd: '15.00',
  });
  expect(put.status).toBe(200);
}

async function spendOneDollar(id: string): Promise<void> {
  const response = await h.call('POST', '/v1/usage-events', {
    events: [
      { event_id: `crash-${id}`, customer_id: id, model: 'gpt-5.4-nano', tool_calls: { web_search: 100 } },
    ],
  });
  expect(response.status).toBe(200);
  expect(response.body.accepted).toBe(1);
}

async function expectOneRecharge(id: string): Promise<void> {
  await waitFor('the recharge to succeed', async () => {
    const rows = await h.db('auto_recharges').where({ customer_id: id });
    return rows.length === 1 && rows[0].status === 'succeeded';
  });
  const charges = await h.db('simulated_charges').where({ customer_ref: id });
  expect(charges).toHaveLength(1);
  expect(charges[0].idempotency_key).toMatch(/^auto_recharge:/);
  expect(await h.db('payments').where({ customer_id: id })).toHaveLength(1);
  const grants = await h.db('credit_grants').where({ customer_id: id, source: 'auto_recharge' });
  expect(grants).toHaveLength(1);
  expect(grants[0].amount_nanos).toBe(usd('15.00'));
  expect(await h.db('events').where({ customer_id: id, type: 'auto_recharge.succeeded' })).toHaveLength(1);
  // 30.00 - 1.00 + 15.00.
  const [wallet] = await h.db('wallets').where({ customer_id: id });
  expect(wallet.available_nanos).toBe(usd('44.00'));
}

test.each(['recharge_after_charge', 'recharge_before_grant'])(
  'a worker killed %s leaves exactly one charge and one grant once another worker takes over',
  async (crashAt) => {
    const id = `cus_ar_crash_${crashAt}`;
    const child = await startCrashWorker(h, crashAt);
    const died = exited(child);
    await customerAboutToRecharge(id);
    await spendOneDollar(id);
    expect(await died).toBe('SIGKILL');

    // The card was charged before the crash, and no credit exists yet: the dangerous window.
    expect(await h.db('simulated_charges').where({ customer_ref: id })).toHaveLength(1);
    expect(await h.db('credit_grants').where({ customer_id: id, source: 'auto_recharge' })).toHaveLength(0);

    await h.startWorker();
    await expectOneRecharge(id);
  },
);

test('a run terminated before acting on a delivered crossing is rebuilt and recharges once', async () => {
  const id = 'cus_ar_crash_terminated';
  await h.startWorker();
  await customerAboutToRecharge(id);
  await h.stopWorker();
  // No worker: the crossing is delivered (signalled and marked) but nobody acts on it, then the run is terminated.
  await spendOneDollar(id);
  await waitFor('the crossing to be delivered', async () => {
    const rows = await h.db('threshold_crossings').where({ customer_id: id, kind: 'recharge' });
    return rows.length === 1 && rows[0].signaled_at !== null;
  });
  await h.temporal.workflow.getHandle(accountWorkflowId(id)).terminate('operator test');
  expect(await h.db('auto_recharges').where({ customer_id: id })).toHaveLength(0);

  // The next message starts a new run without carried state: it rebuilds from PostgreSQL, finds the crossing
  // without its recharge, and runs it.
  await h.startWorker();
  const put = await h.call('PUT', `/v1/customers/${id}/auto-recharge`, {
    enabled: true,
    threshold_usd: '29.50',
    amount_usd: '15.00',
  });
  expect(put.status).toBe(200);
  await expectOneRecharge(id);
});

test('recharges across continue-as-new: one per crossing, and redelivered crossings charge nothing in later runs', async () => {
  const id = 'cus_ar_crash_can';
  await h.startWorker({ ...h.settings, continue_as_new_after_events: 25 });
  await h.customer(id, 'pm_card_visa');
  const granted = await h.call('POST', `/v1/customers/${id}/credit-grants`, {
    amount_usd: '30.00',
    reason: 'test funds',
  });
  expect(granted.status).toBe(201);
  const put = await h.call('PUT', `/v1/customers/${id}/auto-recharge`, {
    enabled: true,
    threshold_usd: '29.50',
    amount_usd: '1.00',
  });
  expect(put.status).toBe(200);
  // Five rounds: 1.00 of usage crosses 29.50, the 1.00 recharge brings the balance back to 30.00 and re-arms it.
  for (let round = 1; round <= 5; round++) {
    const response = await h.call('POST', '/v1/usage-events', {
      events: [
        { event_id: `can-${round}`, customer_id: id, model: 'gpt-5.4-nano', tool_calls: { web_search: 100 } },
      ],
    });
    expect(response.status).toBe(200);
    await waitFor(`recharge ${round}`, async () => {
      const rows = await h.db('auto_recharges').where({ customer_id: id, status: 'succeeded' });
      return rows.length === round;
    });
  }
  const handle = h.temporal.workflow.getHandle(accountWorkflowId(id));
  const state = await handle.query(accountStateQuery);
  expect(state.run_number).toBeGreaterThan(1);

  // Every crossing delivered again, to the latest run: nothing new is charged.
  await h.db('threshold_crossings').where({ customer_id: id }).update({ signaled_at: null });
  await waitFor('the crossings to be delivered again', async () => {
    const rows = await h.db('threshold_crossings').where({ customer_id: id }).whereNull('signaled_at');
    return rows.length === 0;
  });
  await waitFor(
    'the account to be idle',
    async () => (await handle.query(accountStateQuery)).queue.length === 0,
  );
  expect(await h.db('threshold_crossings').where({ customer_id: id, kind: 'recharge' })).toHaveLength(5);
  expect(await h.db('auto_recharges').where({ customer_id: id })).toHaveLength(5);
  expect(await h.db('simulated_charges').where({ customer_ref: id })).toHaveLength(5);
  expect(await h.db('credit_grants').where({ customer_id: id, source: 'auto_recharge' })).toHaveLength(5);
  const [wallet] = await h.db('wallets').where({ customer_id: id });
  expect(wallet.available_nanos).toBe(usd('30.00'));
});
