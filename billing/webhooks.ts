import type { EventBody, EventType } from './events';

/**
 * The rules of outbound webhooks that need no I/O: what an endpoint subscribes to, the body a delivery carries, and
 * what an attempt's answer means for its delivery. The I/O lives in db/webhooks.ts (tables) and
 * activities/deliver-webhook.ts (the HTTP call).
 */

/** The subscription to every event type, also types added later. It stands alone in an endpoint's `events`. */
export const ALL_EVENTS = '*';

/** An endpoint's subscription: event types, or `['*']`. */
export type Subscription = readonly (EventType | typeof ALL_EVENTS)[];

/** Whether an endpoint subscribed to `events` receives an event of `type`. */
export function subscribes(events: readonly string[], type: string): boolean {
  return events.includes(ALL_EVENTS) || events.includes(type);
}

/** The subscription as stored: each type once, in a stable order (the request may repeat or reorder them). */
export function normalizeSubscription(events: readonly string[]): string[] {
  return [...new Set(events)].sort();
}

/**
 * A delivery's states: `pending` until an attempt is answered 2xx (`delivered`), the retry schedule runs out
 * (`failed`), or the endpoint is disabled or deleted before its next attempt (`canceled`). Only `pending` changes.
 */
export type DeliveryStatus = 'pending' | 'delivered' | 'failed' | 'canceled';

/** What an attempt's answer makes of a pending delivery: any 2xx delivers it; anything else waits, or fails it last. */
export function attemptOutcome(
  status_code: number | null,
  last_attempt: boolean,
): Exclude<DeliveryStatus, 'canceled'> {
  if (status_code !== null && status_code >= 200 && status_code < 300) return 'delivered';
  return last_attempt ? 'failed' : 'pending';
}

/** The stored part of an event that goes on the wire. */
export interface StoredEvent {
  type: EventType;
  customer_id: string | null;
  data: Record<string, unknown>;
  created_at: Date;
}

/**
 * The JSON body of every delivery of an event, the same at every attempt: `{type, timestamp, data}` where the
 * timestamp is when the event was recorded. `data` names the customer (`customer_id`) when the event has one, so a
 * receiver of every customer's events can tell them apart even if the emitter did not repeat it.
 */
export function eventBody(event: StoredEvent): EventBody {
  const data = event.customer_id === null ? event.data : { customer_id: event.customer_id, ...event.data };
  return { type: event.type, timestamp: event.created_at.toISOString(), data };
}

/** How much of an endpoint's answer is kept with the attempt (enough to read an error page's message). */
export const RESPONSE_BODY_MAX_BYTES = 4096;

/** The delay before each attempt as the workflow uses it: the first may be zero, the rest follow in order. */
export function nextAttemptDelay(schedule_ms: readonly number[], attempt_index: number): number | null {
  return schedule_ms[attempt_index + 1] ?? null;
}
