import type { Knex } from 'knex';

/**
 * Outbound webhooks, from the `events` outbox to the customer's endpoint:
 *
 * - `webhook_endpoints`: where to send which event types (`events` holds types, or `{*}` for every type), and the
 *   Standard Webhooks signing secret (`whsec_...`, kept to sign; shown to the API caller once, at creation).
 *   Deleting an endpoint marks it `deleted`, so its delivery history keeps its foreign keys.
 * - `events.fanned_out_at`: set in the transaction that turned the event into its deliveries (one per enabled,
 *   subscribed endpoint), so each event is fanned out once; the partial index finds the rest.
 * - `webhook_deliveries`: one per (event, endpoint), unique, so a second fan-out could not duplicate one either.
 *   `workflow_started_at` is set once its delivery workflow (`webhook-delivery:<id>`) was started; `claimed_until`
 *   is the dispatcher's lease while it starts it.
 * - `webhook_attempts`: every HTTP request made for a delivery, with its status code or network error, its duration
 *   and the first few KB of the answer.
 * - A statement trigger on `events` notifies channel `billing_events` at commit, so a dispatcher listening there
 *   fans out at once instead of at its next sweep.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE webhook_endpoints (
      id          text PRIMARY KEY,
      seq         bigserial UNIQUE,
      url         text NOT NULL,
      events      text[] NOT NULL CHECK (cardinality(events) > 0),
      secret      text NOT NULL,
      status      text NOT NULL DEFAULT 'enabled' CHECK (status IN ('enabled', 'disabled', 'deleted')),
      created_at  timestamptz NOT NULL DEFAULT now(),
      updated_at  timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX webhook_endpoints_enabled_idx ON webhook_endpoints (seq) WHERE status = 'enabled';

    ALTER TABLE events ADD COLUMN fanned_out_at timestamptz;
    -- Events recorded before webhooks existed had no endpoint to go to.
    UPDATE events SET fanned_out_at = now();
    CREATE INDEX events_fan_out_idx ON events (seq) WHERE fanned_out_at IS NULL;

    CREATE TABLE webhook_deliveries (
      id                   text PRIMARY KEY,
      seq                  bigserial UNIQUE,
      event_id             text NOT NULL REFERENCES events(id),
      endpoint_id          text NOT NULL REFERENCES webhook_endpoints(id),
      status               text NOT NULL DEFAULT 'pending'
                           CHECK (status IN ('pending', 'delivered', 'failed', 'canceled')),
      attempt_count        integer NOT NULL DEFAULT 0,
      next_attempt_at      timestamptz,
      workflow_started_at  timestamptz,
      claimed_until        timestamptz,
      created_at           timestamptz NOT NULL DEFAULT now(),
      completed_at         timestamptz,
      UNIQUE (event_id, endpoint_id)
    );
    CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, seq);
    CREATE INDEX webhook_deliveries_unstarted_idx ON webhook_deliveries (seq) WHERE workflow_started_at IS NULL;
    CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (seq) WHERE status = 'pending';

    CREATE TABLE webhook_attempts (
      id             bigserial PRIMARY KEY,
      delivery_id    text NOT NULL REFERENCES webhook_deliveries(id),
      attempted_at   timestamptz NOT NULL,
      duration_ms    integer NOT NULL CHECK (duration_ms >= 0),
      status_code    integer,
      error          text,
      response_body  text
    );
    CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);

    CREATE FUNCTION notify_event_recorded() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify('billing_events', '');
      RETURN NULL;
    END $$;
    CREATE TRIGGER events_notify AFTER INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION notify_event_recorded();
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP TRIGGER events_notify ON events;
    DROP FUNCTION notify_event_recorded();
    DROP TABLE webhook_attempts;
    DROP TABLE webhook_deliveries;
    ALTER TABLE events DROP COLUMN fanned_out_at;
    DROP TABLE webhook_endpoints;
  `);
}
