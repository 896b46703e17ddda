import type { CrossingKind } from '../billing/account';
import { execute, queryRows, type Db } from './connection';

/**
 * The threshold-crossing outbox (`threshold_crossings`), written by the hot path in the same statement as the debit
 * and drained by the API's crossing notifier. Delivery holds no transaction open across Temporal calls: rows are
 * claimed with a lease in one short statement, signalled, then marked delivered (or postponed after a failure).
 */

export interface PendingCrossing {
  id: bigint;
  customer_id: string;
  kind: CrossingKind;
  threshold_nanos: bigint;
  /** This month's spend after the debit (budget crossings; null for the others). */
  month_spend_nanos: bigint | null;
  balance_after_nanos: bigint;
  crossed_at: Date;
  /** How many times a deliverer has claimed this row, this claim included. */
  delivery_attempts: number;
}

/**
 * Claims up to `limit` undelivered crossings, oldest first, for `lease_ms`: nobody else claims them until the lease
 * ends, so a deliverer that crashes mid-batch gives its rows back by doing nothing. SKIP LOCKED lets several
 * processes claim disjoint batches at once without waiting on each other. A crossing is claimed only once every
 * older crossing of its customer is delivered: the account workflow ignores a crossing id at or below the last it
 * saw, so delivering a newer one first would lose the older one.
 */
export async function claimCrossings(db: Db, limit: number, lease_ms: number): Promise<PendingCrossing[]> {
  return queryRows<PendingCrossing>(
    db,
    `UPDATE threshold_crossings c
     SET claimed_until = now() + make_interval(secs => ? / 1000.0), delivery_attempts = c.delivery_attempts + 1
     WHERE c.id IN (
       SELECT t.id FROM threshold_crossings t
       WHERE t.signaled_at IS NULL AND (t.claimed_until IS NULL OR t.claimed_until <= now())
         AND NOT EXISTS (SELECT 1 FROM threshold_crossings o
                         WHERE o.customer_id = t.customer_id AND o.id < t.id AND o.signaled_at IS NULL)
       ORDER BY t.id LIMIT ? FOR UPDATE OF t SKIP LOCKED)
     RETURNING c.id, c.customer_id, c.kind, c.threshold_nanos, c.month_spend_nanos, c.balance_after_nanos, c.crossed_at, c.delivery_attempts`,
    [lease_ms, limit],
  ).then((rows) => rows.sort((a, b) => (a.id < b.id ? -1 : 1)));
}

/** Marks crossings delivered (whoever holds their claim now: delivered is delivered). Returns how many changed. */
export async function markCrossingsDelivered(db: Db, ids: readonly bigint[]): Promise<number> {
  if (ids.length === 0) return 0;
  return execute(
    db,
    `UPDATE threshold_crossings SET signaled_at = now(), claimed_until = NULL
     WHERE id = ANY(?::bigint[]) AND signaled_at IS NULL`,
    [pgArray(ids)],
  );
}

/**
 * Gives failed deliveries back for a retry after a backoff that doubles with each attempt, from `base_ms` up to
 * `max_ms`. A crossing is never abandoned (the lifecycle will act on it), so it waits for Temporal to come back.
 */
export async function postponeCrossings(
  db: Db,
  ids: readonly bigint[],
  backoff: { base_ms: number; max_ms: number },
): Promise<void> {
  if (ids.length === 0) return;
  await execute(
    db,
    `UPDATE threshold_crossings
     SET claimed_until = now() + make_interval(secs => least(?, ? * power(2, greatest(delivery_attempts - 1, 0))) / 1000.0)
     WHERE id = ANY(?::bigint[]) AND signaled_at IS NULL`,
    [backoff.max_ms, backoff.base_ms, pgArray(ids)],
  );
}

/** How many crossings await delivery (claimed or not); cheap through the partial index on undelivered rows. */
export async function countPendingCrossings(db: Db): Promise<number> {
  const [row] = await queryRows<{ n: number }>(
    db,
    `SELECT count(*)::int AS n FROM threshold_crossings WHERE signaled_at IS NULL`,
  );
  return row?.n ?? 0;
}

/** A PostgreSQL array literal of ids: one binding, whatever the count. */
function pgArray(ids: readonly bigint[]): string {
  return `{${ids.join(',')}}`;
}
