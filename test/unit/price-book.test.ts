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

  test('lists exactly the seed models, the legacy models and one model per other modality, with their classes', () => {
    const classes = Object.fromEntries([...(version?.models.values() ?? [])].map((m) => [m.model, m.class]));
    expect(classes).toEqual({
      'gpt-5.4': 'flagship',
      'gpt-5.4-mini': 'mini',
      'gpt-5.4-nano': 'nano',
      'gpt-4o': 'flagship',
      'gpt-4o-mini': 'mini',
      o1: 'reasoning',
      'gpt-3.5-turbo-4k': 'legacy',
      'gpt-3.5-turbo-16k': 'legacy',
      'gpt-4-8k': 'legacy',
      'gpt-4-32k': 'legacy',
      'text-embedding-3-small': 'embedding',
      'text-embedding-3-large': 'embedding',
      'gpt-image-1': 'image',
      'dall-e-3': 'image',
      'whisper-1': 'transcription',
      'gpt-4o-transcribe': 'transcription',
      'gpt-4o-mini-transcribe': 'transcription',
      'vector-storage': 'storage',
    });
  });

  test('gives o1 no cached-input price, because the seed gives none', () => {
    const o1 = version?.models.get('o1');
    expect(o1?.price_nanos_per_million.cached_input_tokens).toBeUndefined();
    expect(o1?.provider_cost_nanos_per_million.cached_input_tokens).toBeUndefined();
    expect(o1?.note).toMatch(/no cached-input price/);
  });

  test('stores the legacy per-1K seed prices per 1M, exactly 1,000 times larger', () => {
    // Written out from the seed, per 1K tokens: the book must hold exactly 1,000 x these per 1M tokens.
    const seedPer1k: Record<string, { input_tokens: string; output_tokens: string }> = {
      'gpt-3.5-turbo-4k': { input_tokens: '0.0015', output_tokens: '0.002' },
      'gpt-3.5-turbo-16k': { input_tokens: '0.003', output_tokens: '0.005' },
      'gpt-4-8k': { input_tokens: '0.03', output_tokens: '0.06' },
      'gpt-4-32k': { input_tokens: '0.06', output_tokens: '0.12' },
    };
    for (const [model, prices] of Object.entries(seedPer1k)) {
      const stored = version?.models.get(model)?.price_nanos_per_million;
      expect({ model, stored }).toEqual({
        model,
        stored: {
          input_tokens: usd(prices.input_tokens) * 1000n,
          output_tokens: usd(prices.output_tokens) * 1000n,
        },
      });
      expect(version?.models.get(model)?.note).toMatch(/^seed: /);
    }
  });

  test('says where each discount comes from: batch is a seed fact, flex an assumption', () => {
    expect(version?.processing_notes.batch).toMatch(/^seed: /);
    expect(version?.processing_notes.flex).toMatch(/^assumed: /);
  });

  test('gives every model a note that starts with where its prices come from', () => {
    for (const model of version?.models.values() ?? []) {
      expect({ model: model.model, note: model.note }).toEqual({
        model: model.model,
        note: expect.stringMatching(/^(seed|assumed): /) as string,
      });
    }
  });

  test('prices each new modality in its own unit: embedding tokens, images, audio minutes, GB-days', () => {
    expect(version?.models.get('text-embedding-3-small')?.price_nanos_per_million).toEqual({
      embedding_tokens: usd('0.02'),
    });
    expect(
      version?.models.get('gpt-image-1')?.image_price_nanos_per_image.get('1024x1536')?.get('high'),
    ).toBe(usd('0.25'));
    expect(version?.models.get('dall-e-3')?.image_price_nanos_per_image.get('1792x1024')?.get('hd')).toBe(
      usd('0.12'),
    );
    expect(version?.models.get('whisper-1')?.audio_price_nanos_per_minute).toBe(usd('0.006'));
    expect(version?.models.get('vector-storage')?.storage_price_nanos_per_gb_day).toBe(usd('0.10'));
    // A model prices only its own modality.
    expect(version?.models.get('whisper-1')?.price_nanos_per_million).toEqual({});
    expect(version?.models.get('gpt-5.4')?.audio_price_nanos_per_minute).toBeNull();
    expect(version?.models.get('gpt-5.4')?.image_price_nanos_per_image.size).toBe(0);
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

  test('discounts batch processing by exactly one half (the seed), and standard by nothing', () => {
    // Flex's multiplier is an assumption written in the book, so no test asserts its value.
    const multipliers = version?.processing_multipliers;
    expect(multipliers?.standard).toEqual({ numerator: 1n, denominator: 1n });
    expect((multipliers?.batch.numerator ?? 0n) * 2n).toBe(multipliers?.batch.denominator);
  });

  test('gives every model a provider cost for exactly its priced token dimensions, at 65% of the price', () => {
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

  test('gives images, audio and storage a provider cost for exactly what is priced, at 65% of the price', () => {
    for (const model of version?.models.values() ?? []) {
      const prices = [...model.image_price_nanos_per_image].flatMap(([size, qualities]) =>
        [...qualities].map(([quality, nanos]) => ({ size, quality, scaled: nanos * 65n })),
      );
      const costs = [...model.image_provider_cost_nanos_per_image].flatMap(([size, qualities]) =>
        [...qualities].map(([quality, nanos]) => ({ size, quality, scaled: nanos * 100n })),
      );
      expect({ model: model.model, costs }).toEqual({ model: model.model, costs: prices });
      const scaled = (nanos: bigint | null, by: bigint) => (nanos === null ? null : nanos * by);
      expect(scaled(model.audio_provider_cost_nanos_per_minute, 100n)).toEqual(
        scaled(model.audio_price_nanos_per_minute, 65n),
      );
      expect(scaled(model.storage_provider_cost_nanos_per_gb_day, 100n)).toEqual(
        scaled(model.storage_price_nanos_per_gb_day, 65n),
      );
    }
  });

  test('says in its notes which values come from the seed and which are assumed, with every unit', () => {
    expect(version?.notes).toMatch(/Seed values:/);
    expect(version?.notes).toMatch(/Assumed:/);
    for (const unit of ['per 1M tokens', 'per image', 'per audio minute', 'per GB-day', 'per 1,000 calls']) {
      expect(version?.notes).toContain(unit);
    }
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
    at(document, 'models', 'o1', 'provider_cost').cached_input_tokens = '0';
    const book = parsePriceBook(document);
    expect(book.versions[0]?.models.get('o1')?.price_nanos_per_million.cached_input_tokens).toBe(0n);
  });

  test('a model without a note and processing modes without notes', () => {
    const document = bundledDocument();
    delete at(document, 'models', 'o1').note;
    delete at(document, 'processing', 'flex').note;
    const version = parsePriceBook(document).versions[0];
    expect(version?.models.get('o1')?.note).toBeNull();
    expect(version?.processing_notes.flex).toBeNull();
  });

  test('a model that prices nothing but images', () => {
    const document = bundledDocument();
    at(document, 'models').tiny = {
      class: 'image',
      prices: { images: { '256x256': { standard: '0.016' } } },
      provider_cost: { images: { '256x256': { standard: '0.01' } } },
    };
    const version = parsePriceBook(document).versions[0];
    expect(version?.models.get('tiny')?.image_price_nanos_per_image.get('256x256')?.get('standard')).toBe(
      usd('0.016'),
    );
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

  test('an image price missing from the provider cost, and one only the provider cost gives', () => {
    const document = bundledDocument();
    delete at(document, 'models', 'dall-e-3', 'provider_cost', 'images', '1024x1024').hd;
    at(document, 'models', 'dall-e-3', 'provider_cost', 'images', '1024x1792').ultra = '0.10';
    expectIssue(
      document,
      'models["dall-e-3"].provider_cost.images["1024x1024"].hd',
      'missing for a priced dimension',
    );
    expectIssue(document, 'models["dall-e-3"].provider_cost.images["1024x1792"].ultra', 'unpriced dimension');
  });

  test('an audio or storage price without a provider cost', () => {
    const document = bundledDocument();
    delete at(document, 'models', 'whisper-1', 'provider_cost').audio_minutes;
    delete at(document, 'models', 'vector-storage', 'provider_cost').storage_gb_days;
    expectIssue(
      document,
      'models["whisper-1"].provider_cost.audio_minutes',
      'missing for a priced dimension',
    );
    expectIssue(
      document,
      'models["vector-storage"].provider_cost.storage_gb_days',
      'missing for a priced dimension',
    );
  });

  test('a bad image size, a bad quality, an empty size and an image price as a number', () => {
    const document = bundledDocument();
    const images = at(document, 'models', 'dall-e-3', 'prices', 'images');
    images['1024*1024'] = { standard: '0.04' };
    images['512x512'] = {};
    at(images, '1024x1024').HD = '0.08';
    at(images, '1792x1024').standard = 0.08;
    const error = priceBookError(() => parsePriceBook(document));
    const paths = error.issues.map((issue) => issue.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'models["dall-e-3"].prices.images["1024*1024"]',
        'models["dall-e-3"].prices.images["512x512"]',
        'models["dall-e-3"].prices.images["1024x1024"].HD',
        'models["dall-e-3"].prices.images["1792x1024"].standard',
      ]),
    );
  });

  test('a processing note that is not a string and an empty model note', () => {
    const document = bundledDocument();
    at(document, 'processing', 'flex').note = 50;
    at(document, 'models', 'o1').note = '';
    expectIssue(document, 'processing.flex.note', '');
    expectIssue(document, 'models.o1.note', '');
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
      image_price_unit: 'usd_per_image',
      audio_price_unit: 'usd_per_audio_minute',
      storage_price_unit: 'usd_per_gb_day',
    });
  });

  test('writes image, audio and storage prices and every note, exactly', () => {
    const models = json.versions[0]?.models;
    expect(models?.['dall-e-3']?.prices.images?.['1024x1024']).toEqual({
      standard: '0.040000000',
      hd: '0.080000000',
    });
    expect(models?.['whisper-1']?.prices).toEqual({ audio_minutes: '0.006000000' });
    expect(models?.['vector-storage']?.provider_cost).toEqual({ storage_gb_days: '0.065000000' });
    expect(models?.o1?.note).toMatch(/^seed: /);
    expect(json.versions[0]?.processing.flex.note).toMatch(/^assumed: /);
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
      processing: { batch: { multiplier: '0.5' } },
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
