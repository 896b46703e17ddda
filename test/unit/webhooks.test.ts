import fc from 'fast-check';
import { EVENT_TYPES } from '../../billing/events';
import {
  ALL_EVENTS,
  attemptOutcome,
  eventBody,
  nextAttemptDelay,
  normalizeSubscription,
  subscribes,
} from '../../billing/webhooks';

describe('webhook rules', () => {
  test('an endpoint receives exactly the types it lists, or every type with "*"', () => {
    for (const type of EVENT_TYPES) {
      expect(subscribes([ALL_EVENTS], type)).toBe(true);
      expect(subscribes([type], type)).toBe(true);
      for (const other of EVENT_TYPES) if (other !== type) expect(subscribes([other], type)).toBe(false);
    }
    // "*" also covers a type added later.
    expect(subscribes([ALL_EVENTS], 'subscription.renewed')).toBe(true);
  });

  test('a subscription is stored with each type once, in one order whatever the request order', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...EVENT_TYPES), { minLength: 1, maxLength: 30 }), (events) => {
        const stored = normalizeSubscription(events);
        expect(new Set(stored)).toEqual(new Set(events));
        expect(stored).toHaveLength(new Set(events).size);
        expect(normalizeSubscription([...events].reverse())).toEqual(stored);
      }),
    );
  });

  test('only a 2xx delivers; otherwise the delivery waits for the next attempt, or fails at the last', () => {
    for (let status = 100; status < 600; status++) {
      const ok = status >= 200 && status < 300;
      expect(attemptOutcome(status, false)).toBe(ok ? 'delivered' : 'pending');
      expect(attemptOutcome(status, true)).toBe(ok ? 'delivered' : 'failed');
    }
    expect(attemptOutcome(null, false)).toBe('pending');
    expect(attemptOutcome(null, true)).toBe('failed');
  });

  test('the next delay follows the schedule; after the last attempt there is none', () => {
    const schedule = [0, 5_000, 300_000];
    expect([0, 1, 2].map((i) => nextAttemptDelay(schedule, i))).toEqual([5_000, 300_000, null]);
    expect(nextAttemptDelay([0], 0)).toBeNull();
  });

  test('the body is {type, timestamp, data}, naming the customer in data when the event has one', () => {
    const created_at = new Date('2026-11-30T12:00:00.000Z');
    expect(
      eventBody({ type: 'credit.granted', customer_id: 'cus_1', data: { amount_usd: '1.00' }, created_at }),
    ).toEqual({
      type: 'credit.granted',
      timestamp: '2026-11-30T12:00:00.000Z',
      data: { customer_id: 'cus_1', amount_usd: '1.00' },
    });
    expect(eventBody({ type: 'tier.promoted', customer_id: null, data: { x: 1 }, created_at }).data).toEqual({
      x: 1,
    });
  });
});
