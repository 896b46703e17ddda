import { execute, queryRows, type Db } from './connection';

/** One charge attempt we made through a gateway, keyed like the gateway call itself. */
export interface PaymentRecord {
  id: string;
  customer_id: string;
  gateway: string;
  idempotency_key: string;
  gateway_charge_id: string | null;
  payment_method: string;
  amount_nanos: bigint;
  /** `pending`: the processor waits for the customer (SCA); a Stripe webhook settles it (db/stripe-events.ts). */
  status: 'pending' | 'succeeded' | 'failed';
  failure_code: string | null;
}

/** Records a charge attempt once: a retry with the same idempotency key leaves the first record. */
export async function recordPayment(db: Db, payment: PaymentRecord): Promise<void> {
  await execute(
    db,
    `INSERT INTO payments (id, customer_id, gateway, idempotency_key, gateway_charge_id, payment_method,
       amount_nanos, status, failure_code)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING`,
    [
      payment.id,
      payment.customer_id,
      payment.gateway,
      payment.idempotency_key,
      payment.gateway_charge_id,
      payment.payment_method,
      payment.amount_nanos,
      payment.status,
      payment.failure_code,
    ],
  );
}

/** The charge attempt recorded under a gateway idempotency key, if one was made and recorded. */
export async function findPayment(db: Db, idempotency_key: string): Promise<PaymentRecord | undefined> {
  const rows = await queryRows<PaymentRecord>(
    db,
    `SELECT id, customer_id, gateway, idempotency_key, gateway_charge_id, payment_method, amount_nanos, status,
       failure_code
     FROM payments WHERE idempotency_key = ?`,
    [idempotency_key],
  );
  return rows[0];
}
