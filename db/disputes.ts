import { refundedOfPayment } from './refunds';
import type { Knex } from 'knex';
import { execute, queryRows, type Db } from './connection';
import { grantCredit, lockWallet } from './ledger';
import { MOVEMENTS, postMovement } from './postings';
import { findPaymentOfIntent } from './stripe-events';

/**
 * Card disputes (`disputes`, see the stripe-webhooks migration), each keyed by Stripe's dispute id and moved once:
 * - opened (`charge.dispute.created`): the disputed amount is frozen by entry `dispute` (available -> disputes, the
 *   one posting path under the wallet lock), whatever the customer spent since (the balance may go below zero);
 * - closed won: it comes back as a `refund_reversal` grant (entry `dispute_won`, disputes -> available, never
 *   expiring: the credit it replaces was already the customer's);
 * - closed lost: it is written off (entry `dispute_lost`, disputes -> payments: the bank took the payment back).
 * Each step is one transaction, and each entry is unique by (kind, dispute id), so a redelivered event, two events
 * racing or a crash between any two steps moves the money once.
 */

export type DisputeStatus = 'open' | 'won' | 'lost';

export interface DisputeRow {
  id: string;
  customer_id: string;
  payment_id: string;
  amount_nanos: bigint;
  status: DisputeStatus;
  created_at: Date;
  closed_at: Date | null;
}

export interface DisputeInput {
  dispute_id: string;
  /** The disputed charge's PaymentIntent (`payments.gateway_charge_id`). */
  payment_intent_id: string;
  amount_nanos: bigint;
}

const COLUMNS = 'id, customer_id, payment_id, amount_nanos, status, created_at, closed_at';

export async function getDispute(q: Db, id: string): Promise<DisputeRow | undefined> {
  const [row] = await queryRows<DisputeRow>(q, `SELECT ${COLUMNS} FROM disputes WHERE id = ?`, [id]);
  return row;
}

/** Opens the dispute and freezes its amount, once; undefined when the charge is not one of our succeeded payments. */
export async function openDispute(db: Db, input: DisputeInput): Promise<DisputeRow | undefined> {
  return db.transaction((trx) => open(trx, input));
}

async function open(trx: Knex.Transaction, input: DisputeInput): Promise<DisputeRow | undefined> {
  const known = await getDispute(trx, input.dispute_id);
  if (known) return known;
  const payment = await findPaymentOfIntent(trx, input.payment_intent_id, null);
  if (!payment || payment.status !== 'succeeded') return undefined;
  // An invoice's charge (a subscription) funded no credit: there is nothing of the customer's balance to freeze.
  if (payment.idempotency_key.startsWith('invoice:')) return undefined;
  const wallet = await lockWallet(trx, payment.customer_id);
  // Never more than what is left of the payment after its refunds: a dispute is about that charge alone, and
  // credit already clawed back by a refund must not be frozen a second time.
  const refunded = await refundedOfPayment(trx, payment.id, { claimed_only: true });
  const disputable = payment.amount_nanos - refunded;
  if (disputable <= 0n) return undefined;
  const amount_nanos = input.amount_nanos < disputable ? input.amount_nanos : disputable;
  await execute(
    trx,
    `INSERT INTO disputes (id, customer_id, payment_id, amount_nanos, status) VALUES (?, ?, ?, ?, 'open')
     ON CONFLICT (id) DO NOTHING`,
    [input.dispute_id, payment.customer_id, payment.id, amount_nanos],
  );
  await postMovement(trx, wallet, {
    customer_id: payment.customer_id,
    definition: MOVEMENTS.dispute,
    ref: input.dispute_id,
    amounts: { amount: amount_nanos },
  });
  return getDispute(trx, input.dispute_id);
}

/**
 * Closes the dispute, once: won gives the frozen credit back, lost writes it off. A dispute closed before we heard it
 * open (the created event lost or late) is opened first, so the close always has a freeze to undo. Undefined when the
 * charge is not one of ours.
 */
export async function closeDispute(
  db: Db,
  input: DisputeInput & { outcome: 'won' | 'lost' },
): Promise<DisputeRow | undefined> {
  return db.transaction(async (trx) => {
    const opened = await open(trx, input);
    if (!opened) return undefined;
    const [row] = await queryRows<DisputeRow>(
      trx,
      `SELECT ${COLUMNS} FROM disputes WHERE id = ? FOR UPDATE`,
      [opened.id],
    );
    if (!row || row.status !== 'open') return row;
    if (input.outcome === 'won') {
      await grantCredit(trx, {
        grant_id: `gr_${row.id}`,
        customer_id: row.customer_id,
        source: 'refund_reversal',
        amount_nanos: row.amount_nanos,
        reason: `card dispute ${row.id} was won: the credit frozen for it is given back`,
        expires_at: null,
        kind: 'dispute_won',
        ref: row.id,
        funded_by: 'disputes',
      });
    } else {
      const wallet = await lockWallet(trx, row.customer_id);
      await postMovement(trx, wallet, {
        customer_id: row.customer_id,
        definition: MOVEMENTS.disputeLost,
        ref: row.id,
        amounts: { amount: row.amount_nanos },
      });
    }
    await execute(trx, `UPDATE disputes SET status = ?, closed_at = now() WHERE id = ? AND status = 'open'`, [
      input.outcome,
      row.id,
    ]);
    return getDispute(trx, row.id);
  });
}
