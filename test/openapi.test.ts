import { validate } from '@readme/openapi-parser';
import fc from 'fast-check';
import { loadDefaultPriceBook } from '../billing/price-book';
import { boundedMoneyInput, MoneyInput } from '../api/schemas';
import { useHarness } from './support/harness';

/**
 * The published OpenAPI document is valid OpenAPI 3.1 by a maintained parser (so a dangling `$ref` fails the
 * build), and it declares the rules the server enforces: every input string refuses control characters, money
 * patterns agree with the validators, and limits, ranges and known models are stated with this server's values.
 */
const h = useHarness();

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a JSON document walked by hand
type Json = any;

let doc: Json;
beforeAll(async () => {
  const response = await fetch(`${h.baseUrl}/openapi.json`);
  expect(response.status).toBe(200);
  doc = await response.json();
});

const resolve = (schema: Json): Json =>
  schema?.$ref ? resolve(doc.components.schemas[(schema.$ref as string).split('/').pop()!]) : schema;

test('the document is valid OpenAPI 3.1 and every $ref resolves', async () => {
  const result = await validate(structuredClone(doc));
  expect(result).toMatchObject({ valid: true });
  expect(doc.components.schemas.UsageEvent).toBeDefined();
});

test('the parser refuses a document with a dangling $ref (so the check above can fail)', async () => {
  const broken = structuredClone(doc);
  delete broken.components.schemas.UsageEvent;
  const result = await validate(broken);
  expect(result.valid).toBe(false);
  expect(JSON.stringify(result)).toMatch(/UsageEvent/);
});

/** Every schema a request may carry (path, query and header parameters, bodies), with where it is. */
function inputSchemas(): { where: string; schema: Json }[] {
  const found: { where: string; schema: Json }[] = [];
  const seen = new Set<Json>();
  const walk = (where: string, raw: Json) => {
    const schema = resolve(raw);
    if (!schema || typeof schema !== 'object' || seen.has(schema)) return;
    seen.add(schema);
    found.push({ where, schema });
    for (const [name, property] of Object.entries(schema.properties ?? {}))
      walk(`${where}.${name}`, property);
    if (typeof schema.additionalProperties === 'object') walk(`${where}.*`, schema.additionalProperties);
    if (schema.propertyNames) walk(`${where}.<key>`, schema.propertyNames);
    if (schema.items) walk(`${where}[]`, schema.items);
    for (const option of schema.anyOf ?? []) walk(where, option);
  };
  for (const [path, operations] of Object.entries<Json>(doc.paths)) {
    for (const [method, operation] of Object.entries<Json>(operations)) {
      const at = `${method.toUpperCase()} ${path}`;
      for (const parameter of operation.parameters ?? [])
        walk(`${at} ${parameter.in}:${parameter.name}`, parameter.schema);
      const body = operation.requestBody?.content?.['application/json']?.schema;
      if (body) walk(`${at} body`, body);
    }
  }
  return found;
}

const isString = (schema: Json) =>
  schema.type === 'string' || (Array.isArray(schema.type) && schema.type.includes('string'));

test('every input string declares what it may hold: an enum, a format, or a pattern refusing control characters', () => {
  const strings = inputSchemas().filter(({ schema }) => isString(schema));
  expect(strings.length).toBeGreaterThan(20);
  for (const { where, schema } of strings) {
    const declared = schema.enum !== undefined || schema.pattern !== undefined || schema.format !== undefined;
    expect({ where, declared }).toEqual({ where, declared: true });
    if (schema.format !== undefined && schema.pattern === undefined) {
      expect({ where, format: schema.format }).toEqual({
        where,
        format: expect.stringMatching(/^(date-time|email)$/),
      });
    }
  }
  // Property: a value the pattern accepts is refused by it once a control character (other than the tab and line
  // feed that multi-line text allows) is slipped in anywhere.
  const withPattern = strings.filter(({ schema }) => schema.pattern !== undefined);
  const control = fc.oneof(
    fc.integer({ min: 0x00, max: 0x1f }).filter((c) => c !== 0x09 && c !== 0x0a),
    fc.integer({ min: 0x7f, max: 0x9f }),
  );
  for (const { where, schema } of withPattern) {
    const pattern = new RegExp(schema.pattern as string, 'u');
    fc.assert(
      fc.property(fc.stringMatching(pattern), control, fc.nat(), (value, code, at) => {
        const position = at % (value.length + 1);
        const hostile = value.slice(0, position) + String.fromCharCode(code) + value.slice(position);
        if (pattern.test(hostile))
          throw new Error(`${where}: ${JSON.stringify(hostile)} passes ${schema.pattern}`);
      }),
      { numRuns: 30 },
    );
  }
});

test('the rules the server enforces are stated: ranges, whole cents, grant maximum, limit, known models, to after from', () => {
  const body = (path: string, method: string) =>
    resolve(doc.paths[path][method].requestBody.content['application/json'].schema);
  const topUp = body('/v1/customers/{id}/top-ups', 'post').properties.amount_usd;
  expect(topUp).toMatchObject({ 'x-minimum-usd': '1.00', 'x-maximum-usd': '10000.00' });
  expect(topUp.description).toMatch(/whole cents, between 1\.00 and 10000\.00 USD/);
  const grant = body('/v1/customers/{id}/credit-grants', 'post');
  expect(grant.properties.amount_usd).toMatchObject({ 'x-maximum-usd': '100000.000000000' });
  expect(grant.properties.reason.description).toMatch(/tab and line feed/);
  expect(grant.properties.expires_at.description).toMatch(/future/);

  const ledgerLimit = doc.paths['/v1/customers/{id}/ledger'].get.parameters.find(
    (p: Json) => p.name === 'limit',
  );
  expect(ledgerLimit.schema).toMatchObject({ type: 'integer', minimum: 1, maximum: 100 });

  const models = [...new Set(loadDefaultPriceBook().versions.flatMap((v) => [...v.models.keys()]))].sort();
  expect(doc.components.schemas.ModelName.enum).toEqual(models);
  expect(resolve(body('/v1/quotes', 'post').properties.model).enum).toEqual(models);
  expect(resolve(doc.components.schemas.UsageEvent.properties.model).enum).toEqual(models);

  const to = doc.paths['/v1/customers/{id}/usage'].get.parameters.find((p: Json) => p.name === 'to');
  expect(to.schema.description).toMatch(/after `from`/);
  for (const [path, method] of [
    ['/v1/customers/{id}', 'get'],
    ['/v1/top-ups/{id}', 'get'],
  ]) {
    const id = doc.paths[path!][method!].parameters.find((p: Json) => p.in === 'path');
    expect(id.schema.pattern).toEqual(expect.any(String));
  }
});

/** The documented pattern of a money schema and the schema's own verdict, compared on arbitrary strings. */
function expectPatternAgrees(pattern: string, accepts: (text: string) => boolean) {
  const regex = new RegExp(pattern, 'u');
  // Near misses: decimal-looking strings (signs, exponents, too many decimals, leading zeros, spaces).
  const decimalish = fc.stringMatching(/^[-+ ]?[0-9]{1,11}(\.[0-9]{0,11})?(e[0-9])?$/);
  const fromPattern = fc.stringMatching(regex);
  fc.assert(
    fc.property(fc.oneof(decimalish, fromPattern), (text) => {
      // The ledger's ceiling (about 9.2 billion) is a range check beyond what a pattern can say.
      const whole = /^[0-9]+/.exec(text)?.[0] ?? '';
      fc.pre(whole.length < 10);
      expect({ text, documented: regex.test(text) }).toEqual({ text, documented: accepts(text) });
    }),
    { numRuns: 500 },
  );
}

test('the money patterns in the document accept exactly what the validators accept', () => {
  const verdict = (zod: { safeParse: (v: unknown) => { success: boolean } }) => (text: string) =>
    zod.safeParse(text).success;
  const bodyOf = (path: string, method: string) =>
    resolve(doc.paths[path][method].requestBody.content['application/json'].schema);
  // Far above any configured limit, so that only the grammar and the rules a pattern can state are compared.
  const unbounded = 10n ** 19n;

  const threshold = bodyOf('/v1/customers/{id}/balance-threshold', 'put').properties.threshold_usd;
  const money = (threshold.anyOf ?? [threshold]).find((s: Json) => s.pattern).pattern as string;
  expectPatternAgrees(money, verdict(MoneyInput));

  const grant = bodyOf('/v1/customers/{id}/credit-grants', 'post').properties.amount_usd.pattern as string;
  expectPatternAgrees(grant, verdict(boundedMoneyInput({ max_nanos: unbounded })));

  const topUp = bodyOf('/v1/customers/{id}/top-ups', 'post').properties.amount_usd.pattern as string;
  expectPatternAgrees(
    topUp,
    verdict(boundedMoneyInput({ min_nanos: 10_000_000n, max_nanos: unbounded, cents: true })),
  );
});
