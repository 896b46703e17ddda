import { randomBytes } from 'node:crypto';
import { recordSimulatedCharge, recordSimulatedRefund } from '../db/simulated-charges';
import { ensureSchedules } from '../worker/schedules';
import { eventually } from './support/eventually';
import { useHarness } from './support/harness';

/**
 * Reconciliation end to end on real PostgreSQL and Temporal, against the simulated gateway's own books: a clean
 * window reports ok; planted differences (a charge the gateway made that we never recorded, a payment whose amount
 * the gateway books differently, a refund missing on either side) are each reported with their ids; a broken ledger
 * invariant shows in the report; each run is a workflow with its activity in Temporal; the `reconciliation`
 * Schedule exists with its interval once the worker's ensureSchedules ran, and its runs record reports too.
 */
const h = useHarness();

/** Everything this file makes is created after this instant. */
const fileStart = new Date(Date.now() - 60_000);

/** A window from the file's start to just past now: every item the file made so far. */
const windowSoFar = () => ({
  window_from: fileStart.toISOString(),
  window_to: new Date(Date.now() + 1000).toISOString(),
});

async function reconcile(body: unknown = windowSoFar()) {
  const response = await h.call('POST', '/v1/reports/reconciliation/runs', body);
  expect(response.status).toBe(201);
  return response.body;
}

async function topUp(customer: string, amount_usd: string): Promise<{ id: string }> {
  const response = await h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd });
  expect(response.status).toBe(201);
  expect(response.body.status).toBe('succeeded');
  return response.body;
}

async function paymentOf(top_up_id: string): Promise<{ id: string; gateway_charge_id: string }> {
  const [payment] = await h.db('payments').where({ idempotency_key: `top_up:${top_up_id}` });
  return payment;
}

test('a window whose books agree reports ok, with what it checked, and the report is listed', async () => {
  await h.customer('cus_rc_clean', 'pm_card_visa');
  const bought = await topUp('cus_rc_clean', '20.00');
  const refunded = await h.call('POST', `/v1/top-ups/${bought.id}/refunds`, { amount_usd: '5.00' });
  expect(refunded.body.status).toBe('succeeded');
  await h.customer('cus_rc_declined', 'pm_card_chargeDeclined');
  const declined = await h.call('POST', '/v1/customers/cus_rc_declined/top-ups', { amount_usd: '5.00' });
  expect(declined.status).toBe(402);

  const run = await reconcile();
  expect(run).toMatchObject({
    object: 'reconciliation_run',
    status: 'ok',
    gateway: 'simulated',
    // The succeeded top-up and the declined one (failed on both sides, which is no mismatch).
    payments_checked: 2,
    refunds_checked: 1,
    mismatches: [],
    ledger_violations: [],
  });
  expect(run.id).toMatch(/^rec_/);

  const listed = await h.call('GET', '/v1/reports/reconciliation?limit=1');
  expect(listed.status).toBe(200);
  expect(listed.body).toEqual({ data: [run], has_more: false });
});

test('planted differences are each reported with their ids: unrecorded charge, amount, refunds on one side', async () => {
  // The crash case: the gateway charged, and the worker died before `payments` recorded it (nor was it retried).
  await recordSimulatedCharge(h.db, {
    id: 'ch_sim_rc_ghost',
    idempotency_key: 'top_up:tu_rc_ghost',
    customer_ref: 'cus_rc_ghost',
    payment_method: 'pm_card_visa',
    amount_cents: 1234,
    status: 'succeeded',
    decline_code: null,
  });
  // The gateway's books say 9.99 where ours say 10.00.
  await h.customer('cus_rc_amount', 'pm_card_visa');
  const payment = await paymentOf((await topUp('cus_rc_amount', '10.00')).id);
  await h.db('simulated_charges').where({ id: payment.gateway_charge_id }).update({ amount_cents: 999 });
  // A refund of ours the gateway lost, and one the gateway made that we have no record of.
  await h.customer('cus_rc_refund', 'pm_card_visa');
  const bought = await topUp('cus_rc_refund', '10.00');
  const refunded = await h.call('POST', `/v1/top-ups/${bought.id}/refunds`, { amount_usd: '4.00' });
  expect(refunded.body.status).toBe('succeeded');
  await h.db('simulated_refunds').where({ id: refunded.body.gateway_refund_id }).delete();
  const stray = await recordSimulatedRefund(h.db, {
    id: 're_sim_rc_stray',
    idempotency_key: 'refund:re_rc_stray',
    charge_id: payment.gateway_charge_id,
    amount_cents: 100,
  });
  expect(stray.status).toBe('succeeded');

  const run = await reconcile();
  expect(run.status).toBe('mismatches');
  expect(run.ledger_violations).toEqual([]);
  const at = expect.any(String);
  expect(run.mismatches).toHaveLength(4);
  expect(run.mismatches).toEqual(
    expect.arrayContaining([
      {
        subject: 'charge',
        kind: 'missing_ours',
        id: null,
        gateway_id: 'ch_sim_rc_ghost',
        idempotency_key: 'top_up:tu_rc_ghost',
        customer_id: null,
        amount_usd: null,
        gateway_amount_usd: '12.340000000',
        status: null,
        gateway_status: 'succeeded',
        created_at: at,
        detail: 'the gateway made this charge and we have no record of it',
      },
      expect.objectContaining({
        subject: 'charge',
        kind: 'amount_mismatch',
        id: payment.id,
        gateway_id: payment.gateway_charge_id,
        customer_id: 'cus_rc_amount',
        amount_usd: '10.000000000',
        gateway_amount_usd: '9.990000000',
      }),
      expect.objectContaining({
        subject: 'refund',
        kind: 'missing_at_gateway',
        id: refunded.body.id,
        gateway_id: refunded.body.gateway_refund_id,
        idempotency_key: `refund:${refunded.body.id}`,
        customer_id: 'cus_rc_refund',
        amount_usd: '4.000000000',
        status: 'succeeded',
        gateway_status: null,
      }),
      expect.objectContaining({
        subject: 'refund',
        kind: 'missing_ours',
        id: null,
        gateway_id: 're_sim_rc_stray',
        idempotency_key: 'refund:re_rc_stray',
        gateway_amount_usd: '1.000000000',
      }),
    ]),
  );

  // The report as the API lists it, newest first, carries every mismatch.
  const listed = await h.call('GET', '/v1/reports/reconciliation');
  expect(listed.body.data[0]).toEqual(run);
});

test("a broken ledger invariant is in the run's report", async () => {
  await h.customer('cus_rc_ledger');
  await h.fund('cus_rc_ledger', '1.00');
  // A wallet that no longer equals its postings (put back below, so the file's final ledger check holds).
  await h.db('wallets').where({ customer_id: 'cus_rc_ledger' }).increment('available_nanos', 7);
  try {
    const run = await reconcile();
    expect(run.status).toBe('mismatches');
    expect(run.ledger_violations).toContainEqual({
      invariant: "every wallet's available balance equals its postings",
      subject: 'cus_rc_ledger',
      detail: '1000000007 vs 1000000000',
    });
  } finally {
    await h.db('wallets').where({ customer_id: 'cus_rc_ledger' }).decrement('available_nanos', 7);
  }
});

test('a run is a workflow per window with its activity in Temporal; asking again for the window runs it again', async () => {
  const window = {
    window_from: new Date(fileStart.getTime() - 3_600_000).toISOString(),
    window_to: fileStart.toISOString(),
  };
  const first = await reconcile(window);
  const second = await reconcile(window);
  // Nothing of this file is in that hour before it started: clean, whatever was planted since.
  expect(first).toMatchObject({ ...window, status: 'ok', payments_checked: 0, mismatches: [] });
  expect(second.workflow_id).toBe(first.workflow_id);
  expect(first.workflow_id).toBe(`reconciliation:${window.window_from}/${window.window_to}`);
  expect(second.id).not.toBe(first.id);

  const history = await h.temporal.workflow.getHandle(first.workflow_id).fetchHistory();
  const activities = (history.events ?? []).flatMap(
    (e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? [],
  );
  expect(activities).toEqual(['reconcilePayments']);
  const described = await h.temporal.workflow.getHandle(first.workflow_id).describe();
  expect(described.type).toBe('reconciliationWorkflow');
});

test('a window asked for by hand must be ordered, at most 93 days and not in the future (400 naming it)', async () => {
  const at = (ms: number) => new Date(Date.now() + ms).toISOString();
  for (const [body, message] of [
    [{ window_from: at(-1000), window_to: at(-2000) }, /later than window_from/],
    [{ window_from: at(-94 * 86_400_000), window_to: at(-1000) }, /at most 93 days/],
    [{ window_from: at(-1000), window_to: at(3_600_000) }, /future/],
  ] as const) {
    const response = await h.call('POST', '/v1/reports/reconciliation/runs', body);
    expect(response.status).toBe(400);
    expect(response.body.error).toMatchObject({ type: 'invalid_request', param: 'window_to' });
    expect(response.body.error.message).toMatch(message);
  }
  const unknownField = await h.call('POST', '/v1/reports/reconciliation/runs', { window: 'P1D' });
  expect(unknownField.status).toBe(400);
  const badCursor = await h.call('GET', '/v1/reports/reconciliation?starting_after=rec_nope');
  expect(badCursor.status).toBe(400);
});

test('the worker creates the reconciliation Schedule with its interval, and its runs record reports', async () => {
  // Schedules are per namespace, shared by every test file: this file's have their own prefix, and are deleted.
  const prefix = `test-rc-${randomBytes(4).toString('hex')}-`;
  const settings = {
    task_queue: h.taskQueue,
    hold_sweep_interval_ms: 3_600_000,
    reconciliation_interval_ms: 86_400_000,
    reconciliation_window_margin_ms: 3_600_000,
    id_prefix: prefix,
  };
  const schedule = h.temporal.schedule.getHandle(`${prefix}reconciliation`);
  try {
    await ensureSchedules(h.temporal, settings);
    const described = await schedule.describe();
    expect(described.spec.intervals).toMatchObject([{ every: 86_400_000 }]);
    expect(described.action).toMatchObject({
      type: 'startWorkflow',
      workflowType: 'reconciliationWorkflow',
      workflowId: `${prefix}reconciliation`,
      taskQueue: h.taskQueue,
      args: [{ interval_ms: 86_400_000, margin_ms: 3_600_000 }],
    });

    // Run it now, as the Schedule would at its time: the run's report names its workflow, started by the Schedule.
    await schedule.trigger();
    const reports = await eventually(
      () => h.db('reconciliation_runs').where('workflow_id', 'like', `${prefix}reconciliation%`),
      (rows) => rows.length > 0,
    );
    expect(reports).toHaveLength(1);
    const [report] = reports;
    expect(report.window_to.getTime() - report.window_from.getTime()).toBe(86_400_000 + 3_600_000);

    // A deploy with another interval updates the Schedule that exists.
    await ensureSchedules(h.temporal, { ...settings, reconciliation_interval_ms: 43_200_000 });
    const updated = await schedule.describe();
    expect(updated.spec.intervals).toMatchObject([{ every: 43_200_000 }]);
    expect(updated.action).toMatchObject({ args: [{ interval_ms: 43_200_000, margin_ms: 3_600_000 }] });
  } finally {
    await schedule.delete().catch(() => undefined);
    await h.temporal.schedule
      .getHandle(`${prefix}release-expired-holds`)
      .delete()
      .catch(() => undefined);
  }
});
