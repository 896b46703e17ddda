/**
 * The one door to card payments. Two implementations: the simulated gateway (default, no keys needed) and
 * Stripe. Declines are returned as values; only infrastructure failures throw (and are retried by Temporal).
 * Every charge carries an idempotency key, so a retried call returns the first charge instead of a second one.
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
  | {
      status: 'failed';
      charge_id: string | null;
      failure_code: string;
      decline_code: string | null;
      message: string;
    };

export interface PaymentGateway {
  readonly name: string;
  charge(request: ChargeRequest): Promise<ChargeOutcome>;
  /** Whether this gateway can ever charge the given payment method id (checked when it is saved). */
  acceptsPaymentMethod(payment_method: string): boolean;
}
