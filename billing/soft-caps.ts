/**
 * Soft caps: a plan's allowances keep a customer working on a smaller model past its limit instead of refusing it.
 * This module is the pure rule book of `POST /v1/customers/:id/route`: which allowances apply to a customer (its
 * plan's while its subscription is `active`, the Free plan's otherwise), which allowance a model counts against,
 * the chain of downgrades a request may walk, each allowance's counter key and current window, and the answer once
 * the database has counted the request. Nothing here reads a clock, a file or a database: `db/soft-caps.ts` runs
 * the chain in one SQL statement and hands the outcome back to `routeAnswer`.
 *
 * The rules, in one place:
 * - A request for model M counts against the first allowance of the plan whose `models` include M. No allowance
 *   covers M: M is served unlimited, counted nowhere.
 * - Under the allowance's limit, M is served and counted. At or over it, the allowance's `downgrade_to` is tried the
 *   same way, and so on down the chain; the request is counted against the allowance of the model it is served as.
 * - The chain ends at a model no allowance covers, served unlimited: a validated catalog refuses downgrades that
 *   loop (billing/plans.ts). A catalog built in code is not validated, so the walk still stops at an allowance
 *   already in the chain; when every allowance of such a chain is exhausted, the request is served as the chain's
 *   last model, counted nowhere, with reason `all_allowances_exhausted`: a soft cap never refuses.
 * - Windows: a fixed duration (`PT5H`, `P1D`; the catalog refuses years and months) is aligned to the Unix epoch in
 *   UTC: `P1D` is the UTC day, `PT1H` the UTC hour; a length that does not divide a day (`PT5H`) starts at other
 *   hours each day. `period` is the subscription's current period, so a renewal (a new period start) starts a fresh
 *   count with no job; without a live subscription it is the UTC calendar month.
 */
import { startOfNextUtcMonth, startOfUtcMonth } from './durations';
import { allowanceWindow_ms, FREE_PLAN_ID, type Allowance, type Plan, type PlanCatalog } from './plans';

export type RouteReason = 'allowance_exhausted' | 'all_allowances_exhausted';

/** A window of an allowance: counts in it share one counter row; `[start, end)`. */
export interface AllowanceWindow {
  start: Date;
  end: Date;
}

/** The subscription facts that decide which allowances apply and what `period` means. */
export interface SubscriptionFacts {
  plan: string;
  status: 'active' | 'past_due' | 'canceled';
  current_period_start: Date;
  current_period_end: Date;
}

/**
 * The plan whose allowances apply: the live subscription's plan while it is `active`; the Free plan's while it is
 * `past_due` (dunning), when there is none (or it is canceled), or when its plan is no longer in the catalog.
 * Undefined only when the catalog has no Free plan either (then nothing is capped).
 */
export function effectivePlan(
  catalog: PlanCatalog,
  subscription: Pick<SubscriptionFacts, 'plan' | 'status'> | null,
): Plan | undefined {
  if (subscription?.status === 'active') {
    const plan = catalog.find(subscription.plan);
    if (plan) return plan;
  }
  return catalog.find(FREE_PLAN_ID);
}

/**
 * The period a `period` window covers: the live subscription's current period (active or past due), else the UTC
 * calendar month of `at`.
 */
export function periodWindow(
  subscription: Pick<SubscriptionFacts, 'current_period_start' | 'current_period_end' | 'status'> | null,
  at: Date,
): AllowanceWindow {
  if (subscription && subscription.status !== 'canceled') {
    return { start: subscription.current_period_start, end: subscription.current_period_end };
  }
  return calendarMonth(at);
}

/** The UTC calendar month holding `at`. */
export function calendarMonth(at: Date): AllowanceWindow {
  return { start: startOfUtcMonth(at), end: startOfNextUtcMonth(at) };
}

/**
 * The window of a fixed-duration allowance that holds `at`, aligned to the epoch: start = floor(at / length) *
 * length; null for a `period` allowance (the caller knows the period). Throws on a window the catalog would refuse.
 */
export function fixedWindow(allowance: Allowance, at: Date): AllowanceWindow | null {
  const length_ms = allowanceWindow_ms(allowance);
  if (length_ms === null) return null;
  if (!(length_ms > 0)) throw new Error(`allowance window ${allowance.window} has no length`);
  const start_ms = Math.floor(at.getTime() / length_ms) * length_ms;
  return { start: new Date(start_ms), end: new Date(start_ms + length_ms) };
}

/** The counter row an allowance counts in: the plan and the allowance's position in it. */
export function counterKey(plan_id: string, allowance_index: number): string {
  return `${plan_id}:${allowance_index}`;
}

/** One counted step of a chain: serve `model` if its allowance has room, and count it there. */
export interface RouteStep {
  model: string;
  allowance_index: number;
  allowance: Allowance;
  counter_key: string;
  /** The allowance's current window, or null for `period` (resolved against the subscription in the statement). */
  window: AllowanceWindow | null;
}

/**
 * What a request for one model may walk on one plan: the counted steps in order, then what is served when none of
 * them has room. `fallback.unlimited` means the chain ended at a model no allowance covers (served, counted
 * nowhere, not an exhaustion); otherwise every allowance of the chain was exhausted.
 */
export interface RouteChain {
  plan_id: string;
  requested_model: string;
  steps: readonly RouteStep[];
  fallback: { model: string; unlimited: boolean };
}

/** The first allowance of the plan that counts `model`, with its index; undefined when none does. */
export function allowanceFor(plan: Plan, model: string): { allowance: Allowance; index: number } | undefined {
  const index = plan.allowances.findIndex((a) => a.models.includes(model));
  return index < 0 ? undefined : { allowance: plan.allowances[index]!, index };
}

/**
 * The chain of a request for `model` on `plan` at `at`. Each allowance appears at most once (a `downgrade_to` that
 * leads back into the chain ends it), so a chain has at most as many steps as the plan has allowances.
 */
export function routeChain(plan: Plan, model: string, at: Date): RouteChain {
  const steps: RouteStep[] = [];
  const visited = new Set<number>();
  let current = model;
  for (;;) {
    const found = allowanceFor(plan, current);
    if (!found)
      return {
        plan_id: plan.id,
        requested_model: model,
        steps,
        fallback: { model: current, unlimited: true },
      };
    if (visited.has(found.index)) {
      // A cycle: serve the last model reached rather than climb back up to a larger one (A -> B -> A serves B).
      const last = steps[steps.length - 1]!.model;
      return { plan_id: plan.id, requested_model: model, steps, fallback: { model: last, unlimited: false } };
    }
    visited.add(found.index);
    steps.push({
      model: current,
      allowance_index: found.index,
      allowance: found.allowance,
      counter_key: counterKey(plan.id, found.index),
      window: fixedWindow(found.allowance, at),
    });
    current = found.allowance.downgrade_to;
  }
}

/**
 * The chains of a request for `model` on every plan of the catalog, for the one statement that reads the
 * customer's subscription and walks its plan's chain (which plan applies is only known inside it).
 */
export function routeChains(catalog: PlanCatalog, model: string, at: Date): RouteChain[] {
  return catalog.plans.map((plan) => routeChain(plan, model, at));
}

/** What the statement counted: the 1-based step of the chain and the counter's value after counting, or nothing. */
export type Counted = { step: number; used: number } | null;

export interface RouteAnswer {
  /** The model this request may use. */
  model: string;
  requested_model: string;
  downgraded: boolean;
  reason: RouteReason | null;
  /** What is left of the allowance the request was counted against (or, all exhausted, 0); null when unlimited. */
  remaining: number | null;
  /** When that allowance's window resets; null when unlimited. */
  resets_at: Date | null;
  /** The plan whose allowances applied (`free` while past due). */
  plan: string;
}

/**
 * The answer for a chain, given what the statement counted and the customer's `period` window. A counted step is
 * served; nothing counted means the chain's fallback: an unlimited model, or every allowance exhausted.
 */
export function routeAnswer(chain: RouteChain, counted: Counted, period: AllowanceWindow): RouteAnswer {
  const answer = (
    model: string,
    reason: RouteReason | null,
    remaining: number | null,
    resets_at: Date | null,
  ) => ({
    model,
    requested_model: chain.requested_model,
    downgraded: model !== chain.requested_model,
    reason,
    remaining,
    resets_at,
    plan: chain.plan_id,
  });
  if (counted) {
    const step = chain.steps[counted.step - 1];
    if (!step)
      throw new Error(`the statement counted step ${counted.step} of a ${chain.steps.length}-step chain`);
    const limit = step.allowance.limit;
    if (counted.used < 1 || counted.used > limit) {
      throw new Error(`counter ${step.counter_key} at ${counted.used} after counting, limit ${limit}`);
    }
    const reason = counted.step === 1 ? null : 'allowance_exhausted';
    return answer(step.model, reason, limit - counted.used, (step.window ?? period).end);
  }
  const last = chain.steps[chain.steps.length - 1];
  if (!last) return answer(chain.fallback.model, null, null, null);
  if (chain.fallback.unlimited) return answer(chain.fallback.model, 'allowance_exhausted', null, null);
  return answer(chain.fallback.model, 'all_allowances_exhausted', 0, (last.window ?? period).end);
}

/** One allowance of a plan with its count in the current window (`GET .../subscription`'s `usage_this_period`). */
export interface AllowanceUsage {
  models: readonly string[];
  limit: number;
  used: number;
  remaining: number;
  window: string;
  downgrade_to: string;
  window_start: Date;
  resets_at: Date;
}

/** Each allowance of `plan` with the counter key and window its count lives in at `at`. */
export function allowanceWindows(
  plan: Plan,
  at: Date,
  period: AllowanceWindow,
): { allowance: Allowance; counter_key: string; window: AllowanceWindow }[] {
  return plan.allowances.map((allowance, index) => ({
    allowance,
    counter_key: counterKey(plan.id, index),
    window: fixedWindow(allowance, at) ?? period,
  }));
}
