import { useHarness } from './support/harness';
import { waitFor } from './support/eventually';
import { accountStateQuery, accountWorkflowId } from '../workflows/messages';
import type { AccountView } from '../billing/account';

/**
 * The account workflow lives for years by continuing-as-new. Forced here with a threshold of 40 history events,
 * it must carry its state (payment method, totals, expiries), keep every accepted request (queued top-ups finish
 * exactly once), and leave the ledger's balance and grants untouched.
 */
const h = useHarness({ settings: { continue_as_new_after_events: 40 } });

test('continue-as-new keeps balance, grants, state and every pending top-up', async () => {
  const customer = 'cus_can';
  await h.customer(customer, 'pm_card_visa');
  const handle = h.temporal.workflow.getHandle(accountWorkflowId(customer));
  const firstRunId = (await handle.describe()).runId;

  const expires_at = new Date(Date.now() + 3_600_000).toISOString();
  const grant = await h.call('POST', `/v1/customers/${customer}/credit-grants`, {
    amount_usd: '5.000000001',
    reason: 'welcome',
    expires_at,
  });
  expect(grant.status).toBe(201);

  // Eight top-ups at once: most are queued in workflow state while earlier ones run, across several runs.
  const amounts = ['1.00', '2.00', '3.00', '4.00', '5.00', '6.00', '7.00', '8.00'];
  const results = await Promise.all(
    amounts.map((amount_usd) => h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd })),
  );
  // Each answer is the outcome, or 202 pending on a slow machine: then wait for the outcome, with a deadline.
  for (const r of results) expect([201, 202]).toContain(r.status);
  await waitFor(
    'every top-up to settle',
    async () => {
      const rows = await Promise.all(results.map((r) => h.call('GET', `/v1/top-ups/${r.body.id}`)));
      return rows.every((row) => row.body.status !== 'pending');
    },
    60_000,
  );
  for (const r of results) {
    expect((await h.call('GET', `/v1/top-ups/${r.body.id}`)).body.status).toBe('succeeded');
  }

  // The run continues as new once its queue has drained and the work after the last top-up (its tier review) is
  // done, a moment after the database shows the last outcome.
  await waitFor(
    'the account to continue as new',
    async () => (await handle.describe()).runId !== firstRunId,
    20_000,
  );
  const view = await h.temporal.workflow
    .getHandle(accountWorkflowId(customer))
    .query<AccountView>(accountStateQuery);
  expect(view.run_number).toBeGreaterThan(1);
  expect(view.payment_method).toBe('pm_card_visa');
  expect(view.lifetime_top_ups_usd).toBe('36.000000000'); // 1 + 2 + ... + 8
  expect(view.top_ups_succeeded).toBe(8);
  // The promotion's expiry and the eight paid grants' (TOP_UP_CREDIT_VALIDITY), carried across runs.
  expect(view.grant_expiries).toContainEqual({ grant_id: grant.body.id, expires_at });
  expect(view.grant_expiries).toHaveLength(9);
  expect(view.queue).toEqual([]);

  const balance = await h.call('GET', `/v1/customers/${customer}/balance`);
  expect(balance.body.available_usd).toBe('41.000000001'); // 36 paid + 5.000000001 promotion
  expect(balance.body.grants).toHaveLength(9);
  expect(await h.db('simulated_charges').where({ customer_ref: customer })).toHaveLength(8);

  // A request after continue-as-new still works and replays of old ids are answered, not re-run.
  const again = await h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd: '9.00' });
  expect(again.body.status).toBe('succeeded');
  expect(await h.db('simulated_charges').where({ customer_ref: customer })).toHaveLength(9);
});
