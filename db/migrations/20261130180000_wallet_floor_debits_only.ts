import type { Knex } from 'knex';

/**
 * The wallet floor refuses debits only. A wallet can sit below the floor without any debit taking it there (the
 * operator lowered WALLET_FLOOR_USD, or an expiry wrote off credit that was held), and then a movement that adds
 * to the available balance, such as a capture cheaper than its hold, must still go through: refusing it would
 * leave the call's usage unrecorded and the hold in place.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE OR REPLACE FUNCTION wallet_floor_guard(available_nanos bigint, delta_nanos bigint, floor_nanos bigint)
      RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
    BEGIN
      IF delta_nanos < 0 AND available_nanos::numeric + delta_nanos < -floor_nanos::numeric THEN
        RAISE EXCEPTION 'the available balance would go below the wallet floor of -% nanos', floor_nanos
          USING ERRCODE = 'WF001';
      END IF;
      RETURN available_nanos + delta_nanos;
    END $$;
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE OR REPLACE FUNCTION wallet_floor_guard(available_nanos bigint, delta_nanos bigint, floor_nanos bigint)
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
