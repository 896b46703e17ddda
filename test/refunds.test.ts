import { randomUUID } from 'node:crypto';
import { refundActivities } from '../activities/refund-credits';
import { usd } from '../billing/money';
import { recordRefund } from '../db/refunds';
import { SimulatedGateway } from '../payments/simulated-gateway';
import { accountWorkflowId } from '../workflows/messages';
import { waitFor } from './support/eventually';
import { useHarness } from './support/harness';

/**
 * Refunds end to end on real PostgreSQL and Temporal with the simulated gateway: `POST /v1/top-ups/:id/refunds` is
 * recorded, run by the account workflow (claim the credit under the wallet lock, refund the card once with key
 * `refund:<id>`, settle), and answered from the database. Full and partial refunds, over-refunds refused (400 naming
 * amount_usd), spent or held credit refused (409 credit_already_spent) unless `allow_negative` (the balance goes below
 * zero and authorizations are refused until it is back), a retry with the same Idempotency-Key refunding once, an
 * auto-recharge refunded by its id, a gateway that refuses (the claim given back), `refund.succeeded`, lifetime paid
 * dropping, and the simulated gateway's own refunds matching ours. The harness checks every ledger invariant after.
 */
const h = useHarness();

const refund = (id: string, body: unknown = {}, headers: Record<string, string> = {}) =>
  h.call('POST', `/v1/top-ups/${id}/refunds`, body, headers);

async function topUp(customer: string, amount_usd: string): Promise<{ id: string; grant_id: string }> {
  const response = await h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd });
  expect(response.status).toBe(201);
  return response.body;
}

async function available(customer: string): Promise<string> {
  return (await h.call('GET', `/v1/customers/${customer}/balance`)).body.available_usd;
}

async function grantOf(customer: string, grant_id: string) {
  const response = await h.call('GET', `/v1/customers/${customer}/credit-grants/${grant_id}`);
  expect(response.status).toBe(200);
  return response.body;
}

/** Usage of `searches` web searches at 0.01 each, recorded without a balance check. */
async function spend(customer_id: string, searches: number): Promise<void> {
  const response = await h.call('POST', '/v1/usage-events', {
    events: [
      {
        event_id: `rf-${randomUUID()}`,
        customer_id,
        model: 'gpt-5.4-nano',
        tool_calls: { web_search: searches },
      },
    ],
  });
  expect(response.body.accepted).toBe(1);
}

/** gpt-5.4: 1,000 input + 1,000 output tokens = 0.0175 held. */
const authorize = (customer_id: string) =>
  h.call('POST', '/v1/authorizations', {
    customer_id,
    model: 'gpt-5.4',
    estimated_usage: { input_tokens: 1000, output_tokens: 1000 },
  });

/** The simulated gateway's refunds of the charge behind a payment. */
async function gatewayRefunds(payment_id: string) {
  return h
    .db('simulated_refunds as r')
    .join('payments as p', 'p.gateway_charge_id', 'r.charge_id')
    .where('p.id', payment_id)
    .select('r.id', 'r.idempotency_key', 'r.amount_cents')
    .orderBy('r.created_at');
}

async function lifetimePaid(customer: string): Promise<string> {
  return (await h.call('GET', `/v1/customers/${customer}/tier`)).body.lifetime_paid_usd;
}

test('a full refund returns the whole payment to the card and removes all of its credit', async () => {
  const customer = 'cus_rf_full';
  await h.customer(customer, 'pm_card_visa');
  const bought = await topUp(customer, '20.00');
  expect(await lifetimePaid(customer)).toBe('20.000000000');

  const refunded = await refund(bought.id);
  expect(refunded.status).toBe(201);
  expect(refunded.body).toMatchObject({
    object: 'refund',
    customer_id: customer,
    top_up_id: bought.id,
    recharge_id: null,
    grant_id: bought.grant_id,
    status: 'succeeded',
    amount_usd: '20.000000000',
    from_grant_usd: '20.000000000',
    allow_negative: false,
    failure_code: null,
  });
  expect(refunded.body.id).toMatch(/^re_/);
  expect(refunded.body.gateway_refund_id).toMatch(/^re_sim_/);

  expect(await available(customer)).toBe('0.000000000');
  expect(await grantOf(customer, bought.grant_id)).toMatchObject({ remaining_usd: '0.000000000' });
  expect((await h.call('GET', `/v1/top-ups/${bought.id}`)).body.refunded_usd).toBe('20.000000000');
  expect((await h.call('GET', `/v1/refunds/${refunded.body.id}`)).body).toEqual(refunded.body);
  // The grant's statement names the refund as what took its credit.
  expect((await grantOf(customer, bought.grant_id)).debits.data).toEqual([
    expect.objectContaining({ kind: 'refund', ref: refunded.body.id, amount_usd: '20.000000000' }),
  ]);

  // One reversing entry through the posting path (available -> refunds), then its settlement (refunds -> payments).
  const entries = await h.db('ledger_entries').where({ ref: refunded.body.id }).orderBy('id');
  expect(entries.map((e: { kind: string; amount_nanos: bigint }) => [e.kind, e.amount_nanos])).toEqual([
    ['refund', -usd('20')],
    ['refund_settled', 0n],
  ]);

  // The gateway's own books: one refund of the charge, for the same cents, under our key.
  const [payment] = await h.db('payments').where({ id: refunded.body.payment_id });
  expect(await gatewayRefunds(payment.id)).toEqual([
    {
      id: refunded.body.gateway_refund_id,
      idempotency_key: `refund:${refunded.body.id}`,
      amount_cents: 2000n,
    },
  ]);

  // refund.succeeded, once, in the transaction that settled it.
  const events = await h.db('events').where({ customer_id: customer, type: 'refund.succeeded' });
  expect(events).toHaveLength(1);
  expect(events[0].data).toEqual({
    refund_id: refunded.body.id,
    top_up_id: bought.id,
    recharge_id: null,
    payment_id: payment.id,
    grant_id: bought.grant_id,
    amount_usd: '20.000000000',
    from_grant_usd: '20.000000000',
    allow_negative: false,
    gateway_refund_id: refunded.body.gateway_refund_id,
  });
  expect(await lifetimePaid(customer)).toBe('0.000000000');

  // Nothing is left to refund: a second full refund is a 400 naming amount_usd.
  const again = await refund(bought.id);
  expect(again.status).toBe(400);
  expect(again.body.error).toMatchObject({ param: 'amount_usd', code: 'amount_exceeds_refundable' });
});

test('partial refunds take exact cents off that grant, never more than is left to refund', async () => {
  const customer = 'cus_rf_partial';
  await h.customer(customer, 'pm_card_visa');
  const bought = await topUp(customer, '30.00');
  const other = await topUp(customer, '5.00');

  const first = await refund(bought.id, { amount_usd: '10.50' });
  expect(first.status).toBe(201);
  expect(first.body).toMatchObject({ status: 'succeeded', amount_usd: '10.500000000' });
  // 35 - 10.50; the refunded grant lost exactly that, the other grant nothing.
  expect(await available(customer)).toBe('24.500000000');
  expect(await grantOf(customer, bought.grant_id)).toMatchObject({ remaining_usd: '19.500000000' });
  expect(await grantOf(customer, other.grant_id)).toMatchObject({ remaining_usd: '5.000000000' });
  expect((await h.call('GET', `/v1/top-ups/${bought.id}`)).body.refunded_usd).toBe('10.500000000');
  expect(await lifetimePaid(customer)).toBe('24.500000000');

  // More than the 19.50 left: 400 naming amount_usd, and nothing is recorded or moved.
  const over = await refund(bought.id, { amount_usd: '19.51' });
  expect(over.status).toBe(400);
  expect(over.body.error).toMatchObject({
    type: 'invalid_request',
    code: 'amount_exceeds_refundable',
    param: 'amount_usd',
  });
  expect(over.body.error.message).toContain('19.500000000');
  for (const amount_usd of ['0', '0.00', '1.005', '-1.00', '1e2']) {
    const bad = await refund(bought.id, { amount_usd });
    expect(bad.status).toBe(400);
    expect(bad.body.error.param).toBe('amount_usd');
  }
  const numeric = await refund(bought.id, { amount_usd: 5 });
  expect(numeric.status).toBe(400);
  expect((await refund(bought.id, { allow_negative: 'yes' })).body.error.param).toBe('allow_negative');
  expect(await h.db('refunds').where({ customer_id: customer })).toHaveLength(1);

  // The rest, with no amount: exactly what is left.
  const rest = await refund(bought.id);
  expect(rest.status).toBe(201);
  expect(rest.body.amount_usd).toBe('19.500000000');
  expect(await available(customer)).toBe('5.000000000');
  const [payment] = await h.db('payments').where({ id: first.body.payment_id });
  expect((await gatewayRefunds(payment.id)).map((r: { amount_cents: bigint }) => r.amount_cents)).toEqual([
    1050n,
    1950n,
  ]);
  expect(await lifetimePaid(customer)).toBe('5.000000000');
});

test('an unknown top-up is a 404 and one that did not succeed a 409', async () => {
  const customer = 'cus_rf_states';
  await h.customer(customer, 'pm_card_chargeDeclined');
  const unknown = await refund('tu_does_not_exist');
  expect(unknown.status).toBe(404);
  expect(unknown.body.error).toMatchObject({ type: 'not_found', param: 'id' });
  expect((await h.call('GET', '/v1/refunds/re_does_not_exist')).body.error).toMatchObject({
    type: 'not_found',
  });
  const unknownField = await h.call('POST', `/v1/top-ups/tu_does_not_exist/refunds`, {
    amount_usd: '1.00',
    why: 'x',
  });
  expect(unknownField.status).toBe(400);
  expect(unknownField.body.error).toMatchObject({ type: 'invalid_request', param: 'why' });

  const declined = await h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd: '10.00' });
  expect(declined.status).toBe(402);
  const refused = await refund(declined.body.error.top_up.id);
  expect(refused.status).toBe(409);
  expect(refused.body.error).toMatchObject({ type: 'conflict', code: 'top_up_not_succeeded' });
});

test('spent credit is a 409 credit_already_spent; allow_negative refunds anyway and the balance goes below zero, refusing authorizations until a top-up', async () => {
  const customer = 'cus_rf_spent';
  await h.customer(customer, 'pm_card_visa');
  const bought = await topUp(customer, '10.00');
  await spend(customer, 400); // 4.00 of the 10.00 spent

  const before = await h.moneySnapshot();
  const spent = await refund(bought.id);
  expect(spent.status).toBe(409);
  expect(spent.body.error).toMatchObject({ type: 'conflict', code: 'credit_already_spent' });
  expect(spent.body.error.message).toContain('only 6.000000000 of the 10.000000000');
  expect(spent.body.error.refund).toMatchObject({ status: 'failed', from_grant_usd: null });
  // Decided before the gateway was asked: nothing moved, nothing refunded at the gateway.
  expect(await h.moneySnapshot()).toBe(before);
  expect(await gatewayRefunds(spent.body.error.refund.payment_id)).toEqual([]);

  // What is unspent can be refunded without allow_negative.
  expect((await refund(bought.id, { amount_usd: '1.00' })).status).toBe(201);
  expect(await available(customer)).toBe('5.000000000');

  const negative = await refund(bought.id, { allow_negative: true });
  expect(negative.status).toBe(201);
  // 9.00 left to refund: the grant gives its 5.00, the other 4.00 come off the available balance alone.
  expect(negative.body).toMatchObject({
    amount_usd: '9.000000000',
    allow_negative: true,
    from_grant_usd: '5.000000000',
  });
  expect(await available(customer)).toBe('-4.000000000');
  expect(await grantOf(customer, bought.grant_id)).toMatchObject({ remaining_usd: '0.000000000' });

  // The hot path refuses any hold while the available balance is below it.
  const refusedAuth = await authorize(customer);
  expect(refusedAuth.status).toBe(402);
  expect(refusedAuth.body.error.type).toBe('insufficient_balance');

  // Positive again after a top-up (the new credit pays the 4.00 first): authorizations pass.
  await topUp(customer, '5.00');
  expect(await available(customer)).toBe('1.000000000');
  expect((await authorize(customer)).status).toBe(201);
});

test('credit held by an open authorization is not refundable without allow_negative', async () => {
  const customer = 'cus_rf_held';
  await h.customer(customer, 'pm_card_visa');
  const bought = await topUp(customer, '10.00');
  expect((await authorize(customer)).status).toBe(201); // 0.0175 held

  const held = await refund(bought.id);
  expect(held.status).toBe(409);
  expect(held.body.error.code).toBe('credit_already_spent');
  expect(held.body.error.message).toContain('only 9.982500000');

  const unheld = await refund(bought.id, { amount_usd: '9.98' });
  expect(unheld.status).toBe(201);
  expect(await available(customer)).toBe('0.002500000');
});

test('a refund retried with the same Idempotency-Key refunds once; the same key with another body is a conflict', async () => {
  const customer = 'cus_rf_idem';
  await h.customer(customer, 'pm_card_visa');
  const bought = await topUp(customer, '20.00');
  const key = { 'Idempotency-Key': `refund-${randomUUID()}` };

  const first = await refund(bought.id, { amount_usd: '5.00' }, key);
  const second = await refund(bought.id, { amount_usd: '5.00' }, key);
  expect(first.status).toBe(201);
  expect(second.status).toBe(201);
  expect(second.headers.get('idempotency-replayed')).toBe('true');
  expect(second.body).toEqual(first.body);

  // Even with the stored answer gone (a retry after the key's 24 h), the key names the same refund: still once.
  await h.db('idempotency_keys').where({ key: key['Idempotency-Key'] }).delete();
  const third = await refund(bought.id, { amount_usd: '5.00' }, key);
  expect(third.status).toBe(201);
  expect(third.body.id).toBe(first.body.id);

  expect(await h.db('refunds').where({ customer_id: customer })).toHaveLength(1);
  expect(await gatewayRefunds(first.body.payment_id)).toHaveLength(1);
  expect(await available(customer)).toBe('15.000000000');

  const conflict = await refund(bought.id, { amount_usd: '6.00' }, key);
  expect(conflict.status).toBe(409);
  expect(conflict.body.error.type).toBe('idempotency_conflict');
});

test("an auto-recharge is refunded by its id, from that recharge's grant", async () => {
  const customer = 'cus_rf_recharge';
  await h.customer(customer, 'pm_card_visa');
  await h.fund(customer, '1.00');
  const enabled = await h.call('PUT', `/v1/customers/${customer}/auto-recharge`, {
    enabled: true,
    threshold_usd: '0.50',
    amount_usd: '10.00',
  });
  expect(enabled.status).toBe(200);
  await spend(customer, 60); // 0.40 left, below the threshold: one recharge of 10.00
  await waitFor('the recharge to succeed', async () => {
    const rows = await h.db('auto_recharges').where({ customer_id: customer, status: 'succeeded' });
    return rows.length === 1;
  });
  const [recharge] = await h.db('auto_recharges').where({ customer_id: customer });
  expect(await available(customer)).toBe('10.400000000');
  // Off first, or the refund (a debit like any other) would cross the threshold and recharge again.
  await h.call('PUT', `/v1/customers/${customer}/auto-recharge`, {
    enabled: false,
    threshold_usd: '0.50',
    amount_usd: '10.00',
  });

  const refunded = await refund(recharge.id, { amount_usd: '10.00' });
  expect(refunded.status).toBe(201);
  expect(refunded.body).toMatchObject({
    top_up_id: null,
    recharge_id: recharge.id,
    payment_id: recharge.payment_id,
    grant_id: recharge.grant_id,
    status: 'succeeded',
  });
  expect(await available(customer)).toBe('0.400000000');
  expect(await grantOf(customer, recharge.grant_id)).toMatchObject({ remaining_usd: '0.000000000' });
  expect(await gatewayRefunds(recharge.payment_id)).toEqual([
    expect.objectContaining({ amount_cents: 1000n, idempotency_key: `refund:${refunded.body.id}` }),
  ]);
  expect(await lifetimePaid(customer)).toBe('0.000000000');
});

test('a refund the gateway refuses gives the claimed credit back and answers 409 with its code', async () => {
  const customer = 'cus_rf_refused';
  await h.customer(customer, 'pm_card_visa');
  const bought = await topUp(customer, '8.00');
  const [payment] = await h
    .db('top_ups as t')
    .join('payments as p', 'p.id', 't.payment_id')
    .where('t.id', bought.id);
  // The processor's books no longer show the charge as paid (as after a dispute): it refuses to refund it.
  await h.db('simulated_charges').where({ id: payment.gateway_charge_id }).update({ status: 'failed' });

  const refused = await refund(bought.id, { amount_usd: '3.00' });
  expect(refused.status).toBe(409);
  expect(refused.body.error).toMatchObject({ type: 'conflict', code: 'charge_not_found' });
  expect(refused.body.error.refund).toMatchObject({ status: 'failed', from_grant_usd: '3.000000000' });
  // The claim (refund entry) and its release (a refund_reversal grant of the same amount): the balance is whole.
  const entries = await h.db('ledger_entries').where({ ref: refused.body.error.refund.id }).orderBy('id');
  expect(entries.map((e: { kind: string; amount_nanos: bigint }) => [e.kind, e.amount_nanos])).toEqual([
    ['refund', -usd('3')],
    ['refund_release', usd('3')],
  ]);
  expect(await available(customer)).toBe('8.000000000');
  const balance = (await h.call('GET', `/v1/customers/${customer}/balance`)).body;
  expect(
    balance.grants.map((g: { source: string; remaining_usd: string }) => [g.source, g.remaining_usd]),
  ).toEqual(
    expect.arrayContaining([
      ['top_up', '5.000000000'],
      ['refund_reversal', '3.000000000'],
    ]),
  );
  expect(await lifetimePaid(customer)).toBe('8.000000000');
  expect(await h.db('events').where({ customer_id: customer, type: 'refund.succeeded' })).toEqual([]);
});

/** Records a refund of `amount_usd` of the top-up straight in PostgreSQL (as the API does), without telling the account. */
async function recordDirectly(id: string, customer: string, top_up_id: string, amount_usd: string) {
  const [top] = await h.db('top_ups').where({ id: top_up_id });
  return recordRefund(h.db, {
    id,
    customer_id: customer,
    payment_id: top.payment_id,
    top_up_id,
    recharge_id: null,
    grant_id: top.grant_id,
    amount_nanos: usd(amount_usd),
    allow_negative: false,
  });
}

test('every step run again (a worker killed between steps) claims, refunds at the gateway and settles once', async () => {
  const customer = 'cus_rf_steps';
  await h.customer(customer, 'pm_card_visa');
  const bought = await topUp(customer, '10.00');
  const row = await recordDirectly('re_rf_steps', customer, bought.id, '4.00');
  const gateway = new SimulatedGateway(h.db);
  const steps = refundActivities({ db: h.db, gateway });
  const input = { customer_id: customer, refund_id: row.id };

  expect(await steps.claimRefund(input)).toEqual({ status: 'claimed' });
  expect(await steps.claimRefund(input)).toEqual({ status: 'claimed' });
  expect(await available(customer)).toBe('6.000000000');

  // The gateway refunded, then the worker died before our record of it: the retry gets the same refund back.
  const [payment] = await h.db('payments').where({ id: row.payment_id });
  const lost = await gateway.refund({
    idempotency_key: `refund:${row.id}`,
    charge_id: payment.gateway_charge_id,
    amount_nanos: usd('4'),
    reason: null,
  });
  const sent = await steps.refundPayment(input);
  expect(sent).toEqual({ status: 'succeeded', gateway_refund_id: (lost as { refund_id: string }).refund_id });
  expect(await steps.refundPayment(input)).toEqual(sent);
  expect(await gatewayRefunds(payment.id)).toHaveLength(1);

  const settled = await steps.completeRefund({ ...input, gateway_refund_id: 're_sim_ignored' });
  expect(settled).toEqual({
    refund_id: row.id,
    status: 'succeeded',
    amount_usd: '4.000000000',
    failure_code: null,
  });
  expect(await steps.completeRefund({ ...input, gateway_refund_id: 're_sim_ignored' })).toEqual(settled);
  expect(await steps.claimRefund(input)).toEqual({ status: 'settled', result: settled });

  const kinds = await h.db('ledger_entries').where({ ref: row.id }).orderBy('id').pluck('kind');
  expect(kinds).toEqual(['refund', 'refund_settled']);
  expect(await h.db('events').where({ customer_id: customer, type: 'refund.succeeded' })).toHaveLength(1);
  // The gateway's refund id recorded is the one the gateway made, not what a late caller claimed.
  expect((await h.db('refunds').where({ id: row.id }))[0].gateway_refund_id).toBe(
    (lost as { refund_id: string }).refund_id,
  );
  expect(await available(customer)).toBe('6.000000000');
});

test('a refund the account never heard of (its run terminated) is run by the rebuilt run, once', async () => {
  const customer = 'cus_rf_rebuild';
  await h.customer(customer, 'pm_card_visa');
  const bought = await topUp(customer, '10.00');
  const row = await recordDirectly('re_rf_rebuild', customer, bought.id, '2.50');
  await h.temporal.workflow.getHandle(accountWorkflowId(customer)).terminate('refund test: terminate');

  // Any request starts a new run, which reads the pending refund from PostgreSQL and runs it before the grant.
  await h.fund(customer, '1.00');
  await waitFor('the rebuilt run to settle the refund', async () => {
    const [settled] = await h.db('refunds').where({ id: row.id });
    return settled.status !== 'pending';
  });
  expect((await h.call('GET', `/v1/refunds/${row.id}`)).body).toMatchObject({ status: 'succeeded' });
  expect(await available(customer)).toBe('8.500000000');
  expect(await gatewayRefunds(row.payment_id)).toHaveLength(1);
});
