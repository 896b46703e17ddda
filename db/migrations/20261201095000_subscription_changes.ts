import type { Knex } from 'knex';

/**
 * Subscription changes are requests like top-ups: the API records one as `pending`, the account workflow runs it
 * (decide, charge its invoice once, apply) and settles it `applied` or `refused`, and the API reads the outcome.
 * `decision` is what the account decided for it (kept so a retried step applies exactly what was charged for), and
 * `invoice_id` the invoice its charge pays. `invoices.attempts` counts the charge attempts made for an invoice
 * (the first at renewal, then dunning's), each its own gateway call keyed by invoice and attempt number.
 * `subscriptions.anchor_index` is the period index at `anchor_at`: periods are counted from there (a change of
 * interval re-anchors the subscription at the renewal that makes it, while the index keeps counting).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE subscription_changes (
      id               text PRIMARY KEY,
      customer_id      text NOT NULL REFERENCES customers(id),
      plan             text NOT NULL,
      seats            integer,
      status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'applied', 'refused')),
      decision         jsonb,
      invoice_id       text REFERENCES invoices(id),
      subscription_id  text REFERENCES subscriptions(id),
      failure_code     text,
      decline_code     text,
      failure_message  text,
      created_at       timestamptz NOT NULL DEFAULT now(),
      settled_at       timestamptz
    );
    CREATE INDEX subscription_changes_pending_idx ON subscription_changes (customer_id, created_at, id)
      WHERE status = 'pending';
    ALTER TABLE invoices ADD COLUMN attempts integer NOT NULL DEFAULT 0;
    ALTER TABLE subscriptions ADD COLUMN anchor_index integer NOT NULL DEFAULT 0 CHECK (anchor_index >= 0);
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE subscriptions DROP COLUMN anchor_index;
    ALTER TABLE invoices DROP COLUMN attempts;
    DROP TABLE subscription_changes;
  `);
}
