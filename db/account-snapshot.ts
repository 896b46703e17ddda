import { queryRows, type Db } from './connection';
import { pendingGrantRequests, type GrantRequestRow } from './credit-grant-requests';
import { pendingTopUps, topUpTotals, type TopUpRow, type TopUpTotals } from './top-ups';

/**
 * What an account workflow caches, read from the tables that own it. A run that starts without carried state (the
 * first run, or one after an operator's `temporal workflow terminate`) rebuilds its state from this, so the
 * database stays the one source of truth and the workflow's state is a cache of it.
 */
export interface AccountFacts {
  payment_method: string | null;
  /** Open grants that expire, soonest first. */
  grant_expiries: { grant_id: string; expires_at: Date }[];
  top_ups: TopUpTotals;
  /** Requests recorded but not settled, oldest first, at most `pending_limit` of each kind. */
  pending_top_ups: TopUpRow[];
  pending_grants: GrantRequestRow[];
  /** The latest threshold crossing delivered to the account, and how many were. */
  last_crossing: {
    id: bigint;
    threshold_nanos: bigint;
    balance_after_nanos: bigint;
    crossed_at: Date;
  } | null;
  threshold_crossings: number;
}

/** Reads the account's facts; undefined when the customer does not exist. */
export async function loadAccountFacts(
  db: Db,
  customer_id: string,
  pending_limit: number,
): Promise<AccountFacts | undefined> {
  const [customer] = await queryRows<{ payment_method: string | null }>(
    db,
    `SELECT payment_method FROM customers WHERE id = ?`,
    [customer_id],
  );
  if (!customer) return undefined;
  const grant_expiries = await queryRows<{ grant_id: string; expires_at: Date }>(
    db,
    `SELECT id AS grant_id, expires_at FROM credit_grants
     WHERE customer_id = ? AND closed_at IS NULL AND expires_at IS NOT NULL ORDER BY expires_at, id`,
    [customer_id],
  );
  const crossings = await queryRows<{
    id: bigint;
    threshold_nanos: bigint;
    balance_after_nanos: bigint;
    crossed_at: Date;
    delivered: number;
  }>(
    db,
    `SELECT id, threshold_nanos, balance_after_nanos, crossed_at,
            count(*) OVER ()::int AS delivered
     FROM threshold_crossings WHERE customer_id = ? AND signaled_at IS NOT NULL ORDER BY id DESC LIMIT 1`,
    [customer_id],
  );
  const last = crossings[0];
  return {
    payment_method: customer.payment_method,
    grant_expiries,
    top_ups: await topUpTotals(db, customer_id),
    pending_top_ups: await pendingTopUps(db, customer_id, pending_limit),
    pending_grants: await pendingGrantRequests(db, customer_id, pending_limit),
    last_crossing: last
      ? {
          id: last.id,
          threshold_nanos: last.threshold_nanos,
          balance_after_nanos: last.balance_after_nanos,
          crossed_at: last.crossed_at,
        }
      : null,
    threshold_crossings: last?.delivered ?? 0,
  };
}
