import { randomUUID } from 'node:crypto';
import { nanosToCents } from '../billing/money';
import type { Db } from '../db/connection';
import type { GatewayRecord, TimeWindow } from '../billing/reconciliation';
import {
  listSimulatedCharges,
  listSimulatedRefunds,
  recordSimulatedCharge,
  recordSimulatedRefund,
} from '../db/simulated-charges';
import type {
  ChargeOutcome,
  ChargeRequest,
  PaymentGateway,
  RefundOutcome,
  RefundRequest,
} from './payment-gateway';

/**
 * Stripe's documented test payment methods and what a charge on each does. Anything else is refused when it is
 * saved, because the simulation cannot know how an unknown card would behave.
 */
const TEST_CARDS: Record<string, { decline_code: string | null; failure_code: string; message: string }> = {
  pm_card_visa: { decline_code: null, failure_code: '', message: '' },
  pm_card_visa_debit: { decline_code: null, failure_code: '', message: '' },
  pm_card_mastercard: { decline_code: null, failure_code: '', message: '' },
  pm_card_amex: { decline_code: null, failure_code: '', message: '' },
  pm_card_chargeDeclined: {
    decline_code: 'generic_decline',
    failure_code: 'card_declined',
    message: 'Your card was declined.',
  },
  pm_card_chargeDeclinedInsufficientFunds: {
    decline_code: 'insufficient_funds',
    failure_code: 'card_declined',
    message: 'Your card has insufficient funds.',
  },
  pm_card_chargeDeclinedFraudulent: {
    decline_code: 'fraudulent',
    failure_code: 'card_declined',
    message: 'Your card was declined.',
  },
  pm_card_chargeDeclinedExpiredCard: {
    decline_code: 'expired_card',
    failure_code: 'expired_card',
    message: 'Your card has expired.',
  },
  pm_card_chargeDeclinedIncorrectCvc: {
    decline_code: 'incorrect_cvc',
    failure_code: 'incorrect_cvc',
    message: "Your card's security code is incorrect.",
  },
  pm_card_chargeDeclinedProcessingError: {
    decline_code: 'processing_error',
    failure_code: 'processing_error',
    message: 'An error occurred while processing your card.',
  },
};

/**
 * A card processor simulated in our own PostgreSQL: it keeps its charges in `simulated_charges`, keyed by the
 * idempotency key exactly as Stripe does, so a retried charge returns the first outcome and never charges twice.
 */
export class SimulatedGateway implements PaymentGateway {
  readonly name = 'simulated';

  constructor(private readonly db: Db) {}

  acceptsPaymentMethod(payment_method: string): boolean {
    return Object.hasOwn(TEST_CARDS, payment_method);
  }

  async charge(request: ChargeRequest): Promise<ChargeOutcome> {
    const card = TEST_CARDS[request.payment_method];
    const amount_cents = nanosToCents(request.amount_nanos);
    const declined = card === undefined || card.decline_code !== null;
    const charge = await recordSimulatedCharge(this.db, {
      id: `ch_sim_${randomUUID().replaceAll('-', '')}`,
      idempotency_key: request.idempotency_key,
      customer_ref: request.customer_id,
      payment_method: request.payment_method,
      amount_cents,
      status: declined ? 'failed' : 'succeeded',
      decline_code: card?.decline_code ?? (card ? null : 'generic_decline'),
    });
    if (charge.status === 'succeeded') return { status: 'succeeded', charge_id: charge.id };
    const outcome = TEST_CARDS[charge.payment_method];
    return {
      status: 'failed',
      charge_id: charge.id,
      failure_code: outcome?.failure_code || 'card_declined',
      decline_code: charge.decline_code,
      message: outcome?.message || 'Your card was declined.',
    };
  }

  async refund(request: RefundRequest): Promise<RefundOutcome> {
    const refund = await recordSimulatedRefund(this.db, {
      id: `re_sim_${randomUUID().replaceAll('-', '')}`,
      idempotency_key: request.idempotency_key,
      charge_id: request.charge_id,
      amount_cents: nanosToCents(request.amount_nanos),
    });
    if (refund.status === 'succeeded') return refund;
    const message =
      refund.failure_code === 'charge_not_found'
        ? `no succeeded charge ${request.charge_id}`
        : `the refund would exceed what is left of charge ${request.charge_id}`;
    return { status: 'failed', refund_id: null, failure_code: refund.failure_code, message };
  }

  listCharges(window: TimeWindow, max: number): Promise<GatewayRecord[]> {
    return listSimulatedCharges(this.db, window, max);
  }

  listRefunds(window: TimeWindow, max: number): Promise<GatewayRecord[]> {
    return listSimulatedRefunds(this.db, window, max);
  }
}
