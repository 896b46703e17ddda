import type { Knex } from 'knex';

/**
 * `stripe_customers`: the Stripe customer of each billing customer (README "Stripe"), created once by the Stripe
 * gateway at the customer's first charge. One row per billing customer and one billing customer per Stripe customer,
 * so a second creation (a retry, two workers at once) can never leave two Stripe customers both in use.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE stripe_customers (
      customer_id         text PRIMARY KEY REFERENCES customers(id),
      stripe_customer_id  text NOT NULL UNIQUE CHECK (stripe_customer_id <> ''),
      created_at          timestamptz NOT NULL DEFAULT now()
    );
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`DROP TABLE stripe_customers;`);
}
