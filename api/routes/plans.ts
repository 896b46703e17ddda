import { type PlanCatalog, planView } from '../../billing/plans';
import type { RouteTable } from '../http';
import { PlanList } from '../schemas';

/**
 * The subscription plan catalog (`PLANS_PATH`, else the bundled one) as loaded at startup: prices per period and
 * the allowances (soft caps) of each plan. Read-only; the catalog is at most 50 plans, so it is one page.
 */
export function planRoutes(routes: RouteTable, deps: { plans: PlanCatalog }): void {
  // The catalog does not change while the process runs, so the answer is built once.
  const body = { data: deps.plans.plans.map(planView), has_more: false };
  routes.add({
    method: 'get',
    path: '/v1/plans',
    tag: 'Plans',
    summary:
      'The subscription plans: price per period (per seat for per-seat plans, null when set per customer), interval and the allowances past which requests are served by a smaller model.',
    responses: { 200: { description: 'Every plan, in catalog order', schema: PlanList } },
    handler: async () => ({ status: 200, body }),
  });
}
