import type { Knex } from 'knex';

/**
 * What the account lifecycle needs from the hot path's row and its outboxes:
 *
 * - `events`: the outbox of outbound events (webhooks). An event is written in the same transaction as the change
 *   it reports, once per occurrence: `occurrence_key` is the business key of the occurrence (`crossing:<id>`,
 *   `top_up:<id>`, ...), so a retried step that writes it again changes nothing. `id` is the public event id (the
 *   Standard Webhooks `webhook-id`), `seq` the order events are fanned out in.
 * - Threshold crossings get a `kind`: the low-balance alert (as before), the auto-recharge threshold, the balance
 *   reaching zero (`depleted`), the month's spend reaching the budget alert or limit. Each kind fires once per
 *   crossing; `last_crossing_kinds` is the bitmask of the kinds the wallet's last crossing transaction fired (see
 *   db/postings.ts).
 * - Budgets, tier limits, operator overrides and the rate-limit buckets live on the wallet row, so that the
 *   authorization statement checks balance, budget and rate in one conditional update.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE events (
      id              text PRIMARY KEY,
      seq             bigserial UNIQUE,
      customer_id     text REFERENCES customers(id),
      type            text NOT NULL,
      data            jsonb NOT NULL,
      occurrence_key  text NOT NULL UNIQUE,
      created_at      timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX events_customer_idx ON events (customer_id, seq);

    ALTER TABLE threshold_crossings ADD COLUMN kind text NOT NULL DEFAULT 'low_balance'
      CHECK (kind IN ('low_balance', 'recharge', 'depleted', 'budget_alert', 'budget_limit'));
    ALTER TABLE threshold_crossings ADD COLUMN month_spend_nanos bigint;

    ALTER TABLE wallets
      ADD COLUMN last_crossing_kinds integer NOT NULL DEFAULT 0,
      ADD COLUMN recharge_threshold_nanos bigint CHECK (recharge_threshold_nanos >= 0),
      ADD COLUMN recharge_armed boolean NOT NULL DEFAULT true,
      -- Armed only while the balance is positive, so a new wallet at zero has not "gone to zero".
      ADD COLUMN depleted_armed boolean NOT NULL DEFAULT false,
      ADD COLUMN budget_alert_nanos bigint CHECK (budget_alert_nanos > 0),
      ADD COLUMN budget_limit_nanos bigint CHECK (budget_limit_nanos > 0),
      -- The UTC month whose spend month_spend_nanos holds; a statement in a later month starts it again at zero.
      ADD COLUMN spend_month date,
      ADD COLUMN month_spend_nanos bigint NOT NULL DEFAULT 0 CHECK (month_spend_nanos >= 0),
      -- The months whose budget alert and budget limit already fired (once per month each).
      ADD COLUMN budget_alert_month date,
      ADD COLUMN budget_limit_month date,
      -- The tier's limits as the account workflow last set them (null: unlimited), and the operator's overrides.
      ADD COLUMN tier_rpm bigint CHECK (tier_rpm > 0),
      ADD COLUMN tier_tpm bigint CHECK (tier_tpm > 0),
      ADD COLUMN tier_usage_limit_nanos bigint CHECK (tier_usage_limit_nanos > 0),
      ADD COLUMN override_rpm bigint CHECK (override_rpm > 0),
      ADD COLUMN override_tpm bigint CHECK (override_tpm > 0),
      ADD COLUMN override_usage_limit_nanos bigint CHECK (override_usage_limit_nanos > 0),
      -- Token buckets of the rate limits: what is left at rate_refilled_at (null: full).
      ADD COLUMN rate_requests double precision,
      ADD COLUMN rate_tokens double precision,
      ADD COLUMN rate_refilled_at timestamptz;
    UPDATE wallets SET depleted_armed = available_nanos > 0;
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE wallets DROP COLUMN last_crossing_kinds, DROP COLUMN recharge_threshold_nanos,
      DROP COLUMN recharge_armed, DROP COLUMN depleted_armed, DROP COLUMN budget_alert_nanos,
      DROP COLUMN budget_limit_nanos, DROP COLUMN spend_month, DROP COLUMN month_spend_nanos,
      DROP COLUMN budget_alert_month, DROP COLUMN budget_limit_month, DROP COLUMN tier_rpm, DROP COLUMN tier_tpm,
      DROP COLUMN tier_usage_limit_nanos, DROP COLUMN override_rpm, DROP COLUMN override_tpm,
      DROP COLUMN override_usage_limit_nanos, DROP COLUMN rate_requests, DROP COLUMN rate_tokens,
      DROP COLUMN rate_refilled_at;
    DELETE FROM threshold_crossings WHERE kind <> 'low_balance';
    ALTER TABLE threshold_crossings DROP COLUMN kind, DROP COLUMN month_spend_nanos;
    DROP TABLE events;
  `);
}
