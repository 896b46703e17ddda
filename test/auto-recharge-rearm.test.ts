import { accountStateActivities } from '../activities/account-state';
import { autoRechargeActivities } from '../activities/recharge-credits';
import { utcMonthOf } from '../billing/auto-recharge';
import { startOfNextUtcMonth, startOfUtcMonth } from '../billing/durations';
import { usd } from '../billing/money';
import { checkLedger } from '../db/ledger-check';
import { SimulatedGateway } from '../payments/simulated-gateway';
import { accountStateQuery, accountWorkflowId } from '../workflows/messages';
import { eventually, waitFor } from './support/eventually';
import { useHarness } from './support/harness';

/**
 * Auto-recharge never silently stops, and never switches off what the customer switched on again, on real
 * PostgreSQL and Temporal:
 * - a recharge skipped because the balance was back (`balance_recovered`) arms the threshold again, so the next
 *   debit below it recharges;
 * - a PUT that switches auto-recharge on while the balance is already below the threshold recharges once at once,
 *   and saving it again (still on) does not;
 * - after a `monthly_limit` refusal the account asks again once at the next UTC month's start: one `recharge`
 *   crossing per customer and month, only while auto-recharge is on and the balance below the threshold;
 * - a decline recorded after the customer saved the settings again leaves them on;
 * - a card removed between the decision and the charge fails the recharge, switches auto-recharge off and reports
 *   `auto_recharge.failed`, in one transaction;
 * - the ledger check finds a card charged for a recharge that granted nothing, and not one still in flight.
 */
const h = useHarness();

function acts() {
  return {
    ...autoRechargeActivities({ db: h.db, gateway: new SimulatedGateway(h.db) }),
    ...accountStateActivities({ db: h.db }),
  };
}

async function enable(customer: string, body: Record<string, unknown>) {
  const response = await h.call('PUT', `/v1/customers/${customer}/auto-recharge`, { enabled: true, ...body });
  expect(response.status).toBe(200);
  return response.body;
}

let eventSeq = 0;
/** Usage of `searches` web searches at 0.01 each (the hot path). */
async function spend(customer_id: string, searches: number) {
  const response = await h.call('POST', '/v1/usage-events', {
    events: [
      {
        event_id: `arf-${eventSeq++}`,
        customer_id,
        model: 'gpt-5.4-nano',
        tool_calls: { web_search: searches },
      },
    ],
  });
  expect(response.status).toBe(200);
  expect(response.body.accepted).toBe(1);
}

async function available(customer: string): Promise<string> {
  return (await h.call('GET', `/v1/customers/${customer}/balance`)).body.available_usd;
}

async function wallet(customer: string) {
  const [row] = await h.db('wallets').where({ customer_id: customer });
  return row;
}

async function settledRecharges(customer: string, count: number) {
  await waitFor(`${count} settled recharges of ${customer}`, async () => {
    const rows = await h.db('auto_recharges').where({ customer_id: customer });
    return rows.length === count && rows.every((r: { status: string }) => r.status !== 'pending');
  });
  return h.db('auto_recharges').where({ customer_id: customer }).orderBy('crossing_id');
}

async function rechargeCharges(customer: string) {
  const rows = await h.db('simulated_charges').where({ customer_ref: customer });
  return rows.filter((c: { idempotency_key: string }) => c.idempotency_key.startsWith('auto_recharge:'));
}

/**
 * The state a debit past the threshold leaves (it disarmed the threshold, and its crossing was delivered), made
 * without the account acting on it, so that the test runs the recharge steps itself and in the order it wants.
 */
async function crossedButNotActedOn(customer: string, searches: number): Promise<string> {
  await h.db('wallets').where({ customer_id: customer }).update({ recharge_armed: false });
  if (searches > 0) await spend(customer, searches);
  const [row] = await h
    .db('threshold_crossings')
    .insert({
      customer_id: customer,
      kind: 'recharge',
      threshold_nanos: (await wallet(customer)).recharge_threshold_nanos,
      balance_after_nanos: (await wallet(customer)).available_nanos,
      signaled_at: h.db.fn.now(),
    })
    .returning('id');
  return String(row.id);
}

test('a recharge skipped because the balance was back arms the threshold again: the next debit below it recharges', async () => {
  const id = 'cus_arf_recovered';
  await h.customer(id, 'pm_card_visa');
  await h.fund(id, '12.00');
  await enable(id, { threshold_usd: '10.00', amount_usd: '10.00' });
  // A 5.00 hold took 12.00 to 7.00 and crossed; its capture at 1.00 gave 4.00 back (credit that does not re-arm)
  // before the recharge ran. Here: disarmed, crossing delivered, and the balance 11.00.
  const crossing_id = await crossedButNotActedOn(id, 100);
  expect(await available(id)).toBe('11.000000000');
  const started = await acts().startAutoRecharge({ customer_id: id, crossing_id });
  expect(started).toMatchObject({ status: 'settled', result: { failure_code: 'balance_recovered' } });
  expect((await wallet(id)).recharge_armed).toBe(true);
  // A retried step finds its decision and changes nothing.
  expect(await acts().startAutoRecharge({ customer_id: id, crossing_id })).toEqual(started);

  // 11.00 -> 2.00: a new crossing, and its recharge charges.
  await spend(id, 900);
  const [, recharge] = await settledRecharges(id, 2);
  expect(recharge).toMatchObject({ status: 'succeeded', amount_nanos: usd('10.00') });
  expect(await available(id)).toBe('12.000000000');
  expect(await rechargeCharges(id)).toHaveLength(1);
});

test('switching auto-recharge on below the threshold recharges once at once; saving it again does not', async () => {
  const id = 'cus_arf_enable';
  await h.customer(id, 'pm_card_visa');
  await h.fund(id, '4.00');
  const settings = { threshold_usd: '5.00', amount_usd: '10.00' };
  await enable(id, settings);
  const [recharge] = await settledRecharges(id, 1);
  expect(recharge).toMatchObject({ status: 'succeeded', amount_nanos: usd('10.00') });
  const [crossing] = await h.db('threshold_crossings').where({ customer_id: id, kind: 'recharge' });
  expect(crossing).toMatchObject({ trigger_key: 'enable:1', balance_after_nanos: usd('4.00') });
  expect(await available(id)).toBe('14.000000000');

  // Saved again while on (and above the threshold): no crossing; off and on again above it: none either.
  await enable(id, { ...settings, monthly_limit_usd: '50.00' });
  expect(
    (await h.call('PUT', `/v1/customers/${id}/auto-recharge`, { enabled: false, ...settings })).status,
  ).toBe(200);
  await enable(id, settings);
  expect(await h.db('threshold_crossings').where({ customer_id: id, kind: 'recharge' })).toHaveLength(1);
  expect(await rechargeCharges(id)).toHaveLength(1);

  // Saved again while on and below the threshold (a fixed amount that did not reach it, say): no charge.
  await spend(id, 1300); // 14.00 -> 1.00: a real crossing, recharged to 11.00
  await settledRecharges(id, 2);
  await enable(id, { threshold_usd: '20.00', amount_usd: '10.00' });
  expect(await h.db('threshold_crossings').where({ customer_id: id, kind: 'recharge' })).toHaveLength(2);
  expect(await rechargeCharges(id)).toHaveLength(2);
});

test('after a monthly_limit refusal the next UTC month recharges once, while still on and below the threshold', async () => {
  const id = 'cus_arf_month';
  await h.customer(id, 'pm_card_visa');
  await h.fund(id, '10.00');
  await enable(id, { threshold_usd: '5.00', amount_usd: '10.00', monthly_limit_usd: '10.00' });
  // Last month a crossing's recharge was refused for the monthly limit and the balance stayed below: 4.00 now.
  await h.db('wallets').where({ customer_id: id }).update({ recharge_armed: false });
  await spend(id, 600);
  const this_month = utcMonthOf(Date.now());
  const last_month_at = new Date(startOfUtcMonth(new Date()).getTime() - 24 * 3600 * 1000);
  await h.db.transaction(async (trx) => {
    const [crossing] = await trx('threshold_crossings')
      .insert({
        customer_id: id,
        kind: 'recharge',
        threshold_nanos: usd('5.00'),
        balance_after_nanos: usd('4.00'),
        crossed_at: last_month_at,
      })
      .returning('id');
    await trx('auto_recharges').insert({
      id: `ar_${crossing.id}`,
      customer_id: id,
      crossing_id: crossing.id,
      amount_nanos: usd('10.00'),
      status: 'failed',
      failure_code: 'monthly_limit',
      failure_message: 'limit',
      decided_at: last_month_at,
      settled_at: last_month_at,
    });
  });
  // The account hears the refusal (delivered by the outbox) and its month has already begun: it asks at once.
  const [, recharge] = await settledRecharges(id, 2);
  expect(recharge).toMatchObject({ status: 'succeeded', amount_nanos: usd('10.00') });
  const monthly = await h
    .db('threshold_crossings')
    .where({ customer_id: id, trigger_key: `month:${this_month}` });
  expect(monthly).toHaveLength(1);
  expect(await available(id)).toBe('14.000000000');

  // Asked again for the same month (a crash, a continue-as-new): nothing more; and none while above the threshold.
  expect(await acts().queueMonthlyRecharge({ customer_id: id, month: this_month })).toBeNull();
  expect(await acts().queueMonthlyRecharge({ customer_id: id, month: '2099-01' })).toBeNull();
  // Off: none either, even below the threshold.
  await spend(id, 1000); // 14.00 -> 4.00: a crossing, refused (10.00 of 10.00 this month already)
  const [, , refused] = await settledRecharges(id, 3);
  expect(refused).toMatchObject({ status: 'failed', failure_code: 'monthly_limit' });
  // The account waits for next month on a durable timer.
  const next_month = utcMonthOf(startOfNextUtcMonth(new Date()).getTime());
  await eventually(
    () => h.temporal.workflow.getHandle(accountWorkflowId(id)).query(accountStateQuery),
    (state) => state.auto_recharge?.retry_month === next_month,
  );
  // A run rebuilt from PostgreSQL (after a terminate) waits for the same month.
  const snapshot = await acts().loadAccountSnapshot({ customer_id: id });
  expect(snapshot.auto_recharge?.retry_month).toBe(next_month);
  await h.call('PUT', `/v1/customers/${id}/auto-recharge`, {
    enabled: false,
    threshold_usd: '5.00',
    amount_usd: '10.00',
  });
  expect(await acts().queueMonthlyRecharge({ customer_id: id, month: '2099-02' })).toBeNull();
  expect(await rechargeCharges(id)).toHaveLength(1);
});

test('a decline recorded after the customer saved the settings again leaves auto-recharge on', async () => {
  const id = 'cus_arf_late_decline';
  await h.customer(id, 'pm_card_chargeDeclined');
  await h.fund(id, '10.00');
  const settings = { threshold_usd: '5.00', amount_usd: '10.00' };
  await enable(id, settings);
  const crossing_id = await crossedButNotActedOn(id, 600);
  const started = await acts().startAutoRecharge({ customer_id: id, crossing_id });
  expect(started).toMatchObject({ status: 'pending', amount_usd: '10.000000000' });
  // The customer saves the settings (say, after changing the card) before the decline is recorded.
  await enable(id, settings);
  const charge = await acts().chargeAutoRecharge({ customer_id: id, crossing_id, amount_usd: '10.00' });
  expect(charge.status).toBe('failed');
  if (charge.status !== 'failed') return;
  const result = await acts().failAutoRecharge({ customer_id: id, crossing_id, ...charge });
  expect(result).toMatchObject({ status: 'failed', failure_code: 'card_declined' });
  const [saved] = await h.db('auto_recharge_settings').where({ customer_id: id });
  expect(saved).toMatchObject({ enabled: true, disabled_reason: null });
  expect((await wallet(id)).recharge_threshold_nanos).toBe(usd('5.00'));
});

test('a card removed between the decision and the charge: the recharge fails, auto-recharge switches off, reported', async () => {
  const id = 'cus_arf_card_removed';
  await h.customer(id, 'pm_card_visa');
  await h.fund(id, '10.00');
  await enable(id, { threshold_usd: '5.00', amount_usd: '10.00' });
  const crossing_id = await crossedButNotActedOn(id, 600);
  expect(await acts().startAutoRecharge({ customer_id: id, crossing_id })).toMatchObject({
    status: 'pending',
  });
  await h.db('customers').where({ id }).update({ payment_method: null });
  await expect(
    acts().chargeAutoRecharge({ customer_id: id, crossing_id, amount_usd: '10.00' }),
  ).rejects.toMatchObject({ type: 'no_payment_method' });
  // What the account does with that permanent failure: it refuses the command.
  const refusal = {
    command_kind: 'auto_recharge' as const,
    id: `ar_${crossing_id}`,
    code: 'no_payment_method' as const,
    message: 'the customer has no payment method on file',
    payment_id: null,
  };
  // The account's copy of the settings follows the switch-off; a retried step changes nothing and answers nothing.
  expect(await acts().refuseAccountRequest(refusal)).toMatchObject({
    auto_recharge: { enabled: false, disabled_reason: 'no_payment_method' },
  });
  expect(await acts().refuseAccountRequest(refusal)).toEqual({ auto_recharge: null });
  const [recharge] = await h.db('auto_recharges').where({ customer_id: id });
  expect(recharge).toMatchObject({ status: 'failed', failure_code: 'no_payment_method', payment_id: null });
  const [saved] = await h.db('auto_recharge_settings').where({ customer_id: id });
  expect(saved).toMatchObject({ enabled: false, disabled_reason: 'no_payment_method' });
  expect((await wallet(id)).recharge_threshold_nanos).toBeNull();
  const failed = await h.db('events').where({ customer_id: id, type: 'auto_recharge.failed' });
  expect(failed).toHaveLength(1);
  expect(failed[0].data).toMatchObject({ reason: 'no_payment_method', disabled_reason: 'no_payment_method' });
  expect(await rechargeCharges(id)).toHaveLength(0);
});

test('the ledger check finds a recharge payment that succeeded without its credit, not one still in flight', async () => {
  const id = 'cus_arf_invariant';
  await h.customer(id, 'pm_card_visa');
  const invariant = 'a succeeded auto-recharge payment has a succeeded recharge with its grant';
  const rollback = new Error('rollback');
  await expect(
    h.db.transaction(async (trx) => {
      const [crossing] = await trx('threshold_crossings')
        .insert({ customer_id: id, kind: 'recharge', threshold_nanos: 1, balance_after_nanos: 0 })
        .returning('id');
      const recharge_id = `ar_${crossing.id}`;
      await trx('auto_recharges').insert({
        id: recharge_id,
        customer_id: id,
        crossing_id: crossing.id,
        amount_nanos: usd('10.00'),
        status: 'pending',
        decided_at: new Date(),
      });
      await trx('payments').insert({
        id: `pay_${recharge_id}`,
        customer_id: id,
        gateway: 'simulated',
        idempotency_key: `auto_recharge:${id}:${crossing.id}`,
        payment_method: 'pm_card_visa',
        amount_nanos: usd('10.00'),
        status: 'succeeded',
      });
      // Charged, not yet granted: in flight, not a violation.
      expect((await checkLedger(trx)).filter((v) => v.invariant === invariant)).toEqual([]);
      // Charged, then the grant refused: the card paid for nothing.
      await trx('auto_recharges')
        .where({ id: recharge_id })
        .update({ status: 'failed', payment_id: `pay_${recharge_id}`, failure_code: 'activity_failed' });
      expect((await checkLedger(trx)).filter((v) => v.invariant === invariant)).toEqual([
        { invariant, subject: `pay_${recharge_id}`, detail: 'failed 10000000000' },
      ]);
      throw rollback;
    }),
  ).rejects.toBe(rollback);
});
