import type { Knex } from 'knex';

/**
 * Retiring a grant (expiry, void) without charging a hold twice (see billing/grants.ts):
 *
 * - `credit_grants.closed_reason` is set when the grant retires (`expired`, `voided`); `closed_at` only once nothing of
 *   it is reserved for a hold any more. In between the grant is *retiring*: its `remaining_nanos` is exactly the sum
 *   of its open claims. `retired_at` is the instant it retired, `retired_after_entry_id` the customer's last ledger
 *   entry at that instant (taken under the wallet lock), so a statement can replay which debits the grant paid.
 * - `credit_grant_holds`: the claims, one per retiring grant and authorization held when it retired: the part of the
 *   grant's remainder that hold may still capture. A claim settles when its hold does (`paid` by the capture, the rest
 *   `written_off`); unsettled claims of settled holds are what the settlement step looks for.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE credit_grants
      ADD COLUMN retired_at timestamptz,
      ADD COLUMN retired_after_entry_id bigint;
    -- Grants closed before this migration retired when they closed.
    UPDATE credit_grants SET retired_at = closed_at WHERE closed_reason IS NOT NULL;
    ALTER TABLE credit_grants
      ADD CHECK ((closed_reason IS NULL) = (retired_at IS NULL)),
      ADD CHECK (closed_at IS NULL OR closed_reason IS NOT NULL);
    CREATE TABLE credit_grant_holds (
      grant_id           text NOT NULL REFERENCES credit_grants(id),
      authorization_id   text NOT NULL REFERENCES authorizations(id),
      customer_id        text NOT NULL REFERENCES customers(id),
      amount_nanos       bigint NOT NULL CHECK (amount_nanos > 0),
      created_at         timestamptz NOT NULL DEFAULT now(),
      settled_at         timestamptz,
      paid_nanos         bigint CHECK (paid_nanos >= 0),
      written_off_nanos  bigint CHECK (written_off_nanos >= 0),
      PRIMARY KEY (grant_id, authorization_id),
      CHECK ((settled_at IS NULL) = (paid_nanos IS NULL) AND (settled_at IS NULL) = (written_off_nanos IS NULL)),
      CHECK (settled_at IS NULL OR paid_nanos + written_off_nanos = amount_nanos)
    );
    CREATE INDEX credit_grant_holds_open_idx ON credit_grant_holds (customer_id, authorization_id)
      WHERE settled_at IS NULL;
    CREATE INDEX credit_grant_holds_authorization_idx ON credit_grant_holds (authorization_id);
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP TABLE credit_grant_holds;
    ALTER TABLE credit_grants DROP COLUMN retired_at, DROP COLUMN retired_after_entry_id;
  `);
}
