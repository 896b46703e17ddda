import type { Mismatch, OurRecord, TimeWindow } from '../billing/reconciliation';
import { queryRows, textArray, type Db } from './connection';
import type { Violation } from './ledger-check';

/**
 * Reconciliation's reads of our books and its reports (`reconciliation_runs`, README "Reconciliation"). The gateway's
 * side is read through the gateway (payments/), the simulated one's from `db/simulated-charges.ts`.
 */

/** The gateway ids and idempotency keys of gateway records whose counterparts on our side are wanted. */
export interface CounterpartKeys {
  gateway_ids: string[];
  idempotency_keys: string[];
}

/**
 * Our payments through `gateway` created in [from, to), and every payment (any time) whose gateway charge id or
 * idempotency key is among `counterparts`: a charge made in the window may be recorded long after it. Any status.
 */
export async function paymentsToReconcile(
  db: Db,
  gateway: string,
  window: TimeWindow,
  counterparts: CounterpartKeys,
): Promise<OurRecord[]> {
  return queryRows<OurRecord>(
    db,
    `SELECT id, customer_id, idempotency_key, gateway_charge_id AS gateway_id, amount_nanos, status, created_at
     FROM payments
     WHERE (gateway = ? AND created_at >= ? AND created_at < ?)
        OR gateway_charge_id = ANY(?::text[]) OR idempotency_key = ANY(?::text[])`,
    [
      gateway,
      window.from,
      window.to,
      textArray(counterparts.gateway_ids),
      textArray(counterparts.idempotency_keys),
    ],
  );
}

/** The idempotency key a refund is sent to the gateway with (activities/refund-credits.ts): `refund:<refund id>`. */
const REFUND_KEY_PREFIX = 'refund:';

/**
 * Our refunds of payments through `gateway` created in [from, to), and every refund (any time) whose gateway refund id
 * or idempotency key is among `counterparts`. A refund still `pending` is in flight; `charge_id` is the gateway's id
 * of the refunded payment.
 */
export async function refundsToReconcile(
  db: Db,
  gateway: string,
  window: TimeWindow,
  counterparts: CounterpartKeys,
): Promise<OurRecord[]> {
  const ids = counterparts.idempotency_keys
    .filter((key) => key.startsWith(REFUND_KEY_PREFIX))
    .map((key) => key.slice(REFUND_KEY_PREFIX.length));
  return queryRows<OurRecord>(
    db,
    `SELECT r.id, r.customer_id, ? || r.id AS idempotency_key, r.gateway_refund_id AS gateway_id, r.amount_nanos,
       r.status, r.created_at, p.gateway_charge_id AS charge_id
     FROM refunds r JOIN payments p ON p.id = r.payment_id
     WHERE (p.gateway = ? AND r.created_at >= ? AND r.created_at < ?)
        OR r.gateway_refund_id = ANY(?::text[]) OR r.id = ANY(?::text[])`,
    [REFUND_KEY_PREFIX, gateway, window.from, window.to, textArray(counterparts.gateway_ids), textArray(ids)],
  );
}

export interface ReconciliationRunRow {
  id: string;
  workflow_id: string;
  started_at: Date;
  finished_at: Date;
  window_from: Date;
  window_to: Date;
  gateway: string;
  payments_checked: number;
  refunds_checked: number;
  mismatches: Mismatch[];
  ledger_violations: Violation[];
  status: 'ok' | 'mismatches';
}

const RUN_COLUMNS = `id, workflow_id, started_at, finished_at, window_from, window_to, gateway, payments_checked,
  refunds_checked, mismatches, ledger_violations, status`;

/**
 * Records a run's report. The id names the workflow run, so an activity retried after writing it replaces the
 * first attempt's report with its own (both read the same books) rather than adding a second one.
 */
export async function recordReconciliationRun(
  db: Db,
  run: Omit<ReconciliationRunRow, 'status'>,
): Promise<ReconciliationRunRow> {
  const status = run.mismatches.length === 0 && run.ledger_violations.length === 0 ? 'ok' : 'mismatches';
  const [row] = await queryRows<ReconciliationRunRow>(
    db,
    `INSERT INTO reconciliation_runs (${RUN_COLUMNS})
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?::jsonb, ?::jsonb, ?)
     ON CONFLICT (id) DO UPDATE SET started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
       payments_checked = EXCLUDED.payments_checked, refunds_checked = EXCLUDED.refunds_checked,
       mismatches = EXCLUDED.mismatches, ledger_violations = EXCLUDED.ledger_violations, status = EXCLUDED.status
     RETURNING ${RUN_COLUMNS}`,
    [
      run.id,
      run.workflow_id,
      run.started_at,
      run.finished_at,
      run.window_from,
      run.window_to,
      run.gateway,
      run.payments_checked,
      run.refunds_checked,
      JSON.stringify(run.mismatches),
      JSON.stringify(run.ledger_violations),
      status,
    ],
  );
  return row!;
}

/** One run's report. */
export async function getReconciliationRun(db: Db, id: string): Promise<ReconciliationRunRow | undefined> {
  const [row] = await queryRows<ReconciliationRunRow>(
    db,
    `SELECT ${RUN_COLUMNS} FROM reconciliation_runs WHERE id = ?`,
    [id],
  );
  return row;
}

/**
 * The runs' reports, newest first. `starting_after` is the last id of the previous page; undefined result when that
 * id names no run.
 */
export async function listReconciliationRuns(
  db: Db,
  page: { limit: number; starting_after?: string },
): Promise<{ data: ReconciliationRunRow[]; has_more: boolean } | undefined> {
  let after: bigint | null = null;
  if (page.starting_after !== undefined) {
    const [cursor] = await queryRows<{ seq: bigint }>(
      db,
      `SELECT seq FROM reconciliation_runs WHERE id = ?`,
      [page.starting_after],
    );
    if (!cursor) return undefined;
    after = cursor.seq;
  }
  const rows = await queryRows<ReconciliationRunRow>(
    db,
    `SELECT ${RUN_COLUMNS} FROM reconciliation_runs WHERE (?::bigint IS NULL OR seq < ?::bigint)
     ORDER BY seq DESC LIMIT ?`,
    [after, after, page.limit + 1],
  );
  return { data: rows.slice(0, page.limit), has_more: rows.length > page.limit };
}
