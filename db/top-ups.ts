import type { Knex } from 'knex';
import { execute, queryRows, type Db } from './connection';

export type TopUpStatus = 'pending' | 'succeeded' | 'failed';

export interface TopUpRow {
  id: string;
  customer_id: string;
  amount_nanos: bigint;
  status: TopUpStatus;
  failure_code: string | null;
  payment_id: string | null;
  grant_id: string | null;
  created_at: Date;
  updated_at: Date;
}

const TOP_UP_COLUMNS =
  'id, customer_id, amount_nanos, status, failure_code, payment_id, grant_id, created_at, updated_at';

/** Records a requested top-up as pending; a repeat with the same id returns the stored row unchanged. */
export async function recordTopUp(
  db: Db,
  input: { id: string; customer_id: string; amount_nanos: bigint },
): Promise<TopUpRow> {
  await execute(
    db,
    `INSERT INTO top_ups (id, customer_id, amount_nanos, status) VALUES (?, ?, ?, 'pending')
     ON CONFLICT (id) DO NOTHING`,
    [input.id, input.customer_id, input.amount_nanos],
  );
  const row = await getTopUp(db, input.id);
  if (!row) throw new Error(`top-up ${input.id} vanished after insert`);
  if (row.customer_id !== input.customer_id || row.amount_nanos !== input.amount_nanos) {
    throw new Error(`top-up ${input.id} already exists with another customer or amount`);
  }
  return row;
}

export async function getTopUp(q: Db | Knex.Transaction, id: string): Promise<TopUpRow | undefined> {
  const result = await queryRows<TopUpRow>(q, `SELECT ${TOP_UP_COLUMNS} FROM top_ups WHERE id = ?`, [id]);
  return result[0];
}

/**
 * Moves a pending top-up to its final status. A top-up that is already final keeps its first outcome: the
 * update is conditional on `status = 'pending'`, so a retried activity cannot flip a success into a failure.
 */
export async function settleTopUp(
  q: Db | Knex.Transaction,
  id: string,
  outcome:
    | { status: 'succeeded'; payment_id: string; grant_id: string }
    | { status: 'failed'; payment_id: string | null; failure_code: string },
): Promise<TopUpRow> {
  await execute(
    q,
    `UPDATE top_ups SET status = ?, payment_id = ?, grant_id = ?, failure_code = ?, updated_at = now()
     WHERE id = ? AND status = 'pending'`,
    [
      outcome.status,
      outcome.payment_id,
      outcome.status === 'succeeded' ? outcome.grant_id : null,
      outcome.status === 'failed' ? outcome.failure_code : null,
      id,
    ],
  );
  const row = await getTopUp(q, id);
  if (!row) throw new Error(`top-up ${id} does not exist`);
  return row;
}
