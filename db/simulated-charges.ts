import type { GatewayRecord, TimeWindow } from '../billing/reconciliation';
import { type Db, execute, queryRows } from './connection';

/**
 * The simulated gateway's own books (`simulated_charges`): what a card processor would hold on its side, keyed
 * by the idempotency key exactly as Stripe keys a request.
 */

export interface SimulatedChargeRow {
  id: string;
  status: 'succeeded' | 'failed';
  decline_code: string | null;
  payment_method: string;
}

/**
 * Records a charge unless one with the same idempotency key exists, and returns the stored one: a retried charge
 * gets the first outcome and never charges twice.
 */
export async function recordSimulatedCharge(
  db: Db,
  charge: SimulatedChargeRow & { idempotency_key: string; customer_ref: string; amount_cents: number },
): Promise<SimulatedChargeRow> {
  await execute(
    db,
    `INSERT INTO simulated_charges (id, idempotency_key, customer_ref, payment_method, amount_cents, status,
       decline_code)
     VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING`,
    [
      charge.id,
      charge.idempotency_key,
      charge.customer_ref,
      charge.payment_method,
      charge.amount_cents,
      charge.status,
      charge.decline_code,
    ],
  );
  const stored = await queryRows<SimulatedChargeRow>(
    db,
    `SELECT id, status, decline_code, payment_method FROM simulated_charges WHERE idempotency_key = ?`,
    [charge.idempotency_key],
  );
  const row = stored[0];
  if (!row) throw new Error(`simulated charge ${charge.idempotency_key} vanished after insert`);
  return row;
}

export type SimulatedRefundResult =
  | { status: 'succeeded'; refund_id: string }
  | { status: 'failed'; refund_id: null; failure_code: 'charge_not_found' | 'amount_too_large' };

/**
 * Refunds part of a simulated charge, once per idempotency key, in one statement: the charge row is locked, and
 * a refund that would take the refunded total past the charge is refused (as Stripe refuses it), so concurrent
 * refunds of one charge never exceed it. A retry with the same key returns the first refund.
 */
export async function recordSimulatedRefund(
  db: Db,
  refund: { id: string; idempotency_key: string; charge_id: string; amount_cents: number },
): Promise<SimulatedRefundResult> {
  const rows = await queryRows<{ id: string | null; charge_found: boolean }>(
    db,
    `WITH existing AS (
       SELECT id FROM simulated_refunds WHERE idempotency_key = ?
     ), charge AS (
       SELECT c.id, c.amount_cents FROM simulated_charges c
       WHERE c.id = ? AND c.status = 'succeeded' AND NOT EXISTS (SELECT 1 FROM existing)
       FOR UPDATE
     ), inserted AS (
       INSERT INTO simulated_refunds (id, idempotency_key, charge_id, amount_cents)
       SELECT ?, ?, charge.id, ? FROM charge
       WHERE charge.amount_cents >= ? + (SELECT COALESCE(sum(r.amount_cents), 0) FROM simulated_refunds r
                                         WHERE r.charge_id = charge.id)
       ON CONFLICT (idempotency_key) DO NOTHING
       RETURNING id
     )
     SELECT COALESCE((SELECT id FROM existing), (SELECT id FROM inserted)) AS id,
            EXISTS (SELECT 1 FROM simulated_charges WHERE id = ? AND status = 'succeeded') AS charge_found`,
    [
      refund.idempotency_key,
      refund.charge_id,
      refund.id,
      refund.idempotency_key,
      refund.amount_cents,
      refund.amount_cents,
      refund.charge_id,
    ],
  );
  const row = rows[0]!;
  if (row.id !== null) return { status: 'succeeded', refund_id: row.id };
  return {
    status: 'failed',
    refund_id: null,
    failure_code: row.charge_found ? 'amount_too_large' : 'charge_not_found',
  };
}

/** The simulated gateway's charges created in [from, to), newest first, at most `max` (for reconciliation). */
export function listSimulatedCharges(db: Db, window: TimeWindow, max: number): Promise<GatewayRecord[]> {
  return listBooks(
    db,
    `SELECT id, idempotency_key, amount_cents, status, created_at FROM simulated_charges`,
    window,
    max,
  );
}

/** The simulated gateway's refunds created in [from, to), newest first, at most `max`; every one succeeded. */
export function listSimulatedRefunds(db: Db, window: TimeWindow, max: number): Promise<GatewayRecord[]> {
  return listBooks(
    db,
    `SELECT id, idempotency_key, charge_id, amount_cents, 'succeeded' AS status, created_at FROM simulated_refunds`,
    window,
    max,
  );
}

/** One of the books' rows created in the window, newest first; cents come out of `bigint` as numbers. */
async function listBooks(db: Db, select: string, window: TimeWindow, max: number): Promise<GatewayRecord[]> {
  const rows = await queryRows<Omit<GatewayRecord, 'amount_cents'> & { amount_cents: bigint }>(
    db,
    `${select} WHERE created_at >= ? AND created_at < ? ORDER BY created_at DESC LIMIT ?`,
    [window.from, window.to, max],
  );
  return rows.map((row) => ({ ...row, amount_cents: Number(row.amount_cents) }));
}
