/**
 * Unit tests for the price book: the bundled file, the strict file schema, version selection by
 * timestamp and the `GET /v1/prices` serialiser. Pure; no server needed.
 */
import {
  PriceBookError,
  TOKEN_DIMENSIONS,
  createPriceBook,
  formatMultiplier,
  loadDefaultPriceBook,
  parseMultiplier,
  parsePriceBook,
  parsePriceVersion,
  priceAt,
  priceBookToJson,
  versionAt,
  type PriceBook,
} from '../../billing/price-book';
import { usd } from '../../billing/money';
import { at, bundledDocument } from '../support/price-documents';

/** Returns the PriceBookError thrown by `run`, failing the test if it does not throw one. */
function priceBookError(run: () => unknown): PriceBookError {
  try {
    run();
  } catch (error) {
    if (error instanceof PriceBookError) return error;
    throw error;
  }
  throw new Error('expected a PriceBookError, but nothing was thrown');
}

function expectIssue(document: unknown, path: string, messagePart: string): void {
  const error = priceBookError(() => parsePriceBook(document));
  expect(error.issues).toContainEqual({ path, message: expect.stringContaining(messagePart) as string });
  expect(error.message).toContain(path);
}

describe('the bundled default price book', () => {
  const book = loadDefaultPriceBook();
  const version = book.versions[0];

  test('has exactly one version, 2026-11-01, in force from 2026-11-01T00:00:00Z', () => {
    expect(book.versions).toHaveLength(1);
    expect(version?.version).toBe('2026-11-01');
    expect(version?.effective_from).toBe('2026-11-01T00:00:00Z');
    expect(version?.effective_from_ms).toBe(Date.UTC(2026, 10, 1));
  });

  test('lists exactly the six seed models with their classes', () => {
    const classes = Object.fromEntries([...(version?.models.values() ?? [])].map((m) => [m.model, m.class]));
    expect(classes).toEqual({
      'gpt-5.4': 'flagship',
      'gpt-5.4-mini': 'mini',
      'gpt-5.4-nano': 'nano',
      'gpt-4o': 'flagship',
      'gpt-4o-mini': 'mini',
      o1: 'reasoning',
    });
  });

  test('stores $2.50 per 1M gpt-5.4 input tokens as exactly 2,500,000,000 nanos per million', () => {
    expect(version?.models.get('gpt-5.4')?.price_nanos_per_million.input_tokens).toBe(2_500_000_000n);
  });

  test('stores the cheapest seed price ($0.02 per 1M gpt-5.4-nano cached tokens) as 20,000,000 nanos per million', () => {
    expect(version?.models.get('gpt-5.4-nano')?.price_nanos_per_million.cached_input_tokens).toBe(
      20_000_000n,
    );
  });

  test('prices web_search at $10.00 per 1,000 calls with a provider cost of $6.50', () => {
    expect(version?.tools.get('web_search')).toEqual({
      tool: 'web_search',
      price_nanos_per_thousand_calls: usd('10.00'),
      provider_cost_nanos_per_thousand_calls: usd('6.50'),
    });
  });

  test('discounts batch and flex processing by exactly one half, and standard by nothing', () => {
    const multipliers = version?.processing_multipliers;
    expect(multipliers?.standard).toEqual({ numerator: 1n, denominator: 1n });
    for (const ratio of [multipliers?.batch, multipliers?.flex]) {
      expect((ratio?.numerator ?? 0n) * 2n).toBe(ratio?.denominator);
    }
  });

  test('gives every model a provider cost for exactly its priced dimensions, at 65% of the price', () => {
    for (const model of version?.models.values() ?? []) {
      const priced = TOKEN_DIMENSIONS.filter((d) => model.price_nanos_per_million[d] !== undefined);
      const costed = TOKEN_DIMENSIONS.filter((d) => model.provider_cost_nanos_per_million[d] !== undefined);
      expect(costed).toEqual(priced);
      for (const dimension of priced) {
        const price = model.price_nanos_per_million[dimension] ?? -1n;
        const cost = model.provider_cost_nanos_per_million[dimension] ?? -1n;
        // Exact integer check of cost = 0.65 x price, so no illustrative cost drifts from the rule.
        expect({ model: model.model, dimension, scaled_cost: cost * 100n }).toEqual({
          model: model.model,
          dimension,
          scaled_cost: price * 65n,
        });
      }
    }
  });

  test('marks the non-seed values as illustrative in its notes', () => {
    expect(version?.notes).toMatch(/illustrative/i);
  });

  test('is parsed once and shared, and is frozen against accidental edits', () => {
    expect(loadDefaultPriceBook()).toBe(book);
    expect(Object.isFrozen(book.versions)).toBe(true);
    expect(Object.isFrozen(version?.models.get('gpt-5.4')?.price_nanos_per_million)).toBe(true);
  });
});

describe('parsePriceBook accepts', () => {
  test('a single version document and an array of version documents alike', () => {
    expect(parsePriceBook(bundledDocument())).toEqual(parsePriceBook([bundledDocument()]));
  });

  test('a price with exactly 9 decimals ($0.000000001 per 1M tokens = 1 nano per million)', () => {
    const document = bundledDocument();
    at(document, 'models', 'o1', 'prices').input_tokens = '0.000000001';
    const book = parsePriceBook(document);
    expect(book.versions[0]?.models.get('o1')?.price_nanos_per_million.input_tokens).toBe(1n);
  });

  test('a zero price, for a dimension that is deliberately free', () => {
    const document = bundledDocument();
    at(document, 'models', 'o1', 'prices').cached_input_tokens = '0';
    const book = parsePriceBook(document);
    expect(book.versions[0]?.models.get('o1')?.price_nanos_per_million.cached_input_tokens).toBe(0n);
  });

  test('a multiplier of exactly 1 and one with 9 decimals, kept as exact ratios', () => {
    const document = bundledDocument();
    at(document, 'processing', 'batch').multiplier = '1';
    at(document, 'processing', 'flex').multiplier = '0.333333333';
    const multipliers = parsePriceBook(document).versions[0]?.processing_multipliers;
    expect(multipliers?.batch).toEqual({ numerator: 1n, denominator: 1n });
    expect(multipliers?.flex).toEqual({ numerator: 333_333_333n, denominator: 1_000_000_000n });
  });

  test('a version without tools and without notes', () => {
    const document = bundledDocument();
    document.tools = {};
    delete document.notes;
    const version = parsePriceBook(document).versions[0];
    expect(version?.tools.size).toBe(0);
    expect(version?.notes).toBeNull();
  });

  test('an effective_from with milliseconds', () => {
    const document = bundledDocument();
    document.effective_from = '2026-11-01T00:00:00.250Z';
    expect(parsePriceBook(document).versions[0]?.effective_from_ms).toBe(Date.UTC(2026, 10, 1) + 250);
  });
});

describe('parsePriceBook rejects, naming the path of the bad field', () => {
  test('an unknown key at the top level', () => {
    const document = bundledDocument();
    document.currency = 'usd';
    expectIssue(document, 'currency', 'unknown key');
  });

  test('an unknown key inside a model (a misspelt "prices")', () => {
    const document = bundledDocument();
    at(document, 'models', 'o1').pricez = {};
    expectIssue(document, 'models.o1.pricez', 'unknown key');
  });

  test('an unknown dimension inside prices', () => {
    const document = bundledDocument();
    at(document, 'models', 'gpt-5.4', 'prices').video_tokens = '1.00';
    expectIssue(document, 'models["gpt-5.4"].prices.video_tokens', 'unknown key');
  });

  test('an unknown key inside a tool and inside a processing mode', () => {
    const document = bundledDocument();
    at(document, 'tools', 'web_search').price_per_call = '0.01';
    at(document, 'processing', 'batch').discount = '0.5';
    const error = priceBookError(() => parsePriceBook(document));
    expect(error.issues.map((issue) => issue.path)).toEqual(
      expect.arrayContaining(['tools.web_search.price_per_call', 'processing.batch.discount']),
    );
  });

  test('an unknown processing mode', () => {
    const document = bundledDocument();
    at(document, 'processing').priority = { multiplier: '1' };
    expectIssue(document, 'processing.priority', 'unknown key');
  });

  test('a price given as a JSON number instead of a decimal string', () => {
    const document = bundledDocument();
    at(document, 'models', 'gpt-5.4', 'prices').input_tokens = 2.5;
    expectIssue(document, 'models["gpt-5.4"].prices.input_tokens', 'string');
  });

  test('a tool price given as a JSON number', () => {
    const document = bundledDocument();
    at(document, 'tools', 'web_search').price_per_1k_calls = 10;
    expectIssue(document, 'tools.web_search.price_per_1k_calls', 'string');
  });

  test('a price with more than 9 decimals', () => {
    const document = bundledDocument();
    at(document, 'models', 'gpt-4o-mini', 'provider_cost').input_tokens = '0.0000000001';
    expectIssue(document, 'models["gpt-4o-mini"].provider_cost.input_tokens', 'more than 9 decimal places');
  });

  test('a negative price, an exponent and a leading zero', () => {
    for (const bad of ['-1.00', '1e3', '01.00', '', ' 1.00']) {
      const document = bundledDocument();
      at(document, 'models', 'o1', 'prices').output_tokens = bad;
      expectIssue(document, 'models.o1.prices.output_tokens', '');
    }
  });

  test('a multiplier above 1', () => {
    const document = bundledDocument();
    at(document, 'processing', 'batch').multiplier = '1.5';
    expectIssue(document, 'processing.batch.multiplier', 'at most 1');
  });

  test('a multiplier just above 1 (1.000000001)', () => {
    const document = bundledDocument();
    at(document, 'processing', 'flex').multiplier = '1.000000001';
    expectIssue(document, 'processing.flex.multiplier', 'at most 1');
  });

  test('a multiplier of 0, which would give usage away', () => {
    const document = bundledDocument();
    at(document, 'processing', 'flex').multiplier = '0.0';
    expectIssue(document, 'processing.flex.multiplier', 'greater than 0');
  });

  test('a multiplier given as a number, a negative multiplier and one with 10 decimals', () => {
    for (const [bad, message] of [
      [0.5, 'string'],
      ['-0.5', 'decimal string'],
      ['0.5000000001', 'more than 9 decimal places'],
    ] as const) {
      const document = bundledDocument();
      at(document, 'processing', 'batch').multiplier = bad;
      expectIssue(document, 'processing.batch.multiplier', message);
    }
  });

  test('a provider cost missing for a priced dimension', () => {
    const document = bundledDocument();
    delete at(document, 'models', 'o1', 'provider_cost').output_tokens;
    expectIssue(document, 'models.o1.provider_cost.output_tokens', 'missing for a priced dimension');
  });

  test('a provider cost for a dimension the model does not price', () => {
    const document = bundledDocument();
    at(document, 'models', 'o1', 'provider_cost').audio_input_tokens = '1.00';
    expectIssue(document, 'models.o1.provider_cost.audio_input_tokens', 'unpriced dimension');
  });

  test('a model that prices no dimension at all', () => {
    const document = bundledDocument();
    at(document, 'models').empty = { class: 'mini', prices: {}, provider_cost: {} };
    expectIssue(document, 'models.empty.prices', 'at least one dimension');
  });

  test('a version without models', () => {
    const document = bundledDocument();
    document.models = {};
    expectIssue(document, 'models', 'at least one model');
  });

  test('a missing effective_from', () => {
    const document = bundledDocument();
    delete document.effective_from;
    expectIssue(document, 'effective_from', '');
  });

  test('an effective_from that is not a UTC instant, or is an impossible date', () => {
    for (const bad of [
      '2026-11-01',
      '2026-11-01T00:00:00+01:00',
      '2026-02-30T00:00:00Z',
      '2026-11-01T24:00:00Z',
    ]) {
      const document = bundledDocument();
      document.effective_from = bad;
      expectIssue(document, 'effective_from', 'ISO-8601 UTC instant');
    }
  });

  test('an invalid model name and an invalid tool name', () => {
    const document = bundledDocument();
    at(document, 'models')['bad model'] = at(document, 'models', 'o1');
    at(document, 'tools')['Web Search'] = at(document, 'tools', 'web_search');
    const error = priceBookError(() => parsePriceBook(document));
    expect(error.issues).toEqual(
      expect.arrayContaining([
        { path: 'models["bad model"]', message: 'is not a valid model name' },
        { path: 'tools["Web Search"]', message: 'is not a valid tool name' },
      ]),
    );
  });

  test('a document that is not an object', () => {
    expectIssue('prices', '(root)', '');
    expectIssue(null, '(root)', '');
  });

  test('the index of the bad file when given an array', () => {
    const later = bundledDocument();
    later.version = '2027-01-01';
    later.effective_from = '2027-01-01T00:00:00Z';
    at(later, 'models', 'o1', 'prices').input_tokens = 15;
    expectIssue([bundledDocument(), later], '[1].models.o1.prices.input_tokens', 'string');
  });

  test('an empty array of versions', () => {
    expectIssue([], '(root)', 'at least one version');
  });

  test('two versions in force from the same instant', () => {
    const other = bundledDocument();
    other.version = '2026-11-01-b';
    expectIssue([bundledDocument(), other], 'versions["2026-11-01-b"].effective_from', 'same instant');
  });

  test('two versions with the same name', () => {
    const other = bundledDocument();
    other.effective_from = '2027-01-01T00:00:00Z';
    expectIssue([bundledDocument(), other], 'versions["2026-11-01"].version', 'more than one version');
  });
});

describe('multiplier codec', () => {
  test('parses "0.5" into 5/10 and formats it back as "0.5"', () => {
    const parsed = parseMultiplier('0.5');
    expect(parsed).toEqual({ ok: true, ratio: { numerator: 5n, denominator: 10n } });
    if (parsed.ok) expect(formatMultiplier(parsed.ratio)).toBe('0.5');
  });

  test('round-trips every representable shape exactly', () => {
    for (const text of ['1', '1.0', '0.25', '0.05', '0.000000001', '0.999999999']) {
      const parsed = parseMultiplier(text);
      expect(parsed.ok && formatMultiplier(parsed.ratio)).toBe(text);
    }
  });

  test('refuses to format a ratio whose denominator is not a power of ten', () => {
    expect(() => formatMultiplier({ numerator: 1n, denominator: 3n })).toThrow('not a power of ten');
  });
});

describe('price version selection by usage timestamp', () => {
  // Version A: the bundled book from 2026-11-01. Version B from 2027-01-01 raises gpt-5.4 input to
  // $3.00 and drops o1.
  function twoVersionBook(): PriceBook {
    const later = bundledDocument();
    later.version = '2027-01-01';
    later.effective_from = '2027-01-01T00:00:00Z';
    at(later, 'models', 'gpt-5.4', 'prices').input_tokens = '3.00';
    at(later, 'models', 'gpt-5.4', 'provider_cost').input_tokens = '1.95';
    delete at(later, 'models').o1;
    // Given newest first, to prove the book sorts its versions.
    return parsePriceBook([later, bundledDocument()]);
  }

  test('sorts versions by effective_from whatever order the files come in', () => {
    expect(twoVersionBook().versions.map((v) => v.version)).toEqual(['2026-11-01', '2027-01-01']);
  });

  test('prices usage one millisecond before a new version with the old version', () => {
    const lookup = priceAt(twoVersionBook(), 'gpt-5.4', new Date('2026-12-31T23:59:59.999Z'));
    expect(lookup.ok && lookup.version.version).toBe('2026-11-01');
    expect(lookup.ok && lookup.price.price_nanos_per_million.input_tokens).toBe(usd('2.50'));
  });

  test('prices usage at exactly the effective instant with the new version', () => {
    const lookup = priceAt(twoVersionBook(), 'gpt-5.4', new Date('2027-01-01T00:00:00.000Z'));
    expect(lookup.ok && lookup.version.version).toBe('2027-01-01');
    expect(lookup.ok && lookup.price.price_nanos_per_million.input_tokens).toBe(usd('3.00'));
  });

  test('returns no_price_in_force for usage before the first version', () => {
    const lookup = priceAt(twoVersionBook(), 'gpt-5.4', new Date('2026-10-31T23:59:59.999Z'));
    expect(lookup).toMatchObject({ ok: false, code: 'no_price_in_force' });
    expect(versionAt(twoVersionBook(), new Date('2026-10-31T23:59:59.999Z'))).toBeNull();
  });

  test('keeps a model removed by a later version priced for usage before that version', () => {
    const book = twoVersionBook();
    expect(priceAt(book, 'o1', new Date('2026-12-15T00:00:00Z')).ok).toBe(true);
    expect(priceAt(book, 'o1', new Date('2027-01-15T00:00:00Z'))).toMatchObject({
      ok: false,
      code: 'unknown_model',
    });
  });

  test('returns unknown_model for a model no version lists, including prototype names', () => {
    for (const model of ['gpt-9', 'constructor', '__proto__', '']) {
      expect(priceAt(loadDefaultPriceBook(), model, new Date('2026-12-01T00:00:00Z'))).toMatchObject({
        ok: false,
        code: 'unknown_model',
      });
    }
  });

  test('throws on an invalid Date, which is a programmer error', () => {
    expect(() => versionAt(loadDefaultPriceBook(), new Date('not a date'))).toThrow(RangeError);
  });

  test('createPriceBook refuses an empty list of versions', () => {
    expect(() => createPriceBook([])).toThrow(PriceBookError);
  });
});

describe('priceBookToJson (GET /v1/prices)', () => {
  const json = priceBookToJson(loadDefaultPriceBook());

  test('states the currency and the units of its prices', () => {
    expect(json).toMatchObject({
      object: 'price_book',
      currency: 'usd',
      token_price_unit: 'usd_per_1m_tokens',
      tool_price_unit: 'usd_per_1k_calls',
    });
  });

  test('writes prices and provider costs as exact 9-decimal USD strings', () => {
    const model = json.versions[0]?.models['gpt-5.4'];
    expect(model?.prices.input_tokens).toBe('2.500000000');
    expect(model?.provider_cost.input_tokens).toBe('1.625000000');
    expect(json.versions[0]?.models['gpt-5.4-mini']?.provider_cost.cached_input_tokens).toBe('0.048750000');
  });

  test('includes effective dates, processing multipliers and tools', () => {
    expect(json.versions[0]).toMatchObject({
      version: '2026-11-01',
      effective_from: '2026-11-01T00:00:00Z',
      processing: { batch: { multiplier: '0.5' }, flex: { multiplier: '0.5' } },
      tools: {
        web_search: { price_per_1k_calls: '10.000000000', provider_cost_per_1k_calls: '6.500000000' },
      },
    });
  });

  test('omits dimensions a model does not price rather than writing zero', () => {
    expect(Object.keys(json.versions[0]?.models['gpt-4o-mini']?.prices ?? {})).toEqual([
      'input_tokens',
      'cached_input_tokens',
      'output_tokens',
    ]);
  });

  test('contains only strings as leaves, so no price can become a float in JSON', () => {
    const leaves: unknown[] = [];
    const walk = (node: unknown): void => {
      if (node !== null && typeof node === 'object') Object.values(node).forEach(walk);
      else leaves.push(node);
    };
    walk(json);
    expect(leaves.length).toBeGreaterThan(50);
    expect(leaves.filter((leaf) => typeof leaf !== 'string')).toEqual([]);
    expect(() => JSON.stringify(json)).not.toThrow();
  });

  test('round-trips: parsing the serialised versions gives back the same book', () => {
    const reparsed = parsePriceBook(JSON.parse(JSON.stringify(json.versions)));
    expect(reparsed).toEqual(loadDefaultPriceBook());
    expect(parsePriceVersion(json.versions[0])).toEqual(loadDefaultPriceBook().versions[0]);
  });
});
