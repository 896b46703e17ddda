/**
 * Money is an integer count of nano-dollars (1e-9 USD) held in a `bigint`.
 *
 * Why nanos: the cheapest per-token price in the book (gpt-5.4-nano cached input, $0.02 per 1M tokens)
 * is 20 nanos per token, so every per-token price is a whole number of nanos and small usage is never
 * rounded away. A signed 64-bit column holds about $9.2 billion in nanos, far beyond any one account.
 *
 * This module is the one codec between `bigint` nanos and the decimal strings of the HTTP API.
 */

export const NANOS_PER_USD = 1_000_000_000n;
export const NANOS_PER_CENT = 10_000_000n;
export const USD_DECIMALS = 9;

/** The largest amount the ledger stores in one column (PostgreSQL `bigint`). */
export const MAX_NANOS = 9_223_372_036_854_775_807n;

/** Non-negative decimal with at most 9 fractional digits: "20", "20.00", "0.015750000". No exponent, no sign. */
const DECIMAL_USD = /^(0|[1-9][0-9]{0,9})(\.[0-9]{1,9})?$/;

export type ParseUsdResult = { ok: true; nanos: bigint } | { ok: false; reason: string };

/**
 * Parses an API money string into nanos. Refuses negatives, exponents, more than 9 decimals, leading
 * zeros and amounts above MAX_NANOS (about $9.2 billion, the largest `bigint` column value); the caller turns a refusal into a 400 naming the field.
 */
export function parseUsd(text: string): ParseUsdResult {
  if (!DECIMAL_USD.test(text)) {
    if (/^-/.test(text)) return { ok: false, reason: 'must not be negative' };
    if (/^[0-9]*\.[0-9]{10,}$/.test(text)) return { ok: false, reason: 'has more than 9 decimal places' };
    return { ok: false, reason: 'must be a decimal string of USD such as "20.00"' };
  }
  const [whole = '0', fraction = ''] = text.split('.');
  const nanos = BigInt(whole) * NANOS_PER_USD + BigInt(fraction.padEnd(USD_DECIMALS, '0'));
  if (nanos > MAX_NANOS) return { ok: false, reason: 'is larger than the ledger can hold' };
  return { ok: true, nanos };
}

/**
 * Decodes a string that `formatUsd` produced (workflow payloads, stored totals): any size, either sign, exactly 9
 * decimals. Not for API input, which goes through `parseUsd` and its limits.
 */
export function decodeUsd(text: string): bigint {
  const match = /^(-?)(0|[1-9][0-9]*)\.([0-9]{9})$/.exec(text);
  if (!match || text === '-0.000000000')
    throw new Error(`not a formatted USD amount: ${JSON.stringify(text)}`);
  const magnitude = BigInt(match[2]!) * NANOS_PER_USD + BigInt(match[3]!);
  return match[1] === '-' ? -magnitude : magnitude;
}

/** Parses a money string that is known to be valid (config, fixtures); throws on a bad one. */
export function usd(text: string): bigint {
  const parsed = parseUsd(text);
  if (!parsed.ok) throw new Error(`invalid USD amount ${JSON.stringify(text)}: ${parsed.reason}`);
  return parsed.nanos;
}

/**
 * Formats nanos as a decimal USD string with all 9 decimals ("-0.015750000"), so that the string
 * round-trips through `parseUsd` exactly (negatives aside) and never loses a nano.
 */
export function formatUsd(nanos: bigint): string {
  const negative = nanos < 0n;
  const magnitude = negative ? -nanos : nanos;
  const whole = magnitude / NANOS_PER_USD;
  const fraction = (magnitude % NANOS_PER_USD).toString().padStart(USD_DECIMALS, '0');
  return `${negative ? '-' : ''}${whole}.${fraction}`;
}

/** `formatUsd`, with null (no amount: no limit, not set) passed through. */
export function formatUsdOrNull(nanos: bigint | null): string | null {
  return nanos === null ? null : formatUsd(nanos);
}

/** Formats nanos with exactly two decimals; only for amounts already rounded to cents (card charges). */
export function formatCents(nanos: bigint): string {
  assertWholeCents(nanos);
  const text = formatUsd(nanos);
  return text.slice(0, text.length - (USD_DECIMALS - 2));
}

export function isWholeCents(nanos: bigint): boolean {
  return nanos % NANOS_PER_CENT === 0n;
}

export function assertWholeCents(nanos: bigint): void {
  if (!isWholeCents(nanos)) throw new Error(`amount ${formatUsd(nanos)} is not a whole number of cents`);
}

/** Converts whole-cent nanos to the integer cents a card processor takes. */
export function nanosToCents(nanos: bigint): number {
  assertWholeCents(nanos);
  const cents = nanos / NANOS_PER_CENT;
  if (cents > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('amount too large for a card charge');
  return Number(cents);
}

/** Whole cents (a processor's integer amount in USD's minor unit) as nanos; throws on anything else. */
export function centsToNanos(cents: number): bigint {
  if (!Number.isSafeInteger(cents) || cents < 0) throw new Error(`not an amount in cents: ${cents}`);
  return BigInt(cents) * NANOS_PER_CENT;
}

export function minBigint(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

export function maxBigint(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}
