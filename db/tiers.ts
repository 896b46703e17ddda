import { formatUsd } from '../billing/money';
import {
  limitsView,
  nextAgeRuleAt,
  promotion,
  type PaymentFacts,
  type Tier,
  type TierTable,
} from '../billing/tiers';
import { queryRows, type Db } from './connection';
import { recordEvent } from './events';
import { lockWallet } from './ledger';
import { readWalletLimits, setTierLimits } from './limits';

/**
 * Customers' spend tiers in PostgreSQL, the source of truth (the account workflow caches the tier for its timer,
 * its query and the `BillingTier` search attribute). What a customer has paid is read from `payments`, the record of
 * every charge, so top-ups and auto-recharges count alike (subscription invoices do not: a plan is not API
 * spend); succeeded refunds subtract, and a tier never demotes
 * automatically (billing/tiers.ts `promotion`).
 */

export interface CustomerTier {
  /** null for a customer created before tiers existed, until its account reviews it. */
  tier: string | null;
  tier_since: Date | null;
}

/** The customer's stored tier; undefined for an unknown customer. */
export async function readCustomerTier(db: Db, customer_id: string): Promise<CustomerTier | undefined> {
  const [row] = await queryRows<CustomerTier>(db, `SELECT tier, tier_since FROM customers WHERE id = ?`, [
    customer_id,
  ]);
  return row;
}

/**
 * Lifetime paid (the sum of succeeded charges less their succeeded refunds) and the time of the first succeeded
 * charge (as the payment was recorded, right after the gateway accepted it); 0 and null for a customer who never paid.
 */
export async function readPaymentFacts(
  db: Db,
  customer_id: string,
): Promise<{ lifetime_paid_nanos: bigint; first_payment_at: Date | null }> {
  const [row] = await queryRows<{ lifetime_paid_nanos: bigint; first_payment_at: Date | null }>(
    db,
    `SELECT (COALESCE(sum(amount_nanos), 0) - (SELECT COALESCE(sum(r.amount_nanos), 0) FROM refunds r
               WHERE r.customer_id = ? AND r.status = 'succeeded'))::bigint AS lifetime_paid_nanos,
            min(created_at) AS first_payment_at
     FROM payments WHERE customer_id = ? AND status = 'succeeded' AND idempotency_key NOT LIKE 'invoice:%'`,
    [customer_id, customer_id],
  );
  return row ?? { lifetime_paid_nanos: 0n, first_payment_at: null };
}

export function paymentFactsOf(facts: {
  lifetime_paid_nanos: bigint;
  first_payment_at: Date | null;
}): PaymentFacts {
  return {
    lifetime_paid_nanos: facts.lifetime_paid_nanos,
    first_payment_at_ms: facts.first_payment_at?.getTime() ?? null,
  };
}

export interface TierReview {
  tier: Tier;
  previous_id: string | null;
  /** The tier changed now (a promotion, or a first assignment). */
  changed: boolean;
  /** `tier.promoted` was recorded now. */
  promoted: boolean;
  lifetime_paid_nanos: bigint;
  first_payment_at: Date | null;
  /** When time alone promotes next (the account workflow's timer), or null. */
  next_review_at: Date | null;
}

/**
 * Reviews one customer's tier at `now_ms` in one transaction under the wallet lock: reads what it paid, promotes it
 * when the rules say so (never demotes), writes the tier and its limits to the wallet, and records `tier.promoted`
 * (occurrence `tier:<customer>:<tier>`, so once per tier reached, across retries and crashes). The tier's limits
 * are written also when the tier stays but the table changed them (TIERS_PATH replaced), so a new table reaches an
 * account at its next review. Idempotent: a second review with the same facts changes nothing. Undefined for an
 * unknown customer.
 */
export async function reviewCustomerTier(
  db: Db,
  input: { customer_id: string; table: TierTable; now_ms: number; billing_day_ms: number },
): Promise<TierReview | undefined> {
  return db.transaction(async (trx) => {
    if (!(await readCustomerTier(trx, input.customer_id))) return undefined;
    // Under the lock, so that two reviews of one customer (a timer and a payment) decide one after the other.
    await lockWallet(trx, input.customer_id);
    const stored = (await readCustomerTier(trx, input.customer_id))!;
    const paid = await readPaymentFacts(trx, input.customer_id);
    const facts = paymentFactsOf(paid);
    const decision = promotion(input.table, stored.tier, facts, input.now_ms, input.billing_day_ms);
    const { tier } = decision;
    // A first assignment of the first tier (a customer from before tiers) is not a promotion; anything higher is.
    const promoted = decision.changed && (decision.previous_id !== null || tier.index > 0);
    if (decision.changed) {
      await queryRows(trx, `UPDATE customers SET tier = ?, tier_since = ? WHERE id = ?`, [
        tier.id,
        new Date(input.now_ms),
        input.customer_id,
      ]);
    }
    const wallet = await readWalletLimits(trx, input.customer_id);
    if (decision.changed || !wallet || !sameLimits(wallet.tier, tier.limits)) {
      await setTierLimits(trx, input.customer_id, tier.limits);
    }
    if (promoted) {
      await recordEvent(trx, {
        customer_id: input.customer_id,
        type: 'tier.promoted',
        occurrence_key: `tier:${input.customer_id}:${tier.id}`,
        data: {
          customer_id: input.customer_id,
          tier: tier.id,
          previous_tier: stored.tier,
          lifetime_paid_usd: formatUsd(paid.lifetime_paid_nanos),
          first_payment_at: paid.first_payment_at?.toISOString() ?? null,
          limits: limitsView(tier.limits),
          promoted_at: new Date(input.now_ms).toISOString(),
        },
      });
    }
    const next = nextAgeRuleAt(input.table, tier.id, facts, input.now_ms, input.billing_day_ms);
    // Where the periodic sweep looks for reviews overdue (db/stalled-accounts.ts): the workflow's timer is set for it.
    const review_at = next === null ? null : new Date(next);
    await queryRows(
      trx,
      `UPDATE customers SET tier_review_at = ? WHERE id = ? AND tier_review_at IS DISTINCT FROM ?::timestamptz`,
      [review_at, input.customer_id, review_at],
    );
    return {
      tier,
      previous_id: decision.previous_id,
      changed: decision.changed,
      promoted,
      lifetime_paid_nanos: paid.lifetime_paid_nanos,
      first_payment_at: paid.first_payment_at,
      next_review_at: review_at,
    };
  });
}

function sameLimits(
  a: { rpm: bigint | null; tpm: bigint | null; monthly_usage_limit_nanos: bigint | null },
  b: { rpm: bigint | null; tpm: bigint | null; monthly_usage_limit_nanos: bigint | null },
): boolean {
  return a.rpm === b.rpm && a.tpm === b.tpm && a.monthly_usage_limit_nanos === b.monthly_usage_limit_nanos;
}
