/**
 * Unit tests for auto-recharge's pure rules (billing/auto-recharge.ts) and how the account state acts on crossings
 * (billing/account.ts): the size of a charge (fixed, or the whole shortfall to a target rounded up to cents, within
 * the configured top-up range), the monthly limit and its UTC month boundaries, what a recharge's outcome does to
 * the cached state, and that each crossing becomes work exactly once whatever its kind. Pure; no servers.
 */
import {
  actOnCrossing,
  clearCrossingEvents,
  completeCommand,
  initialAccountState,
  isNewCrossing,
  recordThresholdCrossing,
  rebuildState,
  refusedOutcome,
  type AccountSnapshot,
  type AccountState,
  type ThresholdCrossing,
} from '../../billing/account';
import {
  applyRechargeResult,
  applyRechargeSettings,
  clearMonthlyRetry,
  monthlyRetryAfter,
  msUntilMonthlyRetry,
  type AutoRechargeConfig,
  type AutoRechargeResult,
  decideRecharge,
  disabledReasonOf,
  initialAutoRechargeState,
  rechargeAmountNanos,
  rechargeIdFor,
  rechargeIdempotencyKey,
  roundUpToCents,
  settingsOf,
  utcMonthOf,
  withinMonthlyLimit,
} from '../../billing/auto-recharge';
import { crossingEvent } from '../../billing/crossing-events';
import { usd } from '../../billing/money';

const LIMITS = { min_nanos: usd('5.00'), max_nanos: usd('500.00') };

const fixed = (amount: string): Pick<AutoRechargeConfig, 'amount_nanos' | 'target_balance_nanos'> => ({
  amount_nanos: usd(amount),
  target_balance_nanos: null,
});
const target = (balance: string): Pick<AutoRechargeConfig, 'amount_nanos' | 'target_balance_nanos'> => ({
  amount_nanos: null,
  target_balance_nanos: usd(balance),
});

function config(overrides: Partial<AutoRechargeConfig> = {}): AutoRechargeConfig {
  return {
    enabled: true,
    threshold_nanos: usd('10.00'),
    amount_nanos: usd('20.00'),
    target_balance_nanos: null,
    monthly_limit_nanos: null,
    disabled_reason: null,
    ...overrides,
  };
}

describe('roundUpToCents', () => {
  test.each([
    ['0', '0'],
    ['0.000000001', '0.01'],
    ['0.01', '0.01'],
    ['0.010000001', '0.02'],
    ['12.34', '12.34'],
    ['12.340000001', '12.35'],
    ['12.349999999', '12.35'],
  ])('%s rounds up to %s', (from, to) => {
    expect(roundUpToCents(usd(from))).toBe(usd(to));
  });

  test('a shortfall of zero or less is no charge', () => {
    expect(roundUpToCents(-usd('3.00'))).toBe(0n);
  });
});

describe('rechargeAmountNanos', () => {
  test('a fixed amount is charged as it is', () => {
    expect(rechargeAmountNanos(fixed('20.00'), usd('9.99'), LIMITS)).toBe(usd('20.00'));
    expect(rechargeAmountNanos(fixed('20.00'), -usd('100.00'), LIMITS)).toBe(usd('20.00'));
  });

  test('a target charges the whole shortfall from the available balance, rounded up to whole cents', () => {
    // 50.00 - 9.995 = 40.005, up to 40.01.
    expect(rechargeAmountNanos(target('50.00'), usd('9.995'), LIMITS)).toBe(usd('40.01'));
    // 50.00 - 9.99 = 40.01 exactly.
    expect(rechargeAmountNanos(target('50.00'), usd('9.99'), LIMITS)).toBe(usd('40.01'));
    // Below zero: 50.00 - (-12.345678901) = 62.345678901, up to 62.35.
    expect(rechargeAmountNanos(target('50.00'), -usd('12.345678901'), LIMITS)).toBe(usd('62.35'));
  });

  test('a charge is never below the minimum top-up nor above the maximum', () => {
    // Shortfall 0.50 is raised to the 5.00 minimum.
    expect(rechargeAmountNanos(target('10.00'), usd('9.50'), LIMITS)).toBe(usd('5.00'));
    // Shortfall 1,050.00 is capped at the 500.00 maximum.
    expect(rechargeAmountNanos(target('50.00'), -usd('1000.00'), LIMITS)).toBe(usd('500.00'));
    // A fixed amount outside a range that changed since it was saved follows the range too.
    expect(rechargeAmountNanos(fixed('1.00'), 0n, LIMITS)).toBe(usd('5.00'));
    expect(rechargeAmountNanos(fixed('900.00'), 0n, LIMITS)).toBe(usd('500.00'));
  });

  test('every charge is whole cents', () => {
    for (let available = -usd('1.00'); available < usd('1.00'); available += 7_777_777n) {
      const amount = rechargeAmountNanos(target('60.00'), available, LIMITS);
      expect(amount % 10_000_000n).toBe(0n);
      // And it covers the shortfall: the balance after it is at least the target.
      expect(available + amount).toBeGreaterThanOrEqual(usd('60.00'));
    }
  });
});

describe('withinMonthlyLimit', () => {
  test('no limit allows anything', () => {
    expect(withinMonthlyLimit(null, usd('1000000.00'), usd('500.00'))).toBe(true);
  });

  test('reaching the limit exactly is allowed, passing it by a cent is not', () => {
    expect(withinMonthlyLimit(usd('50.00'), usd('30.00'), usd('20.00'))).toBe(true);
    expect(withinMonthlyLimit(usd('50.00'), usd('30.01'), usd('20.00'))).toBe(false);
    expect(withinMonthlyLimit(usd('50.00'), 0n, usd('50.01'))).toBe(false);
  });
});

describe('decideRecharge', () => {
  const base = {
    config: config(),
    has_payment_method: true,
    available_nanos: usd('9.99'),
    recharged_this_month_nanos: 0n,
    limits: LIMITS,
  };

  test('charges the configured amount when everything allows it', () => {
    expect(decideRecharge(base)).toEqual({ action: 'charge', amount_nanos: usd('20.00') });
  });

  test('skips when auto-recharge is off or was never set', () => {
    expect(decideRecharge({ ...base, config: null })).toEqual({ action: 'skip', reason: 'disabled' });
    expect(decideRecharge({ ...base, config: config({ enabled: false }) })).toEqual({
      action: 'skip',
      reason: 'disabled',
    });
  });

  test('skips when the balance is back at or above the threshold by the time it runs', () => {
    expect(decideRecharge({ ...base, available_nanos: usd('10.00') })).toEqual({
      action: 'skip',
      reason: 'balance_recovered',
    });
  });

  test('refuses without a card on file', () => {
    expect(decideRecharge({ ...base, has_payment_method: false })).toEqual({
      action: 'refuse',
      reason: 'no_payment_method',
      amount_nanos: usd('20.00'),
    });
  });

  test("refuses a charge that would take this month's recharges past the limit; allows one that reaches it", () => {
    const limited = config({ monthly_limit_nanos: usd('50.00') });
    expect(decideRecharge({ ...base, config: limited, recharged_this_month_nanos: usd('30.00') })).toEqual({
      action: 'charge',
      amount_nanos: usd('20.00'),
    });
    expect(decideRecharge({ ...base, config: limited, recharged_this_month_nanos: usd('40.00') })).toEqual({
      action: 'refuse',
      reason: 'monthly_limit',
      amount_nanos: usd('20.00'),
    });
  });

  test('a target recharge is checked against the limit with its actual size', () => {
    const targeted = config({
      amount_nanos: null,
      target_balance_nanos: usd('50.00'),
      monthly_limit_nanos: usd('45.00'),
    });
    // Shortfall 40.01 fits under 45.00 with nothing recharged yet, not after 5.00.
    expect(decideRecharge({ ...base, config: targeted })).toEqual({
      action: 'charge',
      amount_nanos: usd('40.01'),
    });
    expect(decideRecharge({ ...base, config: targeted, recharged_this_month_nanos: usd('5.00') })).toEqual({
      action: 'refuse',
      reason: 'monthly_limit',
      amount_nanos: usd('40.01'),
    });
  });
});

describe('utcMonthOf: the monthly limit counts UTC calendar months', () => {
  test.each([
    ['2026-11-30T23:59:59.999Z', '2026-11'],
    ['2026-12-01T00:00:00.000Z', '2026-12'],
    ['2026-12-31T23:59:59.999Z', '2026-12'],
    ['2027-01-01T00:00:00.000Z', '2027-01'],
    ['2028-02-29T12:00:00.000Z', '2028-02'],
    ['2028-03-01T00:00:00.000Z', '2028-03'],
  ])('%s is in %s', (at, month) => {
    expect(utcMonthOf(Date.parse(at))).toBe(month);
  });

  test('a time that is already the next month in UTC counts there, whatever the local zone says', () => {
    // 2026-11-30 20:00 in New York (UTC-5) is December 1st 01:00 UTC.
    expect(utcMonthOf(Date.parse('2026-11-30T20:00:00-05:00'))).toBe('2026-12');
    // 2026-12-01 08:00 in Tokyo (UTC+9) is still November 30th in UTC.
    expect(utcMonthOf(Date.parse('2026-12-01T08:00:00+09:00'))).toBe('2026-11');
  });
});

describe('ids and keys derive from the crossing', () => {
  test('one crossing, one recharge id and one charge key', () => {
    expect(rechargeIdFor('42')).toBe('ar_42');
    expect(rechargeIdempotencyKey('cus_a', '42')).toBe('auto_recharge:cus_a:42');
    expect(rechargeIdempotencyKey('cus_a', '42')).not.toBe(rechargeIdempotencyKey('cus_a', '43'));
  });
});

function result(overrides: Partial<AutoRechargeResult> = {}): AutoRechargeResult {
  return {
    recharge_id: 'ar_1',
    crossing_id: '1',
    status: 'succeeded',
    amount_usd: '20.000000000',
    payment_id: 'pay_ar_1',
    grant_id: 'gr_ar_1',
    grant_expires_at: null,
    failure_code: null,
    decline_code: null,
    disabled_reason: null,
    decided_at: '2026-11-15T12:00:00.000Z',
    ...overrides,
  };
}

describe('the workflow state of auto-recharge', () => {
  test("successes add up within a month; a new UTC month starts from zero; failures don't count", () => {
    let state = applyRechargeSettings(null, settingsOf(config()));
    state = applyRechargeResult(state, result());
    state = applyRechargeResult(state, result({ recharge_id: 'ar_2', amount_usd: '5.500000000' }));
    state = applyRechargeResult(
      state,
      result({ recharge_id: 'ar_3', status: 'failed', failure_code: 'monthly_limit' }),
    );
    expect(state).toMatchObject({
      month: '2026-11',
      recharged_this_month_usd: '25.500000000',
      recharges_succeeded: 2,
      recharges_failed: 1,
    });
    state = applyRechargeResult(
      state,
      result({ recharge_id: 'ar_4', decided_at: '2026-12-01T00:00:00.000Z' }),
    );
    expect(state).toMatchObject({ month: '2026-12', recharged_this_month_usd: '20.000000000' });
    expect(state.settings?.enabled).toBe(true);
  });

  test('an outcome that switched auto-recharge off turns the cached settings off with the reason', () => {
    const state = applyRechargeResult(
      applyRechargeSettings(initialAutoRechargeState(), settingsOf(config())),
      result({
        status: 'failed',
        failure_code: 'card_declined',
        decline_code: 'generic_decline',
        disabled_reason: 'card_declined: generic_decline',
      }),
    );
    expect(state.settings).toMatchObject({
      enabled: false,
      disabled_reason: 'card_declined: generic_decline',
    });
  });

  test('which outcomes switch it off: a failed charge or no card; not a monthly limit or a skip', () => {
    const failed = { status: 'failed' as const, decline_code: null };
    expect(
      disabledReasonOf({
        ...failed,
        failure_code: 'card_declined',
        decline_code: 'insufficient_funds',
        charged: true,
      }),
    ).toBe('card_declined: insufficient_funds');
    expect(disabledReasonOf({ ...failed, failure_code: 'expired_card', charged: true })).toBe(
      'card_declined: expired_card',
    );
    expect(disabledReasonOf({ ...failed, failure_code: 'no_payment_method', charged: false })).toBe(
      'no_payment_method',
    );
    expect(disabledReasonOf({ ...failed, failure_code: 'monthly_limit', charged: false })).toBeNull();
    expect(
      disabledReasonOf({ status: 'skipped', failure_code: 'disabled', decline_code: null, charged: false }),
    ).toBeNull();
    expect(
      disabledReasonOf({ status: 'succeeded', failure_code: null, decline_code: null, charged: true }),
    ).toBeNull();
  });
});

function crossing(id: string, kind: ThresholdCrossing['kind']): ThresholdCrossing {
  return {
    crossing_id: id,
    kind,
    threshold_usd: '10.000000000',
    balance_usd: '9.990000000',
    crossed_at: '2026-11-15T12:00:00.000Z',
  };
}

/** What the workflow's signal handler does with a crossing (with the crossing patch in effect). */
function receive(state: AccountState, c: ThresholdCrossing): AccountState {
  const fresh = isNewCrossing(state, c);
  const next = recordThresholdCrossing(state, c);
  return fresh ? actOnCrossing(next, c) : next;
}

describe('after a monthly_limit refusal the account asks again once, at the next UTC month', () => {
  const refused = (decided_at: string) =>
    ({ status: 'failed', failure_code: 'monthly_limit', decided_at }) as const;

  test.each([
    ['2026-11-30T23:59:59.999Z', '2026-12'],
    ['2026-12-01T00:00:00.000Z', '2027-01'],
    ['2026-12-31T23:59:59.999Z', '2027-01'],
    ['2028-02-29T12:00:00.000Z', '2028-03'],
  ])('refused at %s: asked again in %s', (decided_at, month) => {
    expect(monthlyRetryAfter(refused(decided_at))).toBe(month);
  });

  test('no other outcome is asked again: a decline is never retried, a skip or a success needs nothing', () => {
    const at = '2026-11-15T00:00:00.000Z';
    for (const outcome of [
      { status: 'failed', failure_code: 'card_declined', decided_at: at },
      { status: 'failed', failure_code: 'no_payment_method', decided_at: at },
      { status: 'skipped', failure_code: 'balance_recovered', decided_at: at },
      { status: 'succeeded', failure_code: null, decided_at: at },
    ] as const) {
      expect(monthlyRetryAfter(outcome)).toBeUndefined();
    }
  });

  test('the state notes the month, keeps it through later outcomes, and forgets it once asked', () => {
    let state = applyRechargeResult(
      initialAutoRechargeState(),
      result({ status: 'failed', failure_code: 'monthly_limit', decided_at: '2026-11-20T10:00:00.000Z' }),
    );
    expect(state.retry_month).toBe('2026-12');
    state = applyRechargeResult(
      state,
      result({ recharge_id: 'ar_9', decided_at: '2026-11-21T10:00:00.000Z' }),
    );
    expect(state.retry_month).toBe('2026-12');
    expect(msUntilMonthlyRetry(state, Date.parse('2026-11-30T23:00:00.000Z'))).toBe(3600_000);
    expect(msUntilMonthlyRetry(state, Date.parse('2026-12-02T00:00:00.000Z'))).toBe(0);
    expect(clearMonthlyRetry(state, '2027-01')).toBe(state);
    state = clearMonthlyRetry(state, '2026-12');
    expect(state.retry_month).toBeNull();
    expect(msUntilMonthlyRetry(state, 0)).toBeUndefined();
    expect(msUntilMonthlyRetry(initialAutoRechargeState(), 0)).toBeUndefined();
    expect(msUntilMonthlyRetry(null, 0)).toBeUndefined();
  });
});

describe('crossings become work once each, whatever their kind', () => {
  test('a recharge crossing queues one recharge command; a redelivery or an older id does nothing', () => {
    let state = initialAccountState('cus_u');
    state = receive(state, crossing('7', 'recharge'));
    state = receive(state, crossing('7', 'recharge'));
    state = receive(state, crossing('6', 'recharge'));
    expect(state.queue).toEqual([{ kind: 'auto_recharge', id: 'ar_7', crossing: crossing('7', 'recharge') }]);
    expect(state.threshold_crossings).toBe(1);
  });

  test('the crossings of one debit (several kinds, consecutive ids) each count: one recharge, two events', () => {
    let state = initialAccountState('cus_u');
    for (const c of [crossing('10', 'low_balance'), crossing('11', 'recharge'), crossing('12', 'depleted')]) {
      state = receive(state, c);
    }
    expect(state.queue.map((c) => c.id)).toEqual(['ar_11']);
    expect(state.crossing_events?.map((c) => c.crossing_id)).toEqual(['10', '12']);
    expect(clearCrossingEvents(state, ['10', '12']).crossing_events).toEqual([]);
  });

  test('a recharge crossing is queued even when the queue is full (a crossing is never dropped)', () => {
    let state = initialAccountState('cus_u');
    for (let i = 0; i < 60; i++) {
      state = {
        ...state,
        queue: [
          ...state.queue,
          { kind: 'top_up', id: `tu_${i}`, request: { top_up_id: `tu_${i}`, amount_usd: '5.00' } },
        ],
      };
    }
    state = receive(state, crossing('1', 'recharge'));
    expect(state.queue.at(-1)?.id).toBe('ar_1');
  });

  test('a recharge already answered is not queued again (acting on a rebuilt crossing twice)', () => {
    let state = actOnCrossing(initialAccountState('cus_u'), crossing('3', 'recharge'));
    state = completeCommand(state, {
      kind: 'auto_recharge',
      result: result({ recharge_id: 'ar_3', crossing_id: '3' }),
    });
    expect(actOnCrossing(state, crossing('3', 'recharge')).queue).toEqual([]);
  });

  test('completing a recharge records it; a granted expiry joins the expiry timers', () => {
    let state = actOnCrossing(initialAccountState('cus_u'), crossing('3', 'recharge'));
    state = completeCommand(state, {
      kind: 'auto_recharge',
      result: result({ recharge_id: 'ar_3', crossing_id: '3', grant_expires_at: '2027-11-15T12:00:00.000Z' }),
    });
    expect(state.queue).toEqual([]);
    expect(state.auto_recharge?.last_recharge?.recharge_id).toBe('ar_3');
    expect(state.grant_expiries).toEqual([{ grant_id: 'gr_ar_1', expires_at: '2027-11-15T12:00:00.000Z' }]);
  });

  test('a refused recharge leaves the queue and counts as a refusal', () => {
    const state = actOnCrossing(initialAccountState('cus_u'), crossing('3', 'recharge'));
    const next = completeCommand(
      state,
      refusedOutcome(state.queue[0]!, { code: 'constraint_violation', message: 'x' }),
    );
    expect(next.queue).toEqual([]);
    expect(next.refusals).toBe(1);
    expect(next.top_ups_failed).toBe(0);
  });

  test('a rebuilt state takes the auto-recharge state from the snapshot; older snapshots leave it alone', () => {
    const snapshot: AccountSnapshot = {
      payment_method: 'pm_card_visa',
      grant_expiries: [],
      lifetime_top_ups_usd: '0.000000000',
      top_ups_succeeded: 0,
      top_ups_failed: 0,
      last_crossing: null,
      threshold_crossings: 0,
      pending: { commands: [], more: false },
    };
    const ar = applyRechargeSettings(null, settingsOf(config()));
    expect(rebuildState(initialAccountState('cus_u'), snapshot).auto_recharge).toBeNull();
    expect(
      rebuildState(initialAccountState('cus_u'), { ...snapshot, auto_recharge: ar }).auto_recharge,
    ).toEqual(ar);
  });
});

describe('crossing events', () => {
  test.each([
    ['low_balance', 'credit.balance_low'],
    [undefined, 'credit.balance_low'],
    ['depleted', 'credit.depleted'],
    ['budget_alert', 'budget.alert'],
    ['budget_limit', 'budget.limit_reached'],
  ] as const)('a %s crossing reports %s once per crossing id', (kind, type) => {
    const event = crossingEvent('cus_e', { ...crossing('9', kind), month_spend_usd: '99.000000000' });
    expect(event).toEqual({
      customer_id: 'cus_e',
      type,
      data: {
        crossing_id: '9',
        threshold_usd: '10.000000000',
        balance_usd: '9.990000000',
        month_spend_usd: '99.000000000',
        crossed_at: '2026-11-15T12:00:00.000Z',
      },
      occurrence_key: 'crossing:9',
    });
  });

  test('a recharge crossing reports nothing itself (its recharge does)', () => {
    expect(crossingEvent('cus_e', crossing('9', 'recharge'))).toBeNull();
  });
});
