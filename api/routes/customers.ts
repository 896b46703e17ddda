import { DEFAULT_BILLING_DAY_MS } from '../../billing/account';
import type { PaymentGateway } from '../../payments/payment-gateway';
import { settingsOf } from '../../billing/auto-recharge';
import { startOfUtcMonth } from '../../billing/durations';
import { usd } from '../../billing/money';
import { autoRechargeSummaries, saveAutoRechargeSettings } from '../../db/auto-recharge';
import type { Db } from '../../db/connection';
import {
  createCustomer,
  type CustomerRow,
  getCustomer,
  listCustomers,
  savePaymentMethod,
} from '../../db/customers';
import { autoRechargeChangedSignal, paymentMethodChangedSignal } from '../../workflows/messages';
import { firstTier, type TierTable } from '../../billing/tiers';
import { readWalletLimits, setLimitOverrides, type Limits } from '../../db/limits';
import { readCustomerTier, readPaymentFacts } from '../../db/tiers';
import type { AccountWorkflows } from '../accounts';
import { invalid, notFound } from '../errors';
import type { RouteTable } from '../http';
import { derivedId } from '../idempotency';
import {
  AutoRecharge,
  autoRechargePut,
  Customer,
  CustomerCreate,
  CustomerTier,
  LimitsPut,
  listOf,
  ListQuery,
  PaymentMethodPut,
} from '../schemas';
import { autoRechargeView, customerTierView, customerView } from '../views';

import type { CreditLimits } from './credits';

export function customerRoutes(
  routes: RouteTable,
  deps: {
    db: Db;
    accounts: AccountWorkflows;
    gateway: PaymentGateway;
    limits: CreditLimits;
    tiers: TierTable;
    billing_day_ms?: number;
  },
): void {
  const start = firstTier(deps.tiers);
  const billing_day_ms = deps.billing_day_ms ?? DEFAULT_BILLING_DAY_MS;

  /** The tier view of a customer; undefined for an unknown one. */
  async function tierOf(customer_id: string) {
    const stored = await readCustomerTier(deps.db, customer_id);
    const wallet = await readWalletLimits(deps.db, customer_id);
    if (!stored || !wallet) return undefined;
    const paid = await readPaymentFacts(deps.db, customer_id);
    return customerTierView({ customer_id, table: deps.tiers, stored, paid, wallet, billing_day_ms });
  }

  /** Customers as the API shows them, with their auto-recharge settings (one statement for a whole page). */
  async function viewsOf(rows: CustomerRow[]) {
    const summaries = await autoRechargeSummaries(
      deps.db,
      rows.map((r) => r.id),
      startOfUtcMonth(new Date()),
    );
    return rows.map((row) => customerView(row, { auto_recharge: summaries.get(row.id) }));
  }

  routes.add({
    method: 'post',
    path: '/v1/customers',
    tag: 'Customers',
    summary: 'Create a customer and start its account workflow; an existing id returns the customer (200).',
    body: CustomerCreate,
    responses: {
      201: { description: 'Created', schema: Customer },
      200: { description: 'Exists', schema: Customer },
    },
    handler: async ({ body, principal, idempotencyKey }) => {
      const id = body.id ?? derivedId('cus', principal, idempotencyKey, 'customer');
      const { customer, created } = await createCustomer(deps.db, {
        id,
        email: body.email ?? null,
        name: body.name ?? null,
        metadata: body.metadata ?? {},
        // Every new customer starts on the first tier, its limits enforced from the first request.
        tier: { id: start.id, limits: start.limits },
      });
      // Also for an existing customer: a workflow that failed to start the first time starts now.
      await deps.accounts.ensureStarted(id);
      const [view] = await viewsOf([customer]);
      return { status: created ? 201 : 200, body: view! };
    },
  });

  routes.add({
    method: 'get',
    path: '/v1/customers',
    tag: 'Customers',
    summary: 'List customers by id.',
    query: ListQuery,
    responses: { 200: { description: 'A page of customers', schema: listOf(Customer) } },
    handler: async ({ query }) => {
      const page = await listCustomers(deps.db, {
        limit: query.limit ?? 20,
        starting_after: query.starting_after,
      });
      return { status: 200, body: { data: await viewsOf(page.data), has_more: page.has_more } };
    },
  });

  routes.add({
    method: 'get',
    path: '/v1/customers/:id',
    tag: 'Customers',
    summary: 'Retrieve a customer with its balance.',
    responses: { 200: { description: 'The customer', schema: Customer } },
    handler: async ({ params }) => {
      const customer = await getCustomer(deps.db, params.id!);
      if (!customer) throw notFound('customer', params.id!);
      const [view] = await viewsOf([customer]);
      return { status: 200, body: view! };
    },
  });

  routes.add({
    method: 'put',
    path: '/v1/customers/:id/payment-method',
    tag: 'Customers',
    summary:
      'Set the default payment method (Stripe test tokens such as pm_card_visa on the simulated gateway).',
    body: PaymentMethodPut,
    responses: { 200: { description: 'The customer', schema: Customer } },
    handler: async ({ params, body }) => {
      const id = params.id!;
      if (!deps.gateway.acceptsPaymentMethod(body.payment_method)) {
        throw invalid(
          'payment_method',
          `the ${deps.gateway.name} gateway cannot charge '${body.payment_method}'`,
          'payment_method_unknown',
        );
      }
      if (!(await getCustomer(deps.db, id))) throw notFound('customer', id);
      // PostgreSQL is the authority on the card (a top-up's charge step reads it there); the account workflow is
      // told so that its copy, shown to operators, follows. A PUT is idempotent: after a 503 the retry tells it again.
      await savePaymentMethod(deps.db, id, body.payment_method);
      await deps.accounts.signal(id, paymentMethodChangedSignal, body);
      const customer = await getCustomer(deps.db, id);
      const [view] = await viewsOf([customer!]);
      return { status: 200, body: view! };
    },
  });

  routes.add({
    method: 'put',
    path: '/v1/customers/:id/auto-recharge',
    tag: 'Customers',
    summary:
      'Set auto-recharge: when a debit takes the available balance below threshold_usd, charge the saved card once ' +
      'for that crossing (a fixed amount_usd, or the shortfall to target_balance_usd) and grant the credit, at ' +
      'most monthly_limit_usd per UTC month. A declined card switches it off (disabled_reason says why).',
    body: autoRechargePut(deps.limits),
    responses: { 200: { description: 'The settings as saved', schema: AutoRecharge } },
    handler: async ({ params, body }) => {
      const id = params.id!;
      const nanosOrNull = (text: string | null | undefined) => (text == null ? null : usd(text));
      // PostgreSQL is the authority (a recharge decides from the settings stored there, and the wallet's recharge
      // threshold is set in the same transaction); the account workflow is told so that its copy and the
      // BillingAutoRecharge search attribute follow. A PUT is idempotent: after a 503 the retry tells it again.
      const saved = await saveAutoRechargeSettings(deps.db, id, {
        enabled: body.enabled,
        threshold_nanos: usd(body.threshold_usd),
        amount_nanos: nanosOrNull(body.amount_usd),
        target_balance_nanos: nanosOrNull(body.target_balance_usd),
        monthly_limit_nanos: nanosOrNull(body.monthly_limit_usd),
      });
      if (!saved) throw notFound('customer', id);
      const summary = (await autoRechargeSummaries(deps.db, [id], startOfUtcMonth(new Date()))).get(id)!;
      await deps.accounts.signal(id, autoRechargeChangedSignal, settingsOf(summary.config));
      return { status: 200, body: autoRechargeView(summary) };
    },
  });

  routes.add({
    method: 'get',
    path: '/v1/customers/:id/auto-recharge',
    tag: 'Customers',
    summary: "The auto-recharge settings, this UTC month's recharges, and why it switched off if it did.",
    responses: { 200: { description: 'The settings', schema: AutoRecharge } },
    handler: async ({ params }) => {
      const id = params.id!;
      if (!(await getCustomer(deps.db, id))) throw notFound('customer', id);
      const summary = (await autoRechargeSummaries(deps.db, [id], startOfUtcMonth(new Date()))).get(id);
      if (!summary) throw notFound('auto_recharge', id);
      return { status: 200, body: autoRechargeView(summary) };
    },
  });

  routes.add({
    method: 'get',
    path: '/v1/customers/:id/tier',
    tag: 'Customers',
    summary:
      "The spend tier: lifetime paid, first payment time, the limits in effect (overrides, else the tier's) and what the next tier requires.",
    responses: { 200: { description: "The customer's tier", schema: CustomerTier } },
    handler: async ({ params }) => {
      const view = await tierOf(params.id!);
      if (!view) throw notFound('customer', params.id!);
      return { status: 200, body: view };
    },
  });

  routes.add({
    method: 'put',
    path: '/v1/customers/:id/limits',
    tag: 'Customers',
    summary:
      "Operator overrides of the tier's limits (enterprise contracts): a value replaces the tier's, null goes back to it, an absent field is unchanged.",
    body: LimitsPut,
    responses: {
      200: { description: "The customer's tier with the limits now in effect", schema: CustomerTier },
    },
    handler: async ({ params, body }) => {
      const overrides: Partial<Limits> = {};
      if (body.rpm !== undefined) overrides.rpm = body.rpm === null ? null : BigInt(body.rpm);
      if (body.tpm !== undefined) overrides.tpm = body.tpm === null ? null : BigInt(body.tpm);
      if (body.monthly_usage_limit_usd !== undefined) {
        const limit = body.monthly_usage_limit_usd;
        overrides.monthly_usage_limit_nanos = limit === null ? null : usd(limit);
      }
      if (!(await setLimitOverrides(deps.db, params.id!, overrides))) throw notFound('customer', params.id!);
      const view = await tierOf(params.id!);
      if (!view) throw notFound('customer', params.id!);
      return { status: 200, body: view };
    },
  });
}
