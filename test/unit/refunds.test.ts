/**
 * Unit tests for the refund rules of billing/refunds.ts and the grant statement's treatment of a refund's claim:
 * what is left to refund, what the claim takes off the payment's grant (unspent and unheld credit only, unless
 * `allow_negative`), how each failure is answered, and that a statement attributes a refund to its own grant. Pure.
 */
import fc from 'fast-check';
import { attributeDebits, type StatementEntry, type StatementGrant } from '../../billing/grants';
import { usd } from '../../billing/money';
import {
  decideRefundClaim,
  isWellFormedRefundRequest,
  refundableNanos,
  refundFailureStatus,
  type RefundClaimFacts,
} from '../../billing/refunds';

/** A 20.00 payment whose grant has all of it unspent and nothing held, 20.00 available. */
const facts = (overrides: Partial<RefundClaimFacts> = {}): RefundClaimFacts => ({
  amount_nanos: usd('20'),
  allow_negative: false,
  payment_nanos: usd('20'),
  refunded_nanos: 0n,
  grant_id: 'gr_tu_1',
  grant_open: true,
  grant_remaining_nanos: usd('20'),
  grant_free_nanos: usd('20'),
  available_nanos: usd('20'),
  ...overrides,
});

test("a refund signal is well formed only with a refund id of the API's shape", () => {
  expect(isWellFormedRefundRequest({ refund_id: 're_0123abcd' })).toBe(true);
  for (const bad of [
    null,
    {},
    { refund_id: 42 },
    { refund_id: '' },
    { refund_id: 'tu_1' },
    { refund_id: 're_a b' },
  ]) {
    expect(isWellFormedRefundRequest(bad)).toBe(false);
  }
});

describe('refundableNanos', () => {
  test('is the payment less its other refunds, never below zero', () => {
    expect(refundableNanos(usd('20'), 0n)).toBe(usd('20'));
    expect(refundableNanos(usd('20'), usd('7.50'))).toBe(usd('12.50'));
    expect(refundableNanos(usd('20'), usd('20'))).toBe(0n);
    expect(refundableNanos(usd('20'), usd('25'))).toBe(0n);
  });
});

describe('decideRefundClaim', () => {
  test('unspent credit of the grant is refunded from the grant, in full or in part', () => {
    expect(decideRefundClaim(facts())).toEqual({ action: 'claim', from_grant_nanos: usd('20') });
    expect(decideRefundClaim(facts({ amount_nanos: usd('0.01') }))).toEqual({
      action: 'claim',
      from_grant_nanos: usd('0.01'),
    });
  });

  test('more than is left to refund of the payment is refused, whatever allow_negative says', () => {
    for (const allow_negative of [false, true]) {
      const decision = decideRefundClaim(
        facts({ amount_nanos: usd('12.51'), refunded_nanos: usd('7.50'), allow_negative }),
      );
      expect(decision).toMatchObject({ action: 'refuse', code: 'amount_exceeds_refundable' });
      if (decision.action === 'refuse') expect(decision.message).toContain('12.500000000 left to refund');
    }
    expect(decideRefundClaim(facts({ amount_nanos: usd('12.50'), refunded_nanos: usd('7.50') }))).toEqual({
      action: 'claim',
      from_grant_nanos: usd('12.50'),
    });
  });

  test('spent or held credit is credit_already_spent, naming what is unspent', () => {
    const spent = decideRefundClaim(facts({ grant_remaining_nanos: usd('6'), grant_free_nanos: usd('6') }));
    expect(spent).toMatchObject({ action: 'refuse', code: 'credit_already_spent' });
    if (spent.action === 'refuse') expect(spent.message).toContain('only 6.000000000 of the 20.000000000');
    // 0.0175 held by an authorization: remaining is whole, but not all of it is free.
    const held = decideRefundClaim(facts({ grant_free_nanos: usd('19.9825') }));
    expect(held).toMatchObject({ action: 'refuse', code: 'credit_already_spent' });
    // A grant that expired or was voided gives nothing.
    expect(decideRefundClaim(facts({ grant_open: false }))).toMatchObject({
      action: 'refuse',
      code: 'credit_already_spent',
    });
  });

  test('allow_negative empties the grant (held part included) and leaves the rest to the available balance', () => {
    expect(
      decideRefundClaim(
        facts({ allow_negative: true, grant_remaining_nanos: usd('6'), grant_free_nanos: usd('5') }),
      ),
    ).toEqual({ action: 'claim', from_grant_nanos: usd('6') });
    expect(decideRefundClaim(facts({ allow_negative: true, grant_open: false }))).toEqual({
      action: 'claim',
      from_grant_nanos: 0n,
    });
  });

  test('never takes more off the grant than the refund or than the grant has, and refuses only what it must', () => {
    const nanos = fc.bigInt({ min: 0n, max: usd('100') });
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: usd('100') }),
        nanos,
        nanos,
        nanos,
        fc.boolean(),
        (amount_nanos, remaining_nanos, held_nanos, available_nanos, allow_negative) => {
          const free_nanos = remaining_nanos > held_nanos ? remaining_nanos - held_nanos : 0n;
          const decision = decideRefundClaim(
            facts({
              amount_nanos,
              payment_nanos: usd('100'),
              allow_negative,
              grant_remaining_nanos: remaining_nanos,
              grant_free_nanos: free_nanos,
              available_nanos,
            }),
          );
          if (decision.action === 'refuse') {
            expect(decision.code).toBe('credit_already_spent');
            expect(allow_negative).toBe(false);
            expect(amount_nanos > free_nanos || amount_nanos > available_nanos).toBe(true);
            return;
          }
          expect(decision.from_grant_nanos).toBeLessThanOrEqual(amount_nanos);
          expect(decision.from_grant_nanos).toBeLessThanOrEqual(remaining_nanos);
          // Without allow_negative the refund is all unspent credit: the balance stays at or above zero.
          if (!allow_negative) expect(available_nanos - amount_nanos).toBeGreaterThanOrEqual(0n);
        },
      ),
    );
  });
});

test('each failure code is answered with its status: 400 for the amount, 409 for state, 402 for the processor', () => {
  expect(refundFailureStatus('amount_exceeds_refundable')).toBe(400);
  expect(refundFailureStatus('invalid_data')).toBe(400);
  expect(refundFailureStatus('credit_already_spent')).toBe(409);
  expect(refundFailureStatus('charge_not_found')).toBe(409);
  expect(refundFailureStatus('gateway_mismatch')).toBe(409);
  expect(refundFailureStatus('expired_or_canceled_card')).toBe(402);
  expect(refundFailureStatus('payment_refused')).toBe(402);
});

describe('attributeDebits with refunds', () => {
  const grant = (
    id: string,
    amount_nanos: bigint,
    entry: number,
    expires_ms: number | null,
  ): StatementGrant => ({
    id,
    amount_nanos,
    granted_at: new Date(Date.UTC(2026, 10, 1, 0, 0, entry)),
    expires_at: expires_ms === null ? null : new Date(expires_ms),
    entry_id: BigInt(entry),
    retired_after_entry_id: null,
  });
  const entry = (
    id: number,
    kind: string,
    owned_delta_nanos: bigint,
    extra: Partial<StatementEntry> = {},
  ) => ({
    id: BigInt(id),
    kind,
    ref: `${kind}${id}`,
    owned_delta_nanos,
    held_delta_nanos: 0n,
    ...extra,
  });

  test("a refund's claim takes its part from its own grant, not the one consumption order would pick", () => {
    // "soon" pays usage first; the refund of "paid" still takes from "paid".
    const grants = [grant('soon', 10n, 1, Date.UTC(2027, 0, 1)), grant('paid', 20n, 2, null)];
    const debits = attributeDebits(
      grants,
      [
        entry(1, 'credit_grant', 10n),
        entry(2, 'top_up', 20n),
        entry(3, 'refund', -8n, { from_grant: { grant_id: 'paid', amount_nanos: 8n } }),
        entry(4, 'usage', -3n),
      ],
      [],
    );
    expect(debits).toEqual([
      { entry_id: 3n, grant_id: 'paid', amount_nanos: 8n },
      { entry_id: 4n, grant_id: 'soon', amount_nanos: 3n },
    ]);
  });

  test('the part of an allow_negative refund beyond its grant is consumption like any other', () => {
    const grants = [grant('paid', 10n, 1, null), grant('other', 5n, 2, null)];
    const debits = attributeDebits(
      grants,
      [
        entry(1, 'top_up', 10n),
        entry(2, 'credit_grant', 5n),
        entry(3, 'usage', -4n),
        entry(4, 'refund', -10n, { from_grant: { grant_id: 'paid', amount_nanos: 6n } }),
      ],
      [],
    );
    expect(debits).toEqual([
      { entry_id: 3n, grant_id: 'paid', amount_nanos: 4n },
      { entry_id: 4n, grant_id: 'paid', amount_nanos: 6n },
      { entry_id: 4n, grant_id: 'other', amount_nanos: 4n },
    ]);
  });
});
