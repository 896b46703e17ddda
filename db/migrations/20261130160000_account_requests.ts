import type { Knex } from 'knex';

/**
 * Money requests are recorded in PostgreSQL before the account workflow hears of them, so the database, not the
 * workflow's queue, is the record of what was asked and what came of it:
 *
 * - `top_ups` keeps why a top-up failed in full (the decline code and message a 402 shows), whether a card
 *   declined it or the account refused it, and when it settled.
 * - `credit_grant_requests` is an operator grant as it was asked for, before the ledger has it: `pending` until
 *   the account workflow grants it (the grant row then has the same id) or refuses it (with a code).
 *
 * The partial indexes serve the workflow's rebuild (pending requests of one customer, oldest first) and the API's
 * wait for outcomes.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE top_ups
      ADD COLUMN decline_code     text,
      ADD COLUMN failure_message  text,
      ADD COLUMN settled_at       timestamptz;
    CREATE INDEX top_ups_pending_idx ON top_ups (customer_id, created_at, id) WHERE status = 'pending';

    CREATE TABLE credit_grant_requests (
      id               text PRIMARY KEY,
      customer_id      text NOT NULL REFERENCES customers(id),
      amount_nanos     bigint NOT NULL CHECK (amount_nanos > 0),
      source           text NOT NULL CHECK (source IN ('promotion', 'goodwill')),
      reason           text,
      expires_at       timestamptz,
      status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'granted', 'refused')),
      failure_code     text,
      failure_message  text,
      created_at       timestamptz NOT NULL DEFAULT now(),
      settled_at       timestamptz
    );
    CREATE INDEX credit_grant_requests_pending_idx ON credit_grant_requests (customer_id, created_at, id)
      WHERE status = 'pending';
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP TABLE credit_grant_requests;
    DROP INDEX top_ups_pending_idx;
    ALTER TABLE top_ups DROP COLUMN decline_code, DROP COLUMN failure_message, DROP COLUMN settled_at;
  `);
}
