import type { Knex } from 'knex';

/**
 * The core ledger. Money columns are `bigint` nanos (1e-9 USD); see billing/money.ts.
 *
 * - `wallets` is the one row per customer that the hot path updates conditionally. It holds the customer's two
 *   ledger accounts (available and held). System accounts (payments, revenue, promotions, breakage) have no
 *   stored balance row on purpose: a stored revenue balance would be one row every usage event in the system
 *   has to lock. Their balances are derived from postings when needed.
 * - `ledger_entries` + `ledger_postings` are append-only and double-entry: every entry's postings sum to zero.
 *   `(kind, ref)` is unique, which is what makes every money movement idempotent under retry.
 * - `credit_grants` record where credit came from. The hot path does not touch them; consumption is allocated
 *   to grants (soonest expiry first, then oldest) whenever it matters: before a new grant, an expiry, a refund
 *   or a void, and in every balance read.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE customers (
      id              text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
      email           text,
      name            text,
      metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
      payment_method  text,
      status          text NOT NULL DEFAULT 'active',
      created_at      timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE wallets (
      customer_id      text PRIMARY KEY REFERENCES customers(id),
      available_nanos  bigint NOT NULL DEFAULT 0,
      held_nanos       bigint NOT NULL DEFAULT 0 CHECK (held_nanos >= 0),
      updated_at       timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE ledger_entries (
      id                   bigserial PRIMARY KEY,
      customer_id          text REFERENCES customers(id),
      kind                 text NOT NULL,
      ref                  text NOT NULL,
      amount_nanos         bigint NOT NULL,
      balance_after_nanos  bigint,
      created_at           timestamptz NOT NULL DEFAULT now(),
      UNIQUE (kind, ref)
    );
    CREATE INDEX ledger_entries_customer_idx ON ledger_entries (customer_id, id DESC);
    COMMENT ON COLUMN ledger_entries.amount_nanos IS 'Signed change of the customer''s available balance.';

    CREATE TABLE ledger_postings (
      id            bigserial PRIMARY KEY,
      entry_id      bigint NOT NULL REFERENCES ledger_entries(id),
      customer_id   text REFERENCES customers(id),
      account       text NOT NULL CHECK (account IN
                      ('available', 'held', 'payments', 'promotions', 'revenue', 'breakage', 'refunds')),
      amount_nanos  bigint NOT NULL,
      CHECK ((account IN ('available', 'held')) = (customer_id IS NOT NULL))
    );
    CREATE INDEX ledger_postings_entry_idx ON ledger_postings (entry_id);
    CREATE INDEX ledger_postings_customer_idx ON ledger_postings (customer_id, account);

    CREATE TABLE credit_grants (
      id               text PRIMARY KEY,
      customer_id      text NOT NULL REFERENCES customers(id),
      source           text NOT NULL CHECK (source IN
                         ('top_up', 'auto_recharge', 'promotion', 'goodwill', 'refund_reversal', 'subscription')),
      reason           text,
      amount_nanos     bigint NOT NULL CHECK (amount_nanos > 0),
      remaining_nanos  bigint NOT NULL CHECK (remaining_nanos >= 0 AND remaining_nanos <= amount_nanos),
      granted_at       timestamptz NOT NULL DEFAULT now(),
      expires_at       timestamptz,
      closed_at        timestamptz,
      closed_reason    text CHECK (closed_reason IN ('expired', 'voided')),
      entry_id         bigint NOT NULL REFERENCES ledger_entries(id),
      CHECK (expires_at IS NULL OR expires_at > granted_at)
    );
    CREATE INDEX credit_grants_customer_idx ON credit_grants (customer_id, granted_at);
    CREATE INDEX credit_grants_expiry_idx ON credit_grants (expires_at) WHERE closed_at IS NULL;

    CREATE TABLE top_ups (
      id               text PRIMARY KEY,
      customer_id      text NOT NULL REFERENCES customers(id),
      amount_nanos     bigint NOT NULL CHECK (amount_nanos > 0),
      status           text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
      failure_code     text,
      payment_id       text,
      grant_id         text REFERENCES credit_grants(id),
      created_at       timestamptz NOT NULL DEFAULT now(),
      updated_at       timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX top_ups_customer_idx ON top_ups (customer_id, created_at DESC);

    -- Every charge attempt we made through a gateway, keyed like the gateway call itself.
    CREATE TABLE payments (
      id                 text PRIMARY KEY,
      customer_id        text NOT NULL REFERENCES customers(id),
      gateway            text NOT NULL,
      idempotency_key    text NOT NULL UNIQUE,
      gateway_charge_id  text,
      payment_method     text NOT NULL,
      amount_nanos       bigint NOT NULL CHECK (amount_nanos > 0 AND amount_nanos % 10000000 = 0),
      status             text NOT NULL CHECK (status IN ('succeeded', 'failed')),
      failure_code       text,
      created_at         timestamptz NOT NULL DEFAULT now()
    );

    -- The simulated gateway's own books: what a card processor would hold on its side.
    CREATE TABLE simulated_charges (
      id               text PRIMARY KEY,
      idempotency_key  text NOT NULL UNIQUE,
      customer_ref     text NOT NULL,
      payment_method   text NOT NULL,
      amount_cents     bigint NOT NULL CHECK (amount_cents > 0),
      status           text NOT NULL CHECK (status IN ('succeeded', 'failed')),
      decline_code     text,
      created_at       timestamptz NOT NULL DEFAULT now()
    );

    -- Stored responses for the Idempotency-Key header (24 h), per caller.
    CREATE TABLE idempotency_keys (
      scope          text NOT NULL,
      key            text NOT NULL,
      request_hash   text NOT NULL,
      status_code    integer,
      response_body  jsonb,
      created_at     timestamptz NOT NULL DEFAULT now(),
      locked_at      timestamptz,
      PRIMARY KEY (scope, key)
    );
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP TABLE idempotency_keys, simulated_charges, payments, top_ups, credit_grants,
      ledger_postings, ledger_entries, wallets, customers;
  `);
}
