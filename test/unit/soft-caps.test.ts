/**
 * Unit tests for the soft-cap rules (billing/soft-caps.ts): window alignment (epoch-aligned fixed durations in UTC,
 * the subscription's period or the UTC month), the plan that applies by subscription status, the
 * downgrade chain with its two endings (an unlimited model, a cycle), and the answer built from what the statement
 * counted. No server needed.
 */
import type { Allowance, Plan, PlanCatalog } from '../../billing/plans';
import {
  calendarMonth,
  effectivePlan,
  fixedWindow,
  periodWindow,
  routeAnswer,
  routeChain,
} from '../../billing/soft-caps';

/** A plan built in code (not validated like a file, so chains may loop): only its allowances matter here. */
const plan = (id: string, allowances: Allowance[]): Plan => ({
  id,
  name: id,
  price_nanos: 0n,
  interval: 'month',
  per_seat: false,
  collection: 'charge',
  net_days: 0,
  allowances,
});
const allowance = (model: string, limit: number, downgrade_to: string, window = 'P1D'): Allowance => ({
  models: [model],
  limit,
  window,
  downgrade_to,
});
const iso = (text: string) => new Date(text);
/** An allowance with this window (what the window rules read). */
const every = (window: string) => allowance('m', 1, 'n', window);
const window = (w: { start: Date; end: Date } | null) =>
  w && { start: w.start.toISOString(), end: w.end.toISOString() };

describe('windows', () => {
  test('P1D is the UTC day, whatever the time of day', () => {
    expect(window(fixedWindow(every('P1D'), iso('2026-03-15T00:00:00Z')))).toEqual({
      start: '2026-03-15T00:00:00.000Z',
      end: '2026-03-16T00:00:00.000Z',
    });
    expect(window(fixedWindow(every('P1D'), iso('2026-03-15T23:59:59.999Z')))?.start).toBe(
      '2026-03-15T00:00:00.000Z',
    );
  });

  test('PT5H is aligned to the epoch, not to the day: its windows start at other hours each day and may span midnight', () => {
    expect(window(fixedWindow(every('PT5H'), iso('2026-03-15T01:59:59Z')))).toEqual({
      // 2026-03-15T00:00Z is 20,527 days = 98,529.6 five-hour windows after the epoch: the window began at 21:00.
      start: '2026-03-14T21:00:00.000Z',
      end: '2026-03-15T02:00:00.000Z',
    });
    expect(window(fixedWindow(every('PT5H'), iso('2026-03-15T04:59:59Z')))?.start).toBe(
      '2026-03-15T02:00:00.000Z',
    );
  });

  test('PT2S windows end on even seconds; the last millisecond belongs to the old window', () => {
    expect(window(fixedWindow(every('PT2S'), iso('2026-03-15T10:00:01.999Z')))).toEqual({
      start: '2026-03-15T10:00:00.000Z',
      end: '2026-03-15T10:00:02.000Z',
    });
    expect(window(fixedWindow(every('PT2S'), iso('2026-03-15T10:00:02.000Z')))?.start).toBe(
      '2026-03-15T10:00:02.000Z',
    );
  });

  test('period is resolved elsewhere; a window without a fixed length is refused', () => {
    expect(fixedWindow(every('period'), new Date())).toBeNull();
    for (const bad of ['P1M', 'PT0S', '5h']) expect(() => fixedWindow(every(bad), new Date())).toThrow();
  });

  test("period: the live subscription's current period, else the UTC calendar month", () => {
    const sub = {
      status: 'past_due' as const,
      current_period_start: iso('2026-01-31T10:00:00Z'),
      current_period_end: iso('2026-02-28T10:00:00Z'),
    };
    expect(window(periodWindow(sub, iso('2026-02-10T00:00:00Z')))).toEqual({
      start: '2026-01-31T10:00:00.000Z',
      end: '2026-02-28T10:00:00.000Z',
    });
    expect(window(periodWindow({ ...sub, status: 'canceled' }, iso('2026-02-10T00:00:00Z')))).toEqual(
      window(calendarMonth(iso('2026-02-10T00:00:00Z'))),
    );
    expect(window(periodWindow(null, iso('2024-12-31T23:59:59Z')))).toEqual({
      start: '2024-12-01T00:00:00.000Z',
      end: '2025-01-01T00:00:00.000Z',
    });
  });
});

describe('which plan applies', () => {
  const plans = [plan('free', []), plan('plus', [])];
  const catalog: PlanCatalog = { plans, find: (id) => plans.find((p) => p.id === id) };

  test('the plan while active; Free while past due, canceled, without a subscription or on a plan gone from the catalog', () => {
    expect(effectivePlan(catalog, { plan: 'plus', status: 'active' })?.id).toBe('plus');
    expect(effectivePlan(catalog, { plan: 'plus', status: 'past_due' })?.id).toBe('free');
    expect(effectivePlan(catalog, { plan: 'plus', status: 'canceled' })?.id).toBe('free');
    expect(effectivePlan(catalog, null)?.id).toBe('free');
    expect(effectivePlan(catalog, { plan: 'retired', status: 'active' })?.id).toBe('free');
  });
});

describe('chains', () => {
  const at = iso('2026-03-15T12:00:00Z');
  const period = { start: iso('2026-03-01T00:00:00Z'), end: iso('2026-04-01T00:00:00Z') };
  const p = plan('p', [
    allowance('big', 2, 'mid'),
    allowance('mid', 3, 'small', 'period'),
    allowance('small', 4, 'small'),
    allowance('a', 1, 'b'),
    allowance('b', 1, 'a'),
    allowance('x', 1, 'uncovered'),
    { models: ['zero', 'big'], limit: 0, window: 'P1D', downgrade_to: 'small' },
  ]);

  test('a model no allowance covers is served unlimited', () => {
    const chain = routeChain(p, 'other', at);
    expect(chain.steps).toEqual([]);
    expect(routeAnswer(chain, null, period)).toMatchObject({
      model: 'other',
      downgraded: false,
      reason: null,
      remaining: null,
      resets_at: null,
    });
  });

  test('the first allowance listing the model counts it; the chain follows downgrade_to until a cycle', () => {
    const chain = routeChain(p, 'big', at);
    expect(chain.steps.map((s) => [s.model, s.counter_key, s.window?.start.toISOString() ?? null])).toEqual([
      ['big', 'p:0', '2026-03-15T00:00:00.000Z'],
      ['mid', 'p:1', null],
      ['small', 'p:2', '2026-03-15T00:00:00.000Z'],
    ]);
    expect(chain.fallback).toEqual({ model: 'small', unlimited: false });
  });

  test('counted at the first step: served as asked; later: downgraded, remaining and reset of the allowance counted', () => {
    const chain = routeChain(p, 'big', at);
    expect(routeAnswer(chain, { step: 1, used: 2 }, period)).toMatchObject({
      model: 'big',
      downgraded: false,
      reason: null,
      remaining: 0,
      resets_at: iso('2026-03-16T00:00:00Z'),
    });
    expect(routeAnswer(chain, { step: 2, used: 1 }, period)).toMatchObject({
      model: 'mid',
      downgraded: true,
      reason: 'allowance_exhausted',
      remaining: 2,
      resets_at: period.end,
    });
  });

  test('every allowance exhausted: the last model, counted nowhere; a two-allowance cycle does not climb back up', () => {
    expect(routeAnswer(routeChain(p, 'big', at), null, period)).toMatchObject({
      model: 'small',
      downgraded: true,
      reason: 'all_allowances_exhausted',
      remaining: 0,
    });
    const cycle = routeChain(p, 'a', at);
    expect(cycle.steps.map((s) => s.model)).toEqual(['a', 'b']);
    expect(routeAnswer(cycle, null, period)).toMatchObject({
      model: 'b',
      reason: 'all_allowances_exhausted',
    });
    expect(routeAnswer(routeChain(p, 'small', at), null, period)).toMatchObject({
      model: 'small',
      downgraded: false,
      reason: 'all_allowances_exhausted',
    });
  });

  test('a chain ending at an uncovered model serves it unlimited once the allowances before it are exhausted', () => {
    const chain = routeChain(p, 'x', at);
    expect(chain.fallback).toEqual({ model: 'uncovered', unlimited: true });
    expect(routeAnswer(chain, null, period)).toMatchObject({
      model: 'uncovered',
      downgraded: true,
      reason: 'allowance_exhausted',
      remaining: null,
    });
  });

  test('a count the chain cannot have produced is a defect, not an answer', () => {
    const chain = routeChain(p, 'big', at);
    expect(() => routeAnswer(chain, { step: 4, used: 1 }, period)).toThrow();
    expect(() => routeAnswer(chain, { step: 1, used: 3 }, period)).toThrow();
    expect(() => routeAnswer(chain, { step: 1, used: 0 }, period)).toThrow();
  });
});
