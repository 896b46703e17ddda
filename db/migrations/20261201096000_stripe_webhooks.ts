import type { Knex } from 'knex';

/**
 * Inbound Stripe webhooks (README "Inbound Stripe webhooks"):
 * - `stripe_events`: every event whose signature verified, stored once by Stripe's event id before anything acts on
 *   it (a replay finds its row and changes nothing). `object_id` is the id of `data.object` (a PaymentIntent `pi_…`,
 *   a charge, a dispute), so the charge step finds an event that arrived before its own call returned.
 *   `processed_at` is set once the event has been acted on; an event stored but not processed (the API died in
 *   between) is processed again when Stripe redelivers it.
 * - `payments.status` gains `pending`: a PaymentIntent that needs the customer (`requires_action`, SCA); the
 *   webhook (or the charge step reading a stored event) moves it to `succeeded` or `failed`, once.
 * - `disputes`: one row per Stripe dispute, keyed by its id; the disputed credit is frozen by entry `dispute`
 *   (available -> the `disputes` system account) and released (`dispute_won`, disputes -> available) or written off
 *   (`dispute_lost`, disputes -> payments) when it closes.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE stripe_events (
      id            text PRIMARY KEY CHECK (id <> ''),
      type          text NOT NULL,
      object_id     text,
      payload       jsonb NOT NULL,
      received_at   timestamptz NOT NULL DEFAULT now(),
      processed_at  timestamptz
    );
    CREATE INDEX stripe_events_object_idx ON stripe_events (object_id) WHERE object_id IS NOT NULL;

    ALTER TABLE payments DROP CONSTRAINT payments_status_check;
    ALTER TABLE payments ADD CONSTRAINT payments_status_check
      CHECK (status IN ('pending', 'succeeded', 'failed'));
    CREATE INDEX payments_gateway_charge_idx ON payments (gateway_charge_id) WHERE gateway_charge_id IS NOT NULL;

    ALTER TABLE ledger_postings DROP CONSTRAINT ledger_postings_account_check;
    ALTER TABLE ledger_postings ADD CONSTRAINT ledger_postings_account_check CHECK (account IN
      ('available', 'held', 'payments', 'promotions', 'revenue', 'breakage', 'refunds', 'disputes'));

    CREATE TABLE disputes (
      id            text PRIMARY KEY CHECK (id <> ''),
      customer_id   text NOT NULL REFERENCES customers(id),
      payment_id    text NOT NULL REFERENCES payments(id),
      amount_nanos  bigint NOT NULL CHECK (amount_nanos > 0),
      status        text NOT NULL CHECK (status IN ('open', 'won', 'lost')),
      created_at    timestamptz NOT NULL DEFAULT now(),
      closed_at     timestamptz,
      CHECK ((status = 'open') = (closed_at IS NULL))
    );
    CREATE INDEX disputes_customer_idx ON disputes (customer_id, created_at);
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP TABLE disputes;
    ALTER TABLE ledger_postings DROP CONSTRAINT ledger_postings_account_check;
    ALTER TABLE ledger_postings ADD CONSTRAINT ledger_postings_account_check CHECK (account IN
      ('available', 'held', 'payments', 'promotions', 'revenue', 'breakage', 'refunds'));
    DROP INDEX payments_gateway_charge_idx;
    ALTER TABLE payments DROP CONSTRAINT payments_status_check;
    ALTER TABLE payments ADD CONSTRAINT payments_status_check CHECK (status IN ('succeeded', 'failed'));
    DROP TABLE stripe_events;
  `);
}
