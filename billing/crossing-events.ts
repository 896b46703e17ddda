import type { CrossingKind, ThresholdCrossing } from './account';
import type { EventRecord, EventType } from './events';

/**
 * The event each threshold crossing reports, once per crossing (occurrence key `crossing:<id>`). A `recharge`
 * crossing reports nothing itself: its recharge does (`auto_recharge.succeeded` / `auto_recharge.failed`).
 */
const EVENT_OF_KIND: Record<CrossingKind, EventType | null> = {
  low_balance: 'credit.balance_low',
  depleted: 'credit.depleted',
  budget_alert: 'budget.alert',
  budget_limit: 'budget.limit_reached',
  recharge: null,
};

/** The event a crossing reports, or null for a kind that reports none. Crossings without a kind are `low_balance`. */
export function crossingEvent(customer_id: string, crossing: ThresholdCrossing): EventRecord | null {
  const type = EVENT_OF_KIND[crossing.kind ?? 'low_balance'];
  if (type === null) return null;
  return {
    customer_id,
    type,
    data: {
      crossing_id: crossing.crossing_id,
      threshold_usd: crossing.threshold_usd,
      balance_usd: crossing.balance_usd,
      ...(crossing.month_spend_usd === undefined ? {} : { month_spend_usd: crossing.month_spend_usd }),
      crossed_at: crossing.crossed_at,
    },
    occurrence_key: crossingOccurrenceKey(crossing.crossing_id),
  };
}

export function crossingOccurrenceKey(crossing_id: string): string {
  return `crossing:${crossing_id}`;
}
