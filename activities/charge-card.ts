import type { Db } from '../db/connection';
import { getCustomer } from '../db/customers';
import { PermanentError } from '../db/errors';
import { findPayment, type PaymentRecord, recordPayment } from '../db/payments';
import type { PaymentGateway } from '../payments/payment-gateway';

/**
 * The one way a card is charged (top-ups, auto-recharges): once per idempotency key. A charge already recorded in
 * `payments` is never made again: the gateway's own idempotency key may have expired (Stripe keeps keys about 24 h)
 * by the time a stopped run resumes, so our record, not the gateway's, decides. Declines are values, not errors.
 */

export type CardChargeResult =
  | { status: 'succeeded'; payment_id: string }
  | {
      status: 'failed';
      payment_id: string;
      failure_code: string;
      decline_code: string | null;
      message: string;
    };

export interface CardCharge {
  idempotency_key: string;
  /** Our id of the payment record, derived from the business key like the idempotency key. */
  payment_id: string;
  customer_id: string;
  amount_nanos: bigint;
  description: string;
  /** The card to charge; absent: the card on file in PostgreSQL (none is a permanent `no_payment_method`). */
  payment_method?: string;
}

export async function chargeCardOnce(
  deps: { db: Db; gateway: PaymentGateway },
  charge: CardCharge,
): Promise<CardChargeResult> {
  const recorded = await findPayment(deps.db, charge.idempotency_key);
  if (recorded) return chargeResultOf(recorded);
  const payment_method = charge.payment_method ?? (await cardOnFile(deps.db, charge.customer_id));
  const outcome = await deps.gateway.charge({
    idempotency_key: charge.idempotency_key,
    customer_id: charge.customer_id,
    payment_method,
    amount_nanos: charge.amount_nanos,
    description: charge.description,
  });
  await recordPayment(deps.db, {
    id: charge.payment_id,
    customer_id: charge.customer_id,
    gateway: deps.gateway.name,
    idempotency_key: charge.idempotency_key,
    gateway_charge_id: outcome.charge_id,
    payment_method,
    amount_nanos: charge.amount_nanos,
    status: outcome.status,
    failure_code: outcome.status === 'failed' ? outcome.failure_code : null,
  });
  if (outcome.status === 'succeeded') return { status: 'succeeded', payment_id: charge.payment_id };
  return {
    status: 'failed',
    payment_id: charge.payment_id,
    failure_code: outcome.failure_code,
    decline_code: outcome.decline_code,
    message: outcome.message,
  };
}

/** A recorded charge attempt as this step's result (the gateway's decline details are not stored, only its code). */
function chargeResultOf(payment: PaymentRecord): CardChargeResult {
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
