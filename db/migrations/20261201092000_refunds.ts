import type { Knex } from 'knex';

/**
 * Refunds of paid credit (README "Refunds"): one row per refund of a top-up's or an auto-recharge's payment.
 * - Recorded `pending` by the API, then run by the account workflow in three steps keyed by the refund id: the claim
 *   (the reversing ledger entry `refund`, available -> refunds, decided under the wallet lock; `claimed_at` and
 *   `from_grant_nanos` say it was taken and how much came off the payment's grant), the gateway's refund
 *   (`gateway_refund_id`), then `succeeded` (entry `refund_settled`, refunds -> payments) or `failed` (a claim is
 *   given back by entry `refund_release`, refunds -> available, as a `refund_reversal` grant).
 * - Exactly one of `top_up_id` and `recharge_id` names what was bought; `grant_id` is its credit.
 * - Amounts are whole cents (a card is refunded in cents), never above the payment (checked under the wallet lock
 *   when claimed; `npm run ledger:check` verifies the succeeded ones).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE refunds (
      id                 text PRIMARY KEY,
      customer_id        text NOT NULL REFERENCES customers(id),
      payment_id         text NOT NULL REFERENCES payments(id),
      top_up_id          text REFERENCES top_ups(id),
      recharge_id        text REFERENCES auto_recharges(id),
      grant_id           text NOT NULL REFERENCES credit_grants(id),
      amount_nanos       bigint NOT NULL CHECK (amount_nanos > 0 AND amount_nanos % 10000000 = 0),
      allow_negative     boolean NOT NULL DEFAULT false,
      status             text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
      from_grant_nanos   bigint CHECK (from_grant_nanos >= 0 AND from_grant_nanos <= amount_nanos),
      claimed_at         timestamptz,
      gateway_refund_id  text,
      failure_code       text,
      failure_message    text,
      created_at         timestamptz NOT NULL DEFAULT now(),
      updated_at         timestamptz NOT NULL DEFAULT now(),
      settled_at         timestamptz,
      CHECK ((top_up_id IS NULL) <> (recharge_id IS NULL)),
      CHECK ((claimed_at IS NULL) = (from_grant_nanos IS NULL)),
      CHECK (status <> 'succeeded' OR (claimed_at IS NOT NULL AND gateway_refund_id IS NOT NULL))
    );
    CREATE INDEX refunds_payment_idx ON refunds (payment_id);
    CREATE INDEX refunds_top_up_idx ON refunds (top_up_id) WHERE top_up_id IS NOT NULL;
    CREATE INDEX refunds_recharge_idx ON refunds (recharge_id) WHERE recharge_id IS NOT NULL;
    CREATE INDEX refunds_customer_idx ON refunds (customer_id, created_at);
    CREATE INDEX refunds_pending_idx ON refunds (customer_id, created_at) WHERE status = 'pending';
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`DROP TABLE refunds;`);
}
