import { usd } from '../../billing/money';
import {
  allowanceWindow_ms,
  FREE_PLAN_ID,
  loadDefaultPlanCatalog,
  parsePlanCatalog,
  type Plan,
  PlanCatalogError,
  periodPrice_nanos,
  planView,
} from '../../billing/plans';
import { loadDefaultPriceBook } from '../../billing/price-book';
import { ConfigError, loadConfig } from '../../wiring/config';
import { accountSettingsFrom } from '../../wiring/runtime';

/**
 * The plan catalog (billing/plans.ts): the bundled catalog's prices and caps, every refusal of a bad file named by
 * its path, the price of one period, the API view, and the subscription settings' configuration
 * (BILLING_PERIOD, DUNNING_RETRY_SCHEDULE).
 */
const catalog = loadDefaultPlanCatalog();
const plan = (id: string): Plan => {
  const found = catalog.find(id);
  if (!found) throw new Error(`no plan ${id}`);
  return found;
};

/** The free plan of a small valid catalog file, to break one field at a time. */
const FREE_FILE = {
  id: 'free',
  name: 'Free',
  price_usd: '0',
  interval: 'month',
  per_seat: false,
  collection: 'charge',
  allowances: [{ models: ['gpt-5.4'], limit: 10, window: 'P1D', downgrade_to: 'gpt-5.4-mini' }],
};

/** A catalog file: the free plan with `overrides`, then `extraPlans`. */
function file(overrides: Record<string, unknown> = {}, extraPlans: unknown[] = []) {
  return { plans: [{ ...FREE_FILE, ...overrides }, ...extraPlans] };
}

const refusal = (json: unknown): string => {
  try {
    parsePlanCatalog(json);
  } catch (error) {
    expect(error).toBeInstanceOf(PlanCatalogError);
    return (error as Error).message;
  }
  throw new Error('the catalog was accepted');
};

describe('the bundled catalog (billing/plans/default.json)', () => {
  it('has the seed prices: free $0, go $8, plus $20, pro $200 a month; business $30/seat/month or $300/seat/year', () => {
    const prices = Object.fromEntries(
      catalog.plans.map((p) => [p.id, [p.price_nanos, p.interval, p.per_seat, p.collection, p.net_days]]),
    );
    expect(prices).toEqual({
      free: [0n, 'month', false, 'charge', 0],
      go: [usd('8'), 'month', false, 'charge', 0],
      plus: [usd('20'), 'month', false, 'charge', 0],
      pro: [usd('200'), 'month', false, 'charge', 0],
      business: [usd('30'), 'month', true, 'charge', 0],
      business_annual: [usd('300'), 'year', true, 'charge', 0],
      enterprise: [null, 'month', true, 'net_terms', 30],
    });
    // $300 a year per seat is $25 per seat per month.
    expect(plan('business_annual').price_nanos! / 12n).toBe(usd('25'));
  });

  it('gives Free strict daily caps: 10 gpt-5.4 then gpt-5.4-mini, 50 gpt-5.4-mini then gpt-5.4-nano', () => {
    const free = plan(FREE_PLAN_ID);
    expect(free.allowances).toEqual(
      expect.arrayContaining([
        { models: ['gpt-5.4'], limit: 10, window: 'P1D', downgrade_to: 'gpt-5.4-mini' },
        { models: ['gpt-5.4-mini'], limit: 50, window: 'P1D', downgrade_to: 'gpt-5.4-nano' },
      ]),
    );
    expect(free.allowances.every((a) => a.window === 'P1D')).toBe(true);
  });

  it('gives Plus 160 gpt-5.4 requests per 3 hours, then gpt-5.4-mini', () => {
    expect(plan('plus').allowances).toContainEqual({
      models: ['gpt-5.4'],
      limit: 160,
      window: 'PT3H',
      downgrade_to: 'gpt-5.4-mini',
    });
  });

  it('names only models the bundled price book prices', () => {
    const book = loadDefaultPriceBook();
    const known = (m: string) => book.versions.some((v) => v.models.has(m));
    for (const p of catalog.plans) {
      for (const a of p.allowances) {
        expect([...a.models, a.downgrade_to].filter((m) => !known(m))).toEqual([]);
      }
    }
  });

  it('finds plans by id and nothing for an unknown one', () => {
    expect(catalog.find('plus')?.name).toBe('Plus');
    expect(catalog.find('platinum')).toBeUndefined();
    expect(catalog.find('constructor')).toBeUndefined();
  });
});

describe('parsePlanCatalog refuses a bad file, naming the path of each fault', () => {
  it.each([
    ['a repeated id', file({}, [FREE_FILE]), /plans\.1\.id: is repeated/],
    ['no free plan', file({ id: 'basic' }), /plans: must include the "free" plan/],
    ['a free plan that costs money', file({ price_usd: '1.00' }), /plans\.0: the free plan must cost "0"/],
    [
      'a price in fractions of a cent',
      file({}, [paid({ price_usd: '20.005' })]),
      /plans\.1\.price_usd: .*whole cents/,
    ],
    ['a price that is not a decimal string', file({}, [paid({ price_usd: 20 })]), /plans\.1\.price_usd/],
    [
      'a negative price',
      file({}, [paid({ price_usd: '-1.00' })]),
      /plans\.1\.price_usd: price_usd must not be negative/,
    ],
    [
      'a null price on a flat plan',
      file({}, [paid({ price_usd: null })]),
      /plans\.1\.price_usd: may be null .* per_seat/,
    ],
    [
      'net terms without net days',
      file({}, [paid({ collection: 'net_terms' })]),
      /plans\.1\.net_days: must be at least 1/,
    ],
    [
      'net days on a charged plan',
      file({}, [paid({ net_days: 30 })]),
      /plans\.1\.net_days: applies only to net_terms/,
    ],
    ['an unknown interval', file({}, [paid({ interval: 'week' })]), /plans\.1\.interval/],
    ['an unknown field', file({ colour: 'red' }), /plans\.0: Unrecognized key/],
    [
      'an empty model',
      file({ allowances: [allowance({ models: [''] })] }),
      /plans\.0\.allowances\.0\.models\.0: must not be empty/,
    ],
    [
      'no models',
      file({ allowances: [allowance({ models: [] })] }),
      /plans\.0\.allowances\.0\.models: must list at least one/,
    ],
    [
      'an empty downgrade_to',
      file({ allowances: [allowance({ downgrade_to: '' })] }),
      /allowances\.0\.downgrade_to: must not be empty/,
    ],
    [
      'a fractional limit',
      file({ allowances: [allowance({ limit: 1.5 })] }),
      /allowances\.0\.limit: must be a whole number/,
    ],
    ['a negative limit', file({ allowances: [allowance({ limit: -1 })] }), /allowances\.0\.limit/],
    [
      'a calendar window',
      file({ allowances: [allowance({ window: 'P1M' })] }),
      /allowances\.0\.window: must be "period" or/,
    ],
    ['a zero window', file({ allowances: [allowance({ window: 'PT0S' })] }), /allowances\.0\.window/],
    ['a garbage window', file({ allowances: [allowance({ window: 'daily' })] }), /allowances\.0\.window/],
    [
      'a model in two allowances',
      file({ allowances: [allowance(), allowance({ downgrade_to: 'gpt-5.4-nano' })] }),
      /allowances\.1\.models\.0: gpt-5.4 is already counted by allowances\.0/,
    ],
    [
      'a downgrade chain that loops',
      file({
        allowances: [
          allowance({ models: ['gpt-5.4'], downgrade_to: 'gpt-5.4-mini' }),
          allowance({ models: ['gpt-5.4-mini'], downgrade_to: 'gpt-5.4' }),
        ],
      }),
      /allowances\.0\.downgrade_to: following downgrade_to from here comes back/,
    ],
    [
      'an allowance downgrading to a model it counts',
      file({ allowances: [allowance({ models: ['gpt-5.4', 'o1'], downgrade_to: 'o1' })] }),
      /allowances\.0\.downgrade_to: following downgrade_to/,
    ],
    ['no plans', { plans: [] }, /plans: must list at least one plan/],
    ['not an object', 'plans', /\(file\)/],
  ])('%s', (_what, json, message) => {
    expect(refusal(json)).toMatch(message);
  });

  it('accepts a null price on a per-seat net-terms plan and a limit of 0', () => {
    const parsed = parsePlanCatalog(
      file({ allowances: [allowance({ limit: 0 })] }, [
        paid({ price_usd: null, per_seat: true, collection: 'net_terms', net_days: 45 }),
      ]),
    );
    expect(parsed.find('paid')).toMatchObject({ price_nanos: null, net_days: 45 });
  });
});

function paid(overrides: Record<string, unknown>) {
  return { ...FREE_FILE, id: 'paid', name: 'Paid', price_usd: '20.00', ...overrides };
}

function allowance(overrides: Record<string, unknown> = {}) {
  return { models: ['gpt-5.4'], limit: 10, window: 'PT5H', downgrade_to: 'gpt-5.4-mini', ...overrides };
}

describe('periodPrice_nanos', () => {
  it('is the flat price for a flat plan, whatever the seats', () => {
    expect(periodPrice_nanos(plan('plus'), 1, null)).toBe(usd('20'));
    expect(periodPrice_nanos(plan('plus'), 5, usd('99'))).toBe(usd('20'));
  });

  it('is price x seats for a per-seat plan: business with 7 seats is 7 x 30 = 210.00', () => {
    expect(periodPrice_nanos(plan('business'), 7, null)).toBe(usd('210'));
    expect(periodPrice_nanos(plan('business_annual'), 3, null)).toBe(usd('900'));
  });

  it("takes the customer's seat price when the catalog's is null: enterprise 100 seats x 45.50 = 4550.00", () => {
    expect(periodPrice_nanos(plan('enterprise'), 100, usd('45.50'))).toBe(usd('4550'));
  });

  it('refuses a plan without any price, bad seats and a seat price in fractions of a cent', () => {
    expect(() => periodPrice_nanos(plan('enterprise'), 1, null)).toThrow(/no catalog price/);
    expect(() => periodPrice_nanos(plan('business'), 0, null)).toThrow(/seats/);
    expect(() => periodPrice_nanos(plan('business'), 1.5, null)).toThrow(/seats/);
    expect(() => periodPrice_nanos(plan('enterprise'), 1, usd('0.001'))).toThrow(/whole cents/);
  });
});

describe('planView and allowanceWindow_ms', () => {
  it('shows prices as USD strings (null for a per-customer price) and the allowances as the file has them', () => {
    expect(planView(plan('plus'))).toMatchObject({
      id: 'plus',
      name: 'Plus',
      price_usd: '20.000000000',
      interval: 'month',
      per_seat: false,
    });
    expect(planView(plan('enterprise')).price_usd).toBeNull();
    expect(Object.keys(planView(plan('free')))).toEqual([
      'id',
      'name',
      'price_usd',
      'interval',
      'per_seat',
      'allowances',
    ]);
  });

  it('reads a window as milliseconds, or null for "period"', () => {
    expect(allowanceWindow_ms(allowance({ window: 'PT3H' }) as never)).toBe(3 * 3_600_000);
    expect(allowanceWindow_ms(allowance({ window: 'period' }) as never)).toBeNull();
  });
});

describe('subscription configuration (wiring/config.ts)', () => {
  it('defaults to BILLING_PERIOD=P1M and DUNNING_RETRY_SCHEDULE=1,3,5,7, which reach the account settings', () => {
    const config = loadConfig({});
    expect(config.BILLING_PERIOD).toBe('P1M');
    expect(config.DUNNING_RETRY_SCHEDULE).toEqual([1, 3, 5, 7]);
    expect(config.PLANS_PATH).toBeUndefined();
    expect(
      accountSettingsFrom(loadConfig({ BILLING_PERIOD: 'PT12S', DUNNING_RETRY_SCHEDULE: '0, 2,4' })),
    ).toMatchObject({
      billing_period: 'PT12S',
      dunning_retry_days: [0, 2, 4],
    });
  });

  it.each([
    ['BILLING_PERIOD', 'P1M1D'],
    ['BILLING_PERIOD', 'P0D'],
    ['BILLING_PERIOD', 'monthly'],
    ['DUNNING_RETRY_SCHEDULE', ''],
    ['DUNNING_RETRY_SCHEDULE', '1,3,3'],
    ['DUNNING_RETRY_SCHEDULE', '3,1'],
    ['DUNNING_RETRY_SCHEDULE', '1,-3'],
    ['DUNNING_RETRY_SCHEDULE', '1.5'],
    ['DUNNING_RETRY_SCHEDULE', 'P1D'],
  ])('refuses %s=%j at startup, naming the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`${name}: `));
  });
});
