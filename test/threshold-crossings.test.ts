import { formatUsd, usd } from '../billing/money';
import { claimCrossings, markCrossingsDelivered } from '../db/crossings';
import { accountStateQuery, accountWorkflowId } from '../workflows/messages';
import { eventually } from './support/eventually';
import { useHarness } from './support/harness';

/**
 * Balance-threshold crossings end to end: however many concurrent debits race past the threshold, the hot path
 * records exactly one crossing, the outbox delivers it to the account workflow once, and only going back above
 * the threshold and down again makes another.
 */
const h = useHarness();

type Crossing = {
  id: bigint;
  customer_id: string;
  threshold_nanos: bigint;
  balance_after_nanos: bigint;
  signaled_at: Date | null;
};

/** The customer's low-balance crossings (the other kinds are left out: see `crossingsOfKind`). */
async function crossings(customer: string): Promise<Crossing[]> {
  return crossingsOfKind(customer, 'low_balance');
}

async function crossingsOfKind(customer: string, kind: string): Promise<Crossing[]> {
  return h.db('threshold_crossings').where({ customer_id: customer, kind }).orderBy('id');
}

async function accountState(customer: string) {
  return h.temporal.workflow.getHandle(accountWorkflowId(customer)).query(accountStateQuery);
}

async function workflowCrossings(customer: string, expected: number) {
  const state = await eventually(
    () => accountState(customer),
    (s) => s.threshold_crossings === expected,
  );
  expect(state.threshold_crossings).toBe(expected);
  return state;
}

async function setThreshold(customer: string, threshold_usd: string | null) {
  const response = await h.call('PUT', `/v1/customers/${customer}/balance-threshold`, { threshold_usd });
  expect(response.status).toBe(200);
  return response.body;
}

async function topUp(customer: string, amount_usd: string) {
  const response = await h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd });
  expect(response.status).toBe(201);
  expect(response.body.status).toBe('succeeded');
}

async function availableOf(customer: string): Promise<bigint> {
  const [row] = await h.db('wallets').where({ customer_id: customer }).select('available_nanos');
  return row.available_nanos;
}

/** One web search (0.01) as a usage event, or held by an authorization. */
const search = { tool_calls: { web_search: 1 } };
let eventSeq = 0;
const ingestSearch = (customer_id: string) =>
  h.call('POST', '/v1/usage-events', {
    events: [{ event_id: `search-${eventSeq++}`, customer_id, model: 'gpt-5.4-nano', ...search }],
  });
const authorizeSearch = (customer_id: string) =>
  h.call('POST', '/v1/authorizations', { customer_id, model: 'gpt-5.4-nano', estimated_usage: search });

/** 100 concurrent debits of 0.01 each: 60 usage events and 40 holds. Returns the hold ids. */
async function burst(customer: string): Promise<string[]> {
  const responses = await Promise.all(
    Array.from({ length: 100 }, (_, i) => (i % 5 < 3 ? ingestSearch(customer) : authorizeSearch(customer))),
  );
  for (const r of responses) expect([200, 201]).toContain(r.status);
  for (const r of responses.filter((x) => x.status === 200)) expect(r.body.accepted).toBe(1);
  return responses.filter((r) => r.status === 201).map((r) => r.body.id as string);
}

test('PUT balance-threshold saves, echoes, clears, and refuses bad input and unknown customers', async () => {
  await h.customer('cus_tc_thr_put');
  expect(await setThreshold('cus_tc_thr_put', '0.5')).toEqual({
    customer_id: 'cus_tc_thr_put',
    threshold_usd: '0.500000000',
  });
  const [row] = await h.db('wallets').where({ customer_id: 'cus_tc_thr_put' });
  expect(row.low_balance_threshold_nanos).toBe(usd('0.5'));
  expect(await setThreshold('cus_tc_thr_put', null)).toEqual({
    customer_id: 'cus_tc_thr_put',
    threshold_usd: null,
  });
  for (const threshold_usd of ['-1.00', 0.5, '0.0000000001', 'abc']) {
    const bad = await h.call('PUT', '/v1/customers/cus_tc_thr_put/balance-threshold', { threshold_usd });
    expect(bad.status).toBe(400);
  }
  const ghost = await h.call('PUT', '/v1/customers/cus_tc_ghost/balance-threshold', {
    threshold_usd: '1.00',
  });
  expect(ghost.status).toBe(404);
});

test('100 concurrent debits across the threshold record exactly one crossing; back above and down again records a second', async () => {
  await h.customer('cus_tc_thr', 'pm_card_visa');
  await topUp('cus_tc_thr', '1.00');
  await setThreshold('cus_tc_thr', '0.50');

  const holds = await burst('cus_tc_thr');
  expect(holds).toHaveLength(40);
  expect(await availableOf('cus_tc_thr')).toBe(0n);
  let rows = await crossings('cus_tc_thr');
  expect(rows).toHaveLength(1);
  // Debits are 0.01 each: the one that crossed took the balance from exactly 0.50 to 0.49.
  expect(rows[0]).toMatchObject({ threshold_nanos: usd('0.50'), balance_after_nanos: usd('0.49') });
  // The burst also took the balance to zero: one `depleted` crossing, however many holds raced there.
  const depleted = await crossingsOfKind('cus_tc_thr', 'depleted');
  expect(depleted).toHaveLength(1);
  expect(depleted[0]).toMatchObject({ threshold_nanos: 0n, balance_after_nanos: 0n });
  let state = await workflowCrossings('cus_tc_thr', 2);
  expect(state.last_crossing).toMatchObject({ kind: 'depleted', balance_usd: '0.000000000' });
  rows = await eventually(
    () => crossings('cus_tc_thr'),
    (r) => r.every((c) => c.signaled_at !== null),
  );
  expect(rows.every((c) => c.signaled_at !== null)).toBe(true);

  // Releasing the holds moves the balance up but stays below the threshold: nothing is recorded.
  await Promise.all(holds.map((id) => h.call('POST', `/v1/authorizations/${id}/void`)));
  expect(await availableOf('cus_tc_thr')).toBe(usd('0.40'));
  // Back above with a top-up, then down again: a second crossing.
  await topUp('cus_tc_thr', '1.00');
  expect(await availableOf('cus_tc_thr')).toBe(usd('1.40'));
  expect(await crossings('cus_tc_thr')).toHaveLength(1);
  await burst('cus_tc_thr');
  expect(await availableOf('cus_tc_thr')).toBe(usd('0.40'));
  rows = await crossings('cus_tc_thr');
  expect(rows).toHaveLength(2);
  expect(rows[1]).toMatchObject({ threshold_nanos: usd('0.50'), balance_after_nanos: usd('0.49') });
  // 0.40 is left this time: not depleted again.
  expect(await crossingsOfKind('cus_tc_thr', 'depleted')).toHaveLength(1);
  state = await workflowCrossings('cus_tc_thr', 3);
  expect(state.last_crossing?.crossing_id).toBe(String(rows[1]!.id));
  // A redelivery of all three (as after a deliverer died between signalling and marking) does not count again: once
  // the sweep has delivered them a second time, the workflow still counts 3.
  await h.db('threshold_crossings').where({ customer_id: 'cus_tc_thr' }).update({ signaled_at: null });
  rows = await eventually(
    () => crossings('cus_tc_thr'),
    (r) => r.every((c) => c.signaled_at !== null),
  );
  expect(rows.every((c) => c.signaled_at !== null)).toBe(true);
  expect((await accountState('cus_tc_thr')).threshold_crossings).toBe(3);
});

test('landing exactly on the threshold is not a crossing; the next nano below is', async () => {
  await h.customer('cus_tc_thr_edge');
  await h.call('POST', '/v1/customers/cus_tc_thr_edge/credit-grants', { amount_usd: '1.00', reason: 'test' });
  await setThreshold('cus_tc_thr_edge', '0.50');
  // 200,000 gpt-5.4 input tokens are exactly 0.50: the balance lands on the threshold.
  const exact = await h.call('POST', '/v1/usage-events', {
    events: [{ event_id: 'edge-1', customer_id: 'cus_tc_thr_edge', model: 'gpt-5.4', input_tokens: 200_000 }],
  });
  expect(exact.body.data[0].cost_usd).toBe('0.500000000');
  expect(await availableOf('cus_tc_thr_edge')).toBe(usd('0.50'));
  expect(await crossings('cus_tc_thr_edge')).toEqual([]);
  const below = await h.call('POST', '/v1/usage-events', {
    events: [
      { event_id: 'edge-2', customer_id: 'cus_tc_thr_edge', model: 'gpt-5.4-nano', cached_input_tokens: 1 },
    ],
  });
  expect(below.body.accepted).toBe(1);
  const rows = await crossings('cus_tc_thr_edge');
  expect(rows).toHaveLength(1);
  expect(rows[0]!.balance_after_nanos).toBe(usd('0.50') - 20n);
  await workflowCrossings('cus_tc_thr_edge', 1);
});

test('a hold and a capture beyond its hold cross the threshold too; a threshold set above the balance, or cleared, records nothing', async () => {
  await h.customer('cus_tc_thr_kinds');
  await h.call('POST', '/v1/customers/cus_tc_thr_kinds/credit-grants', {
    amount_usd: '1.00',
    reason: 'test',
  });
  await setThreshold('cus_tc_thr_kinds', '0.95');
  // A hold of 0.10 crosses (1.00 -> 0.90).
  const hold = await h.call('POST', '/v1/authorizations', {
    customer_id: 'cus_tc_thr_kinds',
    model: 'gpt-5.4-nano',
    estimated_usage: { tool_calls: { web_search: 10 } },
  });
  expect(hold.status).toBe(201);
  let rows = await crossings('cus_tc_thr_kinds');
  expect(rows.map((r) => r.balance_after_nanos)).toEqual([usd('0.90')]);
  await workflowCrossings('cus_tc_thr_kinds', 1);

  // Capturing beyond that hold while already below (0.90 -> 0.90 + 0.10 - 0.12 = 0.88) is no new crossing: the
  // balance was below the threshold before the capture, whatever it was before the hold.
  const over = await h.call('POST', `/v1/authorizations/${hold.body.id}/capture`, {
    usage: { tool_calls: { web_search: 12 } },
  });
  expect(over.body.cost_usd).toBe('0.120000000');
  expect(await availableOf('cus_tc_thr_kinds')).toBe(usd('0.88'));
  expect(await crossings('cus_tc_thr_kinds')).toHaveLength(1);
  // Back above with a grant (0.99); a small hold (0.98), then a capture well beyond it crosses (0.98 + 0.01 - 0.05).
  await h.call('POST', '/v1/customers/cus_tc_thr_kinds/credit-grants', {
    amount_usd: '0.11',
    reason: 'test',
  });
  const small = await h.call('POST', '/v1/authorizations', {
    customer_id: 'cus_tc_thr_kinds',
    model: 'gpt-5.4-nano',
    estimated_usage: { tool_calls: { web_search: 1 } },
  });
  expect(await crossings('cus_tc_thr_kinds')).toHaveLength(1);
  const excess = await h.call('POST', `/v1/authorizations/${small.body.id}/capture`, {
    usage: { tool_calls: { web_search: 5 } },
  });
  expect(excess.body.cost_usd).toBe('0.050000000');
  rows = await crossings('cus_tc_thr_kinds');
  expect(rows.map((r) => r.balance_after_nanos)).toEqual([usd('0.90'), usd('0.94')]);
  await workflowCrossings('cus_tc_thr_kinds', 2);

  // A threshold above the current balance is not a crossing, nor are debits while below it.
  await setThreshold('cus_tc_thr_kinds', '2.00');
  await ingestSearch('cus_tc_thr_kinds');
  expect(await crossings('cus_tc_thr_kinds')).toHaveLength(2);
  // Cleared: nothing is recorded whatever the balance does.
  await setThreshold('cus_tc_thr_kinds', null);
  await h.call('POST', '/v1/customers/cus_tc_thr_kinds/credit-grants', {
    amount_usd: '5.00',
    reason: 'test',
  });
  await ingestSearch('cus_tc_thr_kinds');
  expect(await crossings('cus_tc_thr_kinds')).toHaveLength(2);
  expect(formatUsd(await availableOf('cus_tc_thr_kinds'))).toBe('5.920000000');
  expect((await accountState('cus_tc_thr_kinds')).threshold_crossings).toBe(2);
});

test('a balance hovering at the threshold under holds and captures is one crossing, not one per call', async () => {
  await h.customer('cus_tc_hover');
  await h.call('POST', '/v1/customers/cus_tc_hover/credit-grants', { amount_usd: '10.20', reason: 'test' });
  await setThreshold('cus_tc_hover', '10.00');
  // Each cycle holds 0.50 (10.20 -> 9.70, below) and captures 0.01 (back to 10.19, above): spending is tiny, so
  // the balance goes back over the threshold every time, but only credit re-arms the threshold.
  for (let cycle = 0; cycle < 10; cycle++) {
    const hold = await h.call('POST', '/v1/authorizations', {
      customer_id: 'cus_tc_hover',
      model: 'gpt-5.4-nano',
      estimated_usage: { tool_calls: { web_search: 50 } },
    });
    expect(hold.status).toBe(201);
    const captured = await h.call('POST', `/v1/authorizations/${hold.body.id}/capture`, {
      usage: { tool_calls: { web_search: 1 } },
    });
    expect(captured.body.cost_usd).toBe('0.010000000');
  }
  expect(await availableOf('cus_tc_hover')).toBe(usd('10.10'));
  expect(await crossings('cus_tc_hover')).toHaveLength(1);
  // Credit re-arms it; the next debit below is the second crossing.
  await h.call('POST', '/v1/customers/cus_tc_hover/credit-grants', { amount_usd: '1.00', reason: 'test' });
  await ingestSearch('cus_tc_hover');
  expect(await crossings('cus_tc_hover')).toHaveLength(1);
  const deep = await h.call('POST', '/v1/authorizations', {
    customer_id: 'cus_tc_hover',
    model: 'gpt-5.4-nano',
    estimated_usage: { tool_calls: { web_search: 200 } },
  });
  expect(deep.status).toBe(201);
  expect(await crossings('cus_tc_hover')).toHaveLength(2);
});

test('a crossing claimed by a deliverer that died comes back when its lease ends; concurrent claims are disjoint', async () => {
  await h.customer('cus_tc_lease');
  // As a crashed deliverer leaves them: claimed once, lease over, never marked delivered.
  await h.db('threshold_crossings').insert(
    Array.from({ length: 3 }, (_, i) => ({
      customer_id: 'cus_tc_lease',
      threshold_nanos: usd('1.00'),
      balance_after_nanos: usd('0.90') - BigInt(i),
      claimed_until: new Date(Date.now() - 1000),
      delivery_attempts: 1,
    })),
  );
  const rows = await eventually(
    () => crossings('cus_tc_lease'),
    (r) => r.every((c) => c.signaled_at !== null),
  );
  expect(rows.every((c) => c.signaled_at !== null)).toBe(true);
  await workflowCrossings('cus_tc_lease', 3);

  // Two claimers at once never get the same row (SKIP LOCKED); the app's own notifier may take some too.
  await h.db('threshold_crossings').insert(
    Array.from({ length: 40 }, () => ({
      customer_id: 'cus_tc_lease',
      threshold_nanos: usd('1.00'),
      balance_after_nanos: usd('0.50'),
    })),
  );
  const [first, second] = await Promise.all([
    claimCrossings(h.db, 25, 60_000),
    claimCrossings(h.db, 25, 60_000),
  ]);
  const firstIds = new Set(first.map((c) => c.id));
  expect(second.filter((c) => firstIds.has(c.id))).toEqual([]);
  // Hand them back: mark what we claimed delivered so the ledger of crossings stays tidy.
  await markCrossingsDelivered(
    h.db,
    [...first, ...second].map((c) => c.id),
  );
});
