import { randomUUID } from 'node:crypto';
import type { AccountView } from '../billing/account';
import { accountStateQuery, accountWorkflowId } from '../workflows/messages';
import { recordTopUp } from '../db/top-ups';
import { Harness, useHarness } from './support/harness';
import { waitFor } from './support/eventually';

/**
 * Accounts survive operators. PostgreSQL is the one source of truth; an account workflow's state is a cache that a
 * run without carried state rebuilds from it. `temporal workflow terminate` (what handle.terminate sends) and
 * `temporal workflow reset` must therefore lose nothing and double nothing: the card on file, the grant expiries,
 * the counters and every request recorded but not yet run.
 */
const h = useHarness();

const view = (customer: string) =>
  h.temporal.workflow.getHandle(accountWorkflowId(customer)).query<AccountView>(accountStateQuery);

const count = async (table: string, where: Record<string, string>) =>
  Number((await h.db(table).where(where).count<{ count: string }[]>('* as count'))[0]!.count);

test('after terminate, a top-up succeeds on the card on file and the new run has rebuilt payment method, expiries and counters', async () => {
  const customer = 'cus_rec_terminate';
  await h.customer(customer, 'pm_card_visa');
  const first = await h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd: '20.00' });
  expect(first.status).toBe(201);
  const expires_at = new Date(Date.now() + 3_600_000).toISOString();
  const grant = await h.call('POST', `/v1/customers/${customer}/credit-grants`, {
    amount_usd: '5.00',
    reason: 'welcome',
    expires_at,
  });
  expect(grant.status).toBe(201);
  const handle = h.temporal.workflow.getHandle(accountWorkflowId(customer));
  const terminatedRunId = (await handle.describe()).runId;

  await handle.terminate('operator test: terminate');
  expect(
    (await h.temporal.workflow.getHandle(accountWorkflowId(customer), terminatedRunId).describe()).status
      .name,
  ).toBe('TERMINATED');

  // Before the fix: 409 no_payment_method, because the new run started with an empty state.
  const second = await h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd: '10.00' });
  expect(second.status).toBe(201);
  expect(second.body).toMatchObject({ status: 'succeeded', amount_usd: '10.000000000' });

  const balance = await h.call('GET', `/v1/customers/${customer}/balance`);
  expect(balance.body.available_usd).toBe('35.000000000'); // 20 + 5 + 10
  const ledger = await h.call('GET', `/v1/customers/${customer}/ledger`);
  expect(
    ledger.body.data.map((e: { kind: string; balance_after_usd: string }) => [e.kind, e.balance_after_usd]),
  ).toEqual([
    ['top_up', '35.000000000'],
    ['credit_grant', '25.000000000'],
    ['top_up', '20.000000000'],
  ]);
  expect(await count('simulated_charges', { customer_ref: customer })).toBe(2);

  const after = await view(customer);
  expect((await handle.describe()).runId).not.toBe(terminatedRunId);
  expect(after).toMatchObject({
    payment_method: 'pm_card_visa',
    lifetime_top_ups_usd: '30.000000000', // 20 read back from PostgreSQL + 10 in this run
    top_ups_succeeded: 2,
    top_ups_failed: 0,
    // The operator grant's expiry and, since paid credit expires too (TOP_UP_CREDIT_VALIDITY, P1Y by default), the
    // first top-up's (read back from PostgreSQL) and the second's (from this run).
    grant_expiries: expect.arrayContaining([
      { grant_id: grant.body.id, expires_at },
      { grant_id: first.body.grant_id, expires_at: expect.any(String) },
      { grant_id: second.body.grant_id, expires_at: expect.any(String) },
    ]),
    queue: [],
  });
});

describe('requests recorded while no worker ran', () => {
  let slow: Harness;
  beforeAll(async () => {
    slow = await Harness.start({ update_wait_timeout_ms: 1_500 });
  });
  afterAll(async () => {
    expect(await slow.ledgerViolations()).toEqual([]);
    await slow.stop();
  });

  test('a top-up and a grant pending when the run was terminated are run once by the rebuilt run', async () => {
    const customer = 'cus_rec_pending';
    await slow.customer(customer, 'pm_card_visa');
    await slow.stopWorker();
    const pendingTopUp = await slow.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd: '7.00' });
    expect(pendingTopUp.status).toBe(202);
    expect(pendingTopUp.body).toMatchObject({ status: 'pending', id: expect.stringMatching(/^tu_/) });
    const pendingGrant = await slow.call(
      'POST',
      `/v1/customers/${customer}/credit-grants`,
      { amount_usd: '2.50', reason: 'goodwill' },
      { 'Idempotency-Key': randomUUID() },
    );
    expect(pendingGrant.status).toBe(202);
    expect(pendingGrant.body).toMatchObject({ status: 'pending', amount_usd: '2.500000000' });

    // The signals reached a run that is now gone; only PostgreSQL still knows about the two requests.
    await slow.temporal.workflow.getHandle(accountWorkflowId(customer)).terminate('operator test: pending');
    await slow.startWorker();
    const next = await slow.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd: '1.00' });
    // It runs after the two rebuilt requests; this harness waits only 1.5 s, so on a busy machine it may answer 202.
    expect([201, 202]).toContain(next.status);
    await waitFor('the new top-up to settle', async () => {
      const row = await slow.call('GET', `/v1/top-ups/${next.body.id}`);
      return row.body.status === 'succeeded';
    });

    await waitFor('the pending top-up to settle', async () => {
      const row = await slow.call('GET', `/v1/top-ups/${pendingTopUp.body.id}`);
      return row.body.status !== 'pending';
    });
    expect((await slow.call('GET', `/v1/top-ups/${pendingTopUp.body.id}`)).body.status).toBe('succeeded');
    await waitFor('the pending grant to be applied', async () => {
      const balance = await slow.call('GET', `/v1/customers/${customer}/balance`);
      return balance.body.available_usd === '10.500000000'; // 7 + 2.50 + 1
    });
    const charges = await slow.db('simulated_charges').where({ customer_ref: customer });
    expect(charges.map((c: { amount_cents: bigint }) => c.amount_cents).sort()).toEqual([100n, 700n]);
    expect(await slow.db('credit_grants').where({ customer_id: customer })).toHaveLength(3);
    const requests = await slow.db('credit_grant_requests').where({ customer_id: customer });
    expect(requests.map((r: { status: string }) => r.status)).toEqual(['granted']);
  });
});

test('reset to the first workflow task re-runs the run from there: nothing is charged or granted twice, counters stay true', async () => {
  const customer = 'cus_rec_reset';
  await h.customer(customer, 'pm_card_visa');
  for (const amount_usd of ['3.00', '4.00']) {
    expect((await h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd })).status).toBe(201);
  }
  expect(
    (await h.call('POST', `/v1/customers/${customer}/credit-grants`, { amount_usd: '1.00', reason: 'r' }))
      .status,
  ).toBe(201);
  const handle = h.temporal.workflow.getHandle(accountWorkflowId(customer));
  const { runId } = await handle.describe();
  const history = await handle.fetchHistory();
  const firstTaskCompleted = history.events!.find((e) => e.workflowTaskCompletedEventAttributes)!;

  // What `temporal workflow reset --event-id <first WorkflowTaskCompleted>` sends; signals after it are reapplied.
  const reset = await h.temporal.workflowService.resetWorkflowExecution({
    namespace: 'default',
    workflowExecution: { workflowId: accountWorkflowId(customer), runId },
    reason: 'operator test: reset',
    workflowTaskFinishEventId: firstTaskCompleted.eventId,
    requestId: randomUUID(),
  });
  expect(reset.runId).not.toBe(runId);

  // The reset run re-runs the reapplied requests against the database, which answers them as already settled.
  await waitFor('the reset run to drain its queue', async () => {
    const state = await view(customer);
    return state.queue.length === 0 && state.top_ups_succeeded === 2;
  });
  const another = await h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd: '5.00' });
  expect(another.status).toBe(201);
  expect(await count('simulated_charges', { customer_ref: customer })).toBe(3);
  expect(await count('credit_grants', { customer_id: customer })).toBe(4); // three top-ups, one promotion
  expect(await count('ledger_entries', { customer_id: customer })).toBe(4);
  expect((await h.call('GET', `/v1/customers/${customer}/balance`)).body.available_usd).toBe('13.000000000');
  expect(await view(customer)).toMatchObject({ top_ups_succeeded: 3, lifetime_top_ups_usd: '12.000000000' });
});

describe('a request whose signal was lost', () => {
  let short: Harness;
  beforeAll(async () => {
    short = await Harness.start({ settings: { continue_as_new_after_events: 40 } });
  });
  afterAll(async () => {
    expect(await short.ledgerViolations()).toEqual([]);
    await short.stop();
  });

  test("a top-up recorded in PostgreSQL but never signalled runs, once, at the account's next run", async () => {
    const customer = 'cus_rec_lost_signal';
    await short.customer(customer, 'pm_card_visa');
    // The run has started and read the database: this top-up ran through it.
    expect(
      (await short.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd: '1.00' })).status,
    ).toBe(201);
    const handle = short.temporal.workflow.getHandle(accountWorkflowId(customer));
    const firstRunId = (await handle.describe()).runId;
    // What an API process leaves behind if it dies between recording a top-up and signalling it.
    await recordTopUp(short.db, {
      id: 'tu_lost_signal',
      customer_id: customer,
      amount_nanos: 6_000_000_000n,
    });
    expect(
      (await short.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd: '1.00' })).status,
    ).toBe(201);
    if ((await handle.describe()).runId === firstRunId) {
      // The running run does not know of it.
      expect((await short.call('GET', '/v1/top-ups/tu_lost_signal')).body.status).toBe('pending');
    }

    await waitFor('the account to continue as new', async () => {
      const topUp = await short.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd: '1.00' });
      expect([201, 202]).toContain(topUp.status);
      return (await handle.describe()).runId !== firstRunId;
    });
    await waitFor('the lost top-up to settle', async () => {
      return (await short.call('GET', '/v1/top-ups/tu_lost_signal')).body.status === 'succeeded';
    });
    const charges = await short.db('simulated_charges').where({ idempotency_key: 'top_up:tu_lost_signal' });
    expect(charges).toHaveLength(1);
    expect(await short.db('credit_grants').where({ id: 'gr_tu_lost_signal' })).toHaveLength(1);
  });
});
