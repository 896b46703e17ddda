import { type AccountTier, DEFAULT_BILLING_DAY_MS } from '../billing/account';
import { formatUsd } from '../billing/money';
import { loadDefaultTierTable, type TierTable } from '../billing/tiers';
import type { Db } from '../db/connection';
import { reviewCustomerTier } from '../db/tiers';

/**
 * The tier review the account workflow runs after every payment that succeeded (a top-up, an auto-recharge: any
 * command that may have charged a card) and on its durable timer at the instant the next age rule is met. The
 * tier table is the worker's (`TIERS_PATH`, else the bundled OpenAI table); the day length is the run's settings'.
 */
export function reviewTierActivities(deps: { db: Db; tiers?: TierTable }) {
  const table = deps.tiers ?? loadDefaultTierTable();
  return {
    /**
     * Promotes the customer if what it paid and how long ago it first paid earn a higher tier now (see
     * db/tiers.ts `reviewCustomerTier`: tier, wallet limits and `tier.promoted` in one transaction), and answers the
     * tier with the instant of the next age rule for the workflow's timer. Null for an unknown customer.
     */
    async reviewTier(input: {
      customer_id: string;
      billing_day_ms?: number;
      /** The workflow's time (ISO-8601); the review runs at the later of it and this clock. */
      now?: string;
    }): Promise<AccountTier | null> {
      // Never earlier than the workflow's clock: a timer set for an age rule's instant must find the rule met even
      // if this machine's clock is a little behind, or the workflow would set the same timer again.
      const workflow_ms = input.now === undefined ? Number.NaN : Date.parse(input.now);
      const review = await reviewCustomerTier(deps.db, {
        customer_id: input.customer_id,
        table,
        now_ms: Number.isNaN(workflow_ms) ? Date.now() : Math.max(Date.now(), workflow_ms),
        billing_day_ms: input.billing_day_ms ?? DEFAULT_BILLING_DAY_MS,
      });
      if (!review) return null;
      return {
        tier: review.tier.id,
        previous_tier: review.previous_id,
        promoted: review.promoted,
        lifetime_paid_usd: formatUsd(review.lifetime_paid_nanos),
        first_payment_at: review.first_payment_at?.toISOString() ?? null,
        next_review_at: review.next_review_at?.toISOString() ?? null,
      };
    },
  };
}
