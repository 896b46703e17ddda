import { randomUUID } from 'node:crypto';
import { useHarness } from './support/harness';

/**
 * Grant statements and voids end to end: the list (paid vs promotional, status, paging), one grant with the debits
 * that consumed it (amounts that add up to what it lost), and voiding one grant through the ledger without touching
 * the others, idempotently, also with a hold open.
 */
const h = useHarness();

const DAY_MS = 86_400_000;
const inDays = (days: number) => new Date(Date.now() + days * DAY_MS).toISOString();

/** gpt-5.4 output tokens cost 0.000015 USD each. */
const outputTokens = (usd_cents: number) => ({ output_tokens: (usd_cents * 10_000_000) / 15_000 });

async function grant(customer: string, amount_usd: string, expires_at: string | null = null) {
  const response = await h.call('POST', `/v1/customers/${customer}/credit-grants`, {
    amount_usd,
    reason: 'test',
    ...(expires_at === null ? {} : { expires_at }),
  });
  expect(response.status).toBe(201);
  return response.body.id as string;
}

async function spend(customer: string, usd_cents: number) {
  const auth = await h.call('POST', '/v1/authorizations', {
    customer_id: customer,
    model: 'gpt-5.4',
    estimated_usage: outputTokens(usd_cents),
  });
  expect(auth.status).toBe(201);
  const captured = await h.call('POST', `/v1/authorizations/${auth.body.id}/capture`, {
    usage: outputTokens(usd_cents),
  });
  expect(captured.status).toBe(200);
  return auth.body.id as string;
}

const statement = (customer: string, grant_id: string, query = '') =>
  h.call('GET', `/v1/customers/${customer}/credit-grants/${grant_id}${query}`);

test('the list shows each grant with paid or promotional funding, status and remaining, newest first, paged', async () => {
  const customer = 'cus_gs_list';
  await h.customer(customer, 'pm_card_visa');
  const soon = await grant(customer, '3.00', inDays(2));
  const topUp = await h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd: '10.00' });
  expect(topUp.status).toBe(201);
  const never = await grant(customer, '1.00');
  await spend(customer, 450); // 4.50: all 3.00 of `soon` (soonest expiry), then 1.50 of the top-up (P1Y)

  const list = await h.call('GET', `/v1/customers/${customer}/credit-grants`);
  expect(list.status).toBe(200);
  expect(list.body.has_more).toBe(false);
  expect(list.body.data).toEqual([
    expect.objectContaining({
      id: never,
      funding: 'promotional',
      status: 'active',
      remaining_usd: '1.000000000',
    }),
    expect.objectContaining({
      id: topUp.body.grant_id,
      source: 'top_up',
      funding: 'paid',
      status: 'active',
      amount_usd: '10.000000000',
      remaining_usd: '8.500000000',
      expires_at: expect.any(String),
      retired_at: null,
    }),
    expect.objectContaining({
      id: soon,
      source: 'promotion',
      status: 'depleted',
      remaining_usd: '0.000000000',
    }),
  ]);

  const first = await h.call('GET', `/v1/customers/${customer}/credit-grants?limit=2`);
  expect(first.body.data.map((g: { id: string }) => g.id)).toEqual([never, topUp.body.grant_id]);
  expect(first.body.has_more).toBe(true);
  const second = await h.call(
    'GET',
    `/v1/customers/${customer}/credit-grants?limit=2&starting_after=${topUp.body.grant_id}`,
  );
  expect(second.body).toEqual({ data: [expect.objectContaining({ id: soon })], has_more: false });

  const badCursor = await h.call('GET', `/v1/customers/${customer}/credit-grants?starting_after=gr_nope`);
  expect(badCursor.status).toBe(400);
  expect(badCursor.body.error.param).toBe('starting_after');
  expect((await h.call('GET', '/v1/customers/cus_gs_nobody/credit-grants')).status).toBe(404);
});

test('one grant shows the debits that consumed it; their amounts add up to what it lost', async () => {
  const customer = 'cus_gs_debits';
  await h.customer(customer);
  const soon = await grant(customer, '2.00', inDays(1));
  const later = await grant(customer, '5.00', inDays(9));
  const first = await spend(customer, 150); // 1.50 from soon
  const second = await spend(customer, 120); // 0.50 from soon, 0.70 from later
  const third = await spend(customer, 30); // 0.30 from later

  const soonStatement = await statement(customer, soon);
  expect(soonStatement.status).toBe(200);
  expect(soonStatement.body).toMatchObject({ id: soon, status: 'depleted', remaining_usd: '0.000000000' });
  expect(soonStatement.body.debits).toEqual({
    data: [
      expect.objectContaining({
        kind: 'capture',
        ref: second,
        amount_usd: '0.500000000',
        entry_id: expect.stringMatching(/^le_/),
      }),
      expect.objectContaining({ kind: 'capture', ref: first, amount_usd: '1.500000000' }),
    ],
    has_more: false,
  });
  const laterStatement = await statement(customer, later);
  expect(laterStatement.body).toMatchObject({ status: 'active', remaining_usd: '4.000000000' });
  expect(
    laterStatement.body.debits.data.map((d: { ref: string; amount_usd: string }) => [d.ref, d.amount_usd]),
  ).toEqual([
    [third, '0.300000000'],
    [second, '0.700000000'],
  ]);
  // Paging: one debit per page, newest first, each exactly once.
  const page1 = await statement(customer, later, '?limit=1');
  expect(page1.body.debits).toEqual({ data: [expect.objectContaining({ ref: third })], has_more: true });
  const page2 = await statement(
    customer,
    later,
    `?limit=1&starting_after=${page1.body.debits.data[0].entry_id}`,
  );
  expect(page2.body.debits).toEqual({ data: [expect.objectContaining({ ref: second })], has_more: false });

  expect((await statement(customer, 'gr_unknown')).status).toBe(404);
  await h.customer('cus_gs_other');
  expect((await statement('cus_gs_other', soon)).status).toBe(404); // another customer's grant
  // The grant-request route still answers for the same id.
  expect((await h.call('GET', `/v1/credit-grants/${soon}`)).body).toMatchObject({
    id: soon,
    status: 'granted',
  });
});

test('voiding one grant writes off its remainder through the ledger and leaves the others intact; again changes nothing', async () => {
  const customer = 'cus_gs_void';
  await h.customer(customer);
  const keep = await grant(customer, '4.00', inDays(5));
  const drop = await grant(customer, '6.00');
  const other = await grant(customer, '1.00');
  await spend(customer, 300); // 3.00 from `keep` (soonest expiry)

  // A body is not part of the contract: an unknown field is a 400 that voids nothing.
  const withBody = await h.call('POST', `/v1/customers/${customer}/credit-grants/${drop}/void`, {
    reason: 'fraud',
  });
  expect(withBody.status).toBe(400);
  expect(withBody.body.error.type).toBe('invalid_request');
  expect((await h.db('credit_grants').where({ id: drop }).first()).closed_reason).toBeNull();

  const headers = { 'Idempotency-Key': `void-${randomUUID()}` };
  const voided = await h.call(
    'POST',
    `/v1/customers/${customer}/credit-grants/${drop}/void`,
    undefined,
    headers,
  );
  expect(voided.status).toBe(200);
  expect(voided.body).toMatchObject({
    id: drop,
    status: 'voided',
    remaining_usd: '0.000000000',
    amount_usd: '6.000000000',
  });
  expect(voided.body.retired_at).toEqual(expect.any(String));
  const ledger = await h.call('GET', `/v1/customers/${customer}/ledger`);
  expect(ledger.body.data[0]).toMatchObject({
    kind: 'void',
    ref: drop,
    amount_usd: '-6.000000000',
    balance_after_usd: '2.000000000',
  });

  const snapshot = await h.moneySnapshot();
  const replay = await h.call(
    'POST',
    `/v1/customers/${customer}/credit-grants/${drop}/void`,
    undefined,
    headers,
  );
  expect(replay.status).toBe(200);
  expect(replay.headers.get('idempotency-replayed')).toBe('true');
  const again = await h.call('POST', `/v1/customers/${customer}/credit-grants/${drop}/void`);
  expect(again.status).toBe(200);
  expect(again.body).toMatchObject({ id: drop, status: 'voided' });
  expect(await h.moneySnapshot()).toBe(snapshot);

  const list = await h.call('GET', `/v1/customers/${customer}/credit-grants`);
  const byId = Object.fromEntries(list.body.data.map((g: { id: string }) => [g.id, g]));
  expect(byId[keep]).toMatchObject({ status: 'active', remaining_usd: '1.000000000' });
  expect(byId[other]).toMatchObject({ status: 'active', remaining_usd: '1.000000000' });
  const dropStatement = await statement(customer, drop);
  expect(dropStatement.body.debits.data).toEqual([
    expect.objectContaining({ kind: 'void', ref: drop, amount_usd: '6.000000000' }),
  ]);

  expect((await h.call('POST', `/v1/customers/${customer}/credit-grants/gr_unknown/void`)).status).toBe(404);
  await h.customer('cus_gs_void_other');
  expect((await h.call('POST', `/v1/customers/cus_gs_void_other/credit-grants/${keep}/void`)).status).toBe(
    404,
  );
  expect((await h.call('GET', `/v1/customers/${customer}/balance`)).body.available_usd).toBe('2.000000000');
});

test('voiding a grant under an open hold keeps the held part until the hold settles, then writes off what it gave back', async () => {
  const customer = 'cus_gs_void_hold';
  await h.customer(customer);
  const promo = await grant(customer, '5.00', inDays(1));
  const never = await grant(customer, '10.00');
  const hold = await h.call('POST', '/v1/authorizations', {
    customer_id: customer,
    model: 'gpt-5.4',
    estimated_usage: outputTokens(300),
  });
  expect(hold.status).toBe(201);
  const voided = await h.call('POST', `/v1/customers/${customer}/credit-grants/${promo}/void`);
  expect(voided.body).toMatchObject({ status: 'voided', remaining_usd: '3.000000000' }); // 2.00 written off now
  const captured = await h.call('POST', `/v1/authorizations/${hold.body.id}/capture`, {
    usage: outputTokens(150),
  });
  expect(captured.body).toMatchObject({ cost_usd: '1.500000000', released_usd: '1.500000000' });
  await h.temporal.workflow.execute('releaseExpiredHoldsWorkflow', {
    taskQueue: h.taskQueue,
    workflowId: `sweep-${randomUUID()}`,
  });
  const after = await statement(customer, promo);
  expect(after.body).toMatchObject({ status: 'voided', remaining_usd: '0.000000000' });
  expect(
    after.body.debits.data.map((d: { kind: string; amount_usd: string }) => [d.kind, d.amount_usd]),
  ).toEqual([
    ['void', '1.500000000'], // what the hold gave back
    ['capture', '1.500000000'], // the capture, paid once, from the voided grant
    ['void', '2.000000000'], // at the void: what no hold could capture
  ]);
  expect((await h.call('GET', `/v1/customers/${customer}/balance`)).body.available_usd).toBe('10.000000000');
  expect((await statement(customer, never)).body).toMatchObject({
    remaining_usd: '10.000000000',
    debits: { data: [] },
  });
});
