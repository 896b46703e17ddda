import type { Knex } from 'knex';
import { minBigint } from '../billing/money';
import { type PaymentIntentOutcome, paymentIntentOutcome } from '../billing/stripe-events';
import { execute, queryRows, type Db } from './connection';
import type { PaymentRecord } from './payments';
import {
  findRefundableOfPayment,
  getRefund,
  recordGatewayRefund,
  recordRefund,
  refundedOfPayment,
  type RefundRow,
} from './refunds';

/**
 * Stripe's inbound events (`stripe_events`, see the stripe-webhooks migration) and what they settle.
 *
 * A PaymentIntent that needed the customer (SCA) leaves its payment `pending`. Two paths may learn how it ended: the
 * webhook (`recordStripeEvent` then `resolvePaymentIntent`) and the charge step itself, whose own call may return
 * after the webhook arrived. Both run under one transaction-level advisory lock per PaymentIntent
 * (`lockPaymentIntent`), and each resolves the payment from the events stored so far, so whichever runs second
 * sees what the first committed: the payment is settled exactly once, and its credit is granted only by the account
 * workflow's completion step, keyed by the operation.
 */

export interface StripeEventInput {
  id: string;
  type: string;
  /** `data.object.id`: the PaymentIntent, charge or dispute the event is about. */
  object_id: string | null;
  payload: unknown;
}

export interface StoredStripeEvent {
  /** false when the event id was stored already (a replay). */
  fresh: boolean;
  /** Whether it was acted on already (a replay of a processed event changes nothing). */
  processed: boolean;
}

/** Stores an event once by its id; a replay keeps the first row and says whether it was processed. */
export async function recordStripeEvent(
  trx: Knex.Transaction,
  event: StripeEventInput,
): Promise<StoredStripeEvent> {
  const inserted = await queryRows<{ id: string }>(
    trx,
    `INSERT INTO stripe_events (id, type, object_id, payload) VALUES (?, ?, ?, ?::jsonb)
     ON CONFLICT (id) DO NOTHING RETURNING id`,
    // PostgreSQL's jsonb cannot hold U+0000 (customer-entered text may carry it): stored as U+FFFD instead.
    [event.id, event.type, event.object_id, JSON.stringify(event.payload).replaceAll('\\u0000', '\\ufffd')],
  );
  if (inserted.length === 1) return { fresh: true, processed: false };
  const [row] = await queryRows<{ processed: boolean }>(
    trx,
    `SELECT processed_at IS NOT NULL AS processed FROM stripe_events WHERE id = ?`,
    [event.id],
  );
  return { fresh: false, processed: row?.processed ?? false };
}

/** Marks an event acted on (idempotent: the first time stays). */
export async function markStripeEventProcessed(db: Db, id: string): Promise<void> {
  await execute(db, `UPDATE stripe_events SET processed_at = now() WHERE id = ? AND processed_at IS NULL`, [
    id,
  ]);
}

export async function getStripeEvent(
  db: Db,
  id: string,
): Promise<{ id: string; type: string; processed_at: Date | null } | undefined> {
  const [row] = await queryRows<{ id: string; type: string; processed_at: Date | null }>(
    db,
    `SELECT id, type, processed_at FROM stripe_events WHERE id = ?`,
    [id],
  );
  return row;
}

/** Serialises everything that settles one PaymentIntent (webhook and charge step), until the transaction ends. */
export async function lockPaymentIntent(trx: Knex.Transaction, payment_intent_id: string): Promise<void> {
  await trx.raw(`SELECT pg_advisory_xact_lock(hashtext('stripe_payment_intent:' || ?))`, [payment_intent_id]);
}

const PAYMENT_COLUMNS = `id, customer_id, gateway, idempotency_key, gateway_charge_id, payment_method, amount_nanos,
  status, failure_code`;

/**
 * Our payment of a PaymentIntent: by the operation key we sent in its metadata when given (a charge whose own call
 * has not returned has no `gateway_charge_id` recorded yet, but then it has no row either), else by the intent's id.
 */
export async function findPaymentOfIntent(
  q: Db,
  payment_intent_id: string,
  idempotency_key: string | null,
): Promise<PaymentRecord | undefined> {
  const rows = await queryRows<PaymentRecord>(
    q,
    `SELECT ${PAYMENT_COLUMNS} FROM payments
     WHERE gateway_charge_id = ? OR (idempotency_key = ? AND gateway_charge_id IS NULL)
     ORDER BY (gateway_charge_id = ?) DESC NULLS LAST LIMIT 1`,
    [payment_intent_id, idempotency_key ?? '', payment_intent_id],
  );
  return rows[0];
}

/** What the events stored for a PaymentIntent say about it (see `paymentIntentOutcome`). */
async function storedOutcome(q: Db, payment_intent_id: string): Promise<PaymentIntentOutcome> {
  const events = await queryRows<{ type: string; payload: unknown }>(
    q,
    `SELECT type, payload FROM stripe_events WHERE object_id = ? ORDER BY received_at, id`,
    [payment_intent_id],
  );
  return paymentIntentOutcome(events);
}

/**
 * Settles a pending payment of a PaymentIntent from the events stored for it; the caller holds the intent's lock
 * (`lockPaymentIntent`). The update is conditional on `pending`, so a settled payment keeps its first outcome.
 * Returns the payment as it stands after (undefined when we have none for this intent).
 */
export async function resolvePaymentIntent(
  trx: Knex.Transaction,
  payment_intent_id: string,
  idempotency_key: string | null,
): Promise<PaymentRecord | undefined> {
  const payment = await findPaymentOfIntent(trx, payment_intent_id, idempotency_key);
  if (!payment || payment.status !== 'pending') return payment;
  const outcome = await storedOutcome(trx, payment_intent_id);
  if (outcome === null) return payment;
  const [settled] = await queryRows<PaymentRecord>(
    trx,
    `UPDATE payments SET status = ?, failure_code = ?, gateway_charge_id = COALESCE(gateway_charge_id, ?)
     WHERE id = ? AND status = 'pending' RETURNING ${PAYMENT_COLUMNS}`,
    [
      outcome.status,
      outcome.status === 'failed' ? outcome.failure_code : null,
      payment_intent_id,
      payment.id,
    ],
  );
  return settled ?? payment;
}

/** The charge step's half: a pending payment settled from the events stored so far, under the intent's lock. */
export async function resolvePendingPayment(db: Db, payment: PaymentRecord): Promise<PaymentRecord> {
  if (payment.status !== 'pending' || payment.gateway_charge_id === null) return payment;
  const intent = payment.gateway_charge_id;
  return db.transaction(async (trx) => {
    await lockPaymentIntent(trx, intent);
    return (await resolvePaymentIntent(trx, intent, payment.idempotency_key)) ?? payment;
  });
}

/** An event as stored, and for PaymentIntent events our payment of it as the event left it (if we have one). */
export interface StoredIntentEvent extends StoredStripeEvent {
  payment: PaymentRecord | undefined;
}

/**
 * Stores an event (once by id); a PaymentIntent's event (`payment_intent_id` given) also settles our pending payment
 * of it, under the intent's lock in the same transaction, so the event is stored before anything reads it and a
 * charge step that records its payment concurrently either sees this event or is seen by it.
 */
export async function storeStripeEvent(
  db: Db,
  event: StripeEventInput,
  payment_intent?: { id: string; idempotency_key: string | null },
): Promise<StoredIntentEvent> {
  return db.transaction(async (trx) => {
    if (payment_intent) await lockPaymentIntent(trx, payment_intent.id);
    const stored = await recordStripeEvent(trx, event);
    const payment = payment_intent
      ? await resolvePaymentIntent(trx, payment_intent.id, payment_intent.idempotency_key)
      : undefined;
    return { ...stored, payment };
  });
}

/** A refund made at Stripe (the dashboard) that this engine did not ask for, as `recordOutsideRefund` takes it. */
export interface OutsideRefund {
  /** The refunded charge's PaymentIntent (our `payments.gateway_charge_id`). */
  payment_intent_id: string;
  /** The charge's `amount_refunded` after it: every refund of the charge at Stripe, ours included. */
  amount_refunded_nanos: bigint;
  /** Our refund id for what is new (derived from Stripe's newest refund id, or the charge and its total). */
  refund_id: string;
  /** What the gateway calls it (kept as `gateway_refund_id`, so the gateway is never asked to refund it again). */
  gateway_refund_id: string;
}

/**
 * Records what Stripe refunded beyond the refunds we know of a payment (ours count as known once they have claimed
 * their credit, which they do before asking the gateway: so our own refund's `charge.refunded` records nothing,
 * while one of ours still waiting in the account's queue does not hide a dashboard refund; it is then refused as
 * more than is left, or refused by Stripe and gives its claim back), as a pending refund of the top-up or auto-recharge that the
 * payment bought, with `allow_negative` (the card was refunded whatever the customer spent since) and the gateway's
 * refund id already set: the account workflow runs it like our own refunds (the same reversing claim and
 * settlement) and never calls the gateway. Under the PaymentIntent's lock, so two events of one charge never both
 * count the same money. Returns the refund (pending or as it ended), or undefined when nothing is new or the payment
 * is not a top-up's or an auto-recharge's; `retry_later` when it is ours but not finished yet (its payment still
 * pending at our side, or its credit not granted yet): the event must come again, or the refund would be lost.
 */
export async function recordOutsideRefund(
  db: Db,
  refund: OutsideRefund,
): Promise<RefundRow | undefined | 'retry_later'> {
  return db.transaction(async (trx) => {
    await lockPaymentIntent(trx, refund.payment_intent_id);
    const payment = await findPaymentOfIntent(trx, refund.payment_intent_id, null);
    if (!payment) return undefined;
    if (payment.status === 'pending') return 'retry_later';
    if (payment.status !== 'succeeded') return undefined;
    const source = await findRefundableOfPayment(trx, payment.id);
    if (!source) return undefined;
    if (source.grant_id === null) return 'retry_later';
    const existing = await getRefund(trx, refund.refund_id);
    if (existing) return existing;
    const known_nanos = await refundedOfPayment(trx, payment.id, { claimed_only: true });
    const new_nanos = minBigint(refund.amount_refunded_nanos, payment.amount_nanos) - known_nanos;
    if (new_nanos <= 0n) return undefined;
    const row = await recordRefund(trx, {
      id: refund.refund_id,
      customer_id: payment.customer_id,
      payment_id: payment.id,
      top_up_id: source.kind === 'top_up' ? source.id : null,
      recharge_id: source.kind === 'auto_recharge' ? source.id : null,
      grant_id: source.grant_id,
      amount_nanos: new_nanos,
      allow_negative: true,
    });
    await recordGatewayRefund(trx, row.id, refund.gateway_refund_id);
    return getRefund(trx, row.id);
  });
}
