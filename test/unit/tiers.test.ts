/**
 * Unit tests for the spend-tier rules (billing/tiers.ts): the bundled OpenAI table, the file schema, the tier a
 * customer earns, promotion that never demotes, the instant the next age rule is met and what the next tier needs;
 * TIERS_PATH validation at startup, and the account workflow's pure tier decisions. No server needed.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  applyTierReview,
  initialAccountState,
  mayChangeTier,
  msUntilTierReview,
  type AccountTier,
  type CommandResult,
} from '../../billing/account';
import { usd } from '../../billing/money';
import {
  ageRuleMetAt,
  findTier,
  firstTier,
  limitsView,
  loadDefaultTierTable,
  MAX_LIMIT_NANOS,
  nextAgeRuleAt,
  nextTier,
  parseTierTable,
  promotion,
  qualifies,
  TierTableError,
  tierFor,
  type PaymentFacts,
  type TierTable,
} from '../../billing/tiers';
import { ConfigError } from '../../wiring/config';
import { loadTierTable } from '../../wiring/runtime';

const DAY_MS = 86_400_000;
const T0 = Date.parse('2026-01-01T00:00:00Z');
const openai = loadDefaultTierTable();

function facts(paid_usd: string, first_payment_at_ms: number | null): PaymentFacts {
  return { lifetime_paid_nanos: usd(paid_usd), first_payment_at_ms };
}

/** The tier the facts earn `days` (fractional allowed) after T0, with the first payment at T0. */
function earnedAfter(table: TierTable, paid_usd: string, days: number): string {
  return tierFor(table, facts(paid_usd, T0), T0 + days * DAY_MS, DAY_MS).id;
}

function tierTableError(json: unknown): TierTableError {
  try {
    parseTierTable(json);
  } catch (error) {
    if (error instanceof TierTableError) return error;
    throw error;
  }
  throw new Error('expected a TierTableError, but the table was accepted');
}

/** A valid two-tier file, to break one field at a time. */
function twoTiers(): { tiers: Record<string, unknown>[] } {
  return {
    tiers: [
      {
        id: 'a',
        requires: { lifetime_paid_usd: '0', days_since_first_payment: 0 },
        limits: { rpm: 1, tpm: null, monthly_usage_limit_usd: null },
      },
      {
        id: 'b',
        requires: { lifetime_paid_usd: '10.00', days_since_first_payment: 1 },
        limits: { rpm: 2, tpm: 5, monthly_usage_limit_usd: '1.00' },
      },
    ],
  };
}

describe('the bundled OpenAI table', () => {
  it('lists free and tiers 1-5 with OpenAI requirements and monthly usage limits', () => {
    expect(
      openai.tiers.map((t) => [
        t.id,
        t.requires.lifetime_paid_nanos,
        t.requires.days_since_first_payment,
        t.limits.monthly_usage_limit_nanos,
      ]),
    ).toEqual([
      ['free', 0n, 0, usd('100')],
      ['tier_1', usd('5'), 0, usd('100')],
      ['tier_2', usd('50'), 7, usd('500')],
      ['tier_3', usd('100'), 7, usd('1000')],
      ['tier_4', usd('250'), 14, usd('5000')],
      ['tier_5', usd('1000'), 30, usd('200000')],
    ]);
  });

  it('has free at 3 RPM / 40,000 TPM and tier 1 at 500 RPM / 200,000 TPM, rising with each tier', () => {
    expect(limitsView(findTier(openai, 'free')!.limits)).toEqual({
      rpm: 3,
      tpm: 40_000,
      monthly_usage_limit_usd: '100.000000000',
    });
    expect(findTier(openai, 'tier_1')!.limits).toMatchObject({ rpm: 500n, tpm: 200_000n });
    for (let i = 1; i < openai.tiers.length; i += 1) {
      const [before, now] = [openai.tiers[i - 1]!.limits, openai.tiers[i]!.limits];
      expect(now.rpm! >= before.rpm!).toBe(true);
      expect(now.tpm! > before.tpm!).toBe(true);
    }
  });

  it('carries per-model entries for the paid tiers', () => {
    expect(findTier(openai, 'tier_2')!.model_limits['gpt-4o']).toEqual({ rpm: 5000n, tpm: 450_000n });
    expect(findTier(openai, 'free')!.model_limits).toEqual({});
  });
});

describe('tierFor: the highest tier whose rules are met', () => {
  it('keeps a customer who never paid on free, however old', () => {
    expect(tierFor(openai, facts('0', null), T0 + 1000 * DAY_MS, DAY_MS).id).toBe('free');
  });

  it('gives tier 1 at exactly $5 paid and not a nano less', () => {
    expect(earnedAfter(openai, '5.00', 0)).toBe('tier_1');
    expect(earnedAfter(openai, '4.999999999', 0)).toBe('free');
  });

  it('needs both the money and the days for tier 2: $50 waits 7 days, to the millisecond', () => {
    expect(earnedAfter(openai, '50.00', 0)).toBe('tier_1');
    expect(tierFor(openai, facts('50', T0), T0 + 7 * DAY_MS - 1, DAY_MS).id).toBe('tier_1');
    expect(tierFor(openai, facts('50', T0), T0 + 7 * DAY_MS, DAY_MS).id).toBe('tier_2');
    expect(earnedAfter(openai, '49.99', 100)).toBe('tier_1');
  });

  it('walks every boundary of the table', () => {
    const cases: [string, number, string][] = [
      ['100.00', 7, 'tier_3'],
      ['99.99', 7, 'tier_2'],
      ['250.00', 13.99, 'tier_3'],
      ['250.00', 14, 'tier_4'],
      ['1000.00', 29.99, 'tier_4'],
      ['1000.00', 30, 'tier_5'],
      ['999.99', 365, 'tier_4'],
      ['1000000.00', 0, 'tier_1'],
    ];
    for (const [paid, days, tier] of cases)
      expect([paid, days, earnedAfter(openai, paid, days)]).toEqual([paid, days, tier]);
  });

  it('counts days in BILLING_DAY units: one-second days make tier 2 seven seconds after the first payment', () => {
    expect(tierFor(openai, facts('50', T0), T0 + 6_999, 1000).id).toBe('tier_1');
    expect(tierFor(openai, facts('50', T0), T0 + 7_000, 1000).id).toBe('tier_2');
  });

  it('refuses a billing day that is not a positive whole number of ms', () => {
    expect(() => tierFor(openai, facts('50', T0), T0, 0)).toThrow(/billing_day_ms/);
    expect(() => tierFor(openai, facts('50', T0), T0, 1.5)).toThrow(/billing_day_ms/);
  });
});

describe('qualifies and ageRuleMetAt', () => {
  const tier2 = findTier(openai, 'tier_2')!;

  it('has no age rule for a tier without days, and an unknown instant before any payment', () => {
    expect(ageRuleMetAt(findTier(openai, 'tier_1')!, facts('0', null), DAY_MS)).toBe(
      Number.NEGATIVE_INFINITY,
    );
    expect(ageRuleMetAt(tier2, facts('0', null), DAY_MS)).toBeNull();
    expect(ageRuleMetAt(tier2, facts('50', T0), DAY_MS)).toBe(T0 + 7 * DAY_MS);
  });

  it('needs a payment for an age rule, even with money recorded some other way', () => {
    expect(qualifies(tier2, facts('50', null), T0 + 100 * DAY_MS, DAY_MS)).toBe(false);
  });
});

describe('promotion: the higher of the current tier and the earned one', () => {
  it('promotes from free to tier 1 on the first $5', () => {
    expect(promotion(openai, 'free', facts('5', T0), T0, DAY_MS)).toMatchObject({
      tier: { id: 'tier_1' },
      previous_id: 'free',
      changed: true,
    });
  });

  it('never demotes: a refund that takes lifetime paid below the tier keeps the tier', () => {
    const result = promotion(openai, 'tier_3', facts('10', T0), T0 + 30 * DAY_MS, DAY_MS);
    expect(result).toMatchObject({ tier: { id: 'tier_3' }, changed: false });
  });

  it('jumps over tiers in one promotion when the facts earn several at once', () => {
    const result = promotion(openai, 'free', facts('1000', T0), T0 + 30 * DAY_MS, DAY_MS);
    expect(result).toMatchObject({ tier: { id: 'tier_5' }, previous_id: 'free', changed: true });
  });

  it('assigns the earned tier when none is stored or the stored one is not in the table', () => {
    expect(promotion(openai, null, facts('0', null), T0, DAY_MS)).toMatchObject({
      tier: { id: 'free' },
      previous_id: null,
      changed: true,
    });
    expect(promotion(openai, 'gold', facts('60', T0), T0 + 8 * DAY_MS, DAY_MS)).toMatchObject({
      tier: { id: 'tier_2' },
      previous_id: null,
      changed: true,
    });
  });

  it('changes nothing when the tier already is the earned one', () => {
    expect(promotion(openai, 'tier_1', facts('50', T0), T0 + DAY_MS, DAY_MS).changed).toBe(false);
  });
});

describe('nextAgeRuleAt: when time alone promotes next', () => {
  it('is the first payment plus 7 days for $50 on tier 1', () => {
    expect(nextAgeRuleAt(openai, 'tier_1', facts('50', T0), T0 + DAY_MS, DAY_MS)).toBe(T0 + 7 * DAY_MS);
  });

  it('picks the soonest of several tiers waiting on time (tier 2 and 3 both at 7 days, tier 4 at 14)', () => {
    expect(nextAgeRuleAt(openai, 'tier_1', facts('300', T0), T0, DAY_MS)).toBe(T0 + 7 * DAY_MS);
    expect(nextAgeRuleAt(openai, 'tier_3', facts('300', T0), T0 + 7 * DAY_MS, DAY_MS)).toBe(T0 + 14 * DAY_MS);
  });

  it('is null when the next tiers need more money, before any payment, at the top, or once the instant passed', () => {
    expect(nextAgeRuleAt(openai, 'tier_1', facts('49.99', T0), T0, DAY_MS)).toBeNull();
    expect(nextAgeRuleAt(openai, 'free', facts('0', null), T0, DAY_MS)).toBeNull();
    expect(nextAgeRuleAt(openai, 'tier_5', facts('5000', T0), T0 + 40 * DAY_MS, DAY_MS)).toBeNull();
    // At the instant itself the review promotes; nothing is left to wait for at that tier.
    expect(nextAgeRuleAt(openai, 'tier_1', facts('50', T0), T0 + 7 * DAY_MS, DAY_MS)).toBeNull();
  });

  it('ignores a tier with no age rule (money alone promotes it, at payment time)', () => {
    const seed = parseTierTable(readJson('billing/tiers/seed-example.json'));
    expect(nextAgeRuleAt(seed, 'tier_1', facts('60', T0), T0, DAY_MS)).toBeNull();
  });
});

describe('nextTier: what the next tier requires', () => {
  it('says how much more to pay and when the age rule is met', () => {
    const next = nextTier(openai, 'tier_1', facts('20', T0), DAY_MS)!;
    expect(next.tier.id).toBe('tier_2');
    expect(next.lifetime_paid_missing_nanos).toBe(usd('30'));
    expect(next.age_rule_met_at_ms).toBe(T0 + 7 * DAY_MS);
  });

  it('shows nothing missing once paid past it, no instant before any payment, and null at the top', () => {
    expect(nextTier(openai, 'free', facts('0', null), DAY_MS)).toMatchObject({
      tier: { id: 'tier_1' },
      lifetime_paid_missing_nanos: usd('5'),
    });
    expect(nextTier(openai, 'tier_3', facts('500', T0), DAY_MS)!.lifetime_paid_missing_nanos).toBe(0n);
    expect(nextTier(openai, 'tier_1', facts('0', null), DAY_MS)!.age_rule_met_at_ms).toBeNull();
    expect(nextTier(openai, 'tier_5', facts('5000', T0), DAY_MS)).toBeNull();
  });

  it('treats an unknown current tier as the first', () => {
    expect(nextTier(openai, 'gold', facts('0', null), DAY_MS)!.tier.id).toBe('tier_1');
    expect(firstTier(openai).id).toBe('free');
  });
});

function readJson(relative: string): unknown {
  return JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', relative), 'utf8'));
}

describe("the seed's three-tier example as a tier file", () => {
  const seed = parseTierTable(readJson('billing/tiers/seed-example.json'));

  it('is Tier 1 for $0-50 at 3 RPM, Tier 2 for $50-250 at 10 RPM, Tier 3 for $250+ at 50 RPM', () => {
    expect(seed.tiers.map((t) => [t.id, t.requires.lifetime_paid_nanos, t.limits.rpm])).toEqual([
      ['tier_1', 0n, 3n],
      ['tier_2', usd('50'), 10n],
      ['tier_3', usd('250'), 50n],
    ]);
    const at = (paid: string) => tierFor(seed, facts(paid, paid === '0' ? null : T0), T0, DAY_MS).id;
    expect([at('0'), at('49.99'), at('50'), at('249.99'), at('250'), at('100000')]).toEqual([
      'tier_1',
      'tier_1',
      'tier_2',
      'tier_2',
      'tier_3',
      'tier_3',
    ]);
  });

  it('has no token or usage limit (null is unlimited)', () => {
    for (const tier of seed.tiers)
      expect([tier.limits.tpm, tier.limits.monthly_usage_limit_nanos]).toEqual([null, null]);
  });
});

describe('the file schema', () => {
  it('accepts the minimal file and names tiers by id when no name is given', () => {
    const table = parseTierTable(twoTiers());
    expect(table.tiers.map((t) => [t.id, t.name, t.index])).toEqual([
      ['a', 'a', 0],
      ['b', 'b', 1],
    ]);
    expect(table.tiers[1]!.limits).toEqual({ rpm: 2n, tpm: 5n, monthly_usage_limit_nanos: usd('1') });
  });

  const faults: [string, (file: { tiers: Record<string, unknown>[] }) => unknown, string][] = [
    ['an empty table', () => ({ tiers: [] }), 'at least one tier'],
    ['an unknown field', (f) => ({ ...f, extra: 1 }), 'extra'],
    ['an unknown tier field', (f) => ((f.tiers[1]!.extra = 1), f), 'tiers.1'],
    ['a repeated id', (f) => ((f.tiers[1]!.id = 'a'), f), 'tiers.1.id: is repeated'],
    ['an id with capitals', (f) => ((f.tiers[0]!.id = 'Free'), f), 'tiers.0.id'],
    [
      'a first tier that requires money',
      (f) => (((f.tiers[0]!.requires as Record<string, unknown>).lifetime_paid_usd = '1.00'), f),
      'tiers.0.requires: the first tier',
    ],
    [
      'a first tier that requires days',
      (f) => (((f.tiers[0]!.requires as Record<string, unknown>).days_since_first_payment = 1), f),
      'the first tier',
    ],
    [
      'a tier requiring less money than the one before',
      (f) => (
        f.tiers.push({
          ...f.tiers[1]!,
          id: 'c',
          requires: { lifetime_paid_usd: '5', days_since_first_payment: 2 },
        }),
        f
      ),
      'tiers.2.requires',
    ],
    [
      'a tier requiring exactly what the one before does',
      (f) => (f.tiers.push({ ...f.tiers[1]!, id: 'c' }), f),
      'more of something',
    ],
    [
      'a rate of zero',
      (f) => (((f.tiers[1]!.limits as Record<string, unknown>).rpm = 0), f),
      'tiers.1.limits.rpm',
    ],
    [
      'a fractional rate',
      (f) => (((f.tiers[1]!.limits as Record<string, unknown>).tpm = 1.5), f),
      'whole number',
    ],
    [
      'a rate above 10^12',
      (f) => (((f.tiers[1]!.limits as Record<string, unknown>).tpm = 1e12 + 1), f),
      'at most',
    ],
    [
      'a rate as a string',
      (f) => (((f.tiers[1]!.limits as Record<string, unknown>).rpm = '5'), f),
      'tiers.1.limits.rpm',
    ],
    [
      'a usage limit as a JSON number',
      (f) => (((f.tiers[1]!.limits as Record<string, unknown>).monthly_usage_limit_usd = 100), f),
      'monthly_usage_limit_usd',
    ],
    [
      'a usage limit of zero',
      (f) => (((f.tiers[1]!.limits as Record<string, unknown>).monthly_usage_limit_usd = '0'), f),
      'greater than zero',
    ],
    [
      'a usage limit above $1,000,000,000',
      (f) => (
        ((f.tiers[1]!.limits as Record<string, unknown>).monthly_usage_limit_usd = '1000000000.000000001'),
        f
      ),
      'at most 1000000000.00',
    ],
    [
      'a negative amount paid',
      (f) => (((f.tiers[1]!.requires as Record<string, unknown>).lifetime_paid_usd = '-5'), f),
      'negative',
    ],
    [
      'fractional days',
      (f) => (((f.tiers[1]!.requires as Record<string, unknown>).days_since_first_payment = 1.5), f),
      'tiers.1.requires.days_since_first_payment',
    ],
    [
      'a missing limit',
      (f) => (delete (f.tiers[1]!.limits as Record<string, unknown>).tpm, f),
      'tiers.1.limits.tpm',
    ],
    [
      'an unknown field in a model entry',
      (f) => ((f.tiers[1]!.models = { 'gpt-4o': { rpm: 1, rpd: 5 } }), f),
      'tiers.1.models.gpt-4o',
    ],
  ];
  it.each(faults)('refuses %s, naming where', (_what, breakIt, message) => {
    const error = tierTableError(breakIt(twoTiers()));
    expect(error.message).toContain(message);
  });

  it('accepts the largest limits the ledger holds', () => {
    const file = twoTiers();
    file.tiers[1]!.limits = { rpm: 1e12, tpm: 1e12, monthly_usage_limit_usd: '1000000000.00' };
    expect(parseTierTable(file).tiers[1]!.limits).toEqual({
      rpm: 1_000_000_000_000n,
      tpm: 1_000_000_000_000n,
      monthly_usage_limit_nanos: MAX_LIMIT_NANOS,
    });
  });

  it('shows limits as numbers and decimal strings, null as no limit', () => {
    expect(limitsView({ rpm: null, tpm: 7n, monthly_usage_limit_nanos: null })).toEqual({
      rpm: null,
      tpm: 7,
      monthly_usage_limit_usd: null,
    });
  });
});

describe('TIERS_PATH at startup', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tiers-'));
  const write = (name: string, text: string) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    return file;
  };

  it('is the bundled OpenAI table when unset, and any valid file when set (the seed example)', () => {
    expect(loadTierTable({ TIERS_PATH: undefined }).tiers.map((t) => t.id)).toEqual(
      openai.tiers.map((t) => t.id),
    );
    expect(loadTierTable({ TIERS_PATH: 'billing/tiers/seed-example.json' }).tiers).toHaveLength(3);
  });

  it('stops startup with a ConfigError naming the file and each fault', () => {
    const bad = write(
      'bad.json',
      JSON.stringify({ tiers: [{ ...twoTiers().tiers[0], limits: { rpm: 0 } }] }),
    );
    expect(() => loadTierTable({ TIERS_PATH: bad })).toThrow(ConfigError);
    expect(() => loadTierTable({ TIERS_PATH: bad })).toThrow(
      /TIERS_PATH .*bad\.json: invalid tier table:\n.*tiers\.0\.limits\.rpm/,
    );
    expect(() => loadTierTable({ TIERS_PATH: write('broken.json', '{') })).toThrow(
      /TIERS_PATH .*broken\.json/,
    );
    expect(() => loadTierTable({ TIERS_PATH: path.join(dir, 'missing.json') })).toThrow(
      /TIERS_PATH .*missing\.json/,
    );
  });
});

describe('the account workflow tier rules (billing/account.ts)', () => {
  const review: AccountTier = {
    tier: 'tier_1',
    previous_tier: 'free',
    promoted: true,
    lifetime_paid_usd: '50.000000000',
    first_payment_at: '2026-01-01T00:00:00.000Z',
    next_review_at: '2026-01-08T00:00:00.000Z',
  };
  const topUp = (status: 'succeeded' | 'failed'): CommandResult => ({
    kind: 'top_up',
    result: {
      top_up_id: 'tu_1',
      status,
      amount_usd: '5.000000000',
      grant_id: null,
      failure_code: null,
      decline_code: null,
      failure_message: null,
    },
  });

  it('reviews after a paid top-up or auto-recharge or a refused one (it may have been charged), not after a decline, a skip or a grant', () => {
    expect(mayChangeTier(topUp('succeeded'))).toBe(true);
    expect(mayChangeTier({ ...topUp('succeeded'), already_settled: true } as CommandResult)).toBe(true);
    expect(mayChangeTier(topUp('failed'))).toBe(false);
    expect(
      mayChangeTier({
        kind: 'grant_credit',
        result: { grant_id: 'g', amount_usd: '1.000000000', expires_at: null },
      }),
    ).toBe(false);
    const refused = (command_kind: 'top_up' | 'grant_credit'): CommandResult => ({
      kind: 'refused',
      id: 'x',
      command_kind,
      refusal: { code: 'conflict', message: 'm' },
    });
    expect(mayChangeTier(refused('top_up'))).toBe(true);
    const recharge = (status: 'succeeded' | 'failed' | 'skipped') =>
      ({ kind: 'auto_recharge', result: { status } }) as CommandResult;
    expect(mayChangeTier(recharge('succeeded'))).toBe(true);
    expect(mayChangeTier(recharge('failed'))).toBe(false);
    expect(mayChangeTier(recharge('skipped'))).toBe(false);
    expect(mayChangeTier(refused('grant_credit'))).toBe(false);
  });

  it('sleeps until the next review instant, 0 once due, and not at all without one', () => {
    const state = applyTierReview(initialAccountState('c'), review);
    expect(state.tier).toEqual(review);
    const due = Date.parse(review.next_review_at!);
    expect(msUntilTierReview(state, due - 1500)).toBe(1500);
    expect(msUntilTierReview(state, due)).toBe(0);
    expect(msUntilTierReview(state, due + 10)).toBe(0);
    expect(
      msUntilTierReview(applyTierReview(state, { ...review, next_review_at: null }), due),
    ).toBeUndefined();
    expect(msUntilTierReview(applyTierReview(state, null), due)).toBeUndefined();
    expect(msUntilTierReview(initialAccountState('c'), due)).toBeUndefined();
  });
});
