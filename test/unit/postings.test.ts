/**
 * Unit tests for the posting definitions of db/postings.ts, evaluated in TypeScript: every movement balances for
 * any amounts, zero postings are left out, and each movement moves the wallet the way its name says. Pure; the
 * same definitions rendered as SQL are compared against these in test/postings.test.ts.
 */
import fc from 'fast-check';
import { MOVEMENTS, postingsOf, walletDelta, type MovementDefinition } from '../../db/postings';
import { loadConfig } from '../../wiring/config';

const amount = fc.bigInt({ min: 0n, max: 10n ** 15n });

function amountsFor(definition: MovementDefinition) {
  return fc.record(
    Object.fromEntries(definition.amounts.map((a) => [a, amount])) as Record<string, typeof amount>,
  );
}

test.each(Object.entries(MOVEMENTS))(
  '%s balances for any amounts and writes no zero posting',
  (_name, definition) => {
    fc.assert(
      fc.property(amountsFor(definition), (amounts) => {
        const postings = postingsOf(definition as MovementDefinition, amounts);
        expect(postings.reduce((sum, p) => sum + p.amount_nanos, 0n)).toBe(0n);
        expect(postings.every((p) => p.amount_nanos !== 0n)).toBe(true);
        // Balanced and non-zero: either nothing moves, or at least two accounts do.
        expect(postings.length === 0 || postings.length >= 2).toBe(true);
      }),
    );
  },
);

test('a capture below, at and above its hold: the difference returns to or comes from available', () => {
  const hold = 1_000n;
  expect(postingsOf(MOVEMENTS.capture, { hold, cost: 400n })).toEqual([
    { account: 'held', amount_nanos: -1_000n },
    { account: 'available', amount_nanos: 600n },
    { account: 'revenue', amount_nanos: 400n },
  ]);
  expect(postingsOf(MOVEMENTS.capture, { hold, cost: hold })).toEqual([
    { account: 'held', amount_nanos: -1_000n },
    { account: 'revenue', amount_nanos: 1_000n },
  ]);
  expect(walletDelta(postingsOf(MOVEMENTS.capture, { hold, cost: 2_500n }))).toEqual({
    available_nanos: -1_500n,
    held_nanos: -1_000n,
  });
  expect(postingsOf(MOVEMENTS.capture, { hold: 0n, cost: 0n })).toEqual([]);
});

test('each movement moves the wallet as named; only bought or granted credit re-arms the threshold', () => {
  const a = 7n;
  expect(walletDelta(postingsOf(MOVEMENTS.hold, { hold: a }))).toEqual({
    available_nanos: -a,
    held_nanos: a,
  });
  expect(walletDelta(postingsOf(MOVEMENTS.release, { hold: a }))).toEqual({
    available_nanos: a,
    held_nanos: -a,
  });
  expect(walletDelta(postingsOf(MOVEMENTS.usage, { cost: a }))).toEqual({
    available_nanos: -a,
    held_nanos: 0n,
  });
  expect(walletDelta(postingsOf(MOVEMENTS.expiry, { amount: a }))).toEqual({
    available_nanos: -a,
    held_nanos: 0n,
  });
  expect(postingsOf(MOVEMENTS.paidCredit, { amount: a })).toEqual([
    { account: 'payments', amount_nanos: -a },
    { account: 'available', amount_nanos: a },
  ]);
  expect(postingsOf(MOVEMENTS.promotionalCredit, { amount: a })[0]).toEqual({
    account: 'promotions',
    amount_nanos: -a,
  });
  // A refund's claim debits available; its settlement moves no customer money; its release credits it back.
  expect(postingsOf(MOVEMENTS.refund, { amount: a })).toEqual([
    { account: 'available', amount_nanos: -a },
    { account: 'refunds', amount_nanos: a },
  ]);
  expect(walletDelta(postingsOf(MOVEMENTS.refundSettled, { amount: a }))).toEqual({
    available_nanos: 0n,
    held_nanos: 0n,
  });
  expect(walletDelta(postingsOf(MOVEMENTS.refundRelease, { amount: a }))).toEqual({
    available_nanos: a,
    held_nanos: 0n,
  });
  // A dispute freezes available credit; a won one gives it back; a lost one moves no customer money.
  expect(postingsOf(MOVEMENTS.dispute, { amount: a })).toEqual([
    { account: 'available', amount_nanos: -a },
    { account: 'disputes', amount_nanos: a },
  ]);
  expect(walletDelta(postingsOf(MOVEMENTS.disputeRelease, { amount: a }))).toEqual({
    available_nanos: a,
    held_nanos: 0n,
  });
  expect(walletDelta(postingsOf(MOVEMENTS.disputeLost, { amount: a }))).toEqual({
    available_nanos: 0n,
    held_nanos: 0n,
  });
  const rearming = Object.entries(MOVEMENTS)
    .filter(([, d]) => d.rearms)
    .map(([name]) => name);
  // The release of a refused refund's claim and of a won dispute's freeze are granted credit (`refund_reversal` grants).
  expect(rearming.sort()).toEqual([
    'disputeRelease',
    'paidCredit',
    'promotionalCredit',
    'refundRelease',
    'usageInvoiced',
  ]);
});

test('an unbalanced definition is refused', () => {
  const broken: MovementDefinition<'x'> = {
    kind: 'broken',
    amounts: ['x'],
    postings: [
      { account: 'available', terms: { x: -1 } },
      { account: 'revenue', terms: { x: -1 } },
    ],
    rearms: false,
  };
  expect(() => postingsOf(broken, { x: 1n })).toThrow('sum to -2');
});

test('WALLET_FLOOR_USD defaults to 1000.00 and is validated at startup, naming the variable', () => {
  expect(loadConfig({}).WALLET_FLOOR_USD).toBe('1000.00');
  expect(loadConfig({ WALLET_FLOOR_USD: '0' }).WALLET_FLOOR_USD).toBe('0');
  expect(loadConfig({ WALLET_FLOOR_USD: '1000000000.00' }).WALLET_FLOOR_USD).toBe('1000000000.00');
  for (const bad of ['-1', 'abc', '1.0000000001', '1000000000.000000001', '']) {
    expect(() => loadConfig({ WALLET_FLOOR_USD: bad })).toThrow(/WALLET_FLOOR_USD/);
  }
});
