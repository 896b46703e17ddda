import type { z } from 'zod';
import { priceAt, type PriceBook } from '../../billing/price-book';
import { FREE_PLAN_ID, type PlanCatalog } from '../../billing/plans';
import {
  type AllowanceUsage,
  effectivePlan,
  periodWindow,
  type RouteAnswer,
  routeChains,
} from '../../billing/soft-caps';
import type { Db } from '../../db/connection';
import type { HotPath } from '../../db/hot-path';
import { allowanceUsage, routeRequest } from '../../db/soft-caps';
import { getLiveSubscription } from '../../db/subscriptions';
import { invalid, notFound } from '../errors';
import type { RouteTable } from '../http';
import { type AllowanceUsage as AllowanceUsageSchema, RouteCreate, RouteDecision } from '../schemas';
import type { AllowanceUsageOf } from './subscriptions';

export interface SoftCapDeps {
  hotPath: HotPath;
  priceBook: PriceBook;
  plans: PlanCatalog;
}

/**
 * `POST /v1/customers/:id/route`: which model a request may use under the customer's plan allowances, counted
 * against the allowance of the model it is routed to (README "Soft caps"). Never refuses for being past an
 * allowance; an `Idempotency-Key` makes a retry answer the first decision and count once (the route table's
 * idempotency, as for every POST).
 */
export function softCapRoutes(routes: RouteTable, deps: SoftCapDeps): void {
  routes.add({
    method: 'post',
    path: '/v1/customers/:id/route',
    tag: 'Subscriptions',
    summary:
      "Soft caps: the model this request may use (the requested one within its allowance, else the allowance's downgrade) and counts it against that model's allowance.",
    body: RouteCreate,
    responses: { 200: { description: 'The routing decision', schema: RouteDecision } },
    handler: async ({ params, body }) => {
      const customer_id = params.id!;
      const at = new Date();
      const priced = priceAt(deps.priceBook, body.model, at);
      if (!priced.ok) throw invalid('model', priced.message, priced.code);
      const outcome = await routeRequest(deps.hotPath.pool, {
        customer_id,
        chains: routeChains(deps.plans, body.model, at),
        free_plan_id: FREE_PLAN_ID,
        at,
      });
      if (!outcome.ok) throw notFound('customer', customer_id);
      return { status: 200, body: routeView(customer_id, outcome.answer) };
    },
  });
}

function routeView(customer_id: string, answer: RouteAnswer): z.infer<typeof RouteDecision> {
  return {
    object: 'route',
    customer_id,
    model: answer.model,
    requested_model: answer.requested_model,
    downgraded: answer.downgraded,
    reason: answer.reason,
    remaining: answer.remaining,
    resets_at: answer.resets_at?.toISOString() ?? null,
    plan: answer.plan,
  };
}

/**
 * The `usage_this_period` of `GET /v1/customers/:id/subscription`: each allowance of the plan that applies now (the
 * live subscription's while active, Free while past due or without one) with its count in its current window.
 */
export function allowanceUsageOf(db: Db, plans: PlanCatalog): AllowanceUsageOf {
  return async (customer_id) => {
    const at = new Date();
    const subscription = await getLiveSubscription(db, customer_id);
    const plan = effectivePlan(plans, subscription);
    if (!plan) return [];
    return allowanceUsageView(
      await allowanceUsage(db, customer_id, plan, at, periodWindow(subscription, at)),
    );
  };
}

/** `allowanceUsage`'s rows as the API shows them. */
export function allowanceUsageView(usage: readonly AllowanceUsage[]): z.infer<typeof AllowanceUsageSchema>[] {
  return usage.map((u) => ({
    models: [...u.models],
    limit: u.limit,
    used: u.used,
    remaining: u.remaining,
    window: u.window,
    downgrade_to: u.downgrade_to,
    window_start: u.window_start.toISOString(),
    resets_at: u.resets_at.toISOString(),
  }));
}
