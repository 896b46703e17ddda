import fc from 'fast-check';
import { STATUS_BY_TYPE } from '../api/errors';
import { ADMIN_KEY, useHarness } from './support/harness';

/**
 * Property-based fuzzing of every operation of the published OpenAPI document: requests generated from the
 * document's own schemas (so most are valid and reach the handlers, with known ids mixed in), then hostile
 * mutations (control characters in any string, path or query value; huge numbers; wrong types; missing and unknown
 * fields; bodies that are not JSON objects). Whatever is sent, the server never answers 5xx, and every error is in
 * the contract's shape with the status its `type` maps to.
 */
const h = useHarness();

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a JSON document walked by hand
type Json = any;

/**
 * Runs per operation: enough to hit every mutation on every operation, small enough for tens of seconds.
 * `FUZZ_RUNS_PER_OPERATION` raises it for a longer hunt (a failure prints fast-check's seed to replay it).
 */
const RUNS_PER_OPERATION = Number(process.env.FUZZ_RUNS_PER_OPERATION ?? 30);
const KNOWN_CUSTOMER = 'cus_fz_known';

let doc: Json;
const known: Record<string, string> = {};

beforeAll(async () => {
  doc = await (await fetch(`${h.baseUrl}/openapi.json`)).json();
  await h.customer(KNOWN_CUSTOMER, 'pm_card_visa');
  await h.fund(KNOWN_CUSTOMER, '100.00');
  const held = await h.call('POST', '/v1/authorizations', {
    customer_id: KNOWN_CUSTOMER,
    model: 'gpt-5.4',
    estimated_usage: { input_tokens: 1000 },
  });
  expect(held.status).toBe(201);
  known.authorization = held.body.id;
  const topUp = await h.call('POST', `/v1/customers/${KNOWN_CUSTOMER}/top-ups`, { amount_usd: '5.00' });
  expect(topUp.status).toBe(201);
  known.top_up = topUp.body.id;
});

const resolve = (schema: Json): Json =>
  schema?.$ref ? resolve(doc.components.schemas[(schema.$ref as string).split('/').pop()!]) : schema;

// ---- Values from JSON Schema ----

function stringFrom(schema: Json): fc.Arbitrary<string> {
  const min = schema.minLength ?? 0;
  const max = schema.maxLength ?? 200;
  let base: fc.Arbitrary<string>;
  if (schema.pattern) base = fc.stringMatching(new RegExp(schema.pattern as string, 'u'));
  else if (schema.format === 'date-time') {
    base = fc
      .date({
        min: new Date('2026-01-01T00:00:00Z'),
        max: new Date('2028-01-01T00:00:00Z'),
        noInvalidDate: true,
      })
      .map((d) => d.toISOString());
  } else if (schema.format === 'email') base = fc.emailAddress();
  else base = fc.string({ maxLength: max });
  return base.map((s) => s.slice(0, max)).filter((s) => s.length >= min);
}

function integerFrom(schema: Json): fc.Arbitrary<number> {
  const min = schema.minimum ?? -1_000_000;
  const max = schema.maximum ?? 1_000_000;
  return fc.oneof(
    fc.integer({ min: Math.max(min, -(2 ** 31)), max: Math.min(max, 2 ** 31 - 1) }),
    fc.constantFrom(min, max),
  );
}

/** Values that satisfy `raw`: enums, patterns, formats, bounds, required and optional properties, records. */
function valueFrom(raw: Json, depth = 0): fc.Arbitrary<unknown> {
  const schema = resolve(raw);
  if (!schema || depth > 6) return fc.constant(null);
  if (schema.enum) return fc.constantFrom(...(schema.enum as unknown[]));
  if (schema.anyOf) return fc.oneof(...(schema.anyOf as Json[]).map((s) => valueFrom(s, depth + 1)));
  const types: string[] = Array.isArray(schema.type) ? schema.type : [schema.type];
  if (types.length > 1 && types.includes('null')) {
    const type = types.find((t) => t !== 'null');
    return fc.oneof(fc.constant(null), valueFrom({ ...schema, type }, depth + 1));
  }
  switch (types[0]) {
    case 'string':
      return stringFrom(schema);
    case 'integer':
      return integerFrom(schema);
    case 'number':
      return fc.double({ min: schema.minimum ?? -1e6, max: schema.maximum ?? 1e6, noNaN: true });
    case 'boolean':
      return fc.boolean();
    case 'array':
      return fc.array(valueFrom(schema.items, depth + 1), {
        minLength: schema.minItems ?? 0,
        maxLength: Math.min(schema.maxItems ?? 3, 3),
      });
    case 'object': {
      if (schema.properties) {
        // Every required property and a few optional ones: a usage with every dimension at once would almost
        // always name one its model does not price, and never reach the success path.
        const required: string[] = schema.required ?? [];
        const optional = Object.keys(schema.properties).filter((name) => !required.includes(name));
        return fc
          .subarray(optional, { maxLength: Math.min(3, optional.length) })
          .chain((chosen) =>
            fc.record(
              Object.fromEntries(
                [...required, ...chosen].map((name) => [
                  name,
                  fieldValue(name, schema.properties[name], depth),
                ]),
              ),
            ),
          );
      }
      if (typeof schema.additionalProperties === 'object') {
        return fc.dictionary(
          stringFrom(schema.propertyNames ?? { minLength: 1, maxLength: 20 }),
          valueFrom(schema.additionalProperties, depth + 1),
          { maxKeys: 3 },
        );
      }
      return fc.constant({});
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** A property's value; ids that name a customer are mostly the known one, so requests reach past the 404. */
function fieldValue(name: string, schema: Json, depth: number): fc.Arbitrary<unknown> {
  const generated = valueFrom(schema, depth + 1);
  if (name === 'customer_id') return fc.oneof(fc.constant(KNOWN_CUSTOMER), generated);
  if (name === 'model') return fc.oneof(fc.constant('gpt-5.4'), generated);
  // Amounts and payment methods the configured limits and the simulated gateway accept, next to arbitrary ones.
  if (name === 'amount_usd') return fc.oneof(fc.constantFrom('5.00', '12.34'), generated);
  if (name === 'payment_method') {
    return fc.oneof(fc.constantFrom('pm_card_visa', 'pm_card_chargeDeclined'), generated);
  }
  return generated;
}

// ---- Requests and hostile mutations ----

interface Operation {
  method: string;
  path: string;
  pathParams: { name: string; schema: Json }[];
  query: { name: string; schema: Json }[];
  headers: { name: string; schema: Json }[];
  body?: Json;
}

interface Request {
  params: Record<string, string>;
  query: Record<string, string>;
  headers: Record<string, string>;
  body: unknown;
}

function operations(): Operation[] {
  const list: Operation[] = [];
  for (const [path, byMethod] of Object.entries<Json>(doc.paths)) {
    for (const [method, operation] of Object.entries<Json>(byMethod)) {
      const parameters: Json[] = operation.parameters ?? [];
      const of = (where: string) =>
        parameters.filter((p) => p.in === where).map((p) => ({ name: p.name as string, schema: p.schema }));
      list.push({
        method: method.toUpperCase(),
        path,
        pathParams: of('path'),
        query: of('query'),
        headers: of('header'),
        body: operation.requestBody?.content?.['application/json']?.schema,
      });
    }
  }
  return list;
}

/** A path id: mostly one that exists (so the handler runs), else whatever the schema allows. */
function pathParamValue(op: Operation, schema: Json): fc.Arbitrary<string> {
  const generated = stringFrom(resolve(schema));
  const existing = op.path.startsWith('/v1/customers/')
    ? KNOWN_CUSTOMER
    : op.path.startsWith('/v1/authorizations/')
      ? known.authorization
      : op.path.startsWith('/v1/top-ups/')
        ? known.top_up
        : undefined;
  return existing === undefined ? generated : fc.oneof(fc.constant(existing), generated);
}

function requestFor(op: Operation): fc.Arbitrary<Request> {
  const record = (parts: { name: string; schema: Json }[], value: (s: Json) => fc.Arbitrary<unknown>) =>
    fc.record(Object.fromEntries(parts.map((p) => [p.name, value(p.schema).map(String)])), {
      requiredKeys: [],
    }) as fc.Arbitrary<Record<string, string>>;
  return fc.record({
    params: fc.record(
      Object.fromEntries(op.pathParams.map((p) => [p.name, pathParamValue(op, p.schema)])),
    ) as fc.Arbitrary<Record<string, string>>,
    query: record(op.query, (s) => valueFrom(s)),
    headers: record(op.headers, (s) => valueFrom(s)),
    body: op.body ? valueFrom(op.body).map(suiteUniqueCustomerIds(op)) : fc.constant(undefined),
  });
}

/**
 * Customer ids are shared across the suite's files through Temporal (`account:<id>`), so a customer this test
 * creates gets an id with this file's prefix.
 */
function suiteUniqueCustomerIds(op: Operation) {
  return (body: unknown) => {
    if (op.method !== 'POST' || op.path !== '/v1/customers') return body;
    const b = body as { id?: unknown };
    if (typeof b?.id === 'string') b.id = `cus_fz_${b.id}`.slice(0, 64);
    return body;
  };
}

type Mutation =
  | { kind: 'none' }
  | { kind: 'control'; pick: number; char: number }
  | { kind: 'huge'; pick: number; value: unknown }
  | { kind: 'wrong-type'; pick: number; value: unknown }
  | { kind: 'drop-field'; pick: number }
  | { kind: 'extra-field'; pick: number }
  | { kind: 'raw-body'; text: string };

const controlChar = fc.oneof(fc.integer({ min: 0, max: 0x1f }), fc.integer({ min: 0x7f, max: 0x9f }));
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ kind: 'none' as const }) },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('control' as const), pick: fc.nat(), char: controlChar }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('huge' as const),
      pick: fc.nat(),
      value: fc.constantFrom(1e308, -1e308, 2 ** 64, 1e21, -1, 0.1, '1e400', '99999999999999999999.99'),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('wrong-type' as const),
      pick: fc.nat(),
      value: fc.constantFrom(true, null, [], {}, 1.5, 'x', '', [1, 2], { a: 1 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('drop-field' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('extra-field' as const), pick: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('raw-body' as const),
      text: fc.constantFrom('', '[]', 'null', '"x"', '{', '{"a":', '\u0000', '1e999', '{"events": "x"}'),
    }),
  },
);

/** A place in the request: read the value there, or replace it. */
interface Slot {
  get(): unknown;
  set(value: unknown): void;
}

/** Every value in the request a mutation can reach: path and query values, headers, and each node of the body. */
function slots(request: Request): Slot[] {
  const found: Slot[] = [];
  const walk = (holder: Record<string | number, unknown>, key: string | number) => {
    found.push({ get: () => holder[key], set: (v) => (holder[key] = v) });
    const value = holder[key];
    if (value !== null && typeof value === 'object') {
      for (const child of Object.keys(value)) walk(value as Record<string, unknown>, child);
    }
  };
  for (const part of [request.params, request.query, request.headers]) {
    for (const key of Object.keys(part)) walk(part, key);
  }
  if (request.body !== undefined) walk(request as unknown as Record<string, unknown>, 'body');
  return found;
}

function applyMutation(request: Request, m: Mutation): { request: Request; rawBody?: string } {
  if (m.kind === 'none') return { request };
  if (m.kind === 'raw-body') return { request, rawBody: m.text };
  const all = slots(request);
  if (m.kind === 'control') {
    const strings = all.filter((s) => typeof s.get() === 'string');
    const slot = strings[m.pick % Math.max(strings.length, 1)];
    if (slot) {
      const text = slot.get() as string;
      const at = m.pick % (text.length + 1);
      slot.set(text.slice(0, at) + String.fromCharCode(m.char) + text.slice(at));
    }
  } else if (m.kind === 'huge' || m.kind === 'wrong-type') {
    // Path, query and header values are strings on the wire: send() spells a non-string as JSON there.
    all[m.pick % Math.max(all.length, 1)]?.set(m.value);
  } else {
    const objects = all
      .map((s) => s.get())
      .filter((v): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v));
    const target = objects[m.pick % Math.max(objects.length, 1)];
    if (target && m.kind === 'drop-field') {
      const keys = Object.keys(target);
      if (keys.length > 0) delete target[keys[m.pick % keys.length]!];
    } else if (target) target.unexpected_field = 1;
  }
  return { request };
}

interface Outcome {
  status: number;
  text: string;
}

async function send(op: Operation, request: Request, rawBody: string | undefined): Promise<Outcome> {
  const path = op.path.replace(/\{([a-z_]+)\}/g, (_m, name: string) =>
    encodeURIComponent(String(request.params[name] ?? '')),
  );
  const query = new URLSearchParams(
    Object.entries(request.query).map(([k, v]): [string, string] => [
      k,
      typeof v === 'string' ? v : JSON.stringify(v),
    ]),
  ).toString();
  const headers: Record<string, string> = { authorization: `Bearer ${ADMIN_KEY}` };
  for (const [name, value] of Object.entries(request.headers)) {
    // fetch itself refuses control characters in header values; those are sent raw in api-input.test.ts.
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    if (!/[\u0000-\u001f\u007f-\uffff]/.test(text)) headers[name] = text;
  }
  const canHaveBody = op.method !== 'GET' && op.method !== 'HEAD';
  const body = !canHaveBody
    ? undefined
    : rawBody !== undefined
      ? rawBody
      : request.body === undefined
        ? undefined
        : JSON.stringify(request.body);
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${h.baseUrl}${path}${query ? `?${query}` : ''}`, {
    method: op.method,
    headers,
    body,
  });
  return { status: response.status, text: await response.text() };
}

/** The contract: never a 5xx; an error is `{error: {type, code, message, param?, ...}}` with the type's status. */
function expectContract(where: string, outcome: Outcome): void {
  const context = `${where} -> ${outcome.status} ${outcome.text.slice(0, 300)}`;
  if (outcome.status >= 500) throw new Error(`5xx: ${context}`);
  let body: Json;
  try {
    body = JSON.parse(outcome.text);
  } catch {
    throw new Error(`not JSON: ${context}`);
  }
  if (outcome.status < 400) return;
  const error = body?.error;
  const shaped =
    Object.keys(body).length === 1 &&
    typeof error?.type === 'string' &&
    typeof error.code === 'string' &&
    typeof error.message === 'string' &&
    error.message.length > 0 &&
    (error.param === undefined || typeof error.param === 'string') &&
    STATUS_BY_TYPE[error.type as keyof typeof STATUS_BY_TYPE] === outcome.status;
  if (!shaped) throw new Error(`not the contract's error shape: ${context}`);
}

test('every operation, fed schema-generated and hostile requests, answers without a 5xx and in the error shape', async () => {
  const ops = operations();
  expect(ops.length).toBeGreaterThanOrEqual(21);
  const statuses = new Map<string, Map<number, number>>();
  for (const op of ops) {
    const where = `${op.method} ${op.path}`;
    const counts = new Map<number, number>();
    statuses.set(where, counts);
    await fc.assert(
      fc.asyncProperty(requestFor(op), mutation, async (generated, m) => {
        const { request, rawBody } = applyMutation(structuredClone(generated), m);
        const outcome = await send(op, request, rawBody);
        counts.set(outcome.status, (counts.get(outcome.status) ?? 0) + 1);
        expectContract(`${where} ${m.kind} ${JSON.stringify(request).slice(0, 400)}`, outcome);
      }),
      { numRuns: RUNS_PER_OPERATION, endOnFailure: true },
    );
  }
  // The generator reaches the handlers, not only the validators: most operations answered a 2xx at least once.
  const reached = [...statuses.values()].filter((c) => [...c.keys()].some((s) => s < 300)).length;
  const table = [...statuses].map(([where, c]) => `${where}: ${JSON.stringify(Object.fromEntries(c))}`);
  if (reached / ops.length < 0.6) throw new Error(`few operations reached a 2xx:\n${table.join('\n')}`);
}, 240_000);
