import { connect } from 'node:net';
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
    status: 405,
    type: 'method_not_allowed',
    code: 'method_not_allowed',
    param: null,
  },
  {
    name: 'known public path with an unsupported method, without a key',
    method: 'POST',
    path: '/healthz',
    auth: null,
    status: 405,
    type: 'method_not_allowed',
    param: null,
  },
  // Control characters: never in ids, labels or query values; in a grant's reason only tab and line feed.
  {
    name: 'NUL in a credit grant reason (used to wedge the account)',
    method: 'POST',
    path: grants,
    body: { amount_usd: '5.00', reason: 'promo\u0000' },
    ...invalid,
    param: 'reason',
    message: /control characters/,
  },
  {
    name: 'carriage return in a credit grant reason',
    method: 'POST',
    path: grants,
    body: { amount_usd: '5.00', reason: 'line\r\nline' },
    ...invalid,
    param: 'reason',
  },
  {
    name: 'DEL in a credit grant reason',
    method: 'POST',
    path: grants,
    body: { amount_usd: '5.00', reason: 'a\u007fb' },
    ...invalid,
    param: 'reason',
  },
  {
    name: 'C1 control (NEL) in a credit grant reason',
    method: 'POST',
    path: grants,
    body: { amount_usd: '5.00', reason: 'a\u0085b' },
    ...invalid,
    param: 'reason',
  },
  {
    name: 'lone surrogate in a credit grant reason',
    method: 'POST',
    path: grants,
    body: '{"amount_usd": "5.00", "reason": "half \\ud800 a pair"}',
    ...invalid,
    param: 'reason',
    message: /well-formed/,
  },
  {
    name: 'line feed in a customer name (single-line text)',
    method: 'POST',
    path: '/v1/customers',
    body: { id: 'cus_never_created', name: 'Acme\nInc' },
    ...invalid,
    param: 'name',
  },
  {
    name: 'NUL in a customer id',
    method: 'POST',
    path: '/v1/customers',
    body: { id: 'cus_a\u0000b' },
    ...invalid,
    param: 'id',
  },
  {
    name: 'control character in a metadata value',
    method: 'POST',
    path: '/v1/customers',
    body: { id: 'cus_never_created', metadata: { plan: 'pro\u0001' } },
    ...invalid,
    param: 'metadata.plan',
  },
  {
    name: 'NUL in a metadata key (named by its record, escaped)',
    method: 'POST',
    path: '/v1/customers',
    body: { id: 'cus_never_created', metadata: { 'a\u0000b': 'x' } },
    ...invalid,
    param: 'metadata',
    message: /a\\u0000b/,
  },
  {
    name: 'NUL in an unknown field name (escaped in param)',
    method: 'POST',
    path: topUps,
    body: { amount_usd: '20.00', 'x\u0000': 1 },
    ...invalid,
    param: 'x\\u0000',
  },
  {
    name: 'NUL in a customer path id (was a 500)',
    method: 'GET',
    path: '/v1/customers/a%00b',
    ...invalid,
    param: 'id',
  },
  {
    name: 'NUL in a customer path id of a POST',
    method: 'POST',
    path: '/v1/customers/a%00b/top-ups',
    body: { amount_usd: '20.00' },
    ...invalid,
    param: 'id',
  },
  {
    name: 'NUL in a top-up path id',
    method: 'GET',
    path: '/v1/top-ups/tu_%00',
    ...invalid,
    param: 'id',
  },
  {
    name: 'NUL in an authorization path id',
    method: 'POST',
    path: '/v1/authorizations/auth_%00/capture',
    body: { usage: { input_tokens: 1 } },
    ...invalid,
    param: 'id',
  },
  {
    name: 'NUL in a query value (starting_after)',
    method: 'GET',
    path: `${ledger}?starting_after=le_1%00`,
    ...invalid,
    param: 'starting_after',
  },
  {
    name: 'NUL in a query value (usage from)',
    method: 'GET',
    path: `/v1/customers/${CUSTOMER}/usage?from=2026-11-01T00:00:00Z%00`,
    ...invalid,
    param: 'from',
  },
  {
    name: 'usage to before from',
    method: 'GET',
    path: `/v1/customers/${CUSTOMER}/usage?from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z`,
    ...invalid,
    param: 'to',
  },
  {
    name: 'NUL in a quote model',
    method: 'POST',
    path: '/v1/quotes',
    body: { model: 'gpt-5.4\u0000', usage: { input_tokens: 1 } },
    ...invalid,
    param: 'model',
  },
  {
    name: 'NUL in a quote feature',
    method: 'POST',
    path: '/v1/quotes',
    body: { model: 'gpt-5.4', usage: { input_tokens: 1, feature: 'chat\u0000' } },
    ...invalid,
    param: 'usage.feature',
  },
  {
    name: 'NUL in an authorization feature',
    method: 'POST',
    path: '/v1/authorizations',
    body: {
      customer_id: CUSTOMER,
      model: 'gpt-5.4',
      estimated_usage: { input_tokens: 1, feature: '\u0000' },
    },
    ...invalid,
    param: 'estimated_usage.feature',
  },
  // Media types: a body must be JSON.
  {
    name: 'a body sent as text/plain',
    method: 'POST',
    path: topUps,
    body: '{"amount_usd": "20.00"}',
    headers: { 'content-type': 'text/plain' },
    status: 415,
    type: 'unsupported_media_type',
    param: 'Content-Type',
  },
  {
    name: 'a body sent as a form',
    method: 'POST',
    path: topUps,
    body: 'amount_usd=20.00',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    status: 415,
    type: 'unsupported_media_type',
    param: 'Content-Type',
  },
  {
    name: 'a JSON body in a charset JSON does not use (latin1)',
    method: 'POST',
    path: topUps,
    body: '{"amount_usd": "20.00"}',
    headers: { 'content-type': 'application/json; charset=latin1' },
    status: 415,
    type: 'unsupported_media_type',
    param: 'Content-Type',
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

test('a credit grant reason may span lines and hold tabs, and is stored as sent', async () => {
  const reason = 'goodwill\tticket 42\nsecond line';
  const granted = await h.call('POST', grants, { amount_usd: '1.00', reason });
  expect(granted.status).toBe(201);
  expect(granted.body.reason).toBe(reason);
  // Non-ASCII text that is not a control character is fine too.
  const unicode = await h.call('POST', grants, { amount_usd: '1.00', reason: 'Geste commercial — 🎁' });
  expect(unicode.status).toBe(201);
});

test('the Bearer scheme is case-insensitive and may be followed by several spaces', async () => {
  for (const auth of [`bearer ${ADMIN_KEY}`, `BEARER ${ADMIN_KEY}`, `bEaReR   ${ADMIN_KEY}`]) {
    const response = await send('GET', `/v1/customers/${CUSTOMER}/balance`, { auth });
    expect({ auth, status: response.status }).toEqual({ auth, status: 200 });
  }
  const wrongScheme = await send('GET', `/v1/customers/${CUSTOMER}/balance`, {
    auth: `Bearerx ${ADMIN_KEY}`,
  });
  expect(wrongScheme.status).toBe(401);
});

test('a wrong method on a known path is a 405 whose Allow lists the methods the path serves', async () => {
  const expectations: [string, string, string][] = [
    ['DELETE', `/v1/customers/${CUSTOMER}`, 'GET, HEAD'],
    ['POST', `/v1/customers/${CUSTOMER}/balance`, 'GET, HEAD'],
    ['GET', '/v1/usage-events', 'POST'],
    ['PUT', '/v1/customers', 'POST, GET, HEAD'],
    ['DELETE', '/openapi.json', 'GET, HEAD'],
    ['POST', '/metrics', 'GET, HEAD'],
  ];
  for (const [method, path, allow] of expectations) {
    const response = await fetch(`${h.baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
    });
    const body = (await response.json()) as { error: { type: string } };
    expect({ method, path, status: response.status, allow: response.headers.get('allow') }).toEqual({
      method,
      path,
      status: 405,
      allow,
    });
    expect(body.error.type).toBe('method_not_allowed');
  }
  // OPTIONS answers which methods a path serves.
  const options = await fetch(`${h.baseUrl}/v1/customers`, {
    method: 'OPTIONS',
    headers: { authorization: `Bearer ${ADMIN_KEY}` },
  });
  expect(options.status).toBe(204);
  expect(options.headers.get('allow')).toBe('POST, GET, HEAD');
});

test('one event with a NUL in its feature is rejected alone; the rest of its batch is recorded', async () => {
  const event = (event_id: string, feature: string) => ({
    event_id,
    customer_id: CUSTOMER,
    model: 'gpt-5.4',
    input_tokens: 1000,
    feature,
  });
  const response = await h.call('POST', '/v1/usage-events', {
    events: [event('nul-1', 'chat'), event('nul-2', 'ch\u0000at'), event('nul-3', 'search')],
  });
  expect(response.status).toBe(200);
  expect(response.body).toMatchObject({ accepted: 2, duplicate: 0, rejected: 1 });
  expect(response.body.data[1]).toEqual({
    event_id: 'nul-2',
    status: 'rejected',
    error: {
      code: 'invalid_event',
      message: expect.stringMatching(/control characters/),
      param: 'events[1].feature',
    },
  });
  const recorded = await h.db('usage_events').where({ customer_id: CUSTOMER }).pluck('event_id');
  expect(recorded.sort()).toEqual(['nul-1', 'nul-3']);
});

/**
 * Raw HTTP/1.1 over a socket, for requests no HTTP client would send: the whole answer until the server closes.
 * Resolves with the status and the parsed JSON body (undefined when the body is not JSON).
 */
function rawRequest(bytes: Buffer | string): Promise<{ status: number; body: unknown; head: string }> {
  const url = new URL(h.baseUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname);
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const [head = '', body = ''] = text.split('\r\n\r\n');
      let parsed: unknown;
      try {
        parsed = JSON.parse(body);
      } catch {
        parsed = undefined;
      }
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), body: parsed, head });
    });
    socket.write(bytes);
  });
}

test.each([
  ['a NUL byte in a header value', `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Note: a\u0000b\r\n\r\n`, 400],
  ['a header line without a colon', 'GET /healthz HTTP/1.1\r\nHost: x\r\nNot a header\r\n\r\n', 400],
  ['a malformed request line', 'GET\u0001 / HTTP/1.1\r\nHost: x\r\n\r\n', 400],
  ['a malformed Content-Length', 'POST /v1/customers HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n', 400],
  [
    'headers over the size limit',
    `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    431,
  ],
])(
  '%s, refused by Node before Express, still answers in the JSON error shape',
  async (_name, bytes, status) => {
    const response = await rawRequest(Buffer.from(bytes, 'latin1'));
    expect(response.status).toBe(status);
    expect(response.head).toMatch(/content-type: application\/json/i);
    expect(response.body).toEqual({
      error: { type: expect.any(String), code: expect.any(String), message: expect.any(String) },
    });
  },
);

test('a body without a Content-Type is a 415, and a request without a body needs none', async () => {
  const body = '{"amount_usd":"20.00"}';
  const noType = await rawRequest(
    `POST ${topUps} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_KEY}\r\n` +
      `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
  );
  expect(noType.status).toBe(415);
  expect(noType.body).toMatchObject({ error: { type: 'unsupported_media_type', param: 'Content-Type' } });
  const bare = await rawRequest(
    `GET /v1/customers/${CUSTOMER}/balance HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_KEY}\r\n` +
      'Connection: close\r\n\r\n',
  );
  expect(bare.status).toBe(200);
});
