import type { TierLimits } from '../billing/tiers';
import { type Db, execute, queryRows } from './connection';
import { PermanentError } from './errors';
import { MONTH_SPEND_SQL } from './postings';

export interface CustomerRow {
  id: string;
  email: string | null;
  name: string | null;
  metadata: Record<string, string>;
  payment_method: string | null;
  status: string;
  /** The spend tier's id; null for a customer created before tiers, until its account reviews it. */
  tier: string | null;
  created_at: Date;
  available_nanos: bigint;
  held_nanos: bigint;
  budget_alert_nanos: bigint | null;
  budget_limit_nanos: bigint | null;
  spent_this_month_nanos: bigint;
}

const SELECT_CUSTOMER = `SELECT c.id, c.email, c.name, c.metadata, c.payment_method, c.status, c.tier, c.created_at,
  w.available_nanos, w.held_nanos, w.budget_alert_nanos, w.budget_limit_nanos,
  ${MONTH_SPEND_SQL.replace(/(spend_month|month_spend_nanos)/g, 'w.$1')} AS spent_this_month_nanos
  FROM customers c JOIN wallets w ON w.customer_id = c.id`;

/**
 * Creates the customer and its wallet in one transaction. Re-creating an existing id returns the stored
 * customer with `created: false` and changes nothing (the API answers 200 instead of 201). With `tier`, a new
 * customer starts on it (the tier table's first tier) with its limits on the wallet, so the hot path enforces them
 * from the first request; without it (bulk setup such as the benchmark) the tier is left to the account workflow.
 */
export async function createCustomer(
  db: Db,
  input: {
    id: string;
    email: string | null;
    name: string | null;
    metadata: Record<string, string>;
    tier?: { id: string; limits: TierLimits };
  },
): Promise<{ customer: CustomerRow; created: boolean }> {
  const tierId = input.tier?.id ?? null;
  return db.transaction(async (trx) => {
    const inserted = await execute(
      trx,
      `INSERT INTO customers (id, email, name, metadata, tier, tier_since)
       VALUES (?, ?, ?, ?::jsonb, ?, CASE WHEN ?::text IS NULL THEN NULL ELSE now() END) ON CONFLICT (id) DO NOTHING`,
      [input.id, input.email, input.name, JSON.stringify(input.metadata), tierId, tierId],
    );
    if (inserted === 1) {
      const limits = input.tier?.limits;
      await execute(
        trx,
        `INSERT INTO wallets (customer_id, tier_rpm, tier_tpm, tier_usage_limit_nanos) VALUES (?, ?, ?, ?)`,
        [input.id, limits?.rpm ?? null, limits?.tpm ?? null, limits?.monthly_usage_limit_nanos ?? null],
      );
    }
    const customer = await getCustomer(trx, input.id);
    if (!customer) throw new Error(`customer ${input.id} vanished after insert`);
    return { customer, created: inserted === 1 };
  });
}

/** Whether a customer (and so its wallet) exists. */
export async function customerExists(db: Db, id: string): Promise<boolean> {
  const rows = await queryRows<{ found: number }>(
    db,
    `SELECT 1 AS found FROM wallets WHERE customer_id = ?`,
    [id],
  );
  return rows.length === 1;
}

export async function getCustomer(db: Db, id: string): Promise<CustomerRow | undefined> {
  const [row] = await queryRows<CustomerRow>(db, `${SELECT_CUSTOMER} WHERE c.id = ?`, [id]);
  return row;
}

/** Customers ordered by id; `starting_after` is the last id of the previous page. */
export async function listCustomers(
  db: Db,
  page: { limit: number; starting_after?: string },
): Promise<{ data: CustomerRow[]; has_more: boolean }> {
  const rows = await queryRows<CustomerRow>(
    db,
    `${SELECT_CUSTOMER} WHERE (?::text IS NULL OR c.id > ?::text) ORDER BY c.id LIMIT ?`,
    [page.starting_after ?? null, page.starting_after ?? null, page.limit + 1],
  );
  return { data: rows.slice(0, page.limit), has_more: rows.length > page.limit };
}

export async function savePaymentMethod(db: Db, customer_id: string, payment_method: string): Promise<void> {
  const updated = await execute(db, `UPDATE customers SET payment_method = ? WHERE id = ?`, [
    payment_method,
    customer_id,
  ]);
  if (updated !== 1) throw new PermanentError('not_found', `customer ${customer_id} does not exist`);
}
