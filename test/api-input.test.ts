import { ADMIN_KEY, useHarness } from './support/harness';

/**
 * The bad-input matrix: every malformed, unauthenticated or out-of-range request is refused with the contract's
 * status, error type, code and `param`, in exactly the contract's error shape, and moves no money.
 */
const h = useHarness();
const CUSTOMER = 'cus_input';
const UNKNOWN = 'cus_does_not_exist';

beforeAll(async () => {
  await h.customer(CUSTOMER, 'pm_card_visa');
  // Some money on the books, so that "nothing moved" compares against a non-empty ledger.
  const topUp = await h.call('POST', `/v1/customers/${CUSTOMER}/top-ups`, { amount_usd: '20.00' });
  expect(topUp.status).toBe(201);
});

interface RawResponse {
  status: number;
  text: string;
  body: { error?: Record<string, unknown> } | undefined;
}

/** A request with full control over headers and the raw body (the harness always adds a valid key). */
async function send(
  method: string,
  path: string,
  options: { body?: unknown; headers?: Record<string, string>; auth?: string | null } = {},
): Promise<RawResponse> {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...options.headers };
  const auth = options.auth === undefined ? `Bearer ${ADMIN_KEY}` : options.auth;
  if (auth !== null) headers.authorization = auth;
  const body =
    options.body === undefined
      ? undefined
      : typeof options.body === 'string'
        ? options.body
        : JSON.stringify(options.body);
  const response = await fetch(`${h.baseUrl}${path}`, { method, headers, body });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: response.status, text, body: parsed as RawResponse['body'] };
}

interface Expected {
  status: number;
  type: string;
  /** Checked when given. */
  code?: string;
  /** The field named by the error; `null` means the error must carry no `param`. */
  param: string | null;
  /** A fragment the message must contain, when given. */
  message?: string | RegExp;
}

/** Asserts the exact error shape of API.md: `{error: {type, code, message, param?}}`, nothing else. */
function expectError(response: RawResponse, expected: Expected): void {
  const context = `${response.status} ${response.text}`;
  expect({ context, status: response.status }).toEqual({ context, status: expected.status });
  expect(Object.keys(response.body ?? {})).toEqual(['error']);
  const error = response.body?.error ?? {};
  const keys = Object.keys(error).sort();
  expect(keys).toEqual(
    expected.param === null ? ['code', 'message', 'type'] : ['code', 'message', 'param', 'type'],
  );
  expect(error.type).toBe(expected.type);
  expect(typeof error.code).toBe('string');
  if (expected.code !== undefined) expect(error.code).toBe(expected.code);
  if (expected.param !== null) expect(error.param).toBe(expected.param);
  expect(typeof error.message).toBe('string');
  expect((error.message as string).length).toBeGreaterThan(0);
  if (expected.message !== undefined) expect(error.message).toMatch(expected.message);
  // Never internals: no stack frames, source paths or exception class names.
  expect(response.text).not.toMatch(/\bat .+:\d+:\d+|\.ts:\d+|node_modules|stack|Error:/);
}

interface Case extends Expected {
  name: string;
  method: string;
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
  auth?: string | null;
}

const topUps = `/v1/customers/${CUSTOMER}/top-ups`;
const grants = `/v1/customers/${CUSTOMER}/credit-grants`;
const ledger = `/v1/customers/${CUSTOMER}/ledger`;
const invalid = { status: 400, type: 'invalid_request' } as const;
const future = () => new Date(Date.now() + 30 * 24 * 3600 * 1000).toISOString();

const cases: Case[] = [
  // Body that is not a JSON object.
  {
    name: 'malformed JSON body',
    method: 'POST',
    path: topUps,
    body: '{"amount_usd": ',
    ...invalid,
    code: 'invalid_json',
    param: null,
  },
  {
    name: 'body that is a JSON array',
    method: 'POST',
    path: topUps,
    body: [{ amount_usd: '20.00' }],
    ...invalid,
    param: null,
    message: /JSON object/,
  },
  {
    name: 'body that is a JSON string',
    method: 'POST',
    path: topUps,
    body: '"20.00"',
    ...invalid,
    param: null,
    message: /JSON object/,
  },
  {
    name: 'body that is JSON null',
    method: 'POST',
    path: topUps,
    body: 'null',
    ...invalid,
    param: null,
    message: /JSON object/,
  },
  // Wrong types.
  {
    name: 'amount_usd: true',
    method: 'POST',
    path: topUps,
    body: { amount_usd: true },
    ...invalid,
    param: 'amount_usd',
  },
  {
    name: 'credit grant reason: 5',
    method: 'POST',
    path: grants,
    body: { amount_usd: '5.00', reason: 5 },
    ...invalid,
    param: 'reason',
  },
  {
    name: 'money as a JSON number (20)',
    method: 'POST',
    path: topUps,
    body: { amount_usd: 20 },
    ...invalid,
    param: 'amount_usd',
    message: /not a JSON number/,
  },
  {
    name: 'credit grant money as a JSON number (5.5)',
    method: 'POST',
    path: grants,
    body: { amount_usd: 5.5, reason: 'promo' },
    ...invalid,
    param: 'amount_usd',
  },
  { name: 'missing amount_usd', method: 'POST', path: topUps, body: {}, ...invalid, param: 'amount_usd' },
  // Money strings the engine does not accept.
  {
    name: 'negative "-5.00"',
    method: 'POST',
    path: topUps,
    body: { amount_usd: '-5.00' },
    ...invalid,
    param: 'amount_usd',
    message: /negative/,
  },
  {
    name: 'negative credit grant "-5.00"',
    method: 'POST',
    path: grants,
    body: { amount_usd: '-5.00', reason: 'promo' },
    ...invalid,
    param: 'amount_usd',
  },
  {
    name: 'exponent "1e3"',
    method: 'POST',
    path: topUps,
    body: { amount_usd: '1e3' },
    ...invalid,
    param: 'amount_usd',
  },
  {
    name: 'more than 9 decimals "1.0000000001"',
    method: 'POST',
    path: grants,
    body: { amount_usd: '1.0000000001', reason: 'promo' },
    ...invalid,
    param: 'amount_usd',
    message: /9 decimal/,
  },
  {
    name: 'leading zeros "007.00"',
    method: 'POST',
    path: topUps,
    body: { amount_usd: '007.00' },
    ...invalid,
    param: 'amount_usd',
  },
  {
    name: 'whitespace " 20.00"',
    method: 'POST',
    path: topUps,
    body: { amount_usd: ' 20.00' },
    ...invalid,
    param: 'amount_usd',
  },
  {
    name: 'empty string ""',
    method: 'POST',
    path: topUps,
    body: { amount_usd: '' },
    ...invalid,
    param: 'amount_usd',
  },
  {
    name: 'beyond the ledger column "99999999999.00"',
    method: 'POST',
    path: grants,
    body: { amount_usd: '99999999999.00', reason: 'promo' },
    ...invalid,
    param: 'amount_usd',
  },
  {
    name: 'credit grant beyond the int8 ledger column "9300000000.00" (would wedge the account workflow)',
    method: 'POST',
    path: grants,
    body: { amount_usd: '9300000000.00', reason: 'typo' },
    ...invalid,
    param: 'amount_usd',
  },
  {
    name: 'credit grant one nano beyond the int8 ledger column',
    method: 'POST',
    path: grants,
    body: { amount_usd: '9223372036.854775808', reason: 'typo' },
    ...invalid,
    param: 'amount_usd',
  },
  {
    name: 'top-up with sub-cent "1.005"',
    method: 'POST',
    path: topUps,
    body: { amount_usd: '1.005' },
    ...invalid,
    param: 'amount_usd',
    message: /whole cents/,
  },
  {
    name: 'top-up of zero "0.00"',
    method: 'POST',
    path: topUps,
    body: { amount_usd: '0.00' },
    ...invalid,
    param: 'amount_usd',
    message: /greater than zero/,
  },
  {
    name: 'credit grant of zero "0"',
    method: 'POST',
    path: grants,
    body: { amount_usd: '0', reason: 'promo' },
    ...invalid,
    param: 'amount_usd',
    message: /greater than zero/,
  },
  {
    name: 'top-up below the minimum "0.99"',
    method: 'POST',
    path: topUps,
    body: { amount_usd: '0.99' },
    ...invalid,
    param: 'amount_usd',
    message: /between 1.00 and 10000.00/,
  },
  {
    name: 'top-up above the maximum "10000.01"',
    method: 'POST',
    path: topUps,
    body: { amount_usd: '10000.01' },
    ...invalid,
    param: 'amount_usd',
    message: /between 1.00 and 10000.00/,
  },
  // Unknown fields are named.
  {
    name: 'unknown top-up field',
    method: 'POST',
    path: topUps,
    body: { amount_usd: '20.00', currency: 'usd' },
    ...invalid,
    param: 'currency',
  },
  {
    name: 'unknown credit grant field',
    method: 'POST',
    path: grants,
    body: { amount_usd: '5.00', reason: 'promo', customer: 'x' },
    ...invalid,
    param: 'customer',
  },
  {
    name: 'unknown field "__proto__"',
    method: 'POST',
    path: topUps,
    body: '{"amount_usd": "20.00", "__proto__": {"admin": true}}',
    ...invalid,
    param: '__proto__',
  },
  {
    name: 'unknown customer field',
    method: 'POST',
    path: '/v1/customers',
    body: { id: 'cus_never_created', plan: 'pro' },
    ...invalid,
    param: 'plan',
  },
  {
    name: 'unknown payment method field',
    method: 'PUT',
    path: `/v1/customers/${CUSTOMER}/payment-method`,
    body: { payment_method: 'pm_card_visa', default: true },
    ...invalid,
    param: 'default',
  },
  // Credit grant specifics.
  {
    name: 'credit grant without reason',
    method: 'POST',
    path: grants,
    body: { amount_usd: '5.00' },
    ...invalid,
    param: 'reason',
  },
  {
    name: 'credit grant with an empty reason',
    method: 'POST',
    path: grants,
    body: { amount_usd: '5.00', reason: '' },
    ...invalid,
    param: 'reason',
  },
  {
    name: 'credit grant with a source operators may not use (top_up)',
    method: 'POST',
    path: grants,
    body: { amount_usd: '5.00', reason: 'fake top-up', source: 'top_up' },
    ...invalid,
    param: 'source',
  },
  {
    name: 'credit grant expiring in the past',
    method: 'POST',
    path: grants,
    body: { amount_usd: '5.00', reason: 'promo', expires_at: '2020-01-01T00:00:00Z' },
    ...invalid,
    param: 'expires_at',
    message: /future/,
  },
  {
    name: 'credit grant with a malformed expires_at',
    method: 'POST',
    path: grants,
    body: { amount_usd: '5.00', reason: 'promo', expires_at: 'next tuesday' },
    ...invalid,
    param: 'expires_at',
  },
  {
    name: 'credit grant with an impossible date',
    method: 'POST',
    path: grants,
    body: { amount_usd: '5.00', reason: 'promo', expires_at: '2031-13-40T00:00:00Z' },
    ...invalid,
    param: 'expires_at',
  },
  {
    name: 'credit grant with expires_at as a number',
    method: 'POST',
    path: grants,
    body: { amount_usd: '5.00', reason: 'promo', expires_at: 1924992000 },
    ...invalid,
    param: 'expires_at',
  },
  // Unknown customer.
  {
    name: 'balance of an unknown customer',
    method: 'GET',
    path: `/v1/customers/${UNKNOWN}/balance`,
    status: 404,
    type: 'not_found',
    code: 'resource_missing',
    param: null,
  },
  {
    name: 'top-up for an unknown customer',
    method: 'POST',
    path: `/v1/customers/${UNKNOWN}/top-ups`,
    body: { amount_usd: '20.00' },
    status: 404,
    type: 'not_found',
    code: 'resource_missing',
    param: null,
  },
  {
    name: 'credit grant for an unknown customer',
    method: 'POST',
    path: `/v1/customers/${UNKNOWN}/credit-grants`,
    body: { amount_usd: '5.00', reason: 'promo', expires_at: future() },
    status: 404,
    type: 'not_found',
    code: 'resource_missing',
    param: null,
  },
  {
    name: 'ledger of an unknown customer',
    method: 'GET',
    path: `/v1/customers/${UNKNOWN}/ledger`,
    status: 404,
    type: 'not_found',
    code: 'resource_missing',
    param: null,
  },
  {
    name: 'payment method of an unknown customer',
    method: 'PUT',
    path: `/v1/customers/${UNKNOWN}/payment-method`,
    body: { payment_method: 'pm_card_visa' },
    status: 404,
    type: 'not_found',
    code: 'resource_missing',
    param: null,
  },
  {
    name: 'an unknown customer',
    method: 'GET',
    path: `/v1/customers/${UNKNOWN}`,
    status: 404,
    type: 'not_found',
    code: 'resource_missing',
    param: null,
  },
  {
    name: 'an unknown top-up',
    method: 'GET',
    path: '/v1/top-ups/tu_nope',
    status: 404,
    type: 'not_found',
    code: 'resource_missing',
    param: null,
  },
  // Customer ids and payment methods.
  {
    name: 'customer id with bad characters',
    method: 'POST',
    path: '/v1/customers',
    body: { id: 'cus bad/../id!' },
    ...invalid,
    param: 'id',
  },
  {
    name: 'customer id longer than 64 characters',
    method: 'POST',
    path: '/v1/customers',
    body: { id: `cus_${'x'.repeat(61)}` },
    ...invalid,
    param: 'id',
  },
  {
    name: 'customer email that is not an email',
    method: 'POST',
    path: '/v1/customers',
    body: { id: 'cus_never_created', email: 'not-an-email' },
    ...invalid,
    param: 'email',
  },
  {
    name: 'customer metadata value that is not a string',
    method: 'POST',
    path: '/v1/customers',
    body: { id: 'cus_never_created', metadata: { plan: 3 } },
    ...invalid,
    param: 'metadata.plan',
  },
  {
    name: 'payment method in an invalid format',
    method: 'PUT',
    path: `/v1/customers/${CUSTOMER}/payment-method`,
    body: { payment_method: 'card_visa' },
    ...invalid,
    code: 'invalid_request',
    param: 'payment_method',
  },
  {
    name: 'payment method unknown to the simulated gateway',
    method: 'PUT',
    path: `/v1/customers/${CUSTOMER}/payment-method`,
    body: { payment_method: 'pm_card_made_up' },
    ...invalid,
    code: 'payment_method_unknown',
    param: 'payment_method',
  },
  // Authentication.
  {
    name: 'missing Authorization',
    method: 'POST',
    path: topUps,
    body: { amount_usd: '20.00' },
    auth: null,
    status: 401,
    type: 'authentication_error',
    code: 'missing_api_key',
    param: null,
  },
  {
    name: 'wrong API key',
    method: 'POST',
    path: topUps,
    body: { amount_usd: '20.00' },
    auth: 'Bearer sk_test_not_a_key',
    status: 401,
    type: 'authentication_error',
    code: 'invalid_api_key',
    param: null,
  },
  {
    name: 'malformed Authorization "Basic x"',
    method: 'POST',
    path: topUps,
    body: { amount_usd: '20.00' },
    auth: 'Basic x',
    status: 401,
    type: 'authentication_error',
    code: 'missing_api_key',
    param: null,
  },
  {
    name: 'Authorization "Bearer" without a key',
    method: 'GET',
    path: `/v1/customers/${CUSTOMER}/balance`,
    auth: 'Bearer ',
    status: 401,
    type: 'authentication_error',
    param: null,
  },
  {
    name: 'unknown route without Authorization (auth comes first)',
    method: 'GET',
    path: '/v1/secrets',
    auth: null,
    status: 401,
    type: 'authentication_error',
    param: null,
  },
  // Size.
  {
    name: 'oversized body over 64 KiB',
    method: 'POST',
    path: topUps,
    body: { amount_usd: '20.00', padding: 'x'.repeat(70 * 1024) },
    status: 413,
    type: 'payload_too_large',
    code: 'payload_too_large',
    param: null,
  },
  // Idempotency-Key format.
  {
    name: 'Idempotency-Key longer than 255 characters',
    method: 'POST',
    path: topUps,
    body: { amount_usd: '20.00' },
    headers: { 'Idempotency-Key': 'k'.repeat(256) },
    ...invalid,
    param: 'Idempotency-Key',
  },
  {
    name: 'Idempotency-Key with spaces',
    method: 'POST',
    path: topUps,
    body: { amount_usd: '20.00' },
    headers: { 'Idempotency-Key': 'two words' },
    ...invalid,
    param: 'Idempotency-Key',
  },
  // Paging and query parameters.
  { name: 'ledger limit=0', method: 'GET', path: `${ledger}?limit=0`, ...invalid, param: 'limit' },
  { name: 'ledger limit=101', method: 'GET', path: `${ledger}?limit=101`, ...invalid, param: 'limit' },
  { name: 'ledger limit=abc', method: 'GET', path: `${ledger}?limit=abc`, ...invalid, param: 'limit' },
  { name: 'ledger limit=-1', method: 'GET', path: `${ledger}?limit=-1`, ...invalid, param: 'limit' },
  { name: 'ledger limit=1.5', method: 'GET', path: `${ledger}?limit=1.5`, ...invalid, param: 'limit' },
  {
    name: 'ledger limit given twice',
    method: 'GET',
    path: `${ledger}?limit=1&limit=2`,
    ...invalid,
    param: 'limit',
  },
  {
    name: 'ledger starting_after=garbage',
    method: 'GET',
    path: `${ledger}?starting_after=garbage`,
    ...invalid,
    param: 'starting_after',
  },
  {
    name: 'ledger starting_after beyond int8',
    method: 'GET',
    path: `${ledger}?starting_after=le_9999999999999999999`,
    ...invalid,
    param: 'starting_after',
  },
  {
    name: 'unknown ledger query parameter',
    method: 'GET',
    path: `${ledger}?page=2`,
    ...invalid,
    param: 'page',
  },
  {
    name: 'customers list limit=0',
    method: 'GET',
    path: '/v1/customers?limit=0',
    ...invalid,
    param: 'limit',
  },
  {
    name: 'unknown customers list query parameter',
    method: 'GET',
    path: '/v1/customers?email=a@b.c',
    ...invalid,
    param: 'email',
  },
  {
    name: 'unknown query parameter on a route that takes none (balance)',
    method: 'GET',
    path: `/v1/customers/${CUSTOMER}/balance?expand=grants`,
    ...invalid,
    param: 'expand',
  },
  {
    name: 'unknown query parameter on a POST (top-up)',
    method: 'POST',
    path: `${topUps}?amount_usd=5000.00`,
    body: { amount_usd: '20.00' },
    ...invalid,
    param: 'amount_usd',
  },
  // Routes.
  {
    name: 'unknown route',
    method: 'GET',
    path: '/v1/nothing-here',
    status: 404,
    type: 'not_found',
    code: 'route_not_found',
    param: null,
  },
  {
    name: 'known path with an unsupported method',
    method: 'DELETE',
    path: `/v1/customers/${CUSTOMER}`,
    status: 404,
    type: 'not_found',
    code: 'route_not_found',
    param: null,
  },
  {
    name: 'path with broken percent-encoding',
    method: 'GET',
    path: '/v1/customers/%E0%A4%A/balance',
    ...invalid,
    param: null,
  },
];

test.each(cases.map((c) => [c.name, c] as const))(
  '%s is refused with the contract error and moves no money',
  async (_name, c) => {
    const before = await h.moneySnapshot();
    const response = await send(c.method, c.path, { body: c.body, headers: c.headers, auth: c.auth });
    expectError(response, c);
    expect(await h.moneySnapshot()).toEqual(before);
  },
);

test('refused customer creations and payment-method changes leave no trace', async () => {
  expect((await h.call('GET', '/v1/customers/cus_never_created')).status).toBe(404);
  const customer = await h.call('GET', `/v1/customers/${CUSTOMER}`);
  expect(customer.body.payment_method).toBe('pm_card_visa');
  expect(customer.body.balance.available_usd).toBe('20.000000000');
  expect(await h.db('idempotency_keys')).toEqual([]);
});

test('an Idempotency-Key sent with a request that fails schema validation is not consumed', async () => {
  const key = 'input-key-1';
  const bad = await send('POST', topUps, { body: { amount_usd: 2 }, headers: { 'Idempotency-Key': key } });
  expectError(bad, { ...invalid, param: 'amount_usd' });
  const good = await h.call('POST', topUps, { amount_usd: '2.00' }, { 'Idempotency-Key': key });
  expect(good.status).toBe(201);
  expect(good.headers.get('Idempotency-Replayed')).toBeNull();
  expect(good.body).toMatchObject({ status: 'succeeded', amount_usd: '2.000000000' });
});
