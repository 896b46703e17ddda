/**
 * Spend tiers: what a customer has paid and how long ago it first paid decide its rate limits and monthly usage
 * limit, the way OpenAI's usage tiers do. This module is the pure rule book: the table (a validated file), the tier
 * a customer qualifies for, the promotion that never demotes, when the next age rule is met (the account workflow
 * sleeps until that instant) and what the next tier requires. Nothing here reads a clock, a file or a database.
 *
 * Days are `BILLING_DAY` (an argument here, `billing_day_ms`), so a test can run "7 days after the first payment"
 * in 7 seconds.
 */
import { z } from 'zod';
import { formatUsdOrNull, maxBigint, parseUsd } from './money';
import openAiTiersJson from './tiers/openai.json';

/** Limits of a tier; null is "no limit". Rates are per minute, the usage limit is per UTC calendar month. */
export interface TierLimits {
  rpm: bigint | null;
  tpm: bigint | null;
  monthly_usage_limit_nanos: bigint | null;
}

export interface Tier {
  /** Stable id (`free`, `tier_1` ... `tier_5` in the bundled table): stored, shown and used as search attribute. */
  id: string;
  name: string;
  /** Position in the table, 0 for the first; a higher index is a higher tier. */
  index: number;
  requires: { lifetime_paid_nanos: bigint; days_since_first_payment: number };
  limits: TierLimits;
  /**
   * Per-model rate limits as the table states them (OpenAI publishes limits per model). Descriptive: shown by
   * `GET /v1/customers/:id/tier` for a gateway in front of the models to apply; the engine's hot path enforces the
   * customer-wide `limits`.
   */
  model_limits: Readonly<Record<string, { rpm: bigint | null; tpm: bigint | null }>>;
}

export interface TierTable {
  /** Lowest first; the first tier requires nothing, every later one at least as much as the one before it. */
  tiers: readonly Tier[];
  notes: string | null;
}

/** What a customer has paid, from succeeded payments (refunds will reduce it); the first payment's time or null. */
export interface PaymentFacts {
  lifetime_paid_nanos: bigint;
  first_payment_at_ms: number | null;
}

/** Rates in a file go up to 10^12 per minute, which no deployment approaches and every int8 column holds. */
export const MAX_RATE_PER_MINUTE = 1_000_000_000_000;
/**
 * Money limits in a file (and operator overrides) go up to $1,000,000,000: the ledger keeps nanos in int8 (about
 * $9.2 billion), and the hot path adds spend and holds to a limit, so a limit keeps that sum far from overflowing.
 */
export const MAX_LIMIT_NANOS = 1_000_000_000n * 1_000_000_000n;
/** Age rules go up to 100 years of billing days. */
export const MAX_DAYS = 36_500;

/** A milliseconds-per-day value that keeps every deadline a safe integer. */
function assertBillingDay(billing_day_ms: number): void {
  if (!Number.isSafeInteger(billing_day_ms) || billing_day_ms <= 0) {
    throw new Error(`billing_day_ms must be a positive whole number, got ${billing_day_ms}`);
  }
}

// ---- The file ----

const usdString = (what: string, positive: boolean) =>
  z.string().transform((text, ctx) => {
    const parsed = parseUsd(text);
    if (!parsed.ok) {
      ctx.addIssue({ code: 'custom', message: `${what} ${parsed.reason}` });
      return z.NEVER;
    }
    if (positive && parsed.nanos <= 0n) {
      ctx.addIssue({ code: 'custom', message: `${what} must be greater than zero (null is no limit)` });
      return z.NEVER;
    }
    if (parsed.nanos > MAX_LIMIT_NANOS) {
      ctx.addIssue({ code: 'custom', message: `${what} must be at most 1000000000.00` });
      return z.NEVER;
    }
    return parsed.nanos;
  });

const rate = z
  .number()
  .int('must be a whole number')
  .min(1, 'must be at least 1 (null is no limit)')
  .max(MAX_RATE_PER_MINUTE, `must be at most ${MAX_RATE_PER_MINUTE}`)
  .nullable()
  .transform((v) => (v === null ? null : BigInt(v)));

const tierFile = z
  .object({
    id: z.string().regex(/^[a-z0-9_]{1,32}$/, 'must be 1-32 lowercase letters, digits or _'),
    name: z.string().min(1).max(100).optional(),
    note: z.string().max(2000).optional(),
    requires: z
      .object({
        lifetime_paid_usd: usdString('lifetime_paid_usd', false),
        days_since_first_payment: z.number().int().min(0).max(MAX_DAYS),
      })
      .strict(),
    limits: z
      .object({
        rpm: rate,
        tpm: rate,
        monthly_usage_limit_usd: usdString('monthly_usage_limit_usd', true).nullable(),
      })
      .strict(),
    models: z
      .record(z.string().min(1).max(100), z.object({ rpm: rate.optional(), tpm: rate.optional() }).strict())
      .optional(),
  })
  .strict();

const tableFile = z
  .object({
    notes: z.string().max(4000).optional(),
    tiers: z.array(tierFile).min(1, 'must list at least one tier').max(50),
  })
  .strict()
  .superRefine((table, ctx) => {
    const seen = new Set<string>();
    table.tiers.forEach((tier, i) => {
      if (seen.has(tier.id))
        ctx.addIssue({ code: 'custom', path: ['tiers', i, 'id'], message: 'is repeated' });
      seen.add(tier.id);
    });
    const first = table.tiers[0];
    if (first && (first.requires.lifetime_paid_usd !== 0n || first.requires.days_since_first_payment !== 0)) {
      // Every customer must qualify for some tier: the first one is where a new customer starts.
      ctx.addIssue({
        code: 'custom',
        path: ['tiers', 0, 'requires'],
        message:
          'the first tier is where every customer starts, so it must require nothing ("0" paid, 0 days)',
      });
    }
    for (let i = 1; i < table.tiers.length; i += 1) {
      const before = table.tiers[i - 1]!.requires;
      const now = table.tiers[i]!.requires;
      // Ordered requirements make "the highest tier whose rules are met" the same as "every lower tier is met too",
      // so promotion is monotone in money and in time, and a timer for the next tier is one instant.
      const notLower =
        now.lifetime_paid_usd >= before.lifetime_paid_usd &&
        now.days_since_first_payment >= before.days_since_first_payment;
      const higher =
        now.lifetime_paid_usd > before.lifetime_paid_usd ||
        now.days_since_first_payment > before.days_since_first_payment;
      if (!notLower || !higher) {
        ctx.addIssue({
          code: 'custom',
          path: ['tiers', i, 'requires'],
          message: 'must require at least what the tier before it requires, and more of something',
        });
      }
    }
  });

export class TierTableError extends Error {}

/**
 * Validates a tier file (parsed JSON) into a table; throws TierTableError naming every fault by its path
 * (`tiers.2.limits.rpm: must be at least 1`), which is what stops startup on a bad `TIERS_PATH`.
 */
export function parseTierTable(json: unknown): TierTable {
  const parsed = tableFile.safeParse(json);
  if (!parsed.success) {
    const lines = parsed.error.issues.map(
      (issue) => `  ${issue.path.join('.') || '(file)'}: ${issue.message}`,
    );
    throw new TierTableError(`invalid tier table:\n${lines.join('\n')}`);
  }
  return {
    notes: parsed.data.notes ?? null,
    tiers: parsed.data.tiers.map((t, index) => ({
      id: t.id,
      name: t.name ?? t.id,
      index,
      requires: {
        lifetime_paid_nanos: t.requires.lifetime_paid_usd,
        days_since_first_payment: t.requires.days_since_first_payment,
      },
      limits: {
        rpm: t.limits.rpm,
        tpm: t.limits.tpm,
        monthly_usage_limit_nanos: t.limits.monthly_usage_limit_usd,
      },
      model_limits: Object.fromEntries(
        Object.entries(t.models ?? {}).map(([model, l]) => [
          model,
          { rpm: l.rpm ?? null, tpm: l.tpm ?? null },
        ]),
      ),
    })),
  };
}

/** The bundled table: OpenAI's usage tiers (billing/tiers/openai.json). */
export function loadDefaultTierTable(): TierTable {
  return parseTierTable(openAiTiersJson);
}

// ---- The rules ----

/** The tier with this id, or undefined (a stored tier that a replaced table no longer has). */
export function findTier(table: TierTable, id: string | null): Tier | undefined {
  return id === null ? undefined : table.tiers.find((t) => t.id === id);
}

/** The first tier: where every new customer starts. */
export function firstTier(table: TierTable): Tier {
  return table.tiers[0]!;
}

/** The instant a tier's age rule is met (ms), or null when it can never be met yet (no payment so far). */
export function ageRuleMetAt(tier: Tier, facts: PaymentFacts, billing_day_ms: number): number | null {
  assertBillingDay(billing_day_ms);
  if (tier.requires.days_since_first_payment === 0) return Number.NEGATIVE_INFINITY;
  if (facts.first_payment_at_ms === null) return null;
  return facts.first_payment_at_ms + tier.requires.days_since_first_payment * billing_day_ms;
}

/** Whether the facts meet a tier's rules at `now_ms`: lifetime paid at least its amount and its age rule met. */
export function qualifies(tier: Tier, facts: PaymentFacts, now_ms: number, billing_day_ms: number): boolean {
  if (facts.lifetime_paid_nanos < tier.requires.lifetime_paid_nanos) return false;
  const met_at = ageRuleMetAt(tier, facts, billing_day_ms);
  return met_at !== null && now_ms >= met_at;
}

/**
 * The tier the facts earn at `now_ms` (lifetime paid, first payment time): the highest one whose rules are met.
 * The first tier requires nothing, so there always is one. This alone may be lower than a customer's tier (after a
 * refund): use `promotion` to decide a change.
 */
export function tierFor(table: TierTable, facts: PaymentFacts, now_ms: number, billing_day_ms: number): Tier {
  let earned = firstTier(table);
  for (const tier of table.tiers) if (qualifies(tier, facts, now_ms, billing_day_ms)) earned = tier;
  return earned;
}

export interface Promotion {
  /** The customer's tier after the review. */
  tier: Tier;
  /** The tier before (null: none stored yet, or one the table no longer has). */
  previous_id: string | null;
  /** True when the tier changed. */
  changed: boolean;
}

/**
 * Reviews a customer's tier: the higher of its current tier and the one the facts earn. Tiers never demote
 * automatically (a refund lowers lifetime paid, not the tier; an operator lowers limits with overrides instead).
 * A current id the table does not have (TIERS_PATH replaced) is replaced by the earned tier.
 */
export function promotion(
  table: TierTable,
  current_id: string | null,
  facts: PaymentFacts,
  now_ms: number,
  billing_day_ms: number,
): Promotion {
  const current = findTier(table, current_id);
  const earned = tierFor(table, facts, now_ms, billing_day_ms);
  const tier = current && current.index >= earned.index ? current : earned;
  return { tier, previous_id: current?.id ?? null, changed: tier.id !== current_id };
}

/**
 * The next instant (ms) at which time alone would promote a customer in `current_id`: the soonest age rule, among
 * higher tiers whose lifetime-paid rule is already met, that is still in the future at `now_ms`. Null when no
 * higher tier waits on time only (it needs more money, or there is no higher tier). The account workflow sleeps
 * until this instant on a durable timer, and a payment recomputes it.
 */
export function nextAgeRuleAt(
  table: TierTable,
  current_id: string | null,
  facts: PaymentFacts,
  now_ms: number,
  billing_day_ms: number,
): number | null {
  const current = findTier(table, current_id);
  let soonest: number | null = null;
  for (const tier of table.tiers) {
    if (current && tier.index <= current.index) continue;
    if (facts.lifetime_paid_nanos < tier.requires.lifetime_paid_nanos) continue;
    const met_at = ageRuleMetAt(tier, facts, billing_day_ms);
    if (met_at === null || met_at <= now_ms) continue;
    if (soonest === null || met_at < soonest) soonest = met_at;
  }
  return soonest;
}

export interface NextTier {
  tier: Tier;
  /** How much more must be paid (0 when the money rule is met). */
  lifetime_paid_missing_nanos: bigint;
  /** When the age rule is (or was) met; null while no payment has been made; -Infinity when it has none. */
  age_rule_met_at_ms: number | null;
}

/** The tier above `current_id` and what it still needs; null at the top. An unknown current id is the first tier. */
export function nextTier(
  table: TierTable,
  current_id: string | null,
  facts: PaymentFacts,
  billing_day_ms: number,
): NextTier | null {
  const current = findTier(table, current_id) ?? firstTier(table);
  const next = table.tiers[current.index + 1];
  if (!next) return null;
  return {
    tier: next,
    lifetime_paid_missing_nanos: maxBigint(0n, next.requires.lifetime_paid_nanos - facts.lifetime_paid_nanos),
    age_rule_met_at_ms: ageRuleMetAt(next, facts, billing_day_ms),
  };
}

/** Limits as USD strings and numbers for payloads and the API (null: no limit). */
export function limitsView(limits: TierLimits): {
  rpm: number | null;
  tpm: number | null;
  monthly_usage_limit_usd: string | null;
} {
  return {
    rpm: limits.rpm === null ? null : Number(limits.rpm),
    tpm: limits.tpm === null ? null : Number(limits.tpm),
    monthly_usage_limit_usd: formatUsdOrNull(limits.monthly_usage_limit_nanos),
  };
}
