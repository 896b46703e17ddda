import type { WakeReason } from '../billing/account';
import { execute, queryRows, textArray, type Db } from './connection';

/**
 * Accounts whose durable work is overdue in PostgreSQL: something their account workflow should have done more than
 * `overdue_by_ms` ago and has not. A healthy account does each of these on its own timer or signal; one that an
 * operator terminated, or whose signal was lost (the API crashed between recording a request and signalling it),
 * does not, and would wait for the customer's next request. The periodic sweep wakes these.
 *
 * - `renewal_overdue`: an active subscription's period ended and it was not renewed;
 * - `expiry_overdue`: a grant passed its expiry and was not retired, so its credit is still spendable;
 * - `tier_review_overdue`: a spend-tier age rule was met (`customers.tier_review_at`) and the tier was not reviewed;
 * - `request_pending`: a top-up, grant, refund or subscription change is still pending (a top-up whose charge waits
 *   for the customer, SCA, is not: only the customer or a webhook can finish it).
 *
 * A wake changes nothing in PostgreSQL by itself, and the oldest overdue rows are often work still in progress (a
 * charge retrying through a gateway outage) rather than lost: so an account woken before (`noteWakes`) is woken again
 * only after a backoff that doubles with each wake in a row, from `overdue_by_ms` (at least a second) up to
 * `max_backoff_ms` (ACCOUNT_WAKE_AFTER and ACCOUNT_WAKE_MAX_BACKOFF), and
 * accounts never woken (or not for a while) come first. No account can hold the others' turn, and none is signalled
 * every sweep for as long as its work stays stuck.
 *
 * At most `limit` customers, each with every reason that applies.
 */
export async function stalledAccounts(
  db: Db,
  at: Date,
  timing: { overdue_by_ms: number; max_backoff_ms: number },
  limit: number,
): Promise<{ customer_id: string; reasons: WakeReason[] }[]> {
  const { overdue_by_ms, max_backoff_ms } = timing;
  return queryRows<{ customer_id: string; reasons: WakeReason[] }>(
    db,
    `WITH cutoff AS (SELECT ?::timestamptz - make_interval(secs => ? / 1000.0) AS at),
     overdue AS (
       SELECT customer_id, 'renewal_overdue' AS reason, current_period_end AS since
       FROM subscriptions WHERE status = 'active' AND current_period_end < (SELECT at FROM cutoff)
       UNION ALL
       SELECT customer_id, 'expiry_overdue', expires_at
       FROM credit_grants WHERE closed_at IS NULL AND closed_reason IS NULL AND expires_at < (SELECT at FROM cutoff)
       UNION ALL
       SELECT id, 'tier_review_overdue', tier_review_at
       FROM customers WHERE tier_review_at < (SELECT at FROM cutoff)
       UNION ALL
       SELECT customer_id, 'request_pending', created_at
       FROM top_ups t WHERE status = 'pending' AND created_at < (SELECT at FROM cutoff)
         AND (payment_id IS NULL OR EXISTS (
           SELECT 1 FROM payments p WHERE p.id = t.payment_id AND p.status <> 'pending'))
       UNION ALL
       SELECT customer_id, 'request_pending', created_at
       FROM credit_grant_requests WHERE status = 'pending' AND created_at < (SELECT at FROM cutoff)
       UNION ALL
       SELECT customer_id, 'request_pending', created_at
       FROM refunds WHERE status = 'pending' AND created_at < (SELECT at FROM cutoff)
       UNION ALL
       SELECT customer_id, 'request_pending', created_at
       FROM subscription_changes WHERE status = 'pending' AND created_at < (SELECT at FROM cutoff)
     )
     SELECT o.customer_id, array_agg(DISTINCT o.reason ORDER BY o.reason) AS reasons
     FROM overdue o LEFT JOIN account_wakes w ON w.customer_id = o.customer_id
     WHERE w.customer_id IS NULL OR w.woken_at <= ?::timestamptz - make_interval(secs => LEAST(
       ? / 1000.0 * power(2, LEAST(w.wakes, 30) - 1), ? / 1000.0))
     GROUP BY o.customer_id, w.woken_at ORDER BY w.woken_at NULLS FIRST, min(o.since), o.customer_id LIMIT ?`,
    [at, overdue_by_ms, at, Math.max(overdue_by_ms, 1_000), max_backoff_ms, limit],
  );
}

/**
 * Notes that the sweep woke these accounts at `at`: one more wake in a row, or the first of a new row when the last
 * wake is older than twice the longest backoff (the account's work was done in between).
 */
export async function noteWakes(
  db: Db,
  customer_ids: readonly string[],
  at: Date,
  max_backoff_ms: number,
): Promise<void> {
  if (customer_ids.length === 0) return;
  await execute(
    db,
    `INSERT INTO account_wakes (customer_id, woken_at, wakes) SELECT id, ?::timestamptz, 1 FROM unnest(?::text[]) AS id
     ON CONFLICT (customer_id) DO UPDATE SET
       wakes = CASE WHEN account_wakes.woken_at > EXCLUDED.woken_at - make_interval(secs => ? / 1000.0)
                    THEN account_wakes.wakes + 1 ELSE 1 END,
       woken_at = EXCLUDED.woken_at`,
    [at, textArray(customer_ids), 2 * max_backoff_ms],
  );
}
