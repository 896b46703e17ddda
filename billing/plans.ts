/**
 * The subscription plan catalog: flat-rate and per-seat plans, their price per period, how they are collected (a
 * card charge, or an invoice on net terms) and their allowances (soft caps: past an allowance a request is served
 * by a smaller model instead of being refused). This module is the pure rule book: the catalog (a validated file,
 * `billing/plans/default.json` unless `PLANS_PATH` replaces it) and the price of one period. Nothing here reads a
 * clock, a file or a database; wiring/runtime.ts reads `PLANS_PATH`.
 */
import { z } from 'zod';
import { fixedDurationMs, isFixedLength, parseIsoDuration } from './durations';
import { formatUsd, isWholeCents, parseUsd } from './money';
import defaultPlansJson from './plans/default.json';

export interface Allowance {
  /** The models this allowance counts (a model is in at most one allowance of a plan). */
  models: readonly string[];
  /** Requests per window, a whole number from 0 (0: always served by `downgrade_to`). */
  limit: number;
  /** An ISO-8601 fixed duration like 'PT5H', 'P1D' (a rolling or fixed window, as soft caps decide), or 'period'. */
  window: string;
  /** The model served past the allowance. */
  downgrade_to: string;
}

export interface Plan {
  id: string;
  name: string;
  /** Price of one period for one seat (per_seat) or the whole plan; null when set per customer (enterprise). Whole cents. */
  price_nanos: bigint | null;
  interval: 'month' | 'year';
  per_seat: boolean;
  /** 'charge': the card is charged at each period start; 'net_terms': an invoice is sent, due `net_days` after the period. */
  collection: 'charge' | 'net_terms';
  /** Days (`BILLING_DAY`s) until a net-terms invoice is due; 0 for card-charged plans. */
  net_days: number;
  allowances: readonly Allowance[];
}

export interface PlanCatalog {
  readonly plans: readonly Plan[];
  find(id: string): Plan | undefined;
}

/** Every account without a subscription (or after cancellation, or while past due for soft caps) is on this plan. */
export const FREE_PLAN_ID = 'free';

/** The window of an allowance that resets with the billing period instead of after a fixed length. */
export const PERIOD_WINDOW = 'period';

/** One seat's price, or a plan's, goes up to $1,000,000 per period: far from the ledger's int8 range even x seats. */
export const MAX_PLAN_PRICE_NANOS = 1_000_000n * 1_000_000_000n;
/** Requests per allowance window go up to 10^9. */
export const MAX_ALLOWANCE_LIMIT = 1_000_000_000;
/** Net terms go up to a year of billing days. */
export const MAX_NET_DAYS = 365;

// ---- The file ----

const modelName = z.string().min(1, 'must not be empty').max(100, 'must be at most 100 characters');

const windowText = z.string().superRefine((text, ctx) => {
  if (text === PERIOD_WINDOW) return;
  const duration = parseIsoDuration(text);
  if (!duration || !isFixedLength(duration) || fixedDurationMs(duration) <= 0) {
    ctx.addIssue({
      code: 'custom',
      message: `must be "${PERIOD_WINDOW}" or an ISO-8601 duration without years or months, longer than zero (e.g. "PT5H", "P1D")`,
    });
  }
});

const allowanceFile = z
  .object({
    models: z.array(modelName).min(1, 'must list at least one model').max(50),
    limit: z.number().int('must be a whole number').min(0).max(MAX_ALLOWANCE_LIMIT),
    window: windowText,
    downgrade_to: modelName,
  })
  .strict();

const priceUsd = z
  .string()
  .transform((text, ctx) => {
    const parsed = parseUsd(text);
    if (!parsed.ok) {
      ctx.addIssue({ code: 'custom', message: `price_usd ${parsed.reason}` });
      return z.NEVER;
    }
    if (!isWholeCents(parsed.nanos)) {
      ctx.addIssue({ code: 'custom', message: 'price_usd must be whole cents (a card is charged in cents)' });
      return z.NEVER;
    }
    if (parsed.nanos > MAX_PLAN_PRICE_NANOS) {
      ctx.addIssue({ code: 'custom', message: 'price_usd must be at most 1000000.00' });
      return z.NEVER;
    }
    return parsed.nanos;
  })
  .nullable();

const planFile = z
  .object({
    id: z.string().regex(/^[a-z0-9_]{1,32}$/, 'must be 1-32 lowercase letters, digits or _'),
    name: z.string().min(1).max(100),
    note: z.string().max(2000).optional(),
    price_usd: priceUsd,
    interval: z.enum(['month', 'year']),
    per_seat: z.boolean(),
    collection: z.enum(['charge', 'net_terms']),
    net_days: z.number().int('must be a whole number').min(0).max(MAX_NET_DAYS).optional(),
    allowances: z.array(allowanceFile).max(50),
  })
  .strict()
  .superRefine((plan, ctx) => {
    if (plan.price_usd === null && !plan.per_seat) {
      // A per-customer price is a seat price agreed in a contract; a flat plan without a price cannot be billed.
      ctx.addIssue({
        code: 'custom',
        path: ['price_usd'],
        message: 'may be null (set per customer) only on a per_seat plan',
      });
    }
    if (plan.collection === 'net_terms' && !(plan.net_days !== undefined && plan.net_days > 0)) {
      ctx.addIssue({
        code: 'custom',
        path: ['net_days'],
        message: 'must be at least 1 when collection is net_terms',
      });
    }
    if (plan.collection === 'charge' && plan.net_days !== undefined && plan.net_days !== 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['net_days'],
        message: 'applies only to net_terms plans (a charged plan is paid at once)',
      });
    }
    checkAllowances(plan.allowances, ctx);
  });

/**
 * A model counts against one allowance of a plan only (otherwise "the allowance of the model" is ambiguous), an
 * allowance does not downgrade to a model it counts, and following `downgrade_to` from any model ends: a soft cap
 * that walks the chain always reaches a model served without a cap or with room left.
 */
function checkAllowances(allowances: readonly z.infer<typeof allowanceFile>[], ctx: z.RefinementCtx): void {
  const allowanceOf = new Map<string, number>();
  allowances.forEach((allowance, i) => {
    allowance.models.forEach((model, j) => {
      if (allowanceOf.has(model)) {
        ctx.addIssue({
          code: 'custom',
          path: ['allowances', i, 'models', j],
          message: `${model} is already counted by allowances.${allowanceOf.get(model)}`,
        });
      } else allowanceOf.set(model, i);
    });
  });
  allowances.forEach((allowance, i) => {
    const seen = new Set<number>([i]);
    let next = allowanceOf.get(allowance.downgrade_to);
    while (next !== undefined) {
      if (seen.has(next)) {
        ctx.addIssue({
          code: 'custom',
          path: ['allowances', i, 'downgrade_to'],
          message: `following downgrade_to from here comes back to allowances.${next}: the chain must end`,
        });
        return;
      }
      seen.add(next);
      next = allowanceOf.get(allowances[next]!.downgrade_to);
    }
  });
}

const catalogFile = z
  .object({
    notes: z.string().max(4000).optional(),
    plans: z.array(planFile).min(1, 'must list at least one plan').max(50),
  })
  .strict()
  .superRefine((catalog, ctx) => {
    const seen = new Set<string>();
    catalog.plans.forEach((plan, i) => {
      if (seen.has(plan.id))
        ctx.addIssue({ code: 'custom', path: ['plans', i, 'id'], message: 'is repeated' });
      seen.add(plan.id);
    });
    const free = catalog.plans.findIndex((plan) => plan.id === FREE_PLAN_ID);
    if (free === -1) {
      ctx.addIssue({
        code: 'custom',
        path: ['plans'],
        message: `must include the "${FREE_PLAN_ID}" plan: every account without a subscription is on it`,
      });
    } else {
      const plan = catalog.plans[free]!;
      if (plan.price_usd !== 0n || plan.per_seat || plan.collection !== 'charge') {
        ctx.addIssue({
          code: 'custom',
          path: ['plans', free],
          message: 'the free plan must cost "0", not be per_seat and have collection "charge"',
        });
      }
    }
  });

export class PlanCatalogError extends Error {}

/**
 * Validates a plan file (parsed JSON) into a catalog; throws PlanCatalogError naming every fault by its path
 * (`plans.2.allowances.0.window: must be "period" or ...`), which is what stops startup on a bad `PLANS_PATH`.
 */
export function parsePlanCatalog(json: unknown): PlanCatalog {
  const parsed = catalogFile.safeParse(json);
  if (!parsed.success) {
    const lines = parsed.error.issues.map(
      (issue) => `  ${issue.path.join('.') || '(file)'}: ${issue.message}`,
    );
    throw new PlanCatalogError(`invalid plan catalog:\n${lines.join('\n')}`);
  }
  const plans: readonly Plan[] = Object.freeze(
    parsed.data.plans.map((p) =>
      Object.freeze({
        id: p.id,
        name: p.name,
        price_nanos: p.price_usd,
        interval: p.interval,
        per_seat: p.per_seat,
        collection: p.collection,
        net_days: p.net_days ?? 0,
        allowances: Object.freeze(
          p.allowances.map((a) => Object.freeze({ ...a, models: Object.freeze([...a.models]) })),
        ),
      }),
    ),
  );
  const byId = new Map(plans.map((plan) => [plan.id, plan]));
  return { plans, find: (id) => byId.get(id) };
}

/** The bundled catalog (billing/plans/default.json). Reading `PLANS_PATH` is wiring's (wiring/runtime.ts). */
export function loadDefaultPlanCatalog(): PlanCatalog {
  return parsePlanCatalog(defaultPlansJson);
}

/**
 * The models a catalog names (counted or downgraded to) that `isKnown` does not know, each with its path in the
 * file (`plans.1.allowances.0.downgrade_to: gpt-9 ...`). Startup checks them against the price book.
 */
export function unknownPlanModels(catalog: PlanCatalog, isKnown: (model: string) => boolean): string[] {
  const faults: string[] = [];
  catalog.plans.forEach((plan, i) =>
    plan.allowances.forEach((allowance, j) => {
      allowance.models.forEach((model, k) => {
        if (!isKnown(model))
          faults.push(`plans.${i}.allowances.${j}.models.${k}: ${model} is not in the price book`);
      });
      if (!isKnown(allowance.downgrade_to)) {
        faults.push(
          `plans.${i}.allowances.${j}.downgrade_to: ${allowance.downgrade_to} is not in the price book`,
        );
      }
    }),
  );
  return faults;
}

// ---- The rules ----

/** An allowance window's fixed length in ms, or null for `period` (reset with the billing period). */
export function allowanceWindow_ms(allowance: Allowance): number | null {
  if (allowance.window === PERIOD_WINDOW) return null;
  const duration = parseIsoDuration(allowance.window);
  if (!duration) throw new Error(`not an allowance window: ${allowance.window}`);
  return fixedDurationMs(duration);
}

/**
 * The price of one period: price x seats for per-seat plans (seats a whole number from 1), the plan's price for a
 * flat plan (seats ignored). `seat_price_nanos` replaces a null catalog price (an enterprise contract's seat price)
 * and is ignored when the catalog has one. Throws when the plan has no price and none is given, or on bad seats.
 */
export function periodPrice_nanos(plan: Plan, seats: number, seat_price_nanos: bigint | null): bigint {
  const unit_nanos = plan.price_nanos ?? seat_price_nanos;
  if (unit_nanos === null)
    throw new Error(`plan ${plan.id} has no catalog price and no per-customer price was given`);
  if (unit_nanos < 0n || !isWholeCents(unit_nanos)) {
    throw new Error(`plan ${plan.id}: a seat price must be whole cents, not negative, got ${unit_nanos}`);
  }
  if (!plan.per_seat) return unit_nanos;
  if (!Number.isSafeInteger(seats) || seats < 1)
    throw new Error(`seats must be a whole number from 1, got ${seats}`);
  return unit_nanos * BigInt(seats);
}

export interface PlanView {
  id: string;
  name: string;
  /** USD of one period (per seat for per-seat plans); null when set per customer. */
  price_usd: string | null;
  interval: 'month' | 'year';
  per_seat: boolean;
  allowances: { models: string[]; limit: number; window: string; downgrade_to: string }[];
}

/** The JSON view for GET /v1/plans. */
export function planView(plan: Plan): PlanView {
  return {
    id: plan.id,
    name: plan.name,
    price_usd: plan.price_nanos === null ? null : formatUsd(plan.price_nanos),
    interval: plan.interval,
    per_seat: plan.per_seat,
    allowances: plan.allowances.map((a) => ({
      models: [...a.models],
      limit: a.limit,
      window: a.window,
      downgrade_to: a.downgrade_to,
    })),
  };
}
