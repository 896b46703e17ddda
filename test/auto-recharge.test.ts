import { accountStateQuery, accountWorkflowId, balanceThresholdCrossedSignal } from '../workflows/messages';
import { eventually, waitFor } from './support/eventually';
import { useHarness } from './support/harness';
import { setBudget } from '../db/limits';
import { usd } from '../billing/money';

/**
 * Auto-recharge end to end on real PostgreSQL and Temporal: a debit that takes the available balance below the
 * threshold makes one `recharge` crossing (the hot path), the account workflow charges the saved card once for it
 * and grants the credit; a target recharge charges the whole shortfall; the monthly limit refuses (and reports) a
 * recharge that would pass it; a declined card switches auto-recharge off, says why, and never charges again. Also
 * the events of the other crossing kinds, once each, and the settings' validation.
 */
const h = useHarness();

async function put(customer: string, body: unknown) {
  return h.call('PUT', `/v1/customers/${customer}/auto-recharge`, body);
}

async function enable(customer: string, body: Record<string, unknown>) {
  const response = await put(customer, { enabled: true, ...body });
  expect(response.status).toBe(200);
  return response.body;
}

async function topUp(customer: string, amount_usd: string) {
  const response = await h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd });
  expect(response.status).toBe(201);
  expect(response.body.status).toBe('succeeded');
}

async function grant(customer: string, amount_usd: string) {
  const response = await h.call('POST', `/v1/customers/${customer}/credit-grants`, {
    amount_usd,
    reason: 'test funds',
  });
  expect(response.status).toBe(201);
}

let eventSeq = 0;
/** Usage of `searches` web searches at 0.01 each, recorded without a balance check (the hot path). */
async function spend(customer_id: string, searches: number) {
  const response = await h.call('POST', '/v1/usage-events', {
    events: [
      {
        event_id: `ar-${eventSeq++}`,
        customer_id,
        model: 'gpt-5.4-nano',
        tool_calls: { web_search: searches },
      },
    ],
  });
  expect(response.status).toBe(200);
  expect(response.body.accepted).toBe(1);
}

const search = { tool_calls: { web_search: 1 } };

async function available(customer: string): Promise<string> {
  const response = await h.call('GET', `/v1/customers/${customer}/balance`);
  return response.body.available_usd;
}

async function recharges(customer: string) {
  return h.db('auto_recharges').where({ customer_id: customer }).orderBy('crossing_id');
}

async function chargesOf(customer: string) {
  return h.db('simulated_charges').where({ customer_ref: customer }).orderBy('created_at');
}

async function eventsOf(customer: string, type?: string) {
  const rows = await h.db('events').where({ customer_id: customer }).orderBy('seq');
  return type ? rows.filter((e: { type: string }) => e.type === type) : rows;
}

async function rechargeCrossings(customer: string) {
  return h.db('threshold_crossings').where({ customer_id: customer, kind: 'recharge' }).orderBy('id');
}

/** Waits until the customer's recharges have settled and there are `count` of them. */
async function settledRecharges(customer: string, count: number) {
  await waitFor(`${count} settled recharges of ${customer}`, async () => {
    const rows = await recharges(customer);
    return rows.length === count && rows.every((r: { status: string }) => r.status !== 'pending');
  });
  return recharges(customer);
}

async function accountState(customer: string) {
  return h.temporal.workflow.getHandle(accountWorkflowId(customer)).query(accountStateQuery);
}

async function customerView(customer: string) {
  const response = await h.call('GET', `/v1/customers/${customer}`);
  expect(response.status).toBe(200);
  return response.body;
}

describe('PUT /v1/customers/:id/auto-recharge', () => {
  test('saves, shows on the customer (keeping its other fields), sets the wallet threshold and the search attribute', async () => {
    const id = 'cus_ar_put';
    await h.customer(id, 'pm_card_visa');
    expect((await customerView(id)).auto_recharge).toBeNull();
    const saved = await enable(id, {
      threshold_usd: '5',
      amount_usd: '20.00',
      monthly_limit_usd: '100.00',
    });
    const expected = {
      enabled: true,
      threshold_usd: '5.000000000',
      amount_usd: '20.000000000',
      target_balance_usd: null,
      monthly_limit_usd: '100.000000000',
      recharged_this_month_usd: '0.000000000',
      disabled_reason: null,
    };
    expect(saved).toEqual(expected);
    const customer = await customerView(id);
    expect(customer).toMatchObject({
      id,
      object: 'customer',
      payment_method: 'pm_card_visa',
      balance: { available_usd: '0.000000000', held_usd: '0.000000000' },
      auto_recharge: expected,
    });
    expect((await h.call('GET', `/v1/customers/${id}/auto-recharge`)).body).toEqual(expected);
    const [wallet] = await h.db('wallets').where({ customer_id: id });
    expect(wallet.recharge_threshold_nanos).toBe(usd('5'));

    // The account workflow's copy and the search attribute follow.
    await waitFor('the workflow to hold the settings', async () => {
      const state = await accountState(id);
      return state.auto_recharge?.settings?.enabled === true;
    });
    await waitFor('BillingAutoRecharge = true to find the account', async () => {
      const found = [];
      for await (const wf of h.temporal.workflow.list({
        query: `BillingAutoRecharge = true AND BillingCustomerId = "${id}"`,
      }))
        found.push(wf.workflowId);
      return found.includes(accountWorkflowId(id));
    });

    // Disabling keeps the settings, clears the wallet's threshold and flips the search attribute.
    const off = await put(id, { enabled: false, threshold_usd: '5', target_balance_usd: '30' });
    expect(off.status).toBe(200);
    expect(off.body).toMatchObject({ enabled: false, amount_usd: null, target_balance_usd: '30.000000000' });
    const [cleared] = await h.db('wallets').where({ customer_id: id });
    expect(cleared.recharge_threshold_nanos).toBeNull();
    await waitFor('BillingAutoRecharge = false to find the account', async () => {
      const found = [];
      for await (const wf of h.temporal.workflow.list({
        query: `BillingAutoRecharge = false AND BillingCustomerId = "${id}"`,
      }))
        found.push(wf.workflowId);
      return found.includes(accountWorkflowId(id));
    });
  });

  test('bad input is a 400 naming the parameter, an unknown customer a 404, and neither stores anything', async () => {
    const id = 'cus_ar_bad';
    await h.customer(id, 'pm_card_visa');
    const cases: [unknown, string][] = [
      [{ enabled: true, threshold_usd: '5.00' }, 'amount_usd'],
      [
        { enabled: true, threshold_usd: '5.00', amount_usd: '10.00', target_balance_usd: '50.00' },
        'target_balance_usd',
      ],
      [{ enabled: true, threshold_usd: '5.00', amount_usd: '10.005' }, 'amount_usd'],
      [{ enabled: true, threshold_usd: '5.00', amount_usd: '0.50' }, 'amount_usd'],
      [{ enabled: true, threshold_usd: '5.00', amount_usd: '10000.01' }, 'amount_usd'],
      [{ enabled: true, threshold_usd: '5.00', amount_usd: 10 }, 'amount_usd'],
      [{ enabled: true, threshold_usd: '5.00', target_balance_usd: '5.00' }, 'target_balance_usd'],
      [{ enabled: true, threshold_usd: '5.00', target_balance_usd: '4.99' }, 'target_balance_usd'],
      [{ enabled: true, threshold_usd: '-1.00', amount_usd: '10.00' }, 'threshold_usd'],
      [{ enabled: true, threshold_usd: '1e3', amount_usd: '10.00' }, 'threshold_usd'],
      [{ enabled: 'yes', threshold_usd: '5.00', amount_usd: '10.00' }, 'enabled'],
      [{ threshold_usd: '5.00', amount_usd: '10.00' }, 'enabled'],
      [
        { enabled: true, threshold_usd: '5.00', amount_usd: '10.00', monthly_limit_usd: '9.99' },
        'monthly_limit_usd',
      ],
      [
        { enabled: true, threshold_usd: '5.00', amount_usd: '10.00', monthly_limit_usd: '0' },
        'monthly_limit_usd',
      ],
      [{ enabled: true, threshold_usd: '5.00', amount_usd: '10.00', surprise: 1 }, 'surprise'],
    ];
    for (const [body, param] of cases) {
      const response = await put(id, body);
      expect({ body, status: response.status, param: response.body.error?.param }).toEqual({
        body,
        status: 400,
        param,
      });
      expect(response.body.error.type).toBe('invalid_request');
    }
    expect((await customerView(id)).auto_recharge).toBeNull();
    expect(await h.db('auto_recharge_settings').where({ customer_id: id })).toHaveLength(0);

    const unknown = await put('cus_ar_nobody', { enabled: true, threshold_usd: '5.00', amount_usd: '10.00' });
    expect(unknown.status).toBe(404);
    expect(await h.db('auto_recharge_settings').where({ customer_id: 'cus_ar_nobody' })).toHaveLength(0);
    // A null monthly limit is "no limit".
    expect(
      (await put(id, { enabled: true, threshold_usd: '5.00', amount_usd: '10.00', monthly_limit_usd: null }))
        .status,
    ).toBe(200);
  });
});

test('100 concurrent debits racing past the threshold make one crossing, one charge and one grant', async () => {
  const id = 'cus_ar_burst';
  await h.customer(id, 'pm_card_visa');
  await topUp(id, '10.00');
  await enable(id, { threshold_usd: '9.50', amount_usd: '20.00' });
  // 60 usage events and 40 authorizations of 0.01 each, all at once: 10.00 -> 9.00, crossing 9.50 once.
  const responses = await Promise.all(
    Array.from({ length: 100 }, (_, i) =>
      i % 5 < 3
        ? h.call('POST', '/v1/usage-events', {
            events: [{ event_id: `burst-${i}`, customer_id: id, model: 'gpt-5.4-nano', ...search }],
          })
        : h.call('POST', '/v1/authorizations', {
            customer_id: id,
            model: 'gpt-5.4-nano',
            estimated_usage: search,
          }),
    ),
  );
  for (const r of responses) expect([200, 201]).toContain(r.status);

  expect(await rechargeCrossings(id)).toHaveLength(1);
  const [recharge] = await settledRecharges(id, 1);
  expect(recharge).toMatchObject({ status: 'succeeded', amount_nanos: usd('20.00') });
  const [crossing] = await rechargeCrossings(id);
  const key = `auto_recharge:${id}:${crossing.id}`;
  expect(await h.db('payments').where({ idempotency_key: key })).toHaveLength(1);
  // The top-up's charge and the recharge's: nothing else.
  expect((await chargesOf(id)).map((c: { idempotency_key: string }) => c.idempotency_key)).toEqual([
    expect.stringMatching(/^top_up:/),
    key,
  ]);
  const grants = await h.db('credit_grants').where({ customer_id: id, source: 'auto_recharge' });
  expect(grants).toHaveLength(1);
  expect(grants[0].amount_nanos).toBe(usd('20.00'));
  // 10.00 - 1.00 (60 used, 40 held) + 20.00.
  expect(await available(id)).toBe('29.000000000');

  const succeeded = await eventsOf(id, 'auto_recharge.succeeded');
  expect(succeeded).toHaveLength(1);
  expect(succeeded[0].data).toMatchObject({
    recharge_id: recharge.id,
    amount_usd: '20.000000000',
    grant_id: grants[0].id,
  });
  expect(
    (await eventsOf(id, 'credit.granted')).filter(
      (e: { data: { grant_id: string } }) => e.data.grant_id === grants[0].id,
    ),
  ).toHaveLength(1);

  // Redelivery (the outbox again, and a stray signal) changes nothing: the crossing id was seen.
  await h.db('threshold_crossings').where({ id: crossing.id }).update({ signaled_at: null });
  await waitFor('the crossing to be delivered again', async () => {
    const [row] = await h.db('threshold_crossings').where({ id: crossing.id });
    return row.signaled_at !== null;
  });
  await h.temporal.workflow.getHandle(accountWorkflowId(id)).signal(balanceThresholdCrossedSignal, {
    crossing_id: crossing.id.toString(),
    kind: 'recharge',
    threshold_usd: '9.500000000',
    balance_usd: '8.990000000',
    crossed_at: new Date().toISOString(),
  });
  const state = await eventually(
    () => accountState(id),
    (s) => s.auto_recharge?.recharges_succeeded === 1 && s.queue.length === 0,
  );
  expect(state.auto_recharge).toMatchObject({
    settings: { enabled: true, amount_usd: '20.000000000' },
    recharged_this_month_usd: '20.000000000',
    recharges_succeeded: 1,
    last_recharge: { recharge_id: recharge.id, status: 'succeeded', amount_usd: '20.000000000' },
  });
  expect(await chargesOf(id)).toHaveLength(2);
  expect(await recharges(id)).toHaveLength(1);
  expect((await customerView(id)).auto_recharge.recharged_this_month_usd).toBe('20.000000000');
});

test('a target recharge charges the whole shortfall to the target, rounded up to the cent', async () => {
  const id = 'cus_ar_target';
  await h.customer(id, 'pm_card_visa');
  await topUp(id, '10.00');
  await grant(id, '0.005');
  await enable(id, { threshold_usd: '5.00', target_balance_usd: '50.00' });
  // 10.005 - 6.00 = 4.005, below 5.00: the shortfall to 50.00 is 45.995, charged as 46.00.
  await spend(id, 600);
  const [recharge] = await settledRecharges(id, 1);
  expect(recharge).toMatchObject({ status: 'succeeded', amount_nanos: usd('46.00') });
  const [charge] = (await chargesOf(id)).filter((c: { idempotency_key: string }) =>
    c.idempotency_key.startsWith('auto_recharge:'),
  );
  expect(charge.amount_cents).toBe(4600n);
  expect(await available(id)).toBe('50.005000000');
});

test('the monthly limit refuses a recharge that would pass it: the event, no charge, still enabled', async () => {
  const id = 'cus_ar_limit';
  await h.customer(id, 'pm_card_visa');
  await topUp(id, '10.00');
  await enable(id, { threshold_usd: '9.00', amount_usd: '5.00', monthly_limit_usd: '8.00' });
  // 10.00 -> 8.00 crosses 9.00: recharge 5.00 (5.00 of 8.00 this month) -> 13.00, above the threshold again.
  await spend(id, 200);
  await settledRecharges(id, 1);
  expect(await available(id)).toBe('13.000000000');
  // 13.00 -> 8.00 crosses again: 5.00 + 5.00 would pass 8.00.
  await spend(id, 500);
  const [first, second] = await settledRecharges(id, 2);
  expect(first).toMatchObject({ status: 'succeeded', amount_nanos: usd('5.00') });
  expect(second).toMatchObject({ status: 'failed', failure_code: 'monthly_limit', payment_id: null });
  expect(await chargesOf(id)).toHaveLength(2); // the top-up and the first recharge
  expect(await available(id)).toBe('8.000000000');
  const failed = await eventsOf(id, 'auto_recharge.failed');
  expect(failed).toHaveLength(1);
  expect(failed[0].data).toMatchObject({
    recharge_id: second.id,
    reason: 'monthly_limit',
    amount_usd: '5.000000000',
    disabled_reason: null,
  });
  expect((await customerView(id)).auto_recharge).toMatchObject({
    enabled: true,
    disabled_reason: null,
    recharged_this_month_usd: '5.000000000',
  });
});

test('a declined card switches auto-recharge off, says why, reports it, and a later crossing charges nothing', async () => {
  const id = 'cus_ar_decline';
  await h.customer(id, 'pm_card_chargeDeclined');
  await grant(id, '10.00');
  await enable(id, { threshold_usd: '5.00', amount_usd: '10.00' });
  await spend(id, 600);
  const [recharge] = await settledRecharges(id, 1);
  expect(recharge).toMatchObject({
    status: 'failed',
    failure_code: 'card_declined',
    decline_code: 'generic_decline',
  });
  expect(await chargesOf(id)).toHaveLength(1);

  await waitFor('GET customer to show auto-recharge off', async () => {
    return (await customerView(id)).auto_recharge?.enabled === false;
  });
  expect((await customerView(id)).auto_recharge).toMatchObject({
    enabled: false,
    disabled_reason: 'card_declined: generic_decline',
    recharged_this_month_usd: '0.000000000',
  });
  const [wallet] = await h.db('wallets').where({ customer_id: id });
  expect(wallet.recharge_threshold_nanos).toBeNull();
  const failed = await eventsOf(id, 'auto_recharge.failed');
  expect(failed).toHaveLength(1);
  expect(failed[0].data).toMatchObject({
    reason: 'card_declined',
    decline_code: 'generic_decline',
    disabled_reason: 'card_declined: generic_decline',
  });
  await waitFor('the workflow to show auto-recharge off', async () => {
    const state = await accountState(id);
    return state.auto_recharge?.settings?.enabled === false;
  });

  // More credit and another debit: the hot path has no recharge threshold any more, so no new crossing.
  await grant(id, '10.00');
  await spend(id, 1000);
  expect(await rechargeCrossings(id)).toHaveLength(1);
  // Even a recharge crossing that reaches the workflow (recorded before the switch-off, say) charges nothing.
  await h.db('threshold_crossings').insert({
    customer_id: id,
    kind: 'recharge',
    threshold_nanos: usd('5.00'),
    balance_after_nanos: usd('4.00'),
  });
  const [, skipped] = await settledRecharges(id, 2);
  expect(skipped).toMatchObject({ status: 'skipped', failure_code: 'disabled', amount_nanos: 0n });
  expect(await chargesOf(id)).toHaveLength(1);
  expect(await eventsOf(id, 'auto_recharge.failed')).toHaveLength(1);
});

test('no card on file: the recharge fails with no_payment_method and switches itself off', async () => {
  const id = 'cus_ar_nocard';
  await h.customer(id);
  await grant(id, '10.00');
  await enable(id, { threshold_usd: '5.00', amount_usd: '10.00' });
  await spend(id, 600);
  const [recharge] = await settledRecharges(id, 1);
  expect(recharge).toMatchObject({ status: 'failed', failure_code: 'no_payment_method' });
  expect(await chargesOf(id)).toHaveLength(0);
  expect((await customerView(id)).auto_recharge).toMatchObject({
    enabled: false,
    disabled_reason: 'no_payment_method',
  });
  const failed = await eventsOf(id, 'auto_recharge.failed');
  expect(failed.map((e: { data: { reason: string } }) => e.data.reason)).toEqual(['no_payment_method']);
});

test('low-balance, depleted and budget crossings each send their event once', async () => {
  const id = 'cus_ar_events';
  await h.customer(id, 'pm_card_visa');
  await topUp(id, '1.00');
  expect(
    (await h.call('PUT', `/v1/customers/${id}/balance-threshold`, { threshold_usd: '0.50' })).status,
  ).toBe(200);
  expect(
    await setBudget(h.db, id, { monthly_alert_nanos: usd('0.30'), monthly_limit_nanos: usd('0.80') }),
  ).toBe(true);
  // 1.00 -> 0.40: below the 0.50 alert, and 0.60 spent passes the 0.30 budget alert.
  await spend(id, 60);
  // 0.40 -> -0.10: depleted, and 1.10 spent passes the 0.80 budget limit.
  await spend(id, 50);
  const types = ['credit.balance_low', 'budget.alert', 'credit.depleted', 'budget.limit_reached'];
  await waitFor('four crossing events', async () => {
    const events = await eventsOf(id);
    return types.every((t) => events.some((e: { type: string }) => e.type === t));
  });
  const crossings = await h.db('threshold_crossings').where({ customer_id: id }).orderBy('id');
  expect(crossings.map((c: { kind: string }) => c.kind).sort()).toEqual(
    ['budget_alert', 'budget_limit', 'depleted', 'low_balance'].sort(),
  );
  const byType = async (type: string) => eventsOf(id, type);
  expect((await byType('credit.balance_low'))[0].data).toMatchObject({
    threshold_usd: '0.500000000',
    balance_usd: '0.400000000',
  });
  expect((await byType('credit.depleted'))[0].data).toMatchObject({ balance_usd: '-0.100000000' });
  expect((await byType('budget.alert'))[0].data).toMatchObject({
    threshold_usd: '0.300000000',
    month_spend_usd: '0.600000000',
  });
  expect((await byType('budget.limit_reached'))[0].data).toMatchObject({
    threshold_usd: '0.800000000',
    month_spend_usd: '1.100000000',
  });
  for (const c of crossings) {
    expect(await h.db('events').where({ occurrence_key: `crossing:${c.id}` })).toHaveLength(1);
  }

  // A redelivery of every crossing writes no second event.
  await h.db('threshold_crossings').where({ customer_id: id }).update({ signaled_at: null });
  await waitFor('the crossings to be delivered again', async () => {
    const rows = await h.db('threshold_crossings').where({ customer_id: id }).whereNull('signaled_at');
    return rows.length === 0;
  });
  await eventually(
    () => accountState(id),
    (s) => (s.crossing_events?.length ?? 0) === 0,
  );
  for (const t of types) expect(await byType(t)).toHaveLength(1);
});
