import { useHarness } from './support/harness';

/** Top-ups end to end: HTTP API -> account workflow -> payment + grant activities -> ledger, all real. */
const h = useHarness();

test('a top-up on pm_card_visa succeeds, grants the amount once and shows in balance and ledger', async () => {
  await h.customer('cus_happy', 'pm_card_visa');
  const topUp = await h.call('POST', '/v1/customers/cus_happy/top-ups', { amount_usd: '20.00' });
  expect(topUp.status).toBe(201);
  expect(topUp.body).toMatchObject({
    status: 'succeeded',
    amount_usd: '20.000000000',
    customer_id: 'cus_happy',
  });

  const balance = await h.call('GET', '/v1/customers/cus_happy/balance');
  expect(balance.body.available_usd).toBe('20.000000000');
  expect(balance.body.held_usd).toBe('0.000000000');
  expect(balance.body.grants).toEqual([
    expect.objectContaining({ source: 'top_up', amount_usd: '20.000000000', remaining_usd: '20.000000000' }),
  ]);

  const ledger = await h.call('GET', '/v1/customers/cus_happy/ledger');
  expect(ledger.body.data).toEqual([
    expect.objectContaining({
      kind: 'top_up',
      amount_usd: '20.000000000',
      balance_after_usd: '20.000000000',
      ref: topUp.body.id,
    }),
  ]);
  const charges = await h.db('simulated_charges').where({ idempotency_key: `top_up:${topUp.body.id}` });
  expect(charges).toHaveLength(1);
  expect(charges[0].amount_cents).toBe(2000n);
});

test.each([
  ['pm_card_chargeDeclined', 'generic_decline'],
  ['pm_card_chargeDeclinedInsufficientFunds', 'insufficient_funds'],
])('a top-up on %s is 402 card_declined (%s) and grants nothing', async (pm, declineCode) => {
  const id = `cus_${declineCode}`;
  await h.customer(id, pm);
  const before = await h.call('GET', `/v1/customers/${id}/balance`);
  const topUp = await h.call('POST', `/v1/customers/${id}/top-ups`, { amount_usd: '15.00' });
  expect(topUp.status).toBe(402);
  expect(topUp.body.error).toMatchObject({
    type: 'card_error',
    code: 'card_declined',
    decline_code: declineCode,
  });
  expect(topUp.body.error.top_up).toMatchObject({ status: 'failed', failure_code: 'card_declined' });
  const after = await h.call('GET', `/v1/customers/${id}/balance`);
  expect(after.body).toEqual(before.body);
  expect(await h.db('ledger_entries').where({ customer_id: id })).toHaveLength(0);
});

test('a top-up without a payment method on file is 409 and charges nothing', async () => {
  await h.customer('cus_no_pm');
  const topUp = await h.call('POST', '/v1/customers/cus_no_pm/top-ups', { amount_usd: '10.00' });
  expect(topUp.status).toBe(409);
  expect(topUp.body.error.code).toBe('no_payment_method');
});
