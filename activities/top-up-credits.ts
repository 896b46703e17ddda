import { ApplicationFailure } from '@temporalio/activity';
import { formatUsd, usd } from '../billing/money';
import { paidCreditValidity, type AccountSettings, type TopUpResult } from '../billing/account';
import type { Db } from '../db/connection';
import { getGrant, grantPaidCredit } from '../db/ledger';
import {
  awaitTopUpPayment,
  getTopUp,
  recordTopUp,
  settleTopUp,
  topUpPaymentKey,
  type TopUpRow,
} from '../db/top-ups';
import type { PaymentGateway } from '../payments/payment-gateway';
import { type CardChargeResult, chargeCardOrWait, chargeResultOf, type PendingCharge } from './charge-card';

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
  | CardChargeResult
  /** The charge waits for the customer (SCA): Stripe's webhook settles it, and the account runs the top-up again. */
  | PendingCharge
  /** The top-up was settled before this call (a redelivered request): nothing was charged now. */
  | { status: 'settled'; result: TopUpResult };

/** Ids derived from the top-up id, so every retry names the same payment and grant. */
const paymentIdFor = (top_up_id: string): string => `pay_${top_up_id}`;
const grantIdFor = (top_up_id: string): string => `gr_${top_up_id}`;

export function topUpActivities(deps: { db: Db; gateway: PaymentGateway; settings?: AccountSettings }) {
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
      return { settled: row.status === 'pending' ? null : await resultFrom(deps.db, row) };
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
        if (row.status !== 'pending') return { status: 'settled', result: await resultFrom(deps.db, row) };
      }
      return chargeCardOrWait(deps, {
        idempotency_key: topUpPaymentKey(input.top_up_id),
        payment_id: paymentIdFor(input.top_up_id),
        customer_id: input.customer_id,
        amount_nanos,
        description: `Credit top-up ${input.top_up_id}`,
        ...(input.payment_method === undefined ? {} : { payment_method: input.payment_method }),
      });
    },

    /**
     * Parks a top-up whose charge waits for the customer (see db/top-ups.ts `awaitTopUpPayment`), or answers the
     * payment's outcome when Stripe's webhook settled it meanwhile, so the account completes it now.
     */
    async awaitTopUpPayment(
      input: TopUpInput & { payment_id: string },
    ): Promise<CardChargeResult | PendingCharge> {
      return chargeResultOf(await awaitTopUpPayment(deps.db, input.top_up_id, input.payment_id));
    },

    /**
     * Grants the paid credit (expiring per `TOP_UP_CREDIT_VALIDITY`) and marks the top-up succeeded, in one
     * transaction with their events (`credit.granted`, `top_up.succeeded`).
     */
    async completeTopUp(input: TopUpInput & { payment_id: string }): Promise<TopUpResult> {
      const amount_nanos = usd(input.amount_usd);
      const grant_id = grantIdFor(input.top_up_id);
      await deps.db.transaction(async (trx) => {
        const grant = await grantPaidCredit(trx, {
          grant_id,
          customer_id: input.customer_id,
          source: 'top_up',
          amount_nanos,
          reason: null,
          kind: 'top_up',
          ref: input.top_up_id,
          validity: paidCreditValidity(deps.settings),
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

/** The top-up's outcome as stored: the database, not the caller, is the authority on what happened. */
async function resultOf(db: Db, top_up_id: string): Promise<TopUpResult> {
  const row = await getTopUp(db, top_up_id);
  if (!row || row.status === 'pending') throw new Error(`top-up ${top_up_id} is not settled`);
  return resultFrom(db, row);
}

/** A settled top-up as the account workflow hears it, with its grant's expiry so the account can wake for it. */
async function resultFrom(db: Db, row: TopUpRow): Promise<TopUpResult> {
  const grant = row.grant_id === null ? undefined : await getGrant(db, row.grant_id);
  return {
    top_up_id: row.id,
    status: row.status === 'succeeded' ? 'succeeded' : 'failed',
    amount_usd: formatUsd(row.amount_nanos),
    grant_id: row.grant_id,
    failure_code: row.failure_code,
    decline_code: row.decline_code,
    failure_message: row.failure_message,
    grant_expires_at: grant?.expires_at?.toISOString() ?? null,
  };
}
