import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import type { EventType } from '../billing/events';
import { formatUsd } from '../billing/money';
import {
  invoiceTotal_nanos,
  type InvoiceDraft,
  type InvoiceLine,
  type Subscription,
} from '../billing/subscriptions';
import { execute, queryRows, type Db } from './connection';
import { recordEvent } from './events';

/**
 * Subscriptions, their change requests and their invoices. Every write that changes a customer's subscription runs
 * in one transaction that first locks the customer's row (`lockCustomer`), so changes, renewals, cancellations and
 * dunning's outcomes of one customer are serialised; each records its events in the same transaction.
 */

const SUBSCRIPTION_COLUMNS = `id, customer_id, plan, seats, seat_price_nanos, status, anchor_at, anchor_index, period_index,
  current_period_start, current_period_end, cancel_at_period_end, next_plan, next_seats, canceled_at`;

/** The customer's live subscription (not canceled), if any. */
export async function getLiveSubscription(q: Db, customer_id: string): Promise<Subscription | null> {
  const rows = await queryRows<Subscription>(
    q,
    `SELECT ${SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE customer_id = ? AND status <> 'canceled'`,
    [customer_id],
  );
  return rows[0] ?? null;
}

/** The live subscription, else the one that ended last (null: the customer never subscribed). */
export async function getCurrentSubscription(q: Db, customer_id: string): Promise<Subscription | null> {
  const rows = await queryRows<Subscription>(
    q,
    `SELECT ${SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE customer_id = ?
     ORDER BY (status <> 'canceled') DESC, created_at DESC, id DESC LIMIT 1`,
    [customer_id],
  );
  return rows[0] ?? null;
}

export async function getSubscription(q: Db, id: string): Promise<Subscription | null> {
  const rows = await queryRows<Subscription>(
    q,
    `SELECT ${SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE id = ?`,
    [id],
  );
  return rows[0] ?? null;
}

/** Serialises every subscription write of one customer (the customer row, not the wallet: no money moves here). */
export async function lockCustomer(trx: Knex.Transaction, customer_id: string): Promise<boolean> {
  const rows = await queryRows<{ id: string }>(trx, `SELECT id FROM customers WHERE id = ? FOR UPDATE`, [
    customer_id,
  ]);
  return rows.length > 0;
}

// ---- change requests ------------------------------------------------------------------------------------------

export interface SubscriptionChangeRow {
  id: string;
  customer_id: string;
  plan: string;
  seats: number | null;
  status: 'pending' | 'applied' | 'refused';
  decision: Record<string, unknown> | null;
  invoice_id: string | null;
  subscription_id: string | null;
  failure_code: string | null;
  decline_code: string | null;
  failure_message: string | null;
}

const CHANGE_COLUMNS = `id, customer_id, plan, seats, status, decision, invoice_id, subscription_id, failure_code,
  decline_code, failure_message`;

/** Records a change request once (a retry with the same id finds the first); answers the stored row. */
export async function recordSubscriptionChange(
  db: Db,
  change: { id: string; customer_id: string; plan: string; seats: number | null },
): Promise<SubscriptionChangeRow> {
  await execute(
    db,
    `INSERT INTO subscription_changes (id, customer_id, plan, seats) VALUES (?, ?, ?, ?)
     ON CONFLICT (id) DO NOTHING`,
    [change.id, change.customer_id, change.plan, change.seats],
  );
  return (await getSubscriptionChange(db, change.id))!;
}

export async function getSubscriptionChange(q: Db, id: string): Promise<SubscriptionChangeRow | undefined> {
  const rows = await queryRows<SubscriptionChangeRow>(
    q,
    `SELECT ${CHANGE_COLUMNS} FROM subscription_changes WHERE id = ?`,
    [id],
  );
  return rows[0];
}

/** Pending change requests of a customer, oldest first (a rebuilt account runs them). */
export async function pendingSubscriptionChanges(
  db: Db,
  customer_id: string,
  limit: number,
): Promise<string[]> {
  const rows = await queryRows<{ id: string }>(
    db,
    `SELECT id FROM subscription_changes WHERE customer_id = ? AND status = 'pending'
     ORDER BY created_at, id LIMIT ?`,
    [customer_id, limit],
  );
  return rows.map((r) => r.id);
}

export async function noteChangeDecision(
  trx: Knex.Transaction,
  id: string,
  decision: Record<string, unknown>,
  invoice_id: string | null,
): Promise<void> {
  await execute(trx, `UPDATE subscription_changes SET decision = ?::jsonb, invoice_id = ? WHERE id = ?`, [
    JSON.stringify(decision),
    invoice_id,
    id,
  ]);
}

export async function settleSubscriptionChange(
  q: Db,
  id: string,
  outcome:
    | { status: 'applied'; subscription_id: string | null }
    | { status: 'refused'; failure_code: string; decline_code: string | null; failure_message: string },
): Promise<void> {
  if (outcome.status === 'applied') {
    await execute(
      q,
      `UPDATE subscription_changes SET status = 'applied', subscription_id = ?, settled_at = now()
       WHERE id = ? AND status = 'pending'`,
      [outcome.subscription_id, id],
    );
  } else {
    await execute(
      q,
      `UPDATE subscription_changes SET status = 'refused', failure_code = ?, decline_code = ?, failure_message = ?,
         settled_at = now()
       WHERE id = ? AND status = 'pending'`,
      [outcome.failure_code, outcome.decline_code, outcome.failure_message, id],
    );
  }
}

// ---- subscription rows -----------------------------------------------------------------------------------------

export function newSubscriptionId(): string {
  return `sub_${randomBytes(12).toString('hex')}`;
}

export async function insertSubscription(
  trx: Knex.Transaction,
  sub: Pick<
    Subscription,
    | 'id'
    | 'customer_id'
    | 'plan'
    | 'seats'
    | 'seat_price_nanos'
    | 'anchor_at'
    | 'current_period_start'
    | 'current_period_end'
  >,
): Promise<void> {
  await execute(
    trx,
    `INSERT INTO subscriptions (id, customer_id, plan, seats, seat_price_nanos, status, anchor_at, period_index,
       current_period_start, current_period_end)
     VALUES (?, ?, ?, ?, ?, 'active', ?, 0, ?, ?)`,
    [
      sub.id,
      sub.customer_id,
      sub.plan,
      sub.seats,
      sub.seat_price_nanos,
      sub.anchor_at,
      sub.current_period_start,
      sub.current_period_end,
    ],
  );
}

/**
 * Changes plan and seats at once (an upgrade); a change that was waiting for the period end is dropped. A
 * subscription that ended meanwhile (cancelled now) keeps the plan it ended on.
 */
export async function changeSubscriptionNow(
  trx: Knex.Transaction,
  id: string,
  change: { plan: string; seats: number; seat_price_nanos: bigint | null },
): Promise<void> {
  await execute(
    trx,
    `UPDATE subscriptions SET plan = ?, seats = ?, seat_price_nanos = ?, next_plan = NULL, next_seats = NULL,
       version = version + 1, updated_at = now() WHERE id = ? AND status <> 'canceled'`,
    [change.plan, change.seats, change.seat_price_nanos, id],
  );
}

/** Records (or, when it is the current plan and seats, drops) the change that waits for the period end. */
export async function scheduleSubscriptionChange(
  trx: Knex.Transaction,
  sub: Subscription,
  next: { plan: string; seats: number },
): Promise<void> {
  const drop = next.plan === sub.plan && next.seats === sub.seats;
  await execute(
    trx,
    `UPDATE subscriptions SET next_plan = ?, next_seats = ?, version = version + 1, updated_at = now() WHERE id = ?`,
    [drop ? null : next.plan, drop ? null : next.seats, sub.id],
  );
}

export async function setCancelAtPeriodEnd(
  trx: Knex.Transaction,
  id: string,
  cancel: boolean,
): Promise<void> {
  await execute(
    trx,
    `UPDATE subscriptions SET cancel_at_period_end = ?, version = version + 1, updated_at = now() WHERE id = ?`,
    [cancel, id],
  );
}

/**
 * DELETE of the subscription: at the period end (the plan stays until then; asking again changes nothing), or now,
 * which ends it (an open renewal invoice is voided by its next charge attempt instead of being charged: dunning stops) and records
 * `subscription.canceled`. Answers `none` when the customer never subscribed, `ended` when it has ended already.
 */
export async function cancelSubscription(
  db: Db,
  customer_id: string,
  request: { at_period_end: boolean; now: Date },
): Promise<'none' | 'scheduled' | 'ended'> {
  return db.transaction(async (trx) => {
    await lockCustomer(trx, customer_id);
    const sub = await getLiveSubscription(trx, customer_id);
    if (!sub) return (await getCurrentSubscription(trx, customer_id)) ? 'ended' : 'none';
    if (request.at_period_end) {
      if (!sub.cancel_at_period_end) await setCancelAtPeriodEnd(trx, sub.id, true);
      return 'scheduled';
    }
    await endSubscription(trx, sub.id, request.now);
    await recordSubscriptionEvent(trx, 'subscription.canceled', { ...sub, status: 'canceled' }, 'ended', {
      reason: 'canceled_now',
    });
    return 'ended';
  });
}

/** Ends the subscription now: the account is on Free from here. */
export async function endSubscription(trx: Knex.Transaction, id: string, at: Date): Promise<void> {
  await execute(
    trx,
    `UPDATE subscriptions SET status = 'canceled', canceled_at = ?, cancel_at_period_end = false,
       version = version + 1, updated_at = now() WHERE id = ? AND status <> 'canceled'`,
    [at, id],
  );
}

/** Opens the next period (renewal), applying the change that waited for it. */
export async function advancePeriod(
  trx: Knex.Transaction,
  id: string,
  next: {
    plan: string;
    seats: number;
    seat_price_nanos: bigint | null;
    period_index: number;
    period_start: Date;
    period_end: Date;
    /** Set when the renewal re-anchors the subscription (a change of interval). */
    reanchor: { anchor_at: Date; anchor_index: number } | null;
    status: 'active' | 'past_due';
  },
): Promise<void> {
  await execute(
    trx,
    `UPDATE subscriptions SET plan = ?, seats = ?, seat_price_nanos = ?, period_index = ?, current_period_start = ?,
       current_period_end = ?, anchor_at = COALESCE(?, anchor_at), anchor_index = COALESCE(?, anchor_index), status = ?, next_plan = NULL, next_seats = NULL,
       version = version + 1, updated_at = now()
     WHERE id = ? AND period_index = ? - 1`,
    [
      next.plan,
      next.seats,
      next.seat_price_nanos,
      next.period_index,
      next.period_start,
      next.period_end,
      next.reanchor?.anchor_at ?? null,
      next.reanchor?.anchor_index ?? null,
      next.status,
      id,
      next.period_index,
    ],
  );
}

export async function setSubscriptionStatus(
  trx: Knex.Transaction,
  id: string,
  status: 'active' | 'past_due',
): Promise<void> {
  await execute(
    trx,
    `UPDATE subscriptions SET status = ?, version = version + 1, updated_at = now()
     WHERE id = ? AND status <> 'canceled'`,
    [status, id],
  );
}

// ---- invoices --------------------------------------------------------------------------------------------------

export type InvoiceStatus = 'open' | 'paid' | 'uncollectible' | 'void';

export interface InvoiceRow {
  id: string;
  key: string;
  customer_id: string;
  subscription_id: string | null;
  status: InvoiceStatus;
  collection: 'charge' | 'net_terms';
  total_nanos: bigint;
  period_start: Date;
  period_end: Date;
  due_at: Date;
  payment_id: string | null;
  paid_at: Date | null;
  attempts: number;
  created_at: Date;
}

export interface InvoiceLineRow {
  invoice_id: string;
  line_no: number;
  description: string;
  amount_nanos: bigint;
  quantity: string;
  period_start: Date;
  period_end: Date;
}

const INVOICE_COLUMNS = `id, key, customer_id, subscription_id, status, collection, total_nanos, period_start,
  period_end, due_at, payment_id, paid_at, attempts, created_at`;

/**
 * Writes an invoice and its lines once per key (the total is the lines' sum; the database checks it at commit) and
 * records `invoice.created` with it. A second write of the same key returns the first invoice.
 */
export async function writeInvoice(
  trx: Knex.Transaction,
  invoice: InvoiceDraft & { customer_id: string; subscription_id: string | null },
): Promise<InvoiceRow> {
  const existing = await findInvoiceByKey(trx, invoice.key);
  if (existing) return existing;
  const id = `in_${randomBytes(12).toString('hex')}`;
  const total = invoiceTotal_nanos(invoice.lines);
  await execute(
    trx,
    `INSERT INTO invoices (id, key, customer_id, subscription_id, status, collection, total_nanos, period_start,
       period_end, due_at)
     VALUES (?, ?, ?, ?, 'open', ?, ?, ?, ?, ?)`,
    [
      id,
      invoice.key,
      invoice.customer_id,
      invoice.subscription_id,
      invoice.collection,
      total,
      invoice.period_start,
      invoice.period_end,
      invoice.due_at,
    ],
  );
  await insertLines(trx, id, invoice.lines);
  const row = (await getInvoice(trx, id))!;
  await recordInvoiceEvent(trx, 'invoice.created', row);
  return row;
}

async function insertLines(
  trx: Knex.Transaction,
  invoice_id: string,
  lines: readonly InvoiceLine[],
): Promise<void> {
  let line_no = 0;
  for (const line of lines) {
    line_no += 1;
    await execute(
      trx,
      `INSERT INTO invoice_lines (invoice_id, line_no, description, amount_nanos, quantity, period_start, period_end)
       VALUES (?, ?, ?, ?, ?::numeric, ?, ?)`,
      [
        invoice_id,
        line_no,
        line.description,
        line.amount_nanos,
        line.quantity,
        line.period_start,
        line.period_end,
      ],
    );
  }
}

export async function getInvoice(q: Db, id: string): Promise<InvoiceRow | undefined> {
  const rows = await queryRows<InvoiceRow>(q, `SELECT ${INVOICE_COLUMNS} FROM invoices WHERE id = ?`, [id]);
  return rows[0];
}

export async function findInvoiceByKey(q: Db, key: string): Promise<InvoiceRow | undefined> {
  const rows = await queryRows<InvoiceRow>(q, `SELECT ${INVOICE_COLUMNS} FROM invoices WHERE key = ?`, [key]);
  return rows[0];
}

/** A start's invoice is written before its subscription exists; it names the subscription once it does. */
export async function linkInvoiceToSubscription(
  trx: Knex.Transaction,
  invoice_id: string,
  subscription_id: string,
): Promise<void> {
  await execute(trx, `UPDATE invoices SET subscription_id = ? WHERE id = ? AND subscription_id IS NULL`, [
    subscription_id,
    invoice_id,
  ]);
}

export async function invoiceLines(q: Db, invoice_ids: readonly string[]): Promise<InvoiceLineRow[]> {
  if (invoice_ids.length === 0) return [];
  return queryRows<InvoiceLineRow>(
    q,
    `SELECT invoice_id, line_no, description, amount_nanos, quantity::text AS quantity, period_start, period_end
     FROM invoice_lines WHERE invoice_id = ANY(string_to_array(?, ',')) ORDER BY invoice_id, line_no`,
    [invoice_ids.join(',')],
  );
}

/** A customer's invoices, newest first, paged by `starting_after` (an invoice id). */
export async function listInvoices(
  q: Db,
  customer_id: string,
  page: { limit: number; starting_after?: string },
): Promise<InvoiceRow[]> {
  if (page.starting_after === undefined) {
    return queryRows<InvoiceRow>(
      q,
      `SELECT ${INVOICE_COLUMNS} FROM invoices WHERE customer_id = ? ORDER BY created_at DESC, id DESC LIMIT ?`,
      [customer_id, page.limit],
    );
  }
  // The cursor's own row gives the position (compared in PostgreSQL, at its microsecond precision).
  return queryRows<InvoiceRow>(
    q,
    `SELECT ${INVOICE_COLUMNS} FROM invoices i WHERE i.customer_id = ?
       AND (i.created_at, i.id) < (SELECT a.created_at, a.id FROM invoices a WHERE a.id = ? AND a.customer_id = ?)
     ORDER BY i.created_at DESC, i.id DESC LIMIT ?`,
    [customer_id, page.starting_after, customer_id, page.limit],
  );
}

/** Notes that charge attempt `attempt` of an open invoice is being made (the workflow numbers attempts). */
export async function noteInvoiceAttempt(q: Db, invoice_id: string, attempt: number): Promise<void> {
  await execute(
    q,
    `UPDATE invoices SET attempts = GREATEST(attempts, ?), updated_at = now() WHERE id = ? AND status = 'open'`,
    [attempt, invoice_id],
  );
}

/**
 * Marks an invoice paid by a payment and records `invoice.paid` (once). A void invoice is paid too: a charge that
 * went through while the invoice was being voided (cancel now) must show as paid, never as money taken for nothing.
 */
export async function markInvoicePaid(
  trx: Knex.Transaction,
  invoice_id: string,
  payment_id: string | null,
  at: Date,
): Promise<InvoiceRow | undefined> {
  await execute(
    trx,
    `UPDATE invoices SET status = 'paid', payment_id = ?, paid_at = ?, updated_at = now()
     WHERE id = ? AND status IN ('open', 'void')`,
    [payment_id, at, invoice_id],
  );
  const row = await getInvoice(trx, invoice_id);
  if (row?.status === 'paid') await recordInvoiceEvent(trx, 'invoice.paid', row);
  return row;
}

/**
 * An operator records that a net-terms invoice was paid outside the card gateway (a bank transfer, a check):
 * `paid` and `invoice.paid`, once. Card invoices are paid by their charges only.
 */
export async function payInvoiceExternally(
  db: Db,
  invoice_id: string,
  at: Date,
): Promise<'paid' | 'not_found' | 'not_net_terms' | InvoiceStatus> {
  return db.transaction(async (trx) => {
    const first = await getInvoice(trx, invoice_id);
    if (!first) return 'not_found';
    await lockCustomer(trx, first.customer_id);
    const invoice = (await getInvoice(trx, invoice_id))!;
    if (invoice.collection !== 'net_terms') return 'not_net_terms';
    if (invoice.status === 'paid') return 'paid';
    if (invoice.status !== 'open') return invoice.status;
    await markInvoicePaid(trx, invoice.id, null, at);
    return 'paid';
  });
}

/** Voids an invoice still open (outside a caller's transaction). */
export async function voidOpenInvoice(db: Db, invoice_id: string): Promise<void> {
  await execute(
    db,
    `UPDATE invoices SET status = 'void', updated_at = now() WHERE id = ? AND status = 'open'`,
    [invoice_id],
  );
}

export async function closeInvoice(
  trx: Knex.Transaction,
  invoice_id: string,
  status: 'void' | 'uncollectible',
): Promise<void> {
  await execute(trx, `UPDATE invoices SET status = ?, updated_at = now() WHERE id = ? AND status = 'open'`, [
    status,
    invoice_id,
  ]);
}

async function recordInvoiceEvent(trx: Knex.Transaction, type: EventType, row: InvoiceRow): Promise<void> {
  await recordEvent(trx, {
    customer_id: row.customer_id,
    type,
    occurrence_key: `${type}:${row.id}`,
    data: {
      invoice_id: row.id,
      subscription_id: row.subscription_id,
      status: row.status,
      total_usd: formatUsd(row.total_nanos),
      period_start: row.period_start.toISOString(),
      period_end: row.period_end.toISOString(),
      due_at: row.due_at.toISOString(),
    },
  });
}

/** Records a subscription event once per occurrence key, in the caller's transaction. */
export async function recordSubscriptionEvent(
  trx: Knex.Transaction,
  type: Extract<EventType, `subscription.${string}`>,
  sub: Subscription,
  occurrence: string,
  extra: Record<string, unknown> = {},
): Promise<void> {
  await recordEvent(trx, {
    customer_id: sub.customer_id,
    type,
    occurrence_key: `${type}:${sub.id}:${occurrence}`,
    data: {
      subscription_id: sub.id,
      plan: sub.plan,
      seats: sub.seats,
      status: sub.status,
      current_period_start: sub.current_period_start.toISOString(),
      current_period_end: sub.current_period_end.toISOString(),
      ...extra,
    },
  });
}
