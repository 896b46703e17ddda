import { formatUsd } from '../billing/money';
import type { RefundResult } from '../billing/refunds';
import type { Db } from '../db/connection';
import { PermanentError } from '../db/errors';
import {
  claimRefund,
  failRefund,
  getRefund,
  recordGatewayRefund,
  refundChargeOf,
  type RefundRow,
  settleRefund,
} from '../db/refunds';
import type { PaymentGateway } from '../payments/payment-gateway';

/**
 * A refund is three idempotent steps, each keyed by the refund id (never the run id), run by the account workflow one
 * money operation at a time (db/refunds.ts has the rules):
 * 1. `claimRefund` decides under the wallet lock and posts the claim (the reversing entry), or fails the refund
 *    (`amount_exceeds_refundable`, `credit_already_spent`) before the gateway is ever asked;
 * 2. `refundPayment` asks the gateway once, with idempotency key `refund:<refund id>` (a refund it answered is never
 *    asked again: our record, not the gateway's key, which may have expired, decides);
 * 3. `completeRefund` settles it with `refund.succeeded`, or `failRefund` gives the claim back.
 * A worker killed between any two steps replays into one claim, at most one gateway refund and one settlement.
 */

export interface RefundInput {
  customer_id: string;
  refund_id: string;
}

export type RefundStart =
  /** The credit is claimed; the gateway refund comes next. */
  | { status: 'claimed' }
  /** The refund has its outcome (refused by the claim, or settled by an earlier run): nothing more to do. */
  | { status: 'settled'; result: RefundResult };

export type GatewayRefundResult =
  | { status: 'succeeded'; gateway_refund_id: string }
  | { status: 'failed'; failure_code: string; message: string };

export function refundActivities(deps: { db: Db; gateway: PaymentGateway }) {
  return {
    async claimRefund(input: RefundInput): Promise<RefundStart> {
      const row = await claimRefund(deps.db, input.refund_id);
      return row.status === 'pending' ? { status: 'claimed' } : { status: 'settled', result: resultOf(row) };
    },

    /**
     * Refunds the card through the gateway that charged it. A payment made through another gateway (the engine was
     * switched between the simulated gateway and Stripe) cannot be refunded here: a permanent `gateway_mismatch`,
     * which gives the claim back.
     */
    async refundPayment(input: RefundInput): Promise<GatewayRefundResult> {
      const row = await getRefund(deps.db, input.refund_id);
      if (!row) throw new PermanentError('not_found', `refund ${input.refund_id} was never recorded`);
      if (row.gateway_refund_id !== null)
        return { status: 'succeeded', gateway_refund_id: row.gateway_refund_id };
      const charge = await refundChargeOf(deps.db, row.id);
      if (!charge || charge.gateway_charge_id === null) {
        throw new PermanentError(
          'charge_not_found',
          `payment ${row.payment_id} has no charge at its gateway`,
        );
      }
      if (charge.gateway !== deps.gateway.name) {
        throw new PermanentError(
          'gateway_mismatch',
          `payment ${row.payment_id} was made through ${charge.gateway}, not ${deps.gateway.name}`,
        );
      }
      const outcome = await deps.gateway.refund({
        idempotency_key: `refund:${row.id}`,
        charge_id: charge.gateway_charge_id,
        amount_nanos: row.amount_nanos,
        reason: null,
      });
      if (outcome.status === 'failed') {
        return { status: 'failed', failure_code: outcome.failure_code, message: outcome.message };
      }
      await recordGatewayRefund(deps.db, row.id, outcome.refund_id);
      return { status: 'succeeded', gateway_refund_id: outcome.refund_id };
    },

    async completeRefund(input: RefundInput & { gateway_refund_id: string }): Promise<RefundResult> {
      return resultOf(await settleRefund(deps.db, input.refund_id, input.gateway_refund_id));
    },

    async failRefund(input: RefundInput & { failure_code: string; message: string }): Promise<RefundResult> {
      return resultOf(
        await failRefund(deps.db, input.refund_id, { code: input.failure_code, message: input.message }),
      );
    },
  };
}

/** A settled refund as the account workflow hears it: the database is the authority on what happened. */
function resultOf(row: RefundRow): RefundResult {
  if (row.status === 'pending') throw new Error(`refund ${row.id} is not settled`);
  return {
    refund_id: row.id,
    status: row.status,
    amount_usd: formatUsd(row.amount_nanos),
    failure_code: row.failure_code,
  };
}
