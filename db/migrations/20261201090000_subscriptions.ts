import type { Knex } from 'knex';

/**
 * Subscriptions and invoices (README "Subscriptions"):
 * - `subscriptions`: at most one live (not `canceled`) subscription per customer. Periods are numbered from 0 (the
 *   first, charged when the subscription starts); `period_index` names the period the row is in, and the renewal of
 *   period n+1 is keyed by (subscription, n+1) so it is charged once across crashes and continue-as-new. A downgrade
 *   or seat decrease waits in `next_plan` / `next_seats` for the period end. `seat_price_nanos` is the per-customer
 *   seat price of a plan priced per customer (enterprise); null for catalog prices.
 * - `invoices`: one per charge and per period, unique by a deterministic `key` (`period:<sub>:<n>`,
 *   `proration:<sub>:<change>`), so a retried step writes it once. `collection` says how it is paid: charged to the
 *   card at once, or sent with net terms (due_at). Amounts are nanos and always whole cents.
 * - `invoice_lines`: their amounts sum to the invoice's total; a deferred constraint trigger checks it at commit, so
 *   no transaction can leave an invoice whose lines disagree with it.
 * - `simulated_refunds`: the simulated gateway's refunds, never more than the charge (checked under its row lock).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE subscriptions (
      id                    text PRIMARY KEY,
      customer_id           text NOT NULL REFERENCES customers(id),
      plan                  text NOT NULL,
      seats                 integer NOT NULL CHECK (seats >= 1),
      seat_price_nanos      bigint CHECK (seat_price_nanos >= 0 AND seat_price_nanos % 10000000 = 0),
      status                text NOT NULL CHECK (status IN ('active', 'past_due', 'canceled')),
      anchor_at             timestamptz NOT NULL,
      period_index          integer NOT NULL DEFAULT 0 CHECK (period_index >= 0),
      current_period_start  timestamptz NOT NULL,
      current_period_end    timestamptz NOT NULL CHECK (current_period_end > current_period_start),
      cancel_at_period_end  boolean NOT NULL DEFAULT false,
      next_plan             text,
      next_seats            integer CHECK (next_seats >= 1),
      canceled_at           timestamptz,
      version               bigint NOT NULL DEFAULT 1,
      created_at            timestamptz NOT NULL DEFAULT now(),
      updated_at            timestamptz NOT NULL DEFAULT now()
    );
    CREATE UNIQUE INDEX subscriptions_one_live_idx ON subscriptions (customer_id) WHERE status <> 'canceled';
    CREATE INDEX subscriptions_customer_idx ON subscriptions (customer_id, created_at DESC);

    CREATE TABLE invoices (
      id               text PRIMARY KEY,
      key              text NOT NULL UNIQUE,
      customer_id      text NOT NULL REFERENCES customers(id),
      subscription_id  text REFERENCES subscriptions(id),
      status           text NOT NULL CHECK (status IN ('draft', 'open', 'paid', 'uncollectible', 'void')),
      collection       text NOT NULL CHECK (collection IN ('charge', 'net_terms')),
      total_nanos      bigint NOT NULL CHECK (total_nanos >= 0 AND total_nanos % 10000000 = 0),
      period_start     timestamptz NOT NULL,
      period_end       timestamptz NOT NULL,
      due_at           timestamptz NOT NULL,
      payment_id       text REFERENCES payments(id),
      paid_at          timestamptz,
      created_at       timestamptz NOT NULL DEFAULT now(),
      updated_at       timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX invoices_customer_idx ON invoices (customer_id, created_at DESC, id DESC);

    CREATE TABLE invoice_lines (
      invoice_id    text NOT NULL REFERENCES invoices(id),
      line_no       integer NOT NULL CHECK (line_no >= 1),
      description   text NOT NULL,
      amount_nanos  bigint NOT NULL,
      quantity      numeric NOT NULL,
      period_start  timestamptz NOT NULL,
      period_end    timestamptz NOT NULL,
      PRIMARY KEY (invoice_id, line_no)
    );

    CREATE FUNCTION invoice_lines_sum_to_total() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      invoice_key text;
      total bigint;
      lines bigint;
    BEGIN
      IF TG_TABLE_NAME = 'invoices' THEN invoice_key := NEW.id; ELSE invoice_key := NEW.invoice_id; END IF;
      SELECT total_nanos INTO total FROM invoices WHERE id = invoice_key;
      SELECT COALESCE(sum(amount_nanos), 0) INTO lines FROM invoice_lines WHERE invoice_id = invoice_key;
      IF total IS DISTINCT FROM lines THEN
        RAISE EXCEPTION 'invoice % lines sum to % nanos, its total is %', invoice_key, lines, total
          USING ERRCODE = '23514';
      END IF;
      RETURN NULL;
    END $$;
    CREATE CONSTRAINT TRIGGER invoices_total_matches_lines AFTER INSERT OR UPDATE OF total_nanos ON invoices
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION invoice_lines_sum_to_total();
    CREATE CONSTRAINT TRIGGER invoice_lines_match_total AFTER INSERT OR UPDATE ON invoice_lines
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION invoice_lines_sum_to_total();

    -- The simulated gateway's refunds, kept like its charges so reconciliation can compare both sides.
    CREATE TABLE simulated_refunds (
      id               text PRIMARY KEY,
      idempotency_key  text NOT NULL UNIQUE,
      charge_id        text NOT NULL REFERENCES simulated_charges(id),
      amount_cents     bigint NOT NULL CHECK (amount_cents > 0),
      created_at       timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX simulated_refunds_charge_idx ON simulated_refunds (charge_id);
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP TABLE simulated_refunds;
    DROP TABLE invoice_lines;
    DROP TABLE invoices;
    DROP FUNCTION invoice_lines_sum_to_total();
    DROP TABLE subscriptions;
  `);
}
