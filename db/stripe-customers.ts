import { type Db, execute, queryRows } from './connection';

/**
 * The Stripe customer of each billing customer (`stripe_customers`), kept by the Stripe gateway: looked up before
 * every charge, recorded once after Stripe created it.
 */

/** The Stripe customer id (`cus_…`) recorded for a billing customer, or null before its first Stripe charge. */
export async function findStripeCustomerId(db: Db, customer_id: string): Promise<string | null> {
  const rows = await queryRows<{ stripe_customer_id: string }>(
    db,
    `SELECT stripe_customer_id FROM stripe_customers WHERE customer_id = ?`,
    [customer_id],
  );
  return rows[0]?.stripe_customer_id ?? null;
}

/**
 * Records the Stripe customer of a billing customer unless one is recorded already, and returns the recorded one:
 * when two calls race (each got an id from Stripe), the first to commit wins and both use its id. Fails with a
 * PostgreSQL integrity error (class 23, permanent) when the billing customer does not exist or the Stripe customer
 * already belongs to another billing customer.
 */
export async function recordStripeCustomer(
  db: Db,
  input: { customer_id: string; stripe_customer_id: string },
): Promise<string> {
  await execute(
    db,
    `INSERT INTO stripe_customers (customer_id, stripe_customer_id) VALUES (?, ?)
     ON CONFLICT (customer_id) DO NOTHING`,
    [input.customer_id, input.stripe_customer_id],
  );
  const recorded = await findStripeCustomerId(db, input.customer_id);
  if (recorded === null) throw new Error(`stripe customer of ${input.customer_id} vanished after insert`);
  return recorded;
}
