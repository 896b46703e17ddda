import type { GatewayRecord, TimeWindow } from '../billing/reconciliation';

/**
 * The one door to card payments. Two implementations: the simulated gateway (default, no keys needed) and
 * Stripe. Declines are returned as values; only infrastructure failures throw (and are retried by Temporal).
 * Every charge and refund carries an idempotency key, so a retried call returns the first one instead of a second.
 */
export interface ChargeRequest {
  idempotency_key: string;
  customer_id: string;
  payment_method: string;
  /** Whole cents in nanos; charging a card is the one place money is rounded to cents. */
  amount_nanos: bigint;
  description: string;
}

export type ChargeOutcome =
  | { status: 'succeeded'; charge_id: string }
  /**
   * The processor needs the customer before it can finish (Stripe's `requires_action`, SCA): no outcome yet. The
   * gateway's inbound webhook settles it later (README "Inbound Stripe webhooks"); `charge_id` names what it will name.
   */
  | { status: 'pending'; charge_id: string }
  | {
      status: 'failed';
      charge_id: string | null;
      failure_code: string;
      decline_code: string | null;
      message: string;
    };

export interface RefundRequest {
  idempotency_key: string;
  /** The gateway's id of the charge being refunded (`payments.gateway_charge_id`). */
  charge_id: string;
  /** Whole cents in nanos, at most what is left to refund of the charge. */
  amount_nanos: bigint;
  reason: string | null;
}

export type RefundOutcome =
  | { status: 'succeeded'; refund_id: string }
  | { status: 'failed'; refund_id: string | null; failure_code: string; message: string };

/**
 * The gateway's own books, read by reconciliation (README "Reconciliation"): what the gateway says it charged and
 * refunded, to compare with `payments` and `refunds`.
 */
export interface GatewayBooks {
  /**
   * The charges created in [from, to), any status, at most `max` (the newest when there are more). Ids are what our
   * `payments.gateway_charge_id` holds; `idempotency_key` is the key we charged with.
   */
  listCharges(window: TimeWindow, max: number): Promise<GatewayRecord[]>;
  /** The refunds created in [from, to), at most `max`; `charge_id` names the charge each refunds. */
  listRefunds(window: TimeWindow, max: number): Promise<GatewayRecord[]>;
}

export interface PaymentGateway extends GatewayBooks {
  readonly name: string;
  charge(request: ChargeRequest): Promise<ChargeOutcome>;
  /** Refunds (part of) a charge this gateway made; a retry with the same key returns the first refund. */
  refund(request: RefundRequest): Promise<RefundOutcome>;
  /**
   * Withdraws a charge left waiting for the customer (a PaymentIntent that `requires_action`) when no customer is
   * there to finish it (auto-recharges, invoices): it can then never succeed behind our back. Answers the charge's
   * final outcome: still `pending` when it was withdrawn (the caller records it failed), or `succeeded` if the
   * customer finished it first. Gateways that never leave a charge waiting do not implement it.
   */
  withdraw?(charge_id: string, idempotency_key: string): Promise<ChargeOutcome>;
  /** Whether this gateway can ever charge the given payment method id (checked when it is saved). */
  acceptsPaymentMethod(payment_method: string): boolean;
}
