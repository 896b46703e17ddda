import { formatUsd } from '../billing/money';
import type { Db } from '../db/connection';
import { expireGrants } from '../db/ledger';

/** Writes off the remainder of every grant of the customer that has expired by `now` (idempotent per grant). */
export function expireCreditActivities(deps: { db: Db }) {
  return {
    async expireCredit(input: {
      customer_id: string;
      now: string;
    }): Promise<{ grant_id: string; amount_usd: string }[]> {
      const writeOffs = await expireGrants(deps.db, input.customer_id, new Date(input.now));
      return writeOffs.map((w) => ({ grant_id: w.grant_id, amount_usd: formatUsd(w.amount_nanos) }));
    },
  };
}
