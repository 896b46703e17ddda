import type { Knex } from 'knex';

/**
 * `customers.tier_review_at`: the instant the customer's next spend-tier age rule is met (written by every tier
 * review, null when no higher tier waits only for time). The account workflow's durable timer reviews the tier then;
 * the periodic sweep wakes an account whose review is overdue (its workflow was not running), so a terminated account
 * is promoted without waiting for the customer's next payment.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE customers ADD COLUMN tier_review_at timestamptz;
    CREATE INDEX customers_tier_review_idx ON customers (tier_review_at) WHERE tier_review_at IS NOT NULL;
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP INDEX customers_tier_review_idx;
    ALTER TABLE customers DROP COLUMN tier_review_at;
  `);
}
