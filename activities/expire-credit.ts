import { formatUsd } from '../billing/money';
import type { Db } from '../db/connection';
import { claimsSettleBy, expireGrants } from '../db/ledger';

export interface ExpireCreditResult {
  /** What this call wrote off per grant that expired now; `held_usd` is kept for the holds open at its expiry. */
  written_off: { grant_id: string; amount_usd: string; held_usd: string }[];
  /**
   * Per grant that expired with holds open: when those holds settle at the latest (ISO-8601), so the account wakes
   * then to write off what they gave back. (Results recorded before this field are arrays.)
   */
  claims_settle_by: { grant_id: string; expires_at: string }[];
}

/**
 * Retires every grant of the customer that has expired by `now` (idempotent per grant): writes off what no open hold
 * can still capture and settles what earlier expiries kept for holds that have settled since.
 */
export function expireCreditActivities(deps: { db: Db }) {
  return {
    async expireCredit(input: { customer_id: string; now: string }): Promise<ExpireCreditResult> {
      const retirements = await expireGrants(deps.db, input.customer_id, new Date(input.now));
      const settleBy = await claimsSettleBy(deps.db, input.customer_id);
      // Voided grants wait for their holds too; the account wakes for them alike.
      return {
        written_off: retirements.map((r) => ({
          grant_id: r.grant_id,
          amount_usd: formatUsd(r.amount_nanos),
          held_usd: formatUsd(r.held_nanos),
        })),
        claims_settle_by: settleBy.map((c) => ({
          grant_id: c.grant_id,
          expires_at: c.settle_by.toISOString(),
        })),
      };
    },
  };
}
