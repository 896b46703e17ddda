/**
 * Unit tests for the money codec: decimal USD strings <-> bigint nanos, the refusals and their reasons, and
 * the rounding-to-cents boundary used when charging a card. Pure; no server needed.
 *
 * Units: 1 USD = 1e9 nanos, 1 cent = 1e7 nanos.
 */
import {
  MAX_NANOS,
  NANOS_PER_CENT,
  NANOS_PER_USD,
  USD_DECIMALS,
  assertWholeCents,
  decodeUsd,
  formatCents,
  formatUsd,
  isWholeCents,
  maxBigint,
  minBigint,
  nanosToCents,
  parseUsd,
  usd,
} from '../../billing/money';

const GENERIC_REASON = 'must be a decimal string of USD such as "20.00"';
const TOO_LARGE_REASON = 'is larger than the ledger can hold';

function parsedNanos(text: string): bigint {
  const parsed = parseUsd(text);
  if (!parsed.ok) throw new Error(`expected ${JSON.stringify(text)} to parse, got: ${parsed.reason}`);
  return parsed.nanos;
}

describe('constants', () => {
  test('one USD is 1e9 nanos, one cent is 1e7 nanos, and there are 9 decimals', () => {
    expect(NANOS_PER_USD).toBe(10n ** 9n);
    expect(NANOS_PER_CENT).toBe(NANOS_PER_USD / 100n);
    expect(USD_DECIMALS).toBe(9);
  });

  test('MAX_NANOS is the largest signed 64-bit integer (a PostgreSQL bigint)', () => {
    expect(MAX_NANOS).toBe(2n ** 63n - 1n);
  });
});

describe('parseUsd accepts and converts exactly', () => {
  test.each([
    ['0', 0n],
    ['0.0', 0n],
    ['0.000000000', 0n],
    ['0.000000001', 1n],
    ['0.000000020', 20n],
    ['0.01', 10_000_000n],
    ['0.015750000', 15_750_000n],
    ['0.5', 500_000_000n],
    ['1', 1_000_000_000n],
    ['1.5', 1_500_000_000n],
    ['20', 20_000_000_000n],
    ['20.00', 20_000_000_000n],
    ['20.000000000', 20_000_000_000n],
    ['123.456789012', 123_456_789_012n],
    ['1000000000.000000001', 1_000_000_000_000_000_001n],
    ['9223372036', 9_223_372_036_000_000_000n],
    ['9223372036.85477580', 9_223_372_036_854_775_800n],
    ['9223372036.854775806', MAX_NANOS - 1n],
    ['9223372036.854775807', MAX_NANOS],
  ])('"%s" is %p nanos', (text, nanos) => {
    expect(parseUsd(text)).toEqual({ ok: true, nanos });
  });

  test('MAX_NANOS itself, written with 9 decimals, is the largest amount accepted', () => {
    expect(parseUsd(formatUsd(MAX_NANOS))).toEqual({ ok: true, nanos: MAX_NANOS });
    expect(parseUsd(formatUsd(MAX_NANOS + 1n))).toEqual({ ok: false, reason: TOO_LARGE_REASON });
  });

  test('fraction digits are positional: "0.1", "0.10" and "0.100000000" are the same amount', () => {
    expect(parsedNanos('0.1')).toBe(100_000_000n);
    expect(parsedNanos('0.10')).toBe(100_000_000n);
    expect(parsedNanos('0.100000000')).toBe(100_000_000n);
  });
});

describe('parseUsd refuses', () => {
  test.each([
    ['-1', 'must not be negative'],
    ['-0.01', 'must not be negative'],
    ['-0', 'must not be negative'],
    ['1.0000000001', 'has more than 9 decimal places'],
    ['0.0000000001', 'has more than 9 decimal places'],
    ['20.0000000000', 'has more than 9 decimal places'],
    // Above MAX_NANOS (2^63 - 1 nanos, the PostgreSQL bigint column): refused here rather than failing at the insert.
    ['9223372036.854775808', TOO_LARGE_REASON],
    ['9223372036.854775809', TOO_LARGE_REASON],
    ['9223372036.86', TOO_LARGE_REASON],
    ['9223372036.9', TOO_LARGE_REASON],
    ['9223372037', TOO_LARGE_REASON],
    ['9223372037.000000000', TOO_LARGE_REASON],
    ['9999999999', TOO_LARGE_REASON],
    ['9999999999.99', TOO_LARGE_REASON],
    ['9999999999.999999999', TOO_LARGE_REASON],
  ])('"%s" with the reason "%s"', (text, reason) => {
    expect(parseUsd(text)).toEqual({ ok: false, reason });
  });

  test.each([
    ['1e3'],
    ['1E3'],
    [' 1'],
    ['1 '],
    ['1.'],
    ['.5'],
    ['01'],
    ['00'],
    ['00.5'],
    [''],
    ['abc'],
    ['+1'],
    ['1,00'],
    ['1.000,00'],
    ['$1'],
    ['0x10'],
    ['1_000'],
    ['Infinity'],
    ['NaN'],
    ['1.5.0'],
    ['\n1'],
    ['١'], // Arabic-Indic digit one: only ASCII digits are money.
    ['10000000000'], // 11 whole digits: not even read as an amount (the grammar allows at most 10).
    ['10000000000.0'],
    ['99999999999999999999'],
  ])('%p with the generic reason', (text) => {
    expect(parseUsd(text)).toEqual({ ok: false, reason: GENERIC_REASON });
  });
});

describe('formatUsd', () => {
  test.each([
    [0n, '0.000000000'],
    [1n, '0.000000001'],
    [15_750_000n, '0.015750000'],
    [1_000_000_000n, '1.000000000'],
    [20_000_000_000n, '20.000000000'],
    [123_456_789_012n, '123.456789012'],
    [9_999_999_999_999_999_999n, '9999999999.999999999'],
    [MAX_NANOS, '9223372036.854775807'],
    [-1n, '-0.000000001'],
    [-15_750_000n, '-0.015750000'],
    [-1_500_000_000n, '-1.500000000'],
    [-MAX_NANOS, '-9223372036.854775807'],
  ])('%p nanos is "%s" (always 9 decimals, sign only when negative)', (nanos, text) => {
    expect(formatUsd(nanos)).toBe(text);
  });

  test('zero is never formatted as negative zero', () => {
    expect(formatUsd(-0n)).toBe('0.000000000');
  });
});

describe('round trips', () => {
  const ROUND_TRIP_NANOS: bigint[] = [
    0n,
    1n,
    9n,
    10n,
    999_999_999n,
    1_000_000_000n,
    1_000_000_001n,
    123_456_789_012n,
    9_223_372_036_000_000_000n,
    MAX_NANOS - 1n,
    MAX_NANOS,
  ];

  test.each(ROUND_TRIP_NANOS.map((n) => [n]))('%p nanos -> formatUsd -> parseUsd is the same amount', (n) => {
    expect(parseUsd(formatUsd(n))).toEqual({ ok: true, nanos: n });
  });

  test.each([[MAX_NANOS + 1n], [MAX_NANOS + 2n], [9_999_999_999_000_000_000n], [9_999_999_999_999_999_999n]])(
    '%p nanos (above MAX_NANOS) -> formatUsd -> parseUsd is refused as too large',
    (n) => {
      expect(parseUsd(formatUsd(n))).toEqual({ ok: false, reason: TOO_LARGE_REASON });
    },
  );

  test.each([
    ['0'],
    ['0.000000001'],
    ['0.123456789'],
    ['1.5'],
    ['20.00'],
    ['9223372036'],
    ['9223372036.854775807'],
  ])('"%s" -> parseUsd -> formatUsd is the same decimal, written with 9 decimals', (text) => {
    const formatted = formatUsd(parsedNanos(text));
    expect(formatted).toMatch(/^[0-9]+\.[0-9]{9}$/);
    expect(parsedNanos(formatted)).toBe(parsedNanos(text));
    // The same number: the original text is a prefix once its fraction is padded to 9 digits.
    const [whole = '', fraction = ''] = text.split('.');
    expect(formatted).toBe(`${whole}.${fraction.padEnd(9, '0')}`);
  });

  test('a negative amount formats with a sign that parseUsd refuses (negatives never come back in)', () => {
    expect(parseUsd(formatUsd(-1n))).toEqual({ ok: false, reason: 'must not be negative' });
  });

  test('every nano from 0 to 2000 and around each dollar boundary survives a round trip', () => {
    const amounts: bigint[] = [];
    for (let n = 0n; n <= 2000n; n += 1n) amounts.push(n);
    for (const d of [1n, 10n, 999n, 9_223_372_036n]) {
      for (let delta = -3n; delta <= 3n; delta += 1n) amounts.push(d * NANOS_PER_USD + delta);
    }
    for (let delta = 0n; delta <= 3n; delta += 1n) amounts.push(MAX_NANOS - delta);
    for (const n of amounts) expect(parsedNanos(formatUsd(n))).toBe(n);
  });
});

describe('usd', () => {
  test('returns the nanos of a valid amount', () => {
    expect(usd('20.00')).toBe(20_000_000_000n);
    expect(usd('0.000000001')).toBe(1n);
  });

  test.each([
    ['-1'],
    ['1e3'],
    [''],
    ['abc'],
    ['1.0000000001'],
    ['01'],
    ['9223372036.854775808'],
    ['9999999999'],
  ])('throws on %p, naming the text and the reason', (text) => {
    const parsed = parseUsd(text);
    if (parsed.ok) throw new Error('fixture must be invalid');
    expect(() => usd(text)).toThrow(`invalid USD amount ${JSON.stringify(text)}: ${parsed.reason}`);
  });
});

describe('whole cents', () => {
  test.each([
    [0n, true],
    [NANOS_PER_CENT, true],
    [NANOS_PER_USD, true],
    [-NANOS_PER_CENT, true],
    [1n, false],
    [NANOS_PER_CENT - 1n, false],
    [NANOS_PER_CENT + 1n, false],
    [-1n, false],
    [15_750_000n, false],
  ])('isWholeCents(%p) is %p', (nanos, whole) => {
    expect(isWholeCents(nanos)).toBe(whole);
  });

  test('assertWholeCents passes whole cents and throws on a sub-cent amount, naming it in USD', () => {
    expect(() => assertWholeCents(usd('20.01'))).not.toThrow();
    expect(() => assertWholeCents(usd('0.015'))).toThrow('amount 0.015000000 is not a whole number of cents');
  });
});

describe('formatCents', () => {
  test.each([
    ['0', '0.00'],
    ['0.01', '0.01'],
    ['0.10', '0.10'],
    ['1', '1.00'],
    ['20.5', '20.50'],
    ['1234.56', '1234.56'],
    ['9223372036.85', '9223372036.85'], // The largest whole-cent amount within MAX_NANOS.
  ])('"%s" USD formats as "%s"', (text, cents) => {
    expect(formatCents(usd(text))).toBe(cents);
  });

  test('a negative whole-cent amount keeps its sign', () => {
    expect(formatCents(-usd('1.5'))).toBe('-1.50');
    expect(formatCents(-usd('0.01'))).toBe('-0.01');
  });

  test.each([[1n], [usd('0.015')], [usd('20.001')], [usd('1.999999999')], [-1n]])(
    'throws on the sub-cent amount %p rather than rounding it',
    (nanos) => {
      expect(() => formatCents(nanos)).toThrow('is not a whole number of cents');
    },
  );

  test('the result parses back to the same nanos', () => {
    for (const text of ['0.00', '0.07', '19.99', '100.00']) {
      expect(usd(formatCents(usd(text)))).toBe(usd(text));
    }
  });
});

describe('nanosToCents', () => {
  test.each([
    ['0', 0],
    ['0.01', 1],
    ['0.99', 99],
    ['1', 100],
    ['20.00', 2000],
    ['1234.56', 123456],
    ['9223372036.85', 922_337_203_685], // The largest whole-cent amount within MAX_NANOS.
  ])('"%s" USD is %p cents', (text, cents) => {
    expect(nanosToCents(usd(text))).toBe(cents);
  });

  test('a negative whole-cent amount is a negative number of cents', () => {
    expect(nanosToCents(-usd('1.25'))).toBe(-125);
  });

  test.each([[1n], [NANOS_PER_CENT - 1n], [NANOS_PER_CENT + 1n], [usd('0.015')], [-1n]])(
    'throws on the sub-cent amount %p',
    (nanos) => {
      expect(() => nanosToCents(nanos)).toThrow('is not a whole number of cents');
    },
  );

  test('the largest safe integer of cents converts; one cent more throws as too large', () => {
    const maxSafeCents = BigInt(Number.MAX_SAFE_INTEGER);
    expect(nanosToCents(maxSafeCents * NANOS_PER_CENT)).toBe(Number.MAX_SAFE_INTEGER);
    expect(() => nanosToCents((maxSafeCents + 1n) * NANOS_PER_CENT)).toThrow(
      'amount too large for a card charge',
    );
  });
});

describe('decodeUsd', () => {
  test.each([
    ['0.000000000', 0n],
    ['0.000000001', 1n],
    ['0.015750000', 15_750_000n],
    ['10.000000000', 10_000_000_000n],
    ['123.456789012', 123_456_789_012n],
    ['-0.000000001', -1n],
    ['-1.500000000', -1_500_000_000n],
    ['9223372036.854775807', MAX_NANOS],
    ['9223372036.854775808', MAX_NANOS + 1n],
    ['9999999999.999999999', 9_999_999_999_999_999_999n],
    ['-9223372036.854775808', -MAX_NANOS - 1n],
    ['1000000000000000000000.000000000', 10n ** 30n],
  ])('"%s" is %p nanos', (text, nanos) => {
    expect(decodeUsd(text)).toBe(nanos);
  });

  test.each([
    [0n],
    [1n],
    [9n],
    [999_999_999n],
    [1_000_000_000n],
    [1_000_000_001n],
    [15_750_000n],
    [123_456_789_012n],
    [MAX_NANOS - 1n],
    [MAX_NANOS],
    [MAX_NANOS + 1n],
    [9_999_999_999_999_999_999n],
    [10_000_000_000_000_000_000n],
    [10n ** 30n + 7n],
    [-1n],
    [-15_750_000n],
    [-1_000_000_000n],
    [-MAX_NANOS],
    [-MAX_NANOS - 1n],
    [-(10n ** 30n) - 7n],
  ])('%p nanos -> formatUsd -> decodeUsd is the same amount (any sign, any size)', (n) => {
    expect(decodeUsd(formatUsd(n))).toBe(n);
  });

  test('every nano from -2000 to 2000 survives formatUsd -> decodeUsd', () => {
    for (let n = -2000n; n <= 2000n; n += 1n) expect(decodeUsd(formatUsd(n))).toBe(n);
  });

  test.each([
    ['1.5'],
    ['1'],
    [''],
    ['+1.000000000'],
    ['1.0000000000'],
    ['1.00'],
    ['10.00'],
    ['1.00000000'],
    ['.000000000'],
    ['1.'],
    ['-'],
    ['-1'],
    ['--1.000000000'],
    [' 1.000000000'],
    ['1.000000000 '],
    ['1.000000000\n'],
    ['1,000000000'],
    ['1e3'],
    ['1.000000000e0'],
    ['abc'],
    ['NaN'],
    ['Infinity'],
    ['$1.000000000'],
    ['1_000.000000000'],
    ['١.000000000'], // Arabic-Indic digit one: only ASCII digits are money.
  ])('throws on %p, which formatUsd never produces', (text) => {
    expect(() => decodeUsd(text)).toThrow(`not a formatted USD amount: ${JSON.stringify(text)}`);
  });
});

describe('minBigint and maxBigint', () => {
  test.each([
    [1n, 2n, 1n, 2n],
    [2n, 1n, 1n, 2n],
    [-5n, 3n, -5n, 3n],
    [7n, 7n, 7n, 7n],
    [MAX_NANOS, -MAX_NANOS, -MAX_NANOS, MAX_NANOS],
  ])('of %p and %p: min %p, max %p', (a, b, min, max) => {
    expect(minBigint(a, b)).toBe(min);
    expect(maxBigint(a, b)).toBe(max);
  });
});
