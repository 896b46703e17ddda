/**
 * The outbound events the engine emits (Standard Webhooks), one vocabulary for the emitters, the webhook endpoints'
 * subscriptions and the documentation. An event's body on the wire is `{type, timestamp, data}`.
 */
export const EVENT_TYPES = [
  'credit.balance_low',
  'credit.depleted',
  'credit.granted',
  'credit.expired',
  'top_up.succeeded',
  'top_up.failed',
  'auto_recharge.succeeded',
  'auto_recharge.failed',
  'budget.alert',
  'budget.limit_reached',
  'tier.promoted',
  'subscription.renewed',
  'subscription.past_due',
  'subscription.canceled',
  'invoice.created',
  'invoice.paid',
  'refund.succeeded',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

export function isEventType(value: string): value is EventType {
  return (EVENT_TYPES as readonly string[]).includes(value);
}

/** One occurrence to report. Money in `data` is USD decimal strings (`*_usd`), times ISO-8601, like the API. */
export interface EventRecord {
  customer_id: string | null;
  type: EventType;
  data: Record<string, unknown>;
  /**
   * The occurrence's business key (`top_up:<id>`, `crossing:<id>`, `expiry:<grant_id>`): recording the same key again
   * is a no-op, which is what makes an event once per occurrence across retries and crashes.
   */
  occurrence_key: string;
}

/** The JSON body every webhook delivery carries. */
export interface EventBody {
  type: EventType;
  /** When the occurrence was recorded (ISO-8601). */
  timestamp: string;
  data: Record<string, unknown>;
}
