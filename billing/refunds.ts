import { formatUsd, minBigint } from './money';

/**
 * Pure rules for refunds of paid credit (a top-up's or an auto-recharge's payment): how much is left to refund, what
 * the claim takes off the payment's grant, and how a failed refund is answered. All amounts are bigint nanos.
 */

/** The account workflow's command payload: the refund is recorded in PostgreSQL, which has everything else. */
export interface RefundRequest {
  refund_id: string;
}

/**
 * Whether a refund signal has the shape the API sends (`re_` and the id's alphabet). Anyone with access to the
 * namespace can signal an account; a malformed request is ignored rather than queued as a command no step can run.
 */
export function isWellFormedRefundRequest(request: unknown): request is RefundRequest {
  const id = (request as { refund_id?: unknown } | null)?.refund_id;
  return typeof id === 'string' && /^re_[A-Za-z0-9_]{1,100}$/.test(id);
}

/** A refund's outcome as the account workflow hears it. Money as USD strings. */
export interface RefundResult {
  refund_id: string;
  status: 'succeeded' | 'failed';
  amount_usd: string;
  failure_code: string | null;
}

/** What is left to refund of a payment, given what its other refunds have claimed or refunded already. */
export function refundableNanos(payment_nanos: bigint, refunded_nanos: bigint): bigint {
  const left_nanos = payment_nanos - refunded_nanos;
  return left_nanos > 0n ? left_nanos : 0n;
}

/** The facts a refund's claim is decided on, read under the customer's wallet lock. */
export interface RefundClaimFacts {
  amount_nanos: bigint;
  allow_negative: boolean;
  payment_nanos: bigint;
  /** What the payment's other refunds have claimed (pending) or refunded (succeeded). */
  refunded_nanos: bigint;
  grant_id: string;
  /** false once the grant expired or was voided: none of its credit can be refunded from it. */
  grant_open: boolean;
  /** The grant's remaining after the consumption so far is attributed to it. */
  grant_remaining_nanos: bigint;
  /** The part of it no open authorization may still capture. */
  grant_free_nanos: bigint;
  available_nanos: bigint;
}

export type RefundRefusalCode = 'amount_exceeds_refundable' | 'credit_already_spent';

export type RefundClaimDecision =
  /** `from_grant_nanos` comes off the grant's remaining; the rest of the amount off the available balance only. */
  | { action: 'claim'; from_grant_nanos: bigint }
  | { action: 'refuse'; code: RefundRefusalCode; message: string };

/**
 * Decides a refund's claim: never more than is left to refund of the payment; the credit refunded comes off the
 * payment's own grant, and only unspent credit that no open authorization holds may be taken. Less of it than the
 * refund is `credit_already_spent`, unless `allow_negative`: then the grant gives what it has left (held or not) and
 * the rest comes off the available balance alone, which may go below zero.
 */
export function decideRefundClaim(facts: RefundClaimFacts): RefundClaimDecision {
  if (facts.amount_nanos <= 0n) throw new Error('a refund must be positive');
  const left_nanos = refundableNanos(facts.payment_nanos, facts.refunded_nanos);
  if (facts.amount_nanos > left_nanos) {
    return {
      action: 'refuse',
      code: 'amount_exceeds_refundable',
      message:
        `amount_usd ${formatUsd(facts.amount_nanos)} is more than the ${formatUsd(left_nanos)} left to refund ` +
        `of this payment of ${formatUsd(facts.payment_nanos)}`,
    };
  }
  const free_nanos = facts.grant_open ? minBigint(facts.grant_free_nanos, facts.available_nanos) : 0n;
  const unspent_nanos = free_nanos > 0n ? free_nanos : 0n;
  if (facts.amount_nanos <= unspent_nanos) return { action: 'claim', from_grant_nanos: facts.amount_nanos };
  if (facts.allow_negative) {
    const from_grant_nanos = facts.grant_open
      ? minBigint(facts.amount_nanos, facts.grant_remaining_nanos)
      : 0n;
    return { action: 'claim', from_grant_nanos: from_grant_nanos > 0n ? from_grant_nanos : 0n };
  }
  return {
    action: 'refuse',
    code: 'credit_already_spent',
    message:
      `only ${formatUsd(unspent_nanos)} of the ${formatUsd(facts.amount_nanos)} to refund is unspent credit of ` +
      `grant ${facts.grant_id}${facts.grant_open ? '' : ' (it expired or was voided)'}; the rest was spent or is ` +
      `held by open authorizations. Refund at most that, or pass allow_negative: true to take the rest off the ` +
      `available balance (${formatUsd(facts.available_nanos)}), which may go below zero`,
  };
}

/** Refusals that say the request asked too much (HTTP 400, `param: amount_usd` for the amount). */
const INVALID_REFUND_CODES: ReadonlySet<string> = new Set([
  'amount_exceeds_refundable',
  'invalid_amount',
  'invalid_data',
  'constraint_violation',
]);

/**
 * Refusals that are a state conflict (HTTP 409): the credit was spent, the charge cannot be refunded as asked (the
 * gateway has no such charge, or its books disagree), or the account could not run the refund.
 */
const CONFLICT_REFUND_CODES: ReadonlySet<string> = new Set([
  'credit_already_spent',
  'charge_not_found',
  'charge_already_refunded',
  'charge_disputed',
  'amount_too_large',
  // Stripe refused the refund request as invalid for another reason (payments/stripe-gateway.ts).
  'refund_refused',
  'gateway_mismatch',
  'conflict',
  'not_found',
  'queue_full',
]);

/**
 * How a failed refund is answered: 400 for the amount, 409 for a conflict of state, and 402 for every other code,
 * which is the processor declining to refund (its failure code is passed on, as a card decline's is).
 */
export function refundFailureStatus(code: string): 400 | 402 | 409 {
  if (INVALID_REFUND_CODES.has(code)) return 400;
  if (CONFLICT_REFUND_CODES.has(code)) return 409;
  return 402;
}
