import type { Knex } from 'knex';
import { formatUsd } from '../billing/money';
import { execute, queryRows, type Db } from './connection';
import { recordEvent } from './events';
import { PermanentError } from './errors';
import type { PaymentRecord } from './payments';
import { lockPaymentIntent } from './stripe-events';

export type TopUpStatus = 'pending' | 'succeeded' | 'failed';

export interface TopUpRow {
  id: string;
  customer_id: string;
  amount_nanos: bigint;
  status: TopUpStatus;
  failure_code: string | null;
  /** The card network's reason for a decline (Stripe's `decline_code`); null otherwise. */
  decline_code: string | null;
  failure_message: string | null;
  payment_id: string | null;
  grant_id: string | null;
  created_at: Date;
  updated_at: Date;
  settled_at: Date | null;
}

const TOP_UP_COLUMNS = `id, customer_id, amount_nanos, status, failure_code, decline_code, failure_message, payment_id,
  grant_id, created_at, updated_at, settled_at`;

/**
 * Records a requested top-up as pending; a repeat with the same id returns the stored row unchanged (whatever its
 * status by now). The same id with another customer or amount is a PermanentError (`conflict`): ids derive from
 * the request, so this is a caller reusing an id, and no retry can make it right.
 */
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
    throw new PermanentError('conflict', `top-up ${input.id} already exists with another customer or amount`);
  }
  return row;
}

/** The operation key of a top-up's charge (`payments.idempotency_key`, Stripe's metadata `idempotency_key`). */
export const topUpPaymentKey = (top_up_id: string): string => `top_up:${top_up_id}`;

/** The top-up a payment was made for, by its operation key; undefined for other payments. */
export async function topUpOfPayment(db: Db, payment: PaymentRecord): Promise<TopUpRow | undefined> {
  const prefix = topUpPaymentKey('');
  if (!payment.idempotency_key.startsWith(prefix)) return undefined;
  const row = await getTopUp(db, payment.idempotency_key.slice(prefix.length));
  return row?.customer_id === payment.customer_id ? row : undefined;
}

export async function getTopUp(q: Db | Knex.Transaction, id: string): Promise<TopUpRow | undefined> {
  const result = await queryRows<TopUpRow>(q, `SELECT ${TOP_UP_COLUMNS} FROM top_ups WHERE id = ?`, [id]);
  return result[0];
}

export type TopUpOutcome =
  | { status: 'succeeded'; payment_id: string; grant_id: string }
  | {
      status: 'failed';
      /** null when no charge was attempted (the account refused the top-up). */
      payment_id: string | null;
      failure_code: string;
      decline_code?: string | null;
      failure_message?: string | null;
    };

/**
 * Moves a pending top-up to its final status and records its event (`top_up.succeeded` / `top_up.failed`) in the
 * same transaction. A top-up that is already final keeps its first outcome: the update is conditional on
 * `status = 'pending'`, so a retried activity cannot flip a success into a failure, and the event is recorded only
 * by the call that settled it (its occurrence key makes even that once). A top-up that does not exist is left alone
 * (undefined): an account may refuse a request it was sent directly.
 */
export async function settleTopUp(
  q: Db | Knex.Transaction,
  id: string,
  outcome: TopUpOutcome,
): Promise<TopUpRow | undefined> {
  const failed = outcome.status === 'failed' ? outcome : null;
  return q.transaction(async (trx) => {
    const settled = await queryRows<TopUpRow>(
      trx,
      `UPDATE top_ups SET status = ?, payment_id = ?, grant_id = ?, failure_code = ?, decline_code = ?,
         failure_message = ?, updated_at = now(), settled_at = now()
       WHERE id = ? AND status = 'pending' RETURNING ${TOP_UP_COLUMNS}`,
      [
        outcome.status,
        outcome.payment_id,
        outcome.status === 'succeeded' ? outcome.grant_id : null,
        failed?.failure_code ?? null,
        failed?.decline_code ?? null,
        failed?.failure_message ?? null,
        id,
      ],
    );
    const row = settled[0];
    if (row) {
      await recordEvent(trx, {
        customer_id: row.customer_id,
        type: row.status === 'succeeded' ? 'top_up.succeeded' : 'top_up.failed',
        data:
          row.status === 'succeeded'
            ? { top_up_id: row.id, amount_usd: formatUsd(row.amount_nanos), grant_id: row.grant_id }
            : {
                top_up_id: row.id,
                amount_usd: formatUsd(row.amount_nanos),
                failure_code: row.failure_code,
                decline_code: row.decline_code,
                failure_message: row.failure_message,
              },
        occurrence_key: `top_up:${row.id}:${row.status}`,
      });
    }
    return getTopUp(trx, id);
  });
}

/**
 * The customer's pending top-ups that the account has work to do for, oldest first, at most `limit`: not those whose
 * charge waits for the customer (`payment_id` set while pending, see `awaitTopUpPayment`) until a webhook has settled
 * that payment, so a rebuilt or continued run never spins on charges only the customer can finish.
 */
export async function pendingTopUps(db: Db, customer_id: string, limit: number): Promise<TopUpRow[]> {
  return queryRows<TopUpRow>(
    db,
    `SELECT ${TOP_UP_COLUMNS} FROM top_ups t WHERE customer_id = ? AND status = 'pending'
       AND (payment_id IS NULL OR EXISTS (
         SELECT 1 FROM payments p WHERE p.id = t.payment_id AND p.status <> 'pending'))
     ORDER BY created_at, id LIMIT ?`,
    [customer_id, limit],
  );
}

/**
 * The account parks a top-up whose charge waits for the customer (SCA): under the PaymentIntent's lock (the one the
 * webhook takes), it reads the payment again and, still pending, notes it on the top-up (`payment_id` while
 * `pending`: the API answers 202 at once, and rebuilt runs skip it). Returns the payment as it stands, so a webhook
 * that settled it meanwhile is seen here and the top-up completes now rather than waiting.
 */
export async function awaitTopUpPayment(
  db: Db,
  top_up_id: string,
  payment_id: string,
): Promise<PaymentRecord> {
  return db.transaction(async (trx) => {
    const read = () =>
      queryRows<PaymentRecord>(
        trx,
        `SELECT id, customer_id, gateway, idempotency_key, gateway_charge_id, payment_method, amount_nanos, status,
           failure_code FROM payments WHERE id = ?`,
        [payment_id],
      );
    const [before] = await read();
    if (!before) throw new Error(`payment ${payment_id} of top-up ${top_up_id} was never recorded`);
    if (before.gateway_charge_id !== null) await lockPaymentIntent(trx, before.gateway_charge_id);
    const [payment] = await read();
    if (payment!.status === 'pending') {
      await execute(
        trx,
        `UPDATE top_ups SET payment_id = ?, updated_at = now() WHERE id = ? AND status = 'pending'`,
        [payment_id, top_up_id],
      );
    }
    return payment!;
  });
}

export interface TopUpTotals {
  succeeded: number;
  failed: number;
  /** Sum of the customer's succeeded top-ups: what cards have paid in over the account's life. */
  lifetime_nanos: bigint;
}

export async function topUpTotals(db: Db, customer_id: string): Promise<TopUpTotals> {
  const [row] = await queryRows<TopUpTotals>(
    db,
    `SELECT count(*) FILTER (WHERE status = 'succeeded')::int AS succeeded,
            count(*) FILTER (WHERE status = 'failed')::int AS failed,
            COALESCE(sum(amount_nanos) FILTER (WHERE status = 'succeeded'), 0)::bigint AS lifetime_nanos
     FROM top_ups WHERE customer_id = ?`,
    [customer_id],
  );
  return row!;
}
