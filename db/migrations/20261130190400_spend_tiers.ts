import type { Knex } from 'knex';

/**
 * Spend tiers. PostgreSQL holds each customer's tier (the account workflow caches it): `tier` is the id in the tier
 * table (`free`, `tier_1` ...; null for customers created before tiers, until their account reviews them) and
 * `tier_since` when it was assigned. The tier's limits themselves are written to the wallet row (`tier_rpm`, ...),
 * where the hot path reads them.
 *
 * Lifetime paid and the first payment time are read from succeeded payments on every review; the partial index keeps
 * that read to the customer's own successful charges.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE customers
      ADD COLUMN tier text CHECK (tier ~ '^[a-z0-9_]{1,32}$'),
      ADD COLUMN tier_since timestamptz;
    CREATE INDEX payments_succeeded_customer_idx ON payments (customer_id, created_at) WHERE status = 'succeeded';
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP INDEX payments_succeeded_customer_idx;
    ALTER TABLE customers DROP COLUMN tier, DROP COLUMN tier_since;
  `);
}
