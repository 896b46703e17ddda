/**
 * Pure rules for Stripe's inbound events (README "Inbound Stripe webhooks"): which events we act on, what a
 * PaymentIntent's events say about its charge, and the amounts they carry. Events are parsed with zod at the edge
 * (api/routes/stripe-webhooks.ts); these functions read the few fields they need defensively, as stored JSON.
 */

export const PAYMENT_INTENT_SUCCEEDED = 'payment_intent.succeeded';
export const PAYMENT_INTENT_FAILED = 'payment_intent.payment_failed';
export const CHARGE_REFUNDED = 'charge.refunded';
export const DISPUTE_CREATED = 'charge.dispute.created';
export const DISPUTE_CLOSED = 'charge.dispute.closed';

/** What a PaymentIntent's stored events say about our pending charge; null while none has decided it. */
export type PaymentIntentOutcome =
  { status: 'succeeded' } | { status: 'failed'; failure_code: string; message: string } | null;

interface StoredEvent {
  type: string;
  payload: unknown;
}

/**
 * The outcome of a PaymentIntent from its events, in any order: a success wins over any failure (a PaymentIntent
 * whose first attempt failed may still succeed when the customer authenticates again, and money taken must be
 * granted); otherwise the latest failure given; otherwise none yet.
 */
export function paymentIntentOutcome(events: readonly StoredEvent[]): PaymentIntentOutcome {
  if (events.some((e) => e.type === PAYMENT_INTENT_SUCCEEDED)) return { status: 'succeeded' };
  const failed = events.filter((e) => e.type === PAYMENT_INTENT_FAILED).at(-1);
  if (!failed) return null;
  const error = field(field(field(failed.payload, 'data'), 'object'), 'last_payment_error');
  const code = field(error, 'code');
  const message = field(error, 'message');
  return {
    status: 'failed',
    failure_code: typeof code === 'string' && code !== '' ? code : 'card_declined',
    message: typeof message === 'string' ? message.slice(0, 1000) : 'the payment failed at Stripe',
  };
}

/** A property of a JSON value, or undefined when the value is not an object or lacks it. */
export function field(value: unknown, name: string): unknown {
  if (typeof value !== 'object' || value === null) return undefined;
  return (value as Record<string, unknown>)[name];
}
