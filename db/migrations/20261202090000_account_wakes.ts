import type { Knex } from 'knex';

/**
 * The periodic sweep's wakes (db/stalled-accounts.ts): when each customer's account was last woken and how many times
 * in a row, so an account whose work stays overdue (a charge retrying through a gateway outage) is woken again only
 * after a growing backoff instead of every sweep, and accounts never woken go first. The partial index serves the
 * sweep's search for overdue renewals.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE account_wakes (
      customer_id  text PRIMARY KEY REFERENCES customers(id),
      woken_at     timestamptz NOT NULL,
      wakes        integer NOT NULL CHECK (wakes >= 1)
    );
    CREATE INDEX subscriptions_active_period_end_idx ON subscriptions (current_period_end) WHERE status = 'active';
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP INDEX subscriptions_active_period_end_idx;
    DROP TABLE account_wakes;
  `);
}
