import type { Knex } from 'knex';

/**
 * The wallet floor: how far below zero usage that is not checked against the balance (ingested events, a capture
 * beyond its hold) may take a wallet. The floor is configuration (`WALLET_FLOOR_USD`), passed to each statement,
 * so it is a function rather than a constraint. It computes in numeric so that even an absurd debit is refused
 * with this error instead of overflowing `bigint`. Raising aborts the whole statement: nothing of the movement
 * (authorization update, usage event, entry) is left behind. See db/postings.ts.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE FUNCTION wallet_floor_guard(available_nanos bigint, delta_nanos bigint, floor_nanos bigint)
      RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
    BEGIN
      IF available_nanos::numeric + delta_nanos < -floor_nanos::numeric THEN
        RAISE EXCEPTION 'the available balance would go below the wallet floor of -% nanos', floor_nanos
          USING ERRCODE = 'WF001';
      END IF;
      RETURN available_nanos + delta_nanos;
    END $$;
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`DROP FUNCTION wallet_floor_guard(bigint, bigint, bigint);`);
}
