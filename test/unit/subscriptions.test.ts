import { usd } from '../../billing/money';
import { parseBillingPeriod } from '../../billing/periods';
import { loadDefaultPlanCatalog } from '../../billing/plans';
import {
  checkChangeRequest,
  decideChange,
  decideRenewal,
  invoiceTotal_nanos,
  type Subscription,
} from '../../billing/subscriptions';

/** The subscription rules alone: what a PUT decides against the current subscription, and what a renewal does. */
const catalog = loadDefaultPlanCatalog();
const month = parseBillingPeriod('P1M')!;
const JAN_31 = new Date('2027-01-31T10:00:00.000Z');

function subscription(overrides: Partial<Subscription> = {}): Subscription {
  return {
    id: 'sub_1',
    customer_id: 'cus_1',
    plan: 'plus',
    seats: 1,
    seat_price_nanos: null,
    status: 'active',
    anchor_at: JAN_31,
    anchor_index: 0,
    period_index: 0,
    current_period_start: JAN_31,
    current_period_end: new Date('2027-02-28T10:00:00.000Z'),
    cancel_at_period_end: false,
    next_plan: null,
    next_seats: null,
    canceled_at: null,
    ...overrides,
  };
}

const context = (now: Date, contract: bigint | null = null) => ({
  catalog,
  period: month,
  now,
  contract_seat_price_nanos: contract,
  change_id: 'sc_1',
});

describe('checkChangeRequest', () => {
  test.each([
    [{ plan: 'nope', seats: null }, 'unknown_plan', 'plan'],
    [{ plan: 'plus', seats: 1 }, 'seats_not_allowed', 'seats'],
    [{ plan: 'business', seats: 0 }, 'invalid_seats', 'seats'],
    [{ plan: 'business', seats: -3 }, 'invalid_seats', 'seats'],
    [{ plan: 'business', seats: 2.5 }, 'invalid_seats', 'seats'],
  ])('%j is refused with %s naming %s', (request, code, param) => {
    expect(checkChangeRequest(catalog, request)).toMatchObject({ code, param });
  });

  test('every catalog plan is accepted without seats, and per-seat plans with seats', () => {
    for (const plan of catalog.plans) {
      expect(checkChangeRequest(catalog, { plan: plan.id, seats: null })).toBeNull();
      if (plan.per_seat) expect(checkChangeRequest(catalog, { plan: plan.id, seats: 7 })).toBeNull();
    }
  });
});

describe('decideChange', () => {
  test('a start charges the first calendar month on one invoice line', () => {
    const decision = decideChange(null, { plan: 'plus', seats: null }, context(JAN_31));
    expect(decision).toMatchObject({ kind: 'start', plan: 'plus', seats: 1 });
    if (decision.kind !== 'start') throw new Error('not a start');
    // Started Jan 31: the first period ends on Feb 28 (2027 is not a leap year), same time of day.
    expect(decision.period_end.toISOString()).toBe('2027-02-28T10:00:00.000Z');
    expect(invoiceTotal_nanos(decision.invoice!.lines)).toBe(usd('20'));
  });

  test('a start on Free charges nothing and writes no invoice', () => {
    expect(decideChange(null, { plan: 'free', seats: null }, context(JAN_31))).toMatchObject({
      kind: 'start',
      invoice: null,
    });
  });

  test('after a subscription ended, a PUT starts a new one', () => {
    const ended = subscription({ status: 'canceled' });
    expect(decideChange(ended, { plan: 'go', seats: null }, context(JAN_31)).kind).toBe('start');
  });

  test('an upgrade halfway through is half the difference, rounded half-up to the cent', () => {
    const sub = subscription({
      current_period_start: new Date('2027-04-01T00:00:00Z'),
      current_period_end: new Date('2027-05-01T00:00:00Z'),
    });
    // 30-day April, upgraded at noon on the 16th: 14.5 days of 30 left. (200 - 20) x 14.5 / 30 = 87.00.
    const decision = decideChange(
      sub,
      { plan: 'pro', seats: null },
      context(new Date('2027-04-16T12:00:00Z')),
    );
    expect(decision.kind).toBe('upgrade');
    if (decision.kind !== 'upgrade') throw new Error('not an upgrade');
    expect(invoiceTotal_nanos(decision.invoice!.lines)).toBe(usd('87.00'));
    expect(decision.invoice!.lines[0]!.quantity).toBe('0.483333');
  });

  test('more seats are prorated; fewer seats wait for the period end', () => {
    const sub = subscription({
      plan: 'business',
      seats: 3,
      current_period_start: new Date('2027-04-01T00:00:00Z'),
      current_period_end: new Date('2027-05-01T00:00:00Z'),
    });
    const at = new Date('2027-04-21T00:00:00Z'); // 10 of 30 days left
    const more = decideChange(sub, { plan: 'business', seats: 4 }, context(at));
    // One more seat x 30.00 x 10/30 = 10.00.
    expect(more.kind === 'upgrade' && invoiceTotal_nanos(more.invoice!.lines)).toBe(usd('10.00'));
    expect(decideChange(sub, { plan: 'business', seats: 2 }, context(at))).toEqual({
      kind: 'schedule',
      next_plan: 'business',
      next_seats: 2,
    });
  });

  test('a cheaper plan, Free, or another interval waits for the period end', () => {
    const sub = subscription({ plan: 'pro' });
    for (const plan of ['plus', 'go', 'free']) {
      expect(decideChange(sub, { plan, seats: null }, context(JAN_31))).toMatchObject({
        kind: 'schedule',
        next_plan: plan,
      });
    }
    const business = subscription({ plan: 'business', seats: 2 });
    expect(decideChange(business, { plan: 'business_annual', seats: 2 }, context(JAN_31)).kind).toBe(
      'schedule',
    );
  });

  test('canceled at period end or past due: 409 refusals; the same plan again is unchanged', () => {
    expect(
      decideChange(
        subscription({ cancel_at_period_end: true }),
        { plan: 'pro', seats: null },
        context(JAN_31),
      ),
    ).toMatchObject({
      code: 'subscription_canceled',
    });
    expect(
      decideChange(subscription({ status: 'past_due' }), { plan: 'pro', seats: null }, context(JAN_31)),
    ).toMatchObject({
      code: 'subscription_past_due',
    });
    expect(decideChange(subscription(), { plan: 'plus', seats: null }, context(JAN_31))).toEqual({
      kind: 'unchanged',
    });
  });

  test('enterprise needs the customer seat price from its contract', () => {
    expect(decideChange(null, { plan: 'enterprise', seats: 10 }, context(JAN_31))).toMatchObject({
      code: 'seat_price_required',
    });
    // Invoiced with net terms: the first period's seats on an invoice due in 30 days, nothing charged.
    expect(decideChange(null, { plan: 'enterprise', seats: 10 }, context(JAN_31, usd('45')))).toMatchObject({
      kind: 'start',
      seat_price_nanos: usd('45'),
      invoice: { collection: 'net_terms', due_at: new Date(JAN_31.getTime() + 30 * 86_400_000) },
    });
  });
});

describe('decideRenewal', () => {
  test('anchored Jan 31: renews Feb 28, then Mar 31 (periods counted from the anchor, never chained)', () => {
    const first = decideRenewal(subscription(), catalog, month);
    expect(first).toMatchObject({ kind: 'renew', period_index: 1 });
    if (first.kind !== 'renew') throw new Error('not a renewal');
    expect(first.period_start.toISOString()).toBe('2027-02-28T10:00:00.000Z');
    expect(first.period_end.toISOString()).toBe('2027-03-31T10:00:00.000Z');
    expect(first.invoice!.key).toBe('period:sub_1:1');
    expect(invoiceTotal_nanos(first.invoice!.lines)).toBe(usd('20'));
  });

  test('a waiting change applies at renewal; a cancellation ends it', () => {
    const renewal = decideRenewal(subscription({ next_plan: 'go', next_seats: 1 }), catalog, month);
    expect(renewal).toMatchObject({ kind: 'renew', plan: 'go' });
    expect(renewal.kind === 'renew' && invoiceTotal_nanos(renewal.invoice!.lines)).toBe(usd('8'));
    expect(decideRenewal(subscription({ cancel_at_period_end: true }), catalog, month)).toEqual({
      kind: 'cancel',
      usage_invoice: null,
    });
  });

  test('Free renews without an invoice', () => {
    expect(decideRenewal(subscription({ plan: 'free' }), catalog, month)).toMatchObject({
      kind: 'renew',
      invoice: null,
    });
  });

  test("enterprise: the next period's seats in advance and the ended period's usage in arrears, both net 30", () => {
    const sub = subscription({ plan: 'enterprise', seats: 10, seat_price_nanos: usd('45') });
    const usage = [
      {
        description: 'gpt-5.4 input tokens',
        amount_nanos: usd('12.34'),
        quantity: '4936000',
        period_start: sub.current_period_start,
        period_end: sub.current_period_end,
      },
    ];
    // The contract's seat price now governs the new period.
    const renewal = decideRenewal(sub, catalog, month, usage, usd('40'));
    if (renewal.kind !== 'renew') throw new Error('not a renewal');
    const seats = renewal.invoice!;
    expect(seats).toMatchObject({ collection: 'net_terms', key: 'period:sub_1:1' });
    expect(invoiceTotal_nanos(seats.lines)).toBe(usd('400')); // 10 x 40.00
    expect(seats.due_at.getTime() - seats.period_start.getTime()).toBe(30 * 86_400_000);
    const used = renewal.usage_invoice!;
    expect(used).toMatchObject({ collection: 'net_terms', key: 'usage:sub_1:0' });
    expect(used.period_end).toEqual(sub.current_period_end);
    expect(used.due_at.getTime() - sub.current_period_end.getTime()).toBe(30 * 86_400_000);
    expect(invoiceTotal_nanos(used.lines)).toBe(usd('12.34'));
    // Cancelled: no new period, but the served period's usage is still invoiced.
    const ended = decideRenewal({ ...sub, cancel_at_period_end: true }, catalog, month, usage, usd('40'));
    expect(ended).toMatchObject({ kind: 'cancel', usage_invoice: { key: 'usage:sub_1:0' } });
  });

  test('a change of interval re-anchors: business monthly to annual, then yearly periods from there', () => {
    const sub = subscription({
      plan: 'business',
      seats: 2,
      period_index: 5,
      anchor_at: new Date('2026-02-15T00:00:00Z'),
      current_period_start: new Date('2026-07-15T00:00:00Z'),
      current_period_end: new Date('2026-08-15T00:00:00Z'),
      next_plan: 'business_annual',
      next_seats: 2,
    });
    const switched = decideRenewal(sub, catalog, month);
    if (switched.kind !== 'renew') throw new Error('not a renewal');
    expect(switched.period_start.toISOString()).toBe('2026-08-15T00:00:00.000Z');
    expect(switched.period_end.toISOString()).toBe('2027-08-15T00:00:00.000Z');
    expect(switched.reanchor).toEqual({ anchor_at: switched.period_start, anchor_index: 6 });
    const next = decideRenewal(
      {
        ...sub,
        plan: 'business_annual',
        next_plan: null,
        next_seats: null,
        period_index: 6,
        anchor_at: switched.reanchor!.anchor_at,
        anchor_index: 6,
        current_period_start: switched.period_start,
        current_period_end: switched.period_end,
      },
      catalog,
      month,
    );
    if (next.kind !== 'renew') throw new Error('not a renewal');
    expect(next.period_start.toISOString()).toBe('2027-08-15T00:00:00.000Z');
    expect(next.period_end.toISOString()).toBe('2028-08-15T00:00:00.000Z');
    expect(next.reanchor).toBeNull();
  });
});
