import type { Knex } from 'knex';

/**
 * Enterprise contracts (README "Enterprise contracts"): one row per customer with its own seat price (whole cents,
 * the enterprise plan's per-seat price) and its own prices for metered usage, as jsonb lists whose bigints are
 * decimal strings (billing/contracts.ts encodes and decodes them). `version` counts the saves, from 1.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE customer_contracts (
      customer_id       text PRIMARY KEY REFERENCES customers(id),
      seat_price_nanos  bigint NOT NULL CHECK (seat_price_nanos >= 0 AND seat_price_nanos % 10000000 = 0),
      price_overrides   jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(price_overrides) = 'array'),
      volume_tiers      jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(volume_tiers) = 'array'),
      version           bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
      created_at        timestamptz NOT NULL DEFAULT now(),
      updated_at        timestamptz NOT NULL DEFAULT now()
    );
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP TABLE customer_contracts');
}
