import type { Knex } from 'knex';

/**
 * Claims that die with their process, and crossing deliveries that hold no transaction open.
 *
 * - `idempotency_keys.claimed_by` names the process session holding a claim: each API process holds one session
 *   advisory lock on that key for its whole life (db/idempotency.ts), so a claim whose holder's lock is gone was
 *   abandoned by a dead process and is taken over at once. `process_session_alive` is that check.
 * - `threshold_crossings.claimed_until` is a delivery lease: a deliverer claims rows in one short statement, signals
 *   the workflows with no transaction open, then marks them delivered. A crashed deliverer's rows come back when the
 *   lease ends; a failed delivery postpones the row by a backoff that grows with `delivery_attempts`.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE idempotency_keys ADD COLUMN claimed_by bigint;

    CREATE FUNCTION process_session_alive(holder bigint) RETURNS boolean LANGUAGE sql STABLE AS $$
      SELECT EXISTS (
        SELECT 1 FROM pg_locks
        WHERE locktype = 'advisory' AND granted AND objsubid = 1
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND classid = (holder >> 32)::oid AND objid = (holder & 4294967295)::oid)
    $$;

    ALTER TABLE threshold_crossings
      ADD COLUMN claimed_until timestamptz,
      ADD COLUMN delivery_attempts integer NOT NULL DEFAULT 0;
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE threshold_crossings DROP COLUMN claimed_until, DROP COLUMN delivery_attempts;
    DROP FUNCTION process_session_alive(bigint);
    ALTER TABLE idempotency_keys DROP COLUMN claimed_by;
  `);
}
