import { ApplicationFailure } from '@temporalio/activity';
import { formatUsd, usd } from '../billing/money';
import type { TopUpResult } from '../billing/account';
import type { Db } from '../db/connection';
import { getCustomer } from '../db/customers';
import { PermanentError } from '../db/errors';
import { grantCredit } from '../db/ledger';
import { findPayment, type PaymentRecord, recordPayment } from '../db/payments';
import { getTopUp, recordTopUp, settleTopUp, type TopUpRow } from '../db/top-ups';
import type { PaymentGateway } from '../payments/payment-gateway';

/**
 * A top-up is three idempotent steps, each keyed by the top-up id (never the workflow run id, which changes at
 * continue-as-new): record it as pending, charge the card with idempotency key `top_up:<id>`, then grant the
 * credit with ledger entry (`top_up`, <id>). A worker killed between any two steps replays into exactly one
 * charge and one grant.
 */

export interface TopUpInput {
  top_up_id: string;
  customer_id: string;
  amount_usd: string;
}

export type ChargeResult =
  | { status: 'succeeded'; payment_id: string }
  /** The top-up was settled before this call (a redelivered request): nothing was charged now. */
  | { status: 'settled'; result: TopUpResult }
  | {
      status: 'failed';
      payment_id: string;
      failure_code: string;
      decline_code: string | null;
      message: string;
    };

/** Ids derived from the top-up id, so every retry names the same payment and grant. */
const paymentIdFor = (top_up_id: string): string => `pay_${top_up_id}`;
const grantIdFor = (top_up_id: string): string => `gr_${top_up_id}`;

export function topUpActivities(deps: { db: Db; gateway: PaymentGateway }) {
  return {
    /**
     * Records the top-up as pending (the API has usually done so already). Returns its outcome when it is already
     * settled, so a request delivered twice (a signal and a rebuild from the database) runs once.
     */
    async startTopUp(input: TopUpInput): Promise<{ settled: TopUpResult | null }> {
      const row = await recordTopUp(deps.db, {
        id: input.top_up_id,
        customer_id: input.customer_id,
        amount_nanos: usd(input.amount_usd),
      });
      return { settled: row.status === 'pending' ? null : resultFrom(row) };
    },

    /**
     * Charges the card. Without `payment_method` (requests that arrived by signal), this step also records the
     * top-up (one step fewer per top-up: the API has recorded it already) and answers `settled` for a top-up that
     * has its outcome; then the card on file in PostgreSQL is charged: the database is the authority on it, and
     * none on file is a permanent `no_payment_method`.
     */
    async chargeTopUp(input: TopUpInput & { payment_method?: string }): Promise<ChargeResult> {
      const amount_nanos = usd(input.amount_usd);
      if (input.payment_method === undefined) {
        const row = await recordTopUp(deps.db, {
          id: input.top_up_id,
          customer_id: input.customer_id,
          amount_nanos,
        });
        if (row.status !== 'pending') return { status: 'settled', result: resultFrom(row) };
      }
      const idempotency_key = `top_up:${input.top_up_id}`;
      const payment_id = paymentIdFor(input.top_up_id);
      // A charge already recorded is never made again: the gateway's own idempotency key may have expired (Stripe
      // keeps keys about 24 h) by the time a stopped run resumes, so our record, not the gateway's, decides.
      const recorded = await findPayment(deps.db, idempotency_key);
      if (recorded) return chargeResultOf(recorded);
      const payment_method = input.payment_method ?? (await cardOnFile(deps.db, input.customer_id));
      const outcome = await deps.gateway.charge({
        idempotency_key,
        customer_id: input.customer_id,
        payment_method,
        amount_nanos,
        description: `Credit top-up ${input.top_up_id}`,
      });
      await recordPayment(deps.db, {
        id: payment_id,
        customer_id: input.customer_id,
        gateway: deps.gateway.name,
        idempotency_key,
        gateway_charge_id: outcome.charge_id,
        payment_method,
        amount_nanos,
        status: outcome.status,
        failure_code: outcome.status === 'failed' ? outcome.failure_code : null,
      });
      if (outcome.status === 'succeeded') return { status: 'succeeded', payment_id };
      return {
        status: 'failed',
        payment_id,
        failure_code: outcome.failure_code,
        decline_code: outcome.decline_code,
        message: outcome.message,
      };
    },

    /** Grants the paid credit and marks the top-up succeeded, in one transaction. */
    async completeTopUp(input: TopUpInput & { payment_id: string }): Promise<TopUpResult> {
      const amount_nanos = usd(input.amount_usd);
      const grant_id = grantIdFor(input.top_up_id);
      await deps.db.transaction(async (trx) => {
        const grant = await grantCredit(trx, {
          grant_id,
          customer_id: input.customer_id,
          source: 'top_up',
          amount_nanos,
          reason: null,
          expires_at: null,
          kind: 'top_up',
          ref: input.top_up_id,
          funded_by: 'payments',
        });
        if (grant.amount_nanos !== amount_nanos) {
          throw ApplicationFailure.nonRetryable(
            `grant ${grant.id} does not match top-up ${input.top_up_id}`,
            'conflict',
          );
        }
        await settleTopUp(trx, input.top_up_id, {
          status: 'succeeded',
          payment_id: input.payment_id,
          grant_id,
        });
      });
      return resultOf(deps.db, input.top_up_id);
    },

    async failTopUp(
      input: TopUpInput & {
        payment_id: string;
        failure_code: string;
        decline_code: string | null;
        message: string;
      },
    ): Promise<TopUpResult> {
      await settleTopUp(deps.db, input.top_up_id, {
        status: 'failed',
        payment_id: input.payment_id,
        failure_code: input.failure_code,
        decline_code: input.decline_code,
        failure_message: input.message,
      });
      return resultOf(deps.db, input.top_up_id);
    },
  };
}

/** A recorded charge attempt as this step's result (the gateway's decline details are not stored, only its code). */
function chargeResultOf(payment: PaymentRecord): ChargeResult {
  if (payment.status === 'succeeded') return { status: 'succeeded', payment_id: payment.id };
  const failure_code = payment.failure_code ?? 'processing_error';
  return {
    status: 'failed',
    payment_id: payment.id,
    failure_code,
    decline_code: null,
    message: `the charge failed (${failure_code})`,
  };
}

async function cardOnFile(db: Db, customer_id: string): Promise<string> {
  const customer = await getCustomer(db, customer_id);
  if (!customer) throw new PermanentError('not_found', `customer ${customer_id} does not exist`);
  if (customer.payment_method === null) {
    throw new PermanentError('no_payment_method', 'the customer has no payment method on file');
  }
  return customer.payment_method;
}

/** The top-up's outcome as stored: the database, not the caller, is the authority on what happened. */
async function resultOf(db: Db, top_up_id: string): Promise<TopUpResult> {
  const row = await getTopUp(db, top_up_id);
  if (!row || row.status === 'pending') throw new Error(`top-up ${top_up_id} is not settled`);
  return resultFrom(row);
}

function resultFrom(row: TopUpRow): TopUpResult {
  return {
    top_up_id: row.id,
    status: row.status === 'succeeded' ? 'succeeded' : 'failed',
    amount_usd: formatUsd(row.amount_nanos),
    grant_id: row.grant_id,
    failure_code: row.failure_code,
    decline_code: row.decline_code,
    failure_message: row.failure_message,
  };
}
