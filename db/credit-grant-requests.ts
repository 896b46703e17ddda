import { execute, queryRows, type Db } from './connection';
import { PermanentError } from './errors';

/**
 * Operator credit grants as they were asked for (migration 20261130153700_account_requests). The API records the
 * request, the account workflow grants it (the ledger's grant has the same id) or refuses it, and the API reads
 * the outcome here.
 */

export type GrantRequestStatus = 'pending' | 'granted' | 'refused';

export interface GrantRequestRow {
  id: string;
  customer_id: string;
  amount_nanos: bigint;
  source: 'promotion' | 'goodwill';
  reason: string | null;
  expires_at: Date | null;
  status: GrantRequestStatus;
  failure_code: string | null;
  failure_message: string | null;
  created_at: Date;
  settled_at: Date | null;
}

const COLUMNS = `id, customer_id, amount_nanos, source, reason, expires_at, status, failure_code, failure_message,
  created_at, settled_at`;

/**
 * Records a grant request as pending; a repeat with the same id returns the stored row (whatever its status). The
 * same id asking for something else is a PermanentError (`conflict`).
 */
export async function recordGrantRequest(
  db: Db,
  input: Pick<GrantRequestRow, 'id' | 'customer_id' | 'amount_nanos' | 'source' | 'reason' | 'expires_at'>,
): Promise<GrantRequestRow> {
  await execute(
    db,
    `INSERT INTO credit_grant_requests (id, customer_id, amount_nanos, source, reason, expires_at)
     VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
    [input.id, input.customer_id, input.amount_nanos, input.source, input.reason, input.expires_at],
  );
  const row = await getGrantRequest(db, input.id);
  if (!row) throw new Error(`grant request ${input.id} vanished after insert`);
  if (row.customer_id !== input.customer_id || row.amount_nanos !== input.amount_nanos) {
    throw new PermanentError('conflict', `grant ${input.id} was already requested with another amount`);
  }
  return row;
}

export async function getGrantRequest(db: Db, id: string): Promise<GrantRequestRow | undefined> {
  const [row] = await queryRows<GrantRequestRow>(
    db,
    `SELECT ${COLUMNS} FROM credit_grant_requests WHERE id = ?`,
    [id],
  );
  return row;
}

/**
 * Settles a pending request once; a settled one keeps its first outcome. A grant made through the workflow's
 * update (no request row) is left alone.
 */
export async function settleGrantRequest(
  db: Db,
  id: string,
  outcome: { status: 'granted' } | { status: 'refused'; failure_code: string; failure_message: string },
): Promise<void> {
  await execute(
    db,
    `UPDATE credit_grant_requests SET status = ?, failure_code = ?, failure_message = ?, settled_at = now()
     WHERE id = ? AND status = 'pending'`,
    [
      outcome.status,
      outcome.status === 'refused' ? outcome.failure_code : null,
      outcome.status === 'refused' ? outcome.failure_message : null,
      id,
    ],
  );
}

/** The customer's pending grant requests, oldest first, at most `limit`. */
export async function pendingGrantRequests(
  db: Db,
  customer_id: string,
  limit: number,
): Promise<GrantRequestRow[]> {
  return queryRows<GrantRequestRow>(
    db,
    `SELECT ${COLUMNS} FROM credit_grant_requests WHERE customer_id = ? AND status = 'pending'
     ORDER BY created_at, id LIMIT ?`,
    [customer_id, limit],
  );
}

/**
 * Which of the given top-up, grant-request, subscription-change and refund ids are no longer pending (one statement for any number of ids: the
 * API's waiters ask together). A top-up whose charge waits for the customer (SCA: `payment_id` set while pending) has
 * its answer too: 202 pending, until Stripe's webhook settles it. Ids are [A-Za-z0-9_]: they are passed as one comma-separated text.
 */
export async function settledRequestIds(db: Db, ids: readonly string[]): Promise<string[]> {
  if (ids.length === 0) return [];
  const list = ids.join(',');
  const rows = await queryRows<{ id: string }>(
    db,
    `SELECT id FROM top_ups WHERE id = ANY(string_to_array(?, ','))
       AND (status <> 'pending' OR payment_id IS NOT NULL)
     UNION ALL
     SELECT id FROM credit_grant_requests WHERE id = ANY(string_to_array(?, ',')) AND status <> 'pending'
     UNION ALL
     SELECT id FROM subscription_changes WHERE id = ANY(string_to_array(?, ',')) AND status <> 'pending'
     UNION ALL
     SELECT id FROM refunds WHERE id = ANY(string_to_array(?, ',')) AND status <> 'pending'`,
    [list, list, list, list],
  );
  return rows.map((r) => r.id);
}
