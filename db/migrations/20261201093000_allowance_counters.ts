import type { Knex } from 'knex';

/**
 * Soft-cap counters (README "Soft caps"): one row per customer, allowance (`counter_key`: the plan id and the
 * allowance's position in it) and window, counted by `POST /v1/customers/:id/route` in one statement whose
 * conditional upsert never takes `used` past the allowance's limit. `window_end` is when the row stops mattering,
 * so old windows can be deleted by it (no job does yet: see the README).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE allowance_counters (
      customer_id   text NOT NULL REFERENCES customers(id),
      counter_key   text NOT NULL,
      window_start  timestamptz NOT NULL,
      window_end    timestamptz NOT NULL CHECK (window_end > window_start),
      used          integer NOT NULL CHECK (used >= 0),
      PRIMARY KEY (customer_id, counter_key, window_start)
    );
    CREATE INDEX allowance_counters_window_end_idx ON allowance_counters (window_end);
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`DROP TABLE allowance_counters;`);
}
