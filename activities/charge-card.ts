import type { Db } from '../db/connection';
import { getCustomer } from '../db/customers';
import { PermanentError } from '../db/errors';
import { findPayment, type PaymentRecord, recordPayment } from '../db/payments';
import { resolvePendingPayment } from '../db/stripe-events';
import type { ChargeOutcome, PaymentGateway } from '../payments/payment-gateway';

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

/** A charge that waits for the customer (SCA); Stripe's webhook settles its payment later. */
export interface PendingCharge {
  status: 'pending';
  payment_id: string;
}

/**
 * `chargeCardOnce` for a caller that can wait for the customer (top-ups, README "Inbound Stripe webhooks"): a charge
 * that needs the customer is recorded `pending` and answered as such, and settled later by Stripe's webhook.
 */
export async function chargeCardOrWait(
  deps: { db: Db; gateway: PaymentGateway },
  charge: CardCharge,
): Promise<CardChargeResult | PendingCharge> {
  return chargeCard(deps, charge, true);
}

export async function chargeCardOnce(
  deps: { db: Db; gateway: PaymentGateway },
  charge: CardCharge,
): Promise<CardChargeResult> {
  const result = await chargeCard(deps, charge, false);
  // Without waiting a pending charge is recorded as failed, so no pending payment is ever read back here.
  if (result.status === 'pending') throw new Error(`payment ${result.payment_id} is pending`);
  return result;
}

/**
 * Auto-recharges and invoices have no customer at hand: a charge that needs one is recorded as failed with
 * `authentication_required` (as before webhooks existed); only `chargeCardOrWait` records it pending.
 */
async function chargeCard(
  deps: { db: Db; gateway: PaymentGateway },
  charge: CardCharge,
  allow_pending: boolean,
): Promise<CardChargeResult | PendingCharge> {
  const recorded = await findPayment(deps.db, charge.idempotency_key);
  // A pending charge is never sent again: the events stored for it (if any arrived) say how it ended.
  if (recorded) return chargeResultOf(await resolvePendingPayment(deps.db, recorded));
  const payment_method = charge.payment_method ?? (await cardOnFile(deps.db, charge.customer_id));
  const requested = await deps.gateway.charge({
    idempotency_key: charge.idempotency_key,
    customer_id: charge.customer_id,
    payment_method,
    amount_nanos: charge.amount_nanos,
    description: charge.description,
  });
  // No customer is there to finish a charge that waits for one (auto-recharges, invoices): it is withdrawn at the
  // gateway before it is recorded failed, so it can never take the money later with nothing given for it.
  const outcome =
    requested.status === 'pending' && !allow_pending && deps.gateway.withdraw
      ? await deps.gateway.withdraw(requested.charge_id, charge.idempotency_key)
      : requested;
  const settled = settledOutcome(outcome, allow_pending);
  const payment: PaymentRecord = {
    id: charge.payment_id,
    customer_id: charge.customer_id,
    gateway: deps.gateway.name,
    idempotency_key: charge.idempotency_key,
    gateway_charge_id: settled.charge_id,
    payment_method,
    amount_nanos: charge.amount_nanos,
    status: settled.status,
    failure_code: settled.status === 'failed' ? settled.failure_code : null,
  };
  await recordPayment(deps.db, payment);
  // Recorded first, then resolved: a webhook that arrived before this call returned is stored, and is read now.
  if (settled.status === 'pending') {
    const stored = await findPayment(deps.db, payment.idempotency_key);
    return chargeResultOf(await resolvePendingPayment(deps.db, stored!));
  }
  if (settled.status === 'succeeded') return { status: 'succeeded', payment_id: charge.payment_id };
  return {
    status: 'failed',
    payment_id: charge.payment_id,
    failure_code: settled.failure_code,
    decline_code: settled.decline_code,
    message: settled.message,
  };
}

/** A pending outcome for a caller that cannot wait is the failure it was before webhooks settled it. */
function settledOutcome(outcome: ChargeOutcome, allow_pending: boolean): ChargeOutcome {
  if (outcome.status !== 'pending' || allow_pending) return outcome;
  return {
    status: 'failed',
    charge_id: outcome.charge_id,
    failure_code: 'authentication_required',
    decline_code: null,
    message: 'The card issuer requires the customer to authenticate this payment.',
  };
}

/** A recorded charge attempt as this step's result (the gateway's decline details are not stored, only its code). */
export function chargeResultOf(payment: PaymentRecord): CardChargeResult | PendingCharge {
  if (payment.status === 'succeeded') return { status: 'succeeded', payment_id: payment.id };
  if (payment.status === 'pending') return { status: 'pending', payment_id: payment.id };
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
