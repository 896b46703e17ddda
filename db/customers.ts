import { execute, queryRows, type Db } from './connection';

export interface CustomerRow {
  id: string;
  email: string | null;
  name: string | null;
  metadata: Record<string, string>;
  payment_method: string | null;
  status: string;
  created_at: Date;
}

const CUSTOMER_COLUMNS = 'id, email, name, metadata, payment_method, status, created_at';

/**
 * Creates the customer and its wallet in one transaction. Re-creating an existing id returns the stored
 * customer with `created: false` and changes nothing (the API answers 200 instead of 201).
 */
export async function createCustomer(
  db: Db,
  input: { id: string; email: string | null; name: string | null; metadata: Record<string, string> },
): Promise<{ customer: CustomerRow; created: boolean }> {
  return db.transaction(async (trx) => {
    const inserted = await queryRows<CustomerRow>(
      trx,
      `INSERT INTO customers (id, email, name, metadata) VALUES (?, ?, ?, ?::jsonb)
       ON CONFLICT (id) DO NOTHING RETURNING ${CUSTOMER_COLUMNS}`,
      [input.id, input.email, input.name, JSON.stringify(input.metadata)],
    );
    const created = inserted[0];
    if (created) {
      await execute(trx, `INSERT INTO wallets (customer_id) VALUES (?)`, [input.id]);
      return { customer: created, created: true };
    }
    const existing = await queryRows<CustomerRow>(
      trx,
      `SELECT ${CUSTOMER_COLUMNS} FROM customers WHERE id = ?`,
      [input.id],
    );
    return { customer: existing[0]!, created: false };
  });
}

export async function getCustomer(db: Db, id: string): Promise<CustomerRow | undefined> {
  const result = await queryRows<CustomerRow>(db, `SELECT ${CUSTOMER_COLUMNS} FROM customers WHERE id = ?`, [
    id,
  ]);
  return result[0];
}

/** Customers ordered by id; `starting_after` is the last id of the previous page. */
export async function listCustomers(
  db: Db,
  page: { limit: number; starting_after?: string },
): Promise<{ data: CustomerRow[]; has_more: boolean }> {
  const result = await queryRows<CustomerRow>(
    db,
    `SELECT ${CUSTOMER_COLUMNS} FROM customers WHERE (?::text IS NULL OR id > ?::text) ORDER BY id LIMIT ?`,
    [page.starting_after ?? null, page.starting_after ?? null, page.limit + 1],
  );
  return { data: result.slice(0, page.limit), has_more: result.length > page.limit };
}

export async function savePaymentMethod(db: Db, customer_id: string, payment_method: string): Promise<void> {
  const result = await execute(db, `UPDATE customers SET payment_method = ? WHERE id = ?`, [
    payment_method,
    customer_id,
  ]);
  if (result !== 1) throw new Error(`customer ${customer_id} does not exist`);
}
