import { parseUsd } from '../billing/money';
import { eventually, waitFor } from './support/eventually';
import { Harness, useHarness } from './support/harness';

/**
 * Operator credit grants, the balance's consumption order, list paging (ledger and customers) and the operational
 * endpoints (OpenAPI document, liveness, readiness), end to end.
 */
const h = useHarness();

const DAY_MS = 24 * 3600 * 1000;
const inDays = (days: number) => new Date(Date.now() + days * DAY_MS).toISOString();

async function grant(customer: string, body: Record<string, unknown>) {
  const response = await h.call('POST', `/v1/customers/${customer}/credit-grants`, body);
  if (response.status !== 201) throw new Error(`grant: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body as { id: string; [field: string]: unknown };
}

/** Follows `starting_after` until `has_more` is false; returns every page. */
async function allPages(path: string, limit: number) {
  const pages: { data: { id: string; [field: string]: unknown }[]; has_more: boolean }[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 1000; i++) {
    const query = new URLSearchParams({
      limit: String(limit),
      ...(cursor ? { starting_after: cursor } : {}),
    });
    const page = await h.call('GET', `${path}?${query}`);
    expect(page.status).toBe(200);
    expect(Object.keys(page.body).sort()).toEqual(['data', 'has_more']);
    pages.push(page.body);
    if (!page.body.has_more) return pages;
    expect(page.body.data).toHaveLength(limit);
    cursor = page.body.data.at(-1).id;
  }
  throw new Error('paging never ended');
}

test('a promotion grant is 201 with source, reason and expiry, and shows the same in the balance', async () => {
  await h.customer('cus_promo');
  const expires_at = inDays(30);
  const created = await h.call('POST', '/v1/customers/cus_promo/credit-grants', {
    amount_usd: '5.25',
    reason: 'launch promotion',
    expires_at,
  });
  expect(created.status).toBe(201);
  expect(created.body).toEqual({
    id: expect.stringMatching(/^gr_/),
    customer_id: 'cus_promo',
    source: 'promotion',
    reason: 'launch promotion',
    status: 'active',
    amount_usd: '5.250000000',
    remaining_usd: '5.250000000',
    granted_at: expect.any(String),
    expires_at,
  });
  const balance = await h.call('GET', '/v1/customers/cus_promo/balance');
  expect(balance.status).toBe(200);
  expect(balance.body).toEqual({
    customer_id: 'cus_promo',
    available_usd: '5.250000000',
    held_usd: '0.000000000',
    grants: [(({ customer_id: _c, ...rest }) => rest)(created.body)],
  });
  const ledger = await h.call('GET', '/v1/customers/cus_promo/ledger');
  expect(ledger.body.data).toEqual([
    expect.objectContaining({ amount_usd: '5.250000000', balance_after_usd: '5.250000000' }),
  ]);
  const customer = await h.call('GET', '/v1/customers/cus_promo');
  expect(customer.body.balance).toEqual({ available_usd: '5.250000000', held_usd: '0.000000000' });
});

test('a goodwill grant with an expiry given in another offset is stored and shown in UTC', async () => {
  await h.customer('cus_goodwill');
  const local = '2099-06-01T12:00:00+02:00';
  const created = await grant('cus_goodwill', {
    amount_usd: '0.000000001',
    reason: 'one nano of goodwill',
    source: 'goodwill',
    expires_at: local,
  });
  expect(created).toMatchObject({
    source: 'goodwill',
    amount_usd: '0.000000001',
    expires_at: '2099-06-01T10:00:00.000Z',
  });
});

test('GET /v1/credit-grants/:id follows a grant answered 202 pending until it is granted, then shows the grant', async () => {
  const unknown = await h.call('GET', '/v1/credit-grants/gr_no_such_grant');
  expect(unknown.status).toBe(404);
  expect(unknown.body.error).toMatchObject({ type: 'not_found' });

  // A harness without a worker at first: the request is recorded and signalled, but nothing applies it within
  // the wait, so it is 202.
  {
    const slow = await Harness.start({ worker: false, update_wait_timeout_ms: 300 });
    try {
      await slow.customer('cus_grant_get_slow');
      const pending = await slow.call(
        'POST',
        '/v1/customers/cus_grant_get_slow/credit-grants',
        { amount_usd: '3.50', reason: 'late' },
        { 'Idempotency-Key': 'grant-get-1' },
      );
      expect(pending.status).toBe(202);
      const seen = await slow.call('GET', `/v1/credit-grants/${pending.body.id}`);
      expect(seen.status).toBe(200);
      expect(seen.body).toMatchObject({
        id: pending.body.id,
        customer_id: 'cus_grant_get_slow',
        status: 'pending',
        amount_usd: '3.500000000',
        reason: 'late',
        failure_code: null,
        grant: null,
      });

      await slow.startWorker();
      const settled = await eventually(
        () => slow.call('GET', `/v1/credit-grants/${pending.body.id}`),
        (answer) => answer.body.status !== 'pending',
      );
      expect(settled.body).toMatchObject({
        status: 'granted',
        grant: {
          id: pending.body.id,
          customer_id: 'cus_grant_get_slow',
          source: 'promotion',
          amount_usd: '3.500000000',
          remaining_usd: '3.500000000',
          status: 'active',
        },
      });
      expect((await slow.call('GET', '/v1/customers/cus_grant_get_slow/balance')).body.available_usd).toBe(
        '3.500000000',
      );
      expect(await slow.ledgerViolations()).toEqual([]);
    } finally {
      await slow.stop();
    }
  }
});

test('a retried grant whose expiry has passed since it was recorded answers its outcome, not a 400', async () => {
  const slow = await Harness.start({ worker: false, update_wait_timeout_ms: 300 });
  try {
    await slow.customer('cus_grant_retry_late');
    const body = {
      amount_usd: '1.00',
      reason: 'short',
      expires_at: new Date(Date.now() + 1_000).toISOString(),
    };
    const headers = { 'Idempotency-Key': 'grant-late-1' };
    const path = '/v1/customers/cus_grant_retry_late/credit-grants';
    const first = await slow.call('POST', path, body, headers);
    expect(first.status).toBe(202);
    await waitFor('the expiry to pass', () => Date.now() > Date.parse(body.expires_at) + 100, 5_000);
    const retry = await slow.call('POST', path, body, headers);
    expect(retry.status).toBe(202);
    expect(retry.body).toMatchObject({ id: first.body.id, status: 'pending' });
    // A new request (another key) with that expiry is refused as before.
    const late = await slow.call('POST', path, body, { 'Idempotency-Key': 'grant-late-2' });
    expect(late.status).toBe(400);
    expect(late.body.error).toMatchObject({ param: 'expires_at' });
    // Applied at last, the grant is credited and written off at once: the books still agree.
    await slow.startWorker();
    const settled = await eventually(
      () => slow.call('GET', `/v1/credit-grants/${first.body.id}`),
      (answer) => answer.body.status !== 'pending',
    );
    expect(settled.body.status).toBe('granted');
    expect(await slow.ledgerViolations()).toEqual([]);
  } finally {
    await slow.stop();
  }
});

test('grants are listed in consumption order: soonest expiry first, never-expiring last (oldest first)', async () => {
  await h.customer('cus_order', 'pm_card_visa');
  const neverA = await grant('cus_order', { amount_usd: '1.00', reason: 'never expires, first' });
  const in30 = await grant('cus_order', { amount_usd: '2.00', reason: 'in 30 days', expires_at: inDays(30) });
  const in2 = await grant('cus_order', { amount_usd: '3.00', reason: 'in 2 days', expires_at: inDays(2) });
  const topUp = await h.call('POST', '/v1/customers/cus_order/top-ups', { amount_usd: '4.00' });
  expect(topUp.status).toBe(201);
  const in10 = await grant('cus_order', {
    amount_usd: '5.00',
    reason: 'in 10 days',
    source: 'goodwill',
    expires_at: inDays(10),
  });

  const balance = await h.call('GET', '/v1/customers/cus_order/balance');
  expect(balance.body.available_usd).toBe('15.000000000');
  // Paid credit expires too (TOP_UP_CREDIT_VALIDITY, P1Y by default): the top-up comes before credit that never does.
  expect(balance.body.grants.map((g: { id: string }) => g.id)).toEqual([
    in2.id,
    in10.id,
    in30.id,
    topUp.body.grant_id,
    neverA.id,
  ]);
  expect(balance.body.grants.map((g: { source: string }) => g.source)).toEqual([
    'promotion',
    'goodwill',
    'promotion',
    'top_up',
    'promotion',
  ]);
  expect(balance.body.grants.at(-2)).toMatchObject({ expires_at: expect.any(String), reason: null });
  expect(balance.body.grants.at(-1)).toMatchObject({ expires_at: null, reason: 'never expires, first' });
});

test('ledger paging with limit and starting_after returns every entry exactly once, newest first, has_more right', async () => {
  await h.customer('cus_pages');
  for (let i = 0; i < 7; i++) await grant('cus_pages', { amount_usd: '1.00', reason: `grant ${i}` });
  const path = '/v1/customers/cus_pages/ledger';

  const full = await h.call('GET', `${path}?limit=100`);
  expect(full.body.has_more).toBe(false);
  expect(full.body.data).toHaveLength(7);
  // Newest first: each grant added 1.00, so the balances after run 7, 6, ..., 1.
  expect(full.body.data.map((e: { balance_after_usd: string }) => e.balance_after_usd)).toEqual(
    ['7', '6', '5', '4', '3', '2', '1'].map((n) => `${n}.000000000`),
  );
  const ids: string[] = full.body.data.map((e: { id: string }) => e.id);
  const numeric = ids.map((id) => BigInt(id.replace(/^le_/, '')));
  for (let i = 1; i < numeric.length; i++) expect(numeric[i]! < numeric[i - 1]!).toBe(true);

  const pages = await allPages(path, 3);
  expect(pages.map((p) => [p.data.length, p.has_more])).toEqual([
    [3, true],
    [3, true],
    [1, false],
  ]);
  expect(pages.flatMap((p) => p.data.map((e) => e.id))).toEqual(ids);

  // Boundaries: a limit equal to the count has no more; one less has more; the default limit is 20.
  expect((await h.call('GET', `${path}?limit=7`)).body).toMatchObject({ has_more: false });
  expect((await h.call('GET', `${path}?limit=6`)).body).toMatchObject({ has_more: true });
  expect((await h.call('GET', `${path}?limit=100&starting_after=${ids.at(-1)}`)).body).toEqual({
    data: [],
    has_more: false,
  });
  expect((await h.call('GET', path)).body).toEqual(full.body);
  expect((await h.call('GET', `${path}?limit=1`)).body).toEqual({
    data: [full.body.data[0]],
    has_more: true,
  });
});

test('GET /v1/customers pages by id ascending and returns every customer exactly once', async () => {
  for (let i = 0; i < 5; i++) await h.customer(`cus_list_${i}`);
  const full = await h.call('GET', '/v1/customers?limit=100');
  expect(full.status).toBe(200);
  expect(full.body.has_more).toBe(false);
  const ids: string[] = full.body.data.map((c: { id: string }) => c.id);
  expect(ids).toEqual([...ids].sort());
  expect(ids).toEqual(
    expect.arrayContaining(['cus_list_0', 'cus_list_1', 'cus_list_2', 'cus_list_3', 'cus_list_4']),
  );
  expect(full.body.data[0]).toMatchObject({ object: 'customer', balance: expect.any(Object) });

  const pages = await allPages('/v1/customers', 2);
  expect(pages.flatMap((p) => p.data.map((c) => c.id))).toEqual(ids);
  expect(pages.at(-1)!.has_more).toBe(false);
  expect(pages.slice(0, -1).every((p) => p.has_more)).toBe(true);
  expect((await h.call('GET', `/v1/customers?limit=${ids.length}`)).body.has_more).toBe(false);
  expect((await h.call('GET', `/v1/customers?limit=${ids.length - 1}`)).body.has_more).toBe(true);
  expect((await h.call('GET', `/v1/customers?starting_after=${ids.at(-1)}`)).body).toEqual({
    data: [],
    has_more: false,
  });
});

// The OpenAPI document is untyped JSON that the test walks by path.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>;

/** Follows a local `$ref` (`#/components/...`) in the document. */
function resolve(doc: Json, schema: Json): Json {
  if (typeof schema.$ref !== 'string') return schema;
  return (schema.$ref as string)
    .replace(/^#\//, '')
    .split('/')
    .reduce<Json>((node, part) => node[part], doc);
}

const ROUTES: [method: string, path: string, body: boolean, auth: boolean][] = [
  ['post', '/v1/customers', true, true],
  ['get', '/v1/customers', false, true],
  ['get', '/v1/customers/{id}', false, true],
  ['put', '/v1/customers/{id}/payment-method', true, true],
  ['get', '/v1/customers/{id}/balance', false, true],
  ['post', '/v1/customers/{id}/top-ups', true, true],
  ['get', '/v1/top-ups/{id}', false, true],
  ['post', '/v1/customers/{id}/credit-grants', true, true],
  ['get', '/v1/credit-grants/{id}', false, true],
  ['get', '/v1/customers/{id}/ledger', false, true],
  ['get', '/healthz', false, false],
  ['get', '/readyz', false, false],
  ['get', '/openapi.json', false, false],
];

test('GET /openapi.json is OpenAPI 3.1, public, and documents every route with its request schema', async () => {
  const response = await fetch(`${h.baseUrl}/openapi.json`);
  expect(response.status).toBe(200);
  const doc = (await response.json()) as Json;
  expect(doc.openapi).toBe('3.1.0');
  expect(doc.info).toMatchObject({ title: expect.any(String), version: expect.any(String) });
  expect(doc.components.securitySchemes.bearerAuth).toEqual({ type: 'http', scheme: 'bearer' });
  expect(resolve(doc, { $ref: '#/components/schemas/Error' })).toMatchObject({
    type: 'object',
    properties: {
      error: {
        properties: {
          type: { type: 'string' },
          code: { type: 'string' },
          message: { type: 'string' },
          param: { type: 'string' },
        },
        required: ['type', 'code', 'message'],
      },
    },
  });

  for (const [method, path, hasBody, auth] of ROUTES) {
    const operation = doc.paths[path]?.[method] as Json | undefined;
    expect({ route: `${method} ${path}`, documented: operation !== undefined }).toEqual({
      route: `${method} ${path}`,
      documented: true,
    });
    expect(operation!.security).toEqual(auth ? [{ bearerAuth: [] }] : []);
    expect(operation!.responses.default.content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/Error',
    });
    const parameters = (operation!.parameters ?? []) as Json[];
    for (const name of path.match(/\{([a-z_]+)\}/g) ?? []) {
      expect(parameters).toContainEqual(
        expect.objectContaining({ in: 'path', name: name.slice(1, -1), required: true }),
      );
    }
    if (method === 'post') {
      expect(parameters).toContainEqual(
        expect.objectContaining({ in: 'header', name: 'Idempotency-Key', required: false }),
      );
    }
    if (hasBody) {
      const schema = resolve(doc, operation!.requestBody.content['application/json'].schema);
      expect(operation!.requestBody.required).toBe(true);
      expect(schema).toMatchObject({ type: 'object', additionalProperties: false });
    } else {
      expect(operation!.requestBody).toBeUndefined();
    }
  }

  const schemaOf = (path: string, method: string) =>
    resolve(doc, doc.paths[path][method].requestBody.content['application/json'].schema);
  const topUpCreate = schemaOf('/v1/customers/{id}/top-ups', 'post');
  expect(topUpCreate.required).toEqual(['amount_usd']);
  expect(Object.keys(topUpCreate.properties)).toEqual(['amount_usd']);
  expect(topUpCreate.properties.amount_usd).toMatchObject({ type: 'string', pattern: expect.any(String) });

  const grantCreate = schemaOf('/v1/customers/{id}/credit-grants', 'post');
  expect(grantCreate.required).toEqual(expect.arrayContaining(['amount_usd', 'reason']));
  expect(grantCreate.properties.amount_usd.type).toBe('string');
  expect(grantCreate.properties.reason.type).toBe('string');
  expect(grantCreate.properties.source.enum).toEqual(['promotion', 'goodwill']);
  expect(grantCreate.properties).toHaveProperty('expires_at');

  const customerCreate = schemaOf('/v1/customers', 'post');
  expect(Object.keys(customerCreate.properties).sort()).toEqual(['email', 'id', 'metadata', 'name']);
  expect(customerCreate.required ?? []).toEqual([]);
  expect(schemaOf('/v1/customers/{id}/payment-method', 'put')).toMatchObject({
    required: ['payment_method'],
    properties: { payment_method: { type: 'string', pattern: expect.any(String) } },
  });

  for (const path of ['/v1/customers', '/v1/customers/{id}/ledger']) {
    const names = (doc.paths[path].get.parameters as Json[])
      .filter((p) => p.in === 'query')
      .map((p) => p.name);
    expect(names.sort()).toEqual(['limit', 'starting_after']);
  }

  // Responses document money as strings too.
  const topUp = resolve(
    doc,
    doc.paths['/v1/customers/{id}/top-ups'].post.responses['201'].content['application/json'].schema,
  );
  expect(topUp.properties.amount_usd.type).toBe('string');

  // The documented top-up pattern has the validator's grammar and its rules (above zero, whole cents); the
  // configured range is checked on top of it. test/openapi.test.ts checks every money pattern property-based.
  const pattern = new RegExp(topUpCreate.properties.amount_usd.pattern as string);
  const wholePositiveCents = (text: string) => {
    const parsed = parseUsd(text);
    return parsed.ok && parsed.nanos > 0n && parsed.nanos % 10_000_000n === 0n;
  };
  for (const sample of [
    '20.00',
    '0',
    '0.00',
    '0.01',
    '20.000000000',
    '0.015750000',
    '9223372036.854775807',
    '007.00',
    '99999999999',
    '1e3',
    '-5',
    '1.0000000001',
    '20.',
    '.5',
    ' 1',
  ]) {
    expect({ sample, documented: pattern.test(sample) }).toEqual({
      sample,
      documented: wholePositiveCents(sample),
    });
  }
});

test('/healthz is 200 and /readyz is 200 with both checks true, without an API key', async () => {
  const health = await fetch(`${h.baseUrl}/healthz`);
  expect(health.status).toBe(200);
  expect(await health.json()).toEqual({ status: 'ok' });
  const ready = await fetch(`${h.baseUrl}/readyz`);
  expect(ready.status).toBe(200);
  expect(await ready.json()).toEqual({ status: 'ready', checks: { database: true, temporal: true } });
});
