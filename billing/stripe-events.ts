/**
 * Pure rules for Stripe's inbound events (README "Inbound Stripe webhooks"): which events we act on, what a
 * PaymentIntent's events say about its charge, and the amounts they carry. Events are parsed with zod at the edge
 * (api/routes/stripe-webhooks.ts); these functions read the few fields they need defensively, as stored JSON.
 */

export const PAYMENT_INTENT_SUCCEEDED = 'payment_intent.succeeded';
export const PAYMENT_INTENT_FAILED = 'payment_intent.payment_failed';
/** A PaymentIntent canceled at Stripe (by an operator, or expired waiting for the customer) will never succeed. */
export const PAYMENT_INTENT_CANCELED = 'payment_intent.canceled';
/** The events that settle a PaymentIntent. */
export const PAYMENT_INTENT_OUTCOMES: readonly string[] = [
  PAYMENT_INTENT_SUCCEEDED,
  PAYMENT_INTENT_FAILED,
  PAYMENT_INTENT_CANCELED,
];
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
  const failed = events
    .filter((e) => e.type === PAYMENT_INTENT_FAILED || e.type === PAYMENT_INTENT_CANCELED)
    .at(-1);
  if (!failed) return null;
  if (failed.type === PAYMENT_INTENT_CANCELED) {
    return { status: 'failed', failure_code: 'canceled', message: 'the payment was canceled at Stripe' };
  }
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

/** A `charge.refunded` event's charge, as `recordOutsideRefund` (db/stripe-events.ts) takes it. */
export interface ChargeRefund {
  payment_intent_id: string;
  /** Every refund of the charge at Stripe so far, ours included, in cents. */
  amount_refunded_cents: number;
  /** Stripe's newest refund of the charge when the event lists them, else `<charge id>:<amount refunded>`. */
  gateway_refund_id: string;
  /** Our refund id for it: `re_stripe_` and the gateway's id in our id alphabet. */
  refund_id: string;
}

/**
 * What a `charge.refunded` event says: the charge's PaymentIntent and its total refunded. Keyed by Stripe's newest
 * refund when the event carries the list (older API versions), else by the charge and its cumulative total, so each
 * new refund at Stripe is one key and a redelivery is the same key. Null when the charge names no PaymentIntent.
 */
export function chargeRefundOf(charge: unknown): ChargeRefund | null {
  const intent = idOf(field(charge, 'payment_intent'));
  const charge_id = field(charge, 'id');
  const refunded = field(charge, 'amount_refunded');
  if (intent === null || typeof charge_id !== 'string' || typeof refunded !== 'number') return null;
  if (!Number.isSafeInteger(refunded) || refunded <= 0) return null;
  const listed = field(field(charge, 'refunds'), 'data');
  const newest = Array.isArray(listed) ? idOf(listed[0]) : null;
  const gateway_refund_id = newest ?? `${charge_id}:${refunded}`;
  return {
    payment_intent_id: intent,
    amount_refunded_cents: refunded,
    gateway_refund_id,
    refund_id: `re_stripe_${gateway_refund_id.replace(/[^A-Za-z0-9_]/g, '_').slice(0, 90)}`,
  };
}

/** A `charge.dispute.*` event's dispute. */
export interface DisputeFacts {
  dispute_id: string;
  payment_intent_id: string;
  amount_cents: number;
  /** For a closed dispute: `lost` writes the frozen credit off; any other closing status (won, warning_closed) gives it back. */
  outcome: 'won' | 'lost';
}

/** The dispute an event carries; null when it names no PaymentIntent or no whole, positive amount. */
export function disputeOf(dispute: unknown): DisputeFacts | null {
  const id = field(dispute, 'id');
  const intent = idOf(field(dispute, 'payment_intent'));
  const amount = field(dispute, 'amount');
  if (typeof id !== 'string' || intent === null || typeof amount !== 'number') return null;
  if (!Number.isSafeInteger(amount) || amount <= 0) return null;
  return {
    dispute_id: id,
    payment_intent_id: intent,
    amount_cents: amount,
    outcome: field(dispute, 'status') === 'lost' ? 'lost' : 'won',
  };
}

/** The id of a Stripe field that is an id, an expanded object or nothing. */
function idOf(value: unknown): string | null {
  if (typeof value === 'string' && value !== '') return value;
  const id = field(value, 'id');
  return typeof id === 'string' && id !== '' ? id : null;
}
