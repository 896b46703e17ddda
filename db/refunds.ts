import type { Knex } from 'knex';
import { formatUsd } from '../billing/money';
import { decideRefundClaim } from '../billing/refunds';
import { execute, queryRows, type Db } from './connection';
import { PermanentError } from './errors';
import { recordEvent } from './events';
import { debitGrant, grantCredit, lockWallet, readGrantCredit } from './ledger';
import { MOVEMENTS, type MovementDefinition, type MovementRequest, postMovement } from './postings';

/**
 * Refunds of paid credit (`refunds`, see the refunds migration). The API records a refund `pending`, the account
 * workflow runs it in three steps keyed by the refund id, each one transaction under the customer's wallet lock:
 * 1. `claimRefund` decides (never more than is left to refund of the payment; only unspent credit of the payment's
 *    grant unless `allow_negative`) and posts the claim, the reversing entry `refund` (available -> refunds), or
 *    fails the refund without moving anything;
 * 2. the gateway refunds the card with key `refund:<refund id>` (activities/refund-credits.ts), and
 *    `recordGatewayRefund` keeps its id, so the gateway is never asked again once it answered;
 * 3. `settleRefund` (entry `refund_settled`, refunds -> payments, and `refund.succeeded`) or `failRefund` (the claim
 *    given back as a `refund_reversal` grant, entry `refund_release`).
 */

export type RefundStatus = 'pending' | 'succeeded' | 'failed';

export interface RefundRow {
  id: string;
  customer_id: string;
  payment_id: string;
  top_up_id: string | null;
  recharge_id: string | null;
  grant_id: string;
  amount_nanos: bigint;
  allow_negative: boolean;
  status: RefundStatus;
  /** How much of the refund came off the grant (the rest off the available balance alone); null until claimed. */
  from_grant_nanos: bigint | null;
  claimed_at: Date | null;
  gateway_refund_id: string | null;
  failure_code: string | null;
  failure_message: string | null;
  created_at: Date;
  updated_at: Date;
  settled_at: Date | null;
}

const COLUMNS = `id, customer_id, payment_id, top_up_id, recharge_id, grant_id, amount_nanos, allow_negative, status,
  from_grant_nanos, claimed_at, gateway_refund_id, failure_code, failure_message, created_at, updated_at, settled_at`;

/** The id of the grant that gives back a refund's claim when the gateway refused it. */
export const releaseGrantIdFor = (refund_id: string): string => `gr_${refund_id}`;

/** What a refund can be made of: a succeeded top-up or auto-recharge, with its payment and its grant. */
export interface Refundable {
  kind: 'top_up' | 'auto_recharge';
  id: string;
  customer_id: string;
  status: string;
  payment_id: string | null;
  grant_id: string | null;
  /** The payment's amount (null without a succeeded payment). */
  payment_nanos: bigint | null;
}

/** The top-up (`tu_...`) or auto-recharge (`ar_...`) with this id, or undefined when there is neither. */
export async function findRefundable(db: Db, id: string): Promise<Refundable | undefined> {
  const [row] = await queryRows<Refundable>(
    db,
    `SELECT s.kind, s.id, s.customer_id, s.status, s.payment_id, s.grant_id, p.amount_nanos AS payment_nanos
     FROM (SELECT 'top_up' AS kind, id, customer_id, status, payment_id, grant_id FROM top_ups WHERE id = ?
           UNION ALL
           SELECT 'auto_recharge', id, customer_id, status, payment_id, grant_id FROM auto_recharges WHERE id = ?) s
     LEFT JOIN payments p ON p.id = s.payment_id AND p.status = 'succeeded'`,
    [id, id],
  );
  return row;
}

/** The top-up or auto-recharge a payment paid for, as `findRefundable` reads it; undefined for other payments. */
export async function findRefundableOfPayment(db: Db, payment_id: string): Promise<Refundable | undefined> {
  const [source] = await queryRows<{ id: string }>(
    db,
    `SELECT id FROM top_ups WHERE payment_id = ? UNION ALL SELECT id FROM auto_recharges WHERE payment_id = ?`,
    [payment_id, payment_id],
  );
  return source ? findRefundable(db, source.id) : undefined;
}

/**
 * Records a refund as pending; a repeat with the same id returns the stored row (whatever its status). The same id
 * asking for another amount or payment is a PermanentError (`conflict`): ids derive from the request.
 */
export async function recordRefund(
  db: Db,
  input: Pick<
    RefundRow,
    | 'id'
    | 'customer_id'
    | 'payment_id'
    | 'top_up_id'
    | 'recharge_id'
    | 'grant_id'
    | 'amount_nanos'
    | 'allow_negative'
  >,
): Promise<RefundRow> {
  await execute(
    db,
    `INSERT INTO refunds (id, customer_id, payment_id, top_up_id, recharge_id, grant_id, amount_nanos, allow_negative,
       status)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending') ON CONFLICT (id) DO NOTHING`,
    [
      input.id,
      input.customer_id,
      input.payment_id,
      input.top_up_id,
      input.recharge_id,
      input.grant_id,
      input.amount_nanos,
      input.allow_negative,
    ],
  );
  const row = await getRefund(db, input.id);
  if (!row) throw new Error(`refund ${input.id} vanished after insert`);
  if (
    row.payment_id !== input.payment_id ||
    row.amount_nanos !== input.amount_nanos ||
    row.allow_negative !== input.allow_negative
  ) {
    throw new PermanentError('conflict', `refund ${input.id} already exists for another payment or amount`);
  }
  return row;
}

export async function getRefund(q: Db, id: string): Promise<RefundRow | undefined> {
  const [row] = await queryRows<RefundRow>(q, `SELECT ${COLUMNS} FROM refunds WHERE id = ?`, [id]);
  return row;
}

/**
 * What a payment's refunds take of it, other than `except_id`: succeeded ones, and pending ones (`claimed_only`: only
 * those whose claim is posted, as the claim step counts; otherwise all, as the API counts before recording one).
 */
export async function refundedOfPayment(
  db: Db,
  payment_id: string,
  options: { except_id?: string; claimed_only: boolean },
): Promise<bigint> {
  const [row] = await queryRows<{ nanos: bigint }>(
    db,
    `SELECT COALESCE(sum(amount_nanos), 0)::bigint AS nanos FROM refunds
     WHERE payment_id = ? AND id <> COALESCE(?::text, '') AND
       (status = 'succeeded' OR (status = 'pending' AND (NOT ?::boolean OR claimed_at IS NOT NULL)))`,
    [payment_id, options.except_id ?? null, options.claimed_only],
  );
  return row!.nanos;
}

/** What the top-up's or auto-recharge's payment has been refunded (succeeded refunds). */
export async function refundedNanosOf(db: Db, source_id: string): Promise<bigint> {
  const [row] = await queryRows<{ nanos: bigint }>(
    db,
    `SELECT COALESCE(sum(amount_nanos), 0)::bigint AS nanos FROM refunds
     WHERE (top_up_id = ? OR recharge_id = ?) AND status = 'succeeded'`,
    [source_id, source_id],
  );
  return row!.nanos;
}

/** The customer's pending refunds, oldest first, at most `limit` (a rebuilt account runs them). */
export async function pendingRefunds(db: Db, customer_id: string, limit: number): Promise<RefundRow[]> {
  return queryRows<RefundRow>(
    db,
    `SELECT ${COLUMNS} FROM refunds WHERE customer_id = ? AND status = 'pending' ORDER BY created_at, id LIMIT ?`,
    [customer_id, limit],
  );
}

/** One of a refund's movements: its whole amount, keyed by (kind, refund id), so each step posts it once. */
function refundMovement(row: RefundRow, definition: MovementDefinition<'amount'>): MovementRequest<'amount'> {
  return { customer_id: row.customer_id, definition, ref: row.id, amounts: { amount: row.amount_nanos } };
}

/** Locks the customer's wallet (every refund step is ordered with the customer's other money by it) and reads the row. */
async function lockedRefund(trx: Knex.Transaction, refund_id: string): Promise<RefundRow> {
  const before = await getRefund(trx, refund_id);
  if (!before) throw new PermanentError('not_found', `refund ${refund_id} was never recorded`);
  await lockWallet(trx, before.customer_id);
  return (await getRefund(trx, refund_id))!;
}

/**
 * Step 1: claims the refund's credit, or fails the refund, in one transaction under the wallet lock. A refund that is
 * claimed or settled already is answered as it is (a retry). The claim is the reversing entry `refund` (available ->
 * refunds, ref the refund id) and takes `from_grant_nanos` off the payment's grant (see `decideRefundClaim`).
 */
export async function claimRefund(db: Db, refund_id: string): Promise<RefundRow> {
  return db.transaction(async (trx) => {
    const row = await lockedRefund(trx, refund_id);
    if (row.status !== 'pending' || row.claimed_at !== null) return row;
    const credit = await readGrantCredit(trx, row.customer_id, row.grant_id);
    const [payment] = await queryRows<{ amount_nanos: bigint }>(
      trx,
      `SELECT amount_nanos FROM payments WHERE id = ? AND status = 'succeeded'`,
      [row.payment_id],
    );
    if (!payment) throw new PermanentError('conflict', `payment ${row.payment_id} did not succeed`);
    const decision = decideRefundClaim({
      amount_nanos: row.amount_nanos,
      allow_negative: row.allow_negative,
      payment_nanos: payment.amount_nanos,
      refunded_nanos: await refundedOfPayment(trx, row.payment_id, {
        except_id: row.id,
        claimed_only: true,
      }),
      grant_id: row.grant_id,
      grant_open: credit.open,
      grant_remaining_nanos: credit.remaining_nanos,
      grant_free_nanos: credit.free_nanos,
      available_nanos: credit.wallet.available_nanos,
    });
    if (decision.action === 'refuse') {
      await markFailed(trx, row.id, decision.code, decision.message);
      return (await getRefund(trx, row.id))!;
    }
    await debitGrant(trx, credit.wallet, {
      grant_id: row.grant_id,
      from_grant_nanos: decision.from_grant_nanos,
      movement: refundMovement(row, MOVEMENTS.refund),
    });
    await execute(
      trx,
      `UPDATE refunds SET claimed_at = now(), from_grant_nanos = ?, updated_at = now() WHERE id = ?`,
      [decision.from_grant_nanos, row.id],
    );
    return (await getRefund(trx, row.id))!;
  });
}

/** Step 2's record: the gateway refunded the card (kept once: the first id stays). */
export async function recordGatewayRefund(
  db: Db,
  refund_id: string,
  gateway_refund_id: string,
): Promise<void> {
  await execute(
    db,
    `UPDATE refunds SET gateway_refund_id = ?, updated_at = now() WHERE id = ? AND gateway_refund_id IS NULL`,
    [gateway_refund_id, refund_id],
  );
}

/**
 * Step 3 after the gateway refunded the card: the claim leaves the clearing account (entry `refund_settled`,
 * refunds -> payments), the refund succeeds and `refund.succeeded` is recorded, in one transaction. A settled refund
 * is answered as it is.
 */
export async function settleRefund(db: Db, refund_id: string, gateway_refund_id: string): Promise<RefundRow> {
  return db.transaction(async (trx) => {
    const row = await lockedRefund(trx, refund_id);
    if (row.status !== 'pending') return row;
    if (row.claimed_at === null) throw new Error(`refund ${refund_id} is settled before it was claimed`);
    const wallet = await lockWallet(trx, row.customer_id);
    await postMovement(trx, wallet, refundMovement(row, MOVEMENTS.refundSettled));
    await execute(
      trx,
      `UPDATE refunds SET status = 'succeeded', gateway_refund_id = COALESCE(gateway_refund_id, ?), updated_at = now(),
         settled_at = now() WHERE id = ?`,
      [gateway_refund_id, row.id],
    );
    const settled = (await getRefund(trx, row.id))!;
    await recordEvent(trx, {
      customer_id: settled.customer_id,
      type: 'refund.succeeded',
      data: {
        refund_id: settled.id,
        top_up_id: settled.top_up_id,
        recharge_id: settled.recharge_id,
        payment_id: settled.payment_id,
        grant_id: settled.grant_id,
        amount_usd: formatUsd(settled.amount_nanos),
        from_grant_usd: formatUsd(settled.from_grant_nanos ?? 0n),
        allow_negative: settled.allow_negative,
        gateway_refund_id: settled.gateway_refund_id,
      },
      occurrence_key: `refund:${settled.id}:succeeded`,
    });
    return settled;
  });
}

/**
 * Step 3 when the gateway refused (or the account could not run the refund): the refund fails, and a claim already
 * posted is given back (a `refund_reversal` grant of the whole amount, entry `refund_release`, refunds -> available,
 * expiring when the refunded grant does if that is still ahead), in one transaction. A claim the gateway did refund
 * (`gateway_refund_id` set) is never given back: the refund fails with the credit kept off the balance, and
 * `npm run ledger:check` reports it for an operator. A settled refund is answered as it is.
 */
export async function failRefund(
  db: Db,
  refund_id: string,
  failure: { code: string; message: string },
): Promise<RefundRow> {
  return db.transaction(async (trx) => {
    const row = await lockedRefund(trx, refund_id);
    if (row.status !== 'pending') return row;
    if (row.claimed_at !== null && row.gateway_refund_id === null) {
      const [refunded] = await queryRows<{ expires_at: Date | null }>(
        trx,
        `SELECT CASE WHEN expires_at > now() + interval '1 second' THEN expires_at END AS expires_at
         FROM credit_grants WHERE id = ?`,
        [row.grant_id],
      );
      await grantCredit(trx, {
        grant_id: releaseGrantIdFor(row.id),
        customer_id: row.customer_id,
        source: 'refund_reversal',
        amount_nanos: row.amount_nanos,
        reason: `refund ${row.id} was not made (${failure.code}): its credit is given back`,
        expires_at: refunded?.expires_at ?? null,
        kind: 'refund_release',
        ref: row.id,
        funded_by: 'refunds',
      });
    }
    await markFailed(trx, row.id, failure.code, failure.message);
    return (await getRefund(trx, row.id))!;
  });
}

async function markFailed(trx: Knex.Transaction, id: string, code: string, message: string): Promise<void> {
  await execute(
    trx,
    `UPDATE refunds SET status = 'failed', failure_code = ?, failure_message = ?, updated_at = now(),
       settled_at = now() WHERE id = ? AND status = 'pending'`,
    [code, message.slice(0, 1000), id],
  );
}

/** The charge a refund returns money to: the gateway that made it and the gateway's id of it. */
export async function refundChargeOf(
  db: Db,
  refund_id: string,
): Promise<{ gateway: string; gateway_charge_id: string | null } | undefined> {
  const [row] = await queryRows<{ gateway: string; gateway_charge_id: string | null }>(
    db,
    `SELECT p.gateway, p.gateway_charge_id FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE r.id = ?`,
    [refund_id],
  );
  return row;
}
