import type { Knex } from 'knex';

/**
 * Auto-recharge (billing/auto-recharge.ts):
 * - `auto_recharge_settings`: one row per customer that has set it (PUT /v1/customers/:id/auto-recharge), the source
 *   of truth the account workflow rebuilds its copy from. Exactly one of a fixed `amount_nanos` and a
 *   `target_balance_nanos` sizes each charge. `disabled_reason` says why it switched itself off (a declined card).
 *   The wallet's `recharge_threshold_nanos` (what the hot path compares against) is set from it and cleared when
 *   it is off.
 * - `auto_recharges`: one row per `recharge` crossing acted on, unique by `crossing_id`, so however often a crossing
 *   is delivered, retried or replayed, it is decided, charged and granted once. Its charge is the `payments` row
 *   with idempotency key `auto_recharge:<customer>:<crossing_id>`; the monthly limit sums succeeded rows by the UTC
 *   month of `decided_at`.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE auto_recharge_settings (
      customer_id           text PRIMARY KEY REFERENCES customers(id),
      enabled               boolean NOT NULL,
      threshold_nanos       bigint NOT NULL CHECK (threshold_nanos >= 0),
      amount_nanos          bigint CHECK (amount_nanos > 0),
      target_balance_nanos  bigint CHECK (target_balance_nanos > 0),
      monthly_limit_nanos   bigint CHECK (monthly_limit_nanos > 0),
      disabled_reason       text,
      updated_at            timestamptz NOT NULL DEFAULT now(),
      CHECK ((amount_nanos IS NULL) <> (target_balance_nanos IS NULL))
    );

    CREATE TABLE auto_recharges (
      id               text PRIMARY KEY,
      customer_id      text NOT NULL REFERENCES customers(id),
      crossing_id      bigint NOT NULL UNIQUE REFERENCES threshold_crossings(id),
      amount_nanos     bigint NOT NULL CHECK (amount_nanos >= 0),
      status           text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'skipped')),
      payment_id       text,
      grant_id         text,
      failure_code     text,
      decline_code     text,
      failure_message  text,
      decided_at       timestamptz NOT NULL,
      settled_at       timestamptz
    );
    CREATE INDEX auto_recharges_month_idx ON auto_recharges (customer_id, decided_at) WHERE status = 'succeeded';
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`DROP TABLE auto_recharges, auto_recharge_settings;`);
}
