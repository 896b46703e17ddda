import { startOfNextUtcMonth, startOfUtcMonth } from '../../billing/durations';
import { formatUsd, usd } from '../../billing/money';
import type { Db } from '../../db/connection';
import { readWalletLimits, setBudget } from '../../db/limits';
import { budgetChangedSignal } from '../../workflows/messages';
import type { AccountWorkflows } from '../accounts';
import { notFound } from '../errors';
import type { RouteTable } from '../http';
import { Budget, BudgetPut } from '../schemas';
import { budgetView } from '../views';

/**
 * The customer's monthly budget: an alert (`budget.alert`, once per month) and a hard limit that the authorization
 * statement enforces with open holds counted (402 `budget_limit_reached` until the UTC month rolls over or the limit
 * is raised). Both cap this UTC month's spend (captures and usage), which the wallet row keeps.
 */
export function budgetRoutes(routes: RouteTable, deps: { db: Db; accounts: AccountWorkflows }): void {
  routes.add({
    method: 'get',
    path: '/v1/customers/:id/budget',
    tag: 'Customers',
    summary: "The monthly budget and this UTC month's spend.",
    responses: { 200: { description: 'The budget', schema: Budget } },
    handler: async ({ params }) => ({ status: 200, body: await budgetOf(deps.db, params.id!) }),
  });

  routes.add({
    method: 'put',
    path: '/v1/customers/:id/budget',
    tag: 'Customers',
    summary:
      'Sets the monthly budget alert and limit (null clears one, an absent field keeps it). Raising either above this month’s spend lets it fire again.',
    body: BudgetPut,
    responses: { 200: { description: 'The budget', schema: Budget } },
    handler: async ({ params, body }) => {
      // BudgetAmount has validated the strings, so usd() cannot throw here.
      const nanosOf = (v: string | null | undefined) =>
        v === undefined ? undefined : v === null ? null : usd(v);
      const saved = await setBudget(deps.db, params.id!, {
        monthly_alert_nanos: nanosOf(body.monthly_alert_usd),
        monthly_limit_nanos: nanosOf(body.monthly_limit_usd),
      });
      if (!saved) throw notFound('customer', params.id!);
      const budget = await budgetOf(deps.db, params.id!);
      // The account's copy, for operators (its state query); the hot path reads the wallet row, saved above.
      await deps.accounts.signal(params.id!, budgetChangedSignal, {
        monthly_alert_usd: budget.monthly_alert_usd,
        monthly_limit_usd: budget.monthly_limit_usd,
      });
      return { status: 200, body: budget };
    },
  });
}

async function budgetOf(db: Db, customer_id: string) {
  const limits = await readWalletLimits(db, customer_id);
  if (!limits) throw notFound('customer', customer_id);
  const now = new Date();
  return {
    object: 'budget' as const,
    customer_id,
    ...budgetView({
      budget_alert_nanos: limits.budget.monthly_alert_nanos,
      budget_limit_nanos: limits.budget.monthly_limit_nanos,
      spent_this_month_nanos: limits.spent_this_month_nanos,
    }),
    held_usd: formatUsd(limits.held_nanos),
    month: startOfUtcMonth(now).toISOString().slice(0, 7),
    resets_at: startOfNextUtcMonth(now).toISOString(),
  };
}
