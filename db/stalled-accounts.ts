import type { WakeReason } from '../billing/account';
import { queryRows, type Db } from './connection';

/**
 * Accounts whose durable work is overdue in PostgreSQL: something their account workflow should have done more than
 * `overdue_by_ms` ago and has not. A healthy account does each of these on its own timer or signal; one that an
 * operator terminated, or whose signal was lost (the API crashed between recording a request and signalling it),
 * does not, and would wait for the customer's next request. The periodic sweep wakes these.
 *
 * - `renewal_overdue`: an active subscription's period ended and it was not renewed;
 * - `expiry_overdue`: a grant passed its expiry and was not retired, so its credit is still spendable;
 * - `request_pending`: a top-up, grant, refund or subscription change is still pending (a top-up whose charge waits
 *   for the customer, SCA, is not: only the customer or a webhook can finish it).
 *
 * Oldest overdue first, at most `limit` customers, each with every reason that applies.
 */
export async function stalledAccounts(
  db: Db,
  at: Date,
  overdue_by_ms: number,
  limit: number,
): Promise<{ customer_id: string; reasons: WakeReason[] }[]> {
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
     SELECT customer_id, array_agg(DISTINCT reason ORDER BY reason) AS reasons
     FROM overdue GROUP BY customer_id ORDER BY min(since), customer_id LIMIT ?`,
    [at, overdue_by_ms, limit],
  );
}
