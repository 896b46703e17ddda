import { useHarness } from './support/harness';
import { waitFor } from './support/eventually';

/**
 * Paid credit expires per `TOP_UP_CREDIT_VALIDITY` (3 s here), each purchase on its own clock, and the events of a
 * top-up and its credit (`top_up.succeeded` / `top_up.failed`, `credit.granted`, `credit.expired`) are recorded once
 * each, in the transaction of the movement they report.
 */
const VALIDITY_MS = 3_000;
const h = useHarness({ settings: { top_up_credit_validity: 'PT3S' } });

interface EventRow {
  type: string;
  data: Record<string, unknown>;
  occurrence_key: string;
}

/** The customer's events of the kinds this file is about (tiers and balance crossings have their own tests). */
const eventsOf = (customer: string): Promise<EventRow[]> =>
  h
    .db('events')
    .where({ customer_id: customer })
    .whereIn('type', ['credit.granted', 'credit.expired', 'top_up.succeeded', 'top_up.failed'])
    .orderBy('seq');

test('each top-up expires VALIDITY after it was granted, on its own timer; a later purchase does not move an earlier one', async () => {
  const customer = 'cus_pce_two';
  await h.customer(customer, 'pm_card_visa');
  const first = await h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd: '10.00' });
  expect(first.status).toBe(201);
  const second = await h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd: '7.00' });
  expect(second.status).toBe(201);
  const grants = await h
    .db('credit_grants')
    .whereIn('id', [first.body.grant_id, second.body.grant_id])
    .orderBy('granted_at');
  expect(grants).toHaveLength(2);
  for (const g of grants as { granted_at: Date; expires_at: Date; source: string }[]) {
    expect(g.source).toBe('top_up');
    expect(g.expires_at.getTime() - g.granted_at.getTime()).toBe(VALIDITY_MS);
  }

  // No API call: the account workflow's timer writes each off at its own expiry.
  await waitFor(
    'both top-ups to expire',
    async () =>
      (await h.call('GET', `/v1/customers/${customer}/balance`)).body.available_usd === '0.000000000',
    30_000,
  );
  const ledger = await h.call('GET', `/v1/customers/${customer}/ledger`);
  const expiries = ledger.body.data.filter((e: { kind: string }) => e.kind === 'expiry');
  expect(expiries.map((e: { ref: string; amount_usd: string }) => [e.ref, e.amount_usd]).sort()).toEqual(
    [
      [first.body.grant_id, '-10.000000000'],
      [second.body.grant_id, '-7.000000000'],
    ].sort(),
  );
  const balance = await h.call('GET', `/v1/customers/${customer}/balance`);
  expect(balance.body.grants.map((g: { status: string }) => g.status)).toEqual(['expired', 'expired']);
});

test('a top-up, its grant and its expiry each record their event once, with the data subscribers need', async () => {
  const customer = 'cus_pce_events';
  await h.customer(customer, 'pm_card_visa');
  const topUp = await h.call(
    'POST',
    `/v1/customers/${customer}/top-ups`,
    { amount_usd: '5.00' },
    {
      'Idempotency-Key': 'pce-events-1',
    },
  );
  expect(topUp.status).toBe(201);
  // A retry of the same request replays the answer and records nothing more.
  const retry = await h.call(
    'POST',
    `/v1/customers/${customer}/top-ups`,
    { amount_usd: '5.00' },
    {
      'Idempotency-Key': 'pce-events-1',
    },
  );
  expect(retry.body.id).toBe(topUp.body.id);
  const grant_id = topUp.body.grant_id as string;
  await waitFor(
    'the expiry event',
    async () => (await eventsOf(customer)).some((e) => e.type === 'credit.expired'),
    30_000,
  );
  const grant = await h.db('credit_grants').where({ id: grant_id }).first<{ expires_at: Date }>();
  expect(await eventsOf(customer)).toEqual([
    expect.objectContaining({
      type: 'credit.granted',
      occurrence_key: `grant:${grant_id}`,
      data: {
        grant_id,
        source: 'top_up',
        amount_usd: '5.000000000',
        expires_at: grant!.expires_at.toISOString(),
      },
    }),
    expect.objectContaining({
      type: 'top_up.succeeded',
      occurrence_key: `top_up:${topUp.body.id}:succeeded`,
      data: { top_up_id: topUp.body.id, amount_usd: '5.000000000', grant_id },
    }),
    expect.objectContaining({
      type: 'credit.expired',
      occurrence_key: `expiry:${grant_id}`,
      data: {
        grant_id,
        amount_usd: '5.000000000',
        held_usd: '0.000000000',
        expired_at: grant!.expires_at.toISOString(),
      },
    }),
  ]);
});

test('a declined top-up records top_up.failed once with its codes, and no grant event', async () => {
  const customer = 'cus_pce_declined';
  await h.customer(customer, 'pm_card_chargeDeclined');
  const declined = await h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd: '5.00' });
  expect(declined.status).toBe(402);
  const events = await eventsOf(customer);
  expect(events).toEqual([
    expect.objectContaining({
      type: 'top_up.failed',
      data: expect.objectContaining({
        top_up_id: declined.body.error.top_up.id,
        amount_usd: '5.000000000',
        failure_code: 'card_declined',
        decline_code: declined.body.error.decline_code,
      }),
    }),
  ]);
});

test('an operator grant records credit.granted once with its expiry', async () => {
  const customer = 'cus_pce_operator';
  await h.customer(customer);
  const expires_at = new Date(Date.now() + 3_600_000).toISOString();
  const created = await h.call('POST', `/v1/customers/${customer}/credit-grants`, {
    amount_usd: '2.50',
    reason: 'goodwill',
    source: 'goodwill',
    expires_at,
  });
  expect(created.status).toBe(201);
  expect(await eventsOf(customer)).toEqual([
    expect.objectContaining({
      type: 'credit.granted',
      data: { grant_id: created.body.id, source: 'goodwill', amount_usd: '2.500000000', expires_at },
    }),
  ]);
});
