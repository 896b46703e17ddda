import type { Knex } from 'knex';

/**
 * The hot path: authorizations (holds), usage events (deduplicated forever per customer), and the outbox of
 * balance-threshold crossings that the account workflow is told about.
 *
 * Usage is charged by one ledger entry per (ingestion batch, customer) or per capture, and every usage event
 * points at the entry that charged it: the ledger stays double-entry and exact without one entry per token event.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE wallets ADD COLUMN low_balance_threshold_nanos bigint CHECK (low_balance_threshold_nanos >= 0);
    -- A crossing is recorded only while armed; a debit that crosses disarms, and only credit that brings the
    -- balance back to the threshold re-arms (not a released hold), so a balance hovering around the threshold
    -- under holds and captures is one crossing, not one per call. last_crossing_xact tells a statement that it
    -- was the one that crossed (RETURNING cannot see the old row).
    ALTER TABLE wallets ADD COLUMN threshold_armed boolean NOT NULL DEFAULT true;
    ALTER TABLE wallets ADD COLUMN last_crossing_xact xid8;
    CREATE FUNCTION below_threshold(threshold_nanos bigint, balance_nanos bigint) RETURNS boolean
      LANGUAGE sql IMMUTABLE AS $$ SELECT threshold_nanos IS NOT NULL AND balance_nanos < threshold_nanos $$;

    CREATE TABLE authorizations (
      id              text PRIMARY KEY,
      customer_id     text NOT NULL REFERENCES customers(id),
      model           text NOT NULL,
      hold_nanos      bigint NOT NULL CHECK (hold_nanos >= 0),
      status          text NOT NULL CHECK (status IN ('held', 'captured', 'voided', 'expired')),
      created_at      timestamptz NOT NULL DEFAULT now(),
      expires_at      timestamptz NOT NULL,
      settled_at      timestamptz,
      cost_nanos      bigint,
      released_nanos  bigint,
      event_id        text,
      CHECK ((status = 'held') = (settled_at IS NULL))
    );
    CREATE INDEX authorizations_expiry_idx ON authorizations (expires_at) WHERE status = 'held';
    CREATE INDEX authorizations_customer_idx ON authorizations (customer_id, created_at);

    -- No foreign keys here on purpose: ingestion checks the customers of a batch in the same statement, and the
    -- link to the charging entry is verified by the ledger check; per-row FK triggers cost a fifth of ingestion
    -- throughput. An event is charged by the entry ('usage', 'usage:<batch_id>:<customer_id>') of its ingestion
    -- batch or ('capture', <authorization_id>) of its capture: see the view usage_event_entries.
    CREATE TABLE usage_events (
      customer_id          text NOT NULL,
      event_id             text NOT NULL,
      model                text NOT NULL,
      feature              text,
      processing           text NOT NULL,
      occurred_at          timestamptz NOT NULL,
      recorded_at          timestamptz NOT NULL DEFAULT now(),
      cost_nanos           bigint NOT NULL CHECK (cost_nanos >= 0),
      provider_cost_nanos  bigint NOT NULL CHECK (provider_cost_nanos >= 0),
      price_version        text NOT NULL,
      -- Per dimension: {"input_tokens": [quantity, amount_nanos], "tool_calls.web_search": [2, 20000000]}.
      lines                jsonb NOT NULL,
      batch_id             uuid,
      authorization_id     text,
      PRIMARY KEY (customer_id, event_id),
      CHECK ((batch_id IS NULL) <> (authorization_id IS NULL))
    );
    CREATE INDEX usage_events_time_idx ON usage_events (customer_id, occurred_at);

    CREATE VIEW usage_event_entries AS
      SELECT u.customer_id, u.event_id, u.occurred_at, u.cost_nanos, e.id AS entry_id, e.kind AS entry_kind,
             e.customer_id AS entry_customer_id
      FROM usage_events u
      LEFT JOIN ledger_entries e
        ON e.kind = CASE WHEN u.authorization_id IS NULL THEN 'usage' ELSE 'capture' END
       AND e.ref = CASE WHEN u.authorization_id IS NULL THEN 'usage:' || u.batch_id || ':' || u.customer_id
                        ELSE u.authorization_id END;

    CREATE TABLE threshold_crossings (
      id                   bigserial PRIMARY KEY,
      customer_id          text NOT NULL REFERENCES customers(id),
      threshold_nanos      bigint NOT NULL,
      balance_after_nanos  bigint NOT NULL,
      crossed_at           timestamptz NOT NULL DEFAULT now(),
      signaled_at          timestamptz
    );
    CREATE INDEX threshold_crossings_pending_idx ON threshold_crossings (id) WHERE signaled_at IS NULL;
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP VIEW usage_event_entries;
    DROP TABLE threshold_crossings, usage_events, authorizations;
    DROP FUNCTION below_threshold(bigint, bigint);
    ALTER TABLE wallets DROP COLUMN low_balance_threshold_nanos, DROP COLUMN threshold_armed,
      DROP COLUMN last_crossing_xact;
  `);
}
