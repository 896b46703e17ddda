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
