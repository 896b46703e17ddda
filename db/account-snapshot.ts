import type { CrossingKind } from '../billing/account';
import { queryRows, type Db } from './connection';
import { pendingGrantRequests, type GrantRequestRow } from './credit-grant-requests';
import { pendingRefunds, type RefundRow } from './refunds';
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
  pending_refunds: RefundRow[];
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
    // An open grant wakes the account at its expiry; one that already expired or was voided while holds were open
    // wakes it when those holds settle at the latest (past times are the hold sweep's: see db/ledger.ts).
    `SELECT grant_id, expires_at FROM (
       SELECT g.id AS grant_id, g.closed_reason,
         CASE WHEN g.closed_reason IS NULL THEN g.expires_at
              ELSE (SELECT max(a.expires_at) FROM credit_grant_holds c JOIN authorizations a ON a.id = c.authorization_id
                    WHERE c.grant_id = g.id AND c.settled_at IS NULL) END AS expires_at
       FROM credit_grants g WHERE g.customer_id = ? AND g.closed_at IS NULL) due
     WHERE expires_at IS NOT NULL AND (closed_reason IS NULL OR expires_at > now())
     ORDER BY expires_at, grant_id`,
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
    pending_refunds: await pendingRefunds(db, customer_id, pending_limit),
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

/** A delivered crossing the account has not acted on yet (see `unhandledCrossings`). */
export interface UnhandledCrossing {
  id: bigint;
  kind: CrossingKind;
  threshold_nanos: bigint;
  balance_after_nanos: bigint;
  month_spend_nanos: bigint | null;
  crossed_at: Date;
}

/**
 * Among the customer's `window` latest delivered crossings, those the account has not acted on, oldest first: a
 * `recharge` crossing whose recharge is not settled (no row, or one still pending: its charge step may not have run),
 * any other kind without its event (`crossing:<id>`). A run that
 * starts without carried state (after a terminate) acts on them, so a crossing signalled to a run that ended before
 * acting is not lost. The window bounds the work (and how far back a rebuilt account reaches).
 */
export async function unhandledCrossings(
  db: Db,
  customer_id: string,
  window: number,
): Promise<UnhandledCrossing[]> {
  return queryRows<UnhandledCrossing>(
    db,
    `SELECT c.id, c.kind, c.threshold_nanos, c.balance_after_nanos, c.month_spend_nanos, c.crossed_at
     FROM (SELECT * FROM threshold_crossings WHERE customer_id = ? AND signaled_at IS NOT NULL
           ORDER BY id DESC LIMIT ?) c
     WHERE CASE WHEN c.kind = 'recharge'
                THEN NOT EXISTS (SELECT 1 FROM auto_recharges r WHERE r.crossing_id = c.id AND r.status <> 'pending')
                ELSE NOT EXISTS (SELECT 1 FROM events e WHERE e.occurrence_key = 'crossing:' || c.id) END -- billing/crossing-events.ts
     ORDER BY c.id`,
    [customer_id, window],
  );
}
