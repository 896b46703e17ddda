import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { type Api, createApp } from '../api/app';
import { listen } from '../api/server';
import { eventually } from './support/eventually';
import { ADMIN_KEY, type ApiResponse, Harness, testAppDeps } from './support/harness';

/**
 * Idempotency-Key end to end (API.md): a replay returns the first response and moves money once, a key is bound
 * to one request (method, path and body), concurrent duplicates never both run, and keys are scoped per API key.
 */
let h: Harness;
const SECOND_KEY = 'sk_test_second_admin_key';
let secondServer: Server;
let secondApi: Api;
let secondBaseUrl: string;

beforeAll(async () => {
  h = await Harness.start();
  // A second API process on the same database and task queue that knows two admin keys, to prove that keys are
  // scoped per API key (the harness's own app has a single key).
  secondApi = createApp(
    testAppDeps({
      db: h.db,
      hotPath: h.hotPath,
      temporal: h.temporal,
      task_queue: h.taskQueue,
      settings: h.settings,
      api_keys: [ADMIN_KEY, SECOND_KEY],
    }),
  );
  secondServer = await listen(secondApi.app, 0, '127.0.0.1');
  secondBaseUrl = `http://127.0.0.1:${(secondServer.address() as AddressInfo).port}`;
});

afterAll(async () => {
  expect(await h.ledgerViolations()).toEqual([]);
  await secondApi.close();
  await new Promise<void>((resolve) => {
    secondServer.close(() => resolve());
    secondServer.closeAllConnections();
  });
  await h.stop();
});

/** Rows that record money moving for one customer. */
async function moneyRows(customer_id: string) {
  const count = async (table: string, column: string) =>
    Number((await h.db(table).where(column, customer_id).count<{ count: string }[]>('* as count'))[0]!.count);
  return {
    grants: await count('credit_grants', 'customer_id'),
    charges: await count('simulated_charges', 'customer_ref'),
    entries: await count('ledger_entries', 'customer_id'),
  };
}

async function callWithKey(
  baseUrl: string,
  apiKey: string,
  path: string,
  body: unknown,
  idempotencyKey: string,
) {
  const response = await fetch(`${baseUrl}${path}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${apiKey}`,
      'content-type': 'application/json',
      'Idempotency-Key': idempotencyKey,
    },
    body: JSON.stringify(body),
  });
  return {
    status: response.status,
    body: (await response.json()) as ApiResponse['body'],
    headers: response.headers,
  };
}

test('the charges column used for counting is the customer id (sanity check of the counting helper)', async () => {
  await h.customer('cus_idem_sanity', 'pm_card_visa');
  const topUp = await h.call('POST', '/v1/customers/cus_idem_sanity/top-ups', { amount_usd: '3.00' });
  expect(topUp.status).toBe(201);
  expect(await moneyRows('cus_idem_sanity')).toEqual({ grants: 1, charges: 1, entries: 1 });
});

test('a replayed top-up returns the same top-up with Idempotency-Replayed and charges and grants once', async () => {
  await h.customer('cus_replay', 'pm_card_visa');
  const path = '/v1/customers/cus_replay/top-ups';
  const first = await h.call('POST', path, { amount_usd: '25.00' }, { 'Idempotency-Key': 'replay-1' });
  expect(first.status).toBe(201);
  expect(first.body).toMatchObject({ status: 'succeeded', amount_usd: '25.000000000' });
  expect(first.headers.get('Idempotency-Replayed')).toBeNull();

  for (let i = 0; i < 3; i++) {
    const again = await h.call('POST', path, { amount_usd: '25.00' }, { 'Idempotency-Key': 'replay-1' });
    expect(again.status).toBe(201);
    expect(again.body).toEqual(first.body);
    expect(again.headers.get('Idempotency-Replayed')).toBe('true');
  }
  expect(await moneyRows('cus_replay')).toEqual({ grants: 1, charges: 1, entries: 1 });
  const balance = await h.call('GET', '/v1/customers/cus_replay/balance');
  expect(balance.body.available_usd).toBe('25.000000000');
});

test('a top-up retried after its stored key was lost names the same top-up and charges once', async () => {
  const path = '/v1/customers/cus_replay/top-ups';
  const first = await h.call('POST', path, { amount_usd: '25.00' }, { 'Idempotency-Key': 'replay-1' });
  const before = await moneyRows('cus_replay');
  await h.db('idempotency_keys').where({ key: 'replay-1' }).delete();
  const again = await h.call('POST', path, { amount_usd: '25.00' }, { 'Idempotency-Key': 'replay-1' });
  expect(again.status).toBe(201);
  expect(again.headers.get('Idempotency-Replayed')).toBeNull();
  expect(again.body.id).toBe(first.body.id);
  expect(again.body).toMatchObject({ status: 'succeeded', amount_usd: '25.000000000' });
  expect(await moneyRows('cus_replay')).toEqual(before);
});

test('the same key with a different body is 409 idempotency_conflict and moves nothing', async () => {
  const path = '/v1/customers/cus_replay/top-ups';
  const before = await moneyRows('cus_replay');
  const conflict = await h.call('POST', path, { amount_usd: '30.00' }, { 'Idempotency-Key': 'replay-1' });
  expect(conflict.status).toBe(409);
  expect(conflict.body).toEqual({
    error: {
      type: 'idempotency_conflict',
      code: 'idempotency_conflict',
      message: expect.any(String),
      param: 'Idempotency-Key',
    },
  });
  expect(await moneyRows('cus_replay')).toEqual(before);
});

test('the same body with its fields in another order is the same request: replayed, not a conflict', async () => {
  await h.customer('cus_key_order');
  const path = '/v1/customers/cus_key_order/credit-grants';
  const first = await h.call(
    'POST',
    path,
    '{"amount_usd": "3.00", "reason": "key order", "source": "goodwill"}',
    { 'Idempotency-Key': 'order-1' },
  );
  expect(first.status).toBe(201);
  const reordered = await h.call(
    'POST',
    path,
    '{"source":"goodwill","reason":"key order","amount_usd":"3.00"}',
    { 'Idempotency-Key': 'order-1' },
  );
  expect(reordered.status).toBe(201);
  expect(reordered.body).toEqual(first.body);
  expect(reordered.headers.get('Idempotency-Replayed')).toBe('true');
  expect(await moneyRows('cus_key_order')).toEqual({ grants: 1, charges: 0, entries: 1 });
  // A different value is still a different request.
  const other = await h.call(
    'POST',
    path,
    { amount_usd: '3.0', reason: 'key order', source: 'goodwill' },
    { 'Idempotency-Key': 'order-1' },
  );
  expect(other.status).toBe(409);
  expect(other.body.error.type).toBe('idempotency_conflict');
});

test('the same key on a different route, or for another customer, is 409 idempotency_conflict', async () => {
  await h.customer('cus_replay_other', 'pm_card_visa');
  const before = await h.moneySnapshot();
  const onGrants = await h.call(
    'POST',
    '/v1/customers/cus_replay/credit-grants',
    { amount_usd: '25.00', reason: 'same key, other route' },
    { 'Idempotency-Key': 'replay-1' },
  );
  expect(onGrants.status).toBe(409);
  expect(onGrants.body.error).toMatchObject({ type: 'idempotency_conflict', param: 'Idempotency-Key' });

  const otherCustomer = await h.call(
    'POST',
    '/v1/customers/cus_replay_other/top-ups',
    { amount_usd: '25.00' },
    { 'Idempotency-Key': 'replay-1' },
  );
  expect(otherCustomer.status).toBe(409);
  expect(otherCustomer.body.error.type).toBe('idempotency_conflict');
  expect(await h.moneySnapshot()).toEqual(before);
});

test('five concurrent duplicates with one key charge and grant exactly once; the others replay or are told to retry', async () => {
  await h.customer('cus_concurrent', 'pm_card_visa');
  const path = '/v1/customers/cus_concurrent/top-ups';
  const responses = await Promise.all(
    Array.from({ length: 5 }, () =>
      h.call('POST', path, { amount_usd: '40.00' }, { 'Idempotency-Key': 'concurrent-1' }),
    ),
  );
  const successes = responses.filter((r) => r.status === 201);
  const inUse = responses.filter((r) => r.status === 409);
  expect(successes.length + inUse.length).toBe(5);
  expect(successes.length).toBeGreaterThanOrEqual(1);
  expect(successes.filter((r) => r.headers.get('Idempotency-Replayed') === null)).toHaveLength(1);
  for (const success of successes) expect(success.body).toEqual(successes[0]!.body);
  for (const refused of inUse) {
    expect(refused.body).toEqual({
      error: {
        type: 'conflict',
        code: 'idempotency_key_in_use',
        message: expect.any(String),
        param: 'Idempotency-Key',
      },
    });
  }
  expect(successes[0]!.body).toMatchObject({ status: 'succeeded', amount_usd: '40.000000000' });
  expect(await moneyRows('cus_concurrent')).toEqual({ grants: 1, charges: 1, entries: 1 });

  // Once the first finished, a retry of a refused duplicate gets the stored response.
  const retry = await h.call('POST', path, { amount_usd: '40.00' }, { 'Idempotency-Key': 'concurrent-1' });
  expect(retry.status).toBe(201);
  expect(retry.body).toEqual(successes[0]!.body);
  expect(retry.headers.get('Idempotency-Replayed')).toBe('true');
  expect(await moneyRows('cus_concurrent')).toEqual({ grants: 1, charges: 1, entries: 1 });
});

test('a declined top-up replayed returns the same 402 and never charges or grants again', async () => {
  await h.customer('cus_declined_replay', 'pm_card_chargeDeclined');
  const path = '/v1/customers/cus_declined_replay/top-ups';
  const first = await h.call('POST', path, { amount_usd: '15.00' }, { 'Idempotency-Key': 'declined-1' });
  expect(first.status).toBe(402);
  expect(first.body.error).toMatchObject({
    type: 'card_error',
    code: 'card_declined',
    decline_code: 'generic_decline',
  });
  const again = await h.call('POST', path, { amount_usd: '15.00' }, { 'Idempotency-Key': 'declined-1' });
  expect(again.status).toBe(402);
  expect(again.body).toEqual(first.body);
  expect(again.headers.get('Idempotency-Replayed')).toBe('true');
  expect(await moneyRows('cus_declined_replay')).toEqual({ grants: 0, charges: 1, entries: 0 });
});

test('a replayed credit grant returns the same grant and grants once', async () => {
  await h.customer('cus_grant_replay');
  const path = '/v1/customers/cus_grant_replay/credit-grants';
  const body = { amount_usd: '7.50', reason: 'goodwill for the outage', source: 'goodwill' };
  const first = await h.call('POST', path, body, { 'Idempotency-Key': 'grant-1' });
  expect(first.status).toBe(201);
  expect(first.body).toMatchObject({ source: 'goodwill', amount_usd: '7.500000000' });
  const again = await h.call('POST', path, body, { 'Idempotency-Key': 'grant-1' });
  expect(again.status).toBe(201);
  expect(again.body).toEqual(first.body);
  expect(again.headers.get('Idempotency-Replayed')).toBe('true');
  expect(await moneyRows('cus_grant_replay')).toEqual({ grants: 1, charges: 0, entries: 1 });
  const balance = await h.call('GET', '/v1/customers/cus_grant_replay/balance');
  expect(balance.body.available_usd).toBe('7.500000000');
});

test('a credit grant whose stored key was lost still grants once: the grant id is derived from the key', async () => {
  const path = '/v1/customers/cus_grant_replay/credit-grants';
  const body = { amount_usd: '7.50', reason: 'goodwill for the outage', source: 'goodwill' };
  await h.db('idempotency_keys').where({ key: 'grant-1' }).delete();
  const again = await h.call('POST', path, body, { 'Idempotency-Key': 'grant-1' });
  expect(again.status).toBe(201);
  expect(again.headers.get('Idempotency-Replayed')).toBeNull();
  expect(await moneyRows('cus_grant_replay')).toEqual({ grants: 1, charges: 0, entries: 1 });
});

test('POST /v1/customers re-posting an existing id returns 200 with the customer, without a key', async () => {
  const created = await h.call('POST', '/v1/customers', { id: 'cus_repost', name: 'Repost Ltd' });
  expect(created.status).toBe(201);
  expect(created.body).toMatchObject({ id: 'cus_repost', object: 'customer', name: 'Repost Ltd' });
  const again = await h.call('POST', '/v1/customers', { id: 'cus_repost', name: 'Repost Ltd' });
  expect(again.status).toBe(200);
  expect(again.headers.get('Idempotency-Replayed')).toBeNull();
  expect(again.body).toEqual(created.body);
  // A re-post with other fields returns the stored customer unchanged rather than failing.
  const different = await h.call('POST', '/v1/customers', { id: 'cus_repost', name: 'Other name' });
  expect(different.status).toBe(200);
  expect(different.body.name).toBe('Repost Ltd');
  expect(await h.db('customers').where({ id: 'cus_repost' })).toHaveLength(1);
  expect(await h.db('wallets').where({ customer_id: 'cus_repost' })).toHaveLength(1);
});

test('POST /v1/customers without an id but with a key creates one customer and replays it', async () => {
  const first = await h.call('POST', '/v1/customers', { name: 'Anon' }, { 'Idempotency-Key': 'customer-1' });
  expect(first.status).toBe(201);
  const again = await h.call('POST', '/v1/customers', { name: 'Anon' }, { 'Idempotency-Key': 'customer-1' });
  expect(again.status).toBe(201);
  expect(again.body).toEqual(first.body);
  expect(again.headers.get('Idempotency-Replayed')).toBe('true');
  expect(await h.db('customers').where({ name: 'Anon' })).toHaveLength(1);
});

test('Idempotency-Keys are scoped per API key: the same key from two API keys is two top-ups', async () => {
  await h.customer('cus_scoped', 'pm_card_visa');
  const path = '/v1/customers/cus_scoped/top-ups';
  const body = { amount_usd: '12.00' };
  const fromFirst = await callWithKey(secondBaseUrl, ADMIN_KEY, path, body, 'shared-key');
  const fromSecond = await callWithKey(secondBaseUrl, SECOND_KEY, path, body, 'shared-key');
  expect(fromFirst.status).toBe(201);
  expect(fromSecond.status).toBe(201);
  expect(fromSecond.headers.get('Idempotency-Replayed')).toBeNull();
  expect(fromSecond.body.id).not.toBe(fromFirst.body.id);
  expect(await moneyRows('cus_scoped')).toEqual({ grants: 2, charges: 2, entries: 2 });

  // Each API key still replays its own request, including through the harness's app (same key, same scope).
  const replayFirst = await callWithKey(h.baseUrl, ADMIN_KEY, path, body, 'shared-key');
  const replaySecond = await callWithKey(secondBaseUrl, SECOND_KEY, path, body, 'shared-key');
  expect(replayFirst.body).toEqual(fromFirst.body);
  expect(replayFirst.headers.get('Idempotency-Replayed')).toBe('true');
  expect(replaySecond.body).toEqual(fromSecond.body);
  expect(replaySecond.headers.get('Idempotency-Replayed')).toBe('true');
  // Within one API key's scope the key stays bound to its first request.
  const otherBody = await callWithKey(secondBaseUrl, SECOND_KEY, path, { amount_usd: '13.00' }, 'shared-key');
  expect(otherBody.status).toBe(409);
  expect(await moneyRows('cus_scoped')).toEqual({ grants: 2, charges: 2, entries: 2 });
  const balance = await h.call('GET', '/v1/customers/cus_scoped/balance');
  expect(balance.body.available_usd).toBe('24.000000000');
});

describe('with the worker stopped', () => {
  let down: Harness;
  beforeAll(async () => {
    down = await Harness.start({ update_wait_timeout_ms: 1_500 });
  });
  afterAll(async () => {
    expect(await down.ledgerViolations()).toEqual([]);
    await down.stop();
  });

  test('a 202 pending is not stored: the retry with the same key answers how it ended, charged once', async () => {
    await down.customer('cus_down', 'pm_card_visa');
    await down.stopWorker();
    const path = '/v1/customers/cus_down/top-ups';
    // No worker: the request is recorded and delivered, but nothing runs within the wait timeout.
    const first = await down.call('POST', path, { amount_usd: '9.00' }, { 'Idempotency-Key': 'down-1' });
    expect(first.status).toBe(202);
    expect(first.body).toMatchObject({ id: expect.stringMatching(/^tu_/), status: 'pending' });
    expect(await down.db('idempotency_keys').where({ key: 'down-1' })).toEqual([]);
    expect(await down.db('simulated_charges').where({ customer_ref: 'cus_down' })).toEqual([]);
    expect((await down.call('GET', `/v1/top-ups/${first.body.id}`)).body.status).toBe('pending');

    await down.startWorker();
    // A client retries a pending answer with the same key until it hears the outcome.
    const retry = await eventually(
      () => down.call('POST', path, { amount_usd: '9.00' }, { 'Idempotency-Key': 'down-1' }),
      (answer) => answer.status !== 202,
      20_000,
      500,
    );
    expect(retry.status).toBe(201);
    expect(retry.headers.get('Idempotency-Replayed')).toBeNull();
    expect(retry.body).toMatchObject({ id: first.body.id, status: 'succeeded', amount_usd: '9.000000000' });
    expect(await down.db('simulated_charges').where({ customer_ref: 'cus_down' })).toHaveLength(1);
    expect(await down.db('credit_grants').where({ customer_id: 'cus_down' })).toHaveLength(1);
    const replay = await down.call('POST', path, { amount_usd: '9.00' }, { 'Idempotency-Key': 'down-1' });
    expect(replay.body).toEqual(retry.body);
    expect(replay.headers.get('Idempotency-Replayed')).toBe('true');
  });
});

test('a key reused for a different top-up after its stored response expired makes a new top-up, charged once', async () => {
  const path = '/v1/customers/cus_replay/top-ups';
  const first = await h.call('POST', path, { amount_usd: '3.00' }, { 'Idempotency-Key': 'reused-later' });
  expect(first.status).toBe(201);
  // The stored response is gone, as after its 24 hours; the key now names another request.
  await h.db('idempotency_keys').where({ key: 'reused-later' }).delete();
  const before = await moneyRows('cus_replay');
  const later = await h.call('POST', path, { amount_usd: '4.00' }, { 'Idempotency-Key': 'reused-later' });
  expect(later.status).toBe(201);
  expect(later.body.id).not.toBe(first.body.id);
  expect(later.body).toMatchObject({ status: 'succeeded', amount_usd: '4.000000000' });
  const after = await moneyRows('cus_replay');
  expect(after).toEqual({
    grants: before.grants + 1,
    charges: before.charges + 1,
    entries: before.entries + 1,
  });
});
