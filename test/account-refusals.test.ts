import { WorkflowUpdateFailedError } from '@temporalio/client';
import type { AccountView } from '../billing/account';
import {
  accountStateQuery,
  accountWorkflowId,
  creditGrantRequestedSignal,
  grantCreditUpdate,
} from '../workflows/messages';
import { useHarness } from './support/harness';
import { waitFor } from './support/eventually';

/**
 * The account workflow never fails. A command whose step fails in a way no retry can fix (here: a NUL character,
 * which PostgreSQL refuses with SQLSTATE 22021 inside the grant activity) is refused alone: the caller hears the
 * refusal, the query and the workflow's memo show it, and the commands behind it run. Payment calls run with their
 * own activity options, and settings changed on the worker reach running accounts at their next continue-as-new.
 */
const h = useHarness({ settings: { continue_as_new_after_events: 60 } });

const handleOf = (customer: string) => h.temporal.workflow.getHandle(accountWorkflowId(customer));
const view = (customer: string) => handleOf(customer).query<AccountView>(accountStateQuery);

test('a grant whose reason holds a NUL is refused (invalid_data), the run keeps going and the next top-up succeeds', async () => {
  const customer = 'cus_ref_nul';
  await h.customer(customer, 'pm_card_visa');
  const handle = handleOf(customer);

  // Straight to the workflow, as any Temporal client may: the HTTP edge's own 400 for control characters is bypassed.
  const refused = handle.executeUpdate(grantCreditUpdate, {
    args: [
      {
        grant_id: 'gr_nul_update',
        amount_usd: '1.00',
        source: 'promotion',
        reason: 'bad\u0000reason',
        expires_at: null,
      },
    ],
    updateId: 'nul-update-1',
  });
  await expect(refused).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
  const failure = await refused.catch((error: WorkflowUpdateFailedError) => error.cause as { type?: string });
  expect(failure).toMatchObject({ type: 'invalid_data' });

  // The same by signal, the path the API uses: refused in the queue, the next request runs.
  await handle.signal(creditGrantRequestedSignal, {
    grant_id: 'gr_nul_signal',
    amount_usd: '1.00',
    source: 'promotion',
    reason: 'nul\u0000again',
    expires_at: null,
    accepted_at: new Date().toISOString(),
  });
  const topUp = await h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd: '12.00' });
  expect(topUp.status).toBe(201);
  expect(topUp.body.status).toBe('succeeded');

  const description = await handle.describe();
  expect(description.status.name).toBe('RUNNING');
  const state = await view(customer);
  expect(state.refusals).toBe(2);
  expect(state.last_refusal).toMatchObject({
    id: 'gr_nul_signal',
    command_kind: 'grant_credit',
    code: 'invalid_data',
  });
  expect(state.queue).toEqual([]);
  // Operators see it in the Temporal UI without a query: the memo carries the latest refusal.
  // (The memo is read through visibility, which follows the workflow's history a little later.)
  // One description is both waited on and checked: the account may continue as new between two descriptions.
  let memo: Record<string, unknown> = {};
  await waitFor(
    'the memo to show the refusal',
    async () => {
      memo = (await handle.describe()).memo ?? {};
      return memo.refusals === 2;
    },
    10_000,
  );
  expect(memo).toMatchObject({ last_refusal: { id: 'gr_nul_signal', code: 'invalid_data' }, refusals: 2 });

  expect(await h.db('credit_grants').where({ customer_id: customer })).toHaveLength(1); // the top-up's only
  expect((await h.call('GET', `/v1/customers/${customer}/balance`)).body.available_usd).toBe('12.000000000');
});

test('through the API, a grant whose reason PostgreSQL cannot store is a 400 at the edge, and the account takes the next top-up', async () => {
  const customer = 'cus_ref_api';
  await h.customer(customer, 'pm_card_visa');
  const nul = await h.call('POST', `/v1/customers/${customer}/credit-grants`, {
    amount_usd: '1.00',
    reason: 'a\u0000b',
  });
  expect(nul.status).toBe(400);
  expect(nul.body.error.type).toBe('invalid_request');
  const ok = await h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd: '2.00' });
  expect(ok.status).toBe(201);
});

test('a payment call is scheduled with its own timeout and retry policy, distinct from the database steps', async () => {
  const customer = 'cus_ref_options';
  await h.customer(customer, 'pm_card_visa');
  expect((await h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd: '3.00' })).status).toBe(
    201,
  );
  const history = await handleOf(customer).fetchHistory();
  const scheduled = new Map(
    history
      .events!.filter((e) => e.activityTaskScheduledEventAttributes)
      .map((e) => {
        const a = e.activityTaskScheduledEventAttributes!;
        return [
          a.activityType!.name!,
          {
            timeout_s: Number(a.startToCloseTimeout!.seconds),
            first_retry_s: Number(a.retryPolicy!.initialInterval!.seconds),
            max_retry_s: Number(a.retryPolicy!.maximumInterval!.seconds),
            attempts: a.retryPolicy!.maximumAttempts,
          },
        ] as const;
      }),
  );
  // The harness's database steps have activity_timeout_ms = 10 s; payment calls the 60 s default.
  expect(scheduled.get('completeTopUp')).toEqual({
    timeout_s: 10,
    first_retry_s: 1,
    max_retry_s: 60,
    attempts: 0,
  });
  expect(scheduled.get('loadAccountSnapshot')).toEqual(scheduled.get('completeTopUp'));
  expect(scheduled.get('chargeTopUp')).toEqual({
    timeout_s: 60,
    first_retry_s: 2,
    max_retry_s: 600,
    attempts: 0,
  });
});

test('settings changed on the worker reach a running account at its next continue-as-new', async () => {
  const customer = 'cus_ref_settings';
  await h.customer(customer, 'pm_card_visa');
  const before = await view(customer);
  expect(before.settings).toMatchObject({ activity_timeout_ms: 10_000, continue_as_new_after_events: 60 });
  const firstRun = before.run_number;

  // A new deployment of the worker with other settings; the account's start input still carries the old ones.
  await h.stopWorker();
  await h.startWorker({ ...h.settings, activity_timeout_ms: 7_000, payment_activity_timeout_ms: 9_000 });
  try {
    // Work until the run continues as new (60 history events), whatever the timing of each top-up.
    await waitFor('the account to continue as new', async () => {
      const topUp = await h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd: '1.00' });
      expect([201, 202]).toContain(topUp.status);
      return (await view(customer)).run_number > firstRun;
    });
    const after = await view(customer);
    expect(after.settings).toMatchObject({ activity_timeout_ms: 7_000, payment_activity_timeout_ms: 9_000 });

    // And the new run schedules its activities with them.
    expect((await h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd: '1.00' })).status).toBe(
      201,
    );
    const history = await handleOf(customer).fetchHistory();
    const timeouts = history
      .events!.filter((e) => e.activityTaskScheduledEventAttributes)
      .map((e) => [
        e.activityTaskScheduledEventAttributes!.activityType!.name,
        Number(e.activityTaskScheduledEventAttributes!.startToCloseTimeout!.seconds),
      ]);
    expect(timeouts).toContainEqual(['completeTopUp', 7]);
    expect(timeouts).toContainEqual(['chargeTopUp', 9]);
    expect(timeouts.filter(([, s]) => s === 10 || s === 60)).toEqual([]);
  } finally {
    await h.stopWorker();
    await h.startWorker();
  }
});

test('a malformed threshold crossing signal is ignored: the account goes on and takes the next real one', async () => {
  const customer = 'cus_ref_poison';
  await h.customer(customer, 'pm_card_visa');
  const handle = h.temporal.workflow.getHandle(accountWorkflowId(customer));
  const poison: unknown[] = [
    null,
    'crossing',
    {
      crossing_id: 'abc',
      threshold_usd: '1.000000000',
      balance_usd: '0.000000000',
      crossed_at: '2026-11-30',
    },
    {
      crossing_id: '1',
      kind: 'nonsense',
      threshold_usd: '1.000000000',
      balance_usd: '0.000000000',
      crossed_at: 'x',
    },
    { crossing_id: '1', threshold_usd: 5, balance_usd: '0.000000000', crossed_at: '2026-11-30T00:00:00Z' },
  ];
  for (const arg of poison) await handle.signal('balanceThresholdCrossed', arg);
  // Not wedged: a top-up after the poison settles, and the crossings were not counted.
  const topUp = await h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd: '5.00' });
  expect(topUp.status).toBe(201);
  const state = await handle.query(accountStateQuery);
  expect(state.threshold_crossings ?? 0).toBe(0);
  expect(state.last_crossing ?? null).toBeNull();
});
