import type { Knex } from 'knex';

/**
 * Auto-recharge that cannot silently stop (billing/auto-recharge.ts, README "Auto-recharge"):
 * - `auto_recharge_settings.version` counts the customer's saves (each PUT adds one), and `auto_recharges
 *   .settings_version` is the version a recharge was decided under: a decline recorded late switches auto-recharge
 *   off only if the customer has not saved the settings since (rows from before this have none: their
 *   `decided_at` is compared with the settings' `updated_at`).
 * - `threshold_crossings.trigger_key`: a `recharge` crossing that no debit made (the customer enabled auto-recharge
 *   while below the threshold, or a new UTC month after a `monthly_limit` refusal) is recorded once per key
 *   (`enable:<version>`, `month:<YYYY-MM>`, per customer) and delivered by the outbox like any other crossing.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE auto_recharge_settings ADD COLUMN version bigint NOT NULL DEFAULT 1;
    ALTER TABLE auto_recharges ADD COLUMN settings_version bigint;
    ALTER TABLE threshold_crossings ADD COLUMN trigger_key text;
    CREATE UNIQUE INDEX threshold_crossings_trigger_key_idx ON threshold_crossings (customer_id, trigger_key)
      WHERE trigger_key IS NOT NULL;
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE threshold_crossings DROP COLUMN trigger_key;
    ALTER TABLE auto_recharges DROP COLUMN settings_version;
    ALTER TABLE auto_recharge_settings DROP COLUMN version;
  `);
}
