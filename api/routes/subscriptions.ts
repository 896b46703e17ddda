import { formatUsd } from '../../billing/money';
import type { PlanCatalog } from '../../billing/plans';
import { checkChangeRequest, subscriptionView } from '../../billing/subscriptions';
import type { Db } from '../../db/connection';
import { getCustomer } from '../../db/customers';
import {
  cancelSubscription,
  getCurrentSubscription,
  getInvoice,
  getSubscriptionChange,
  invoiceLines,
  listInvoices,
  payInvoiceExternally,
  recordSubscriptionChange,
  type InvoiceLineRow,
  type InvoiceRow,
  type SubscriptionChangeRow,
} from '../../db/subscriptions';
import { subscriptionChangedSignal, subscriptionChangeRequestedSignal } from '../../workflows/messages';
import type { AccountWorkflows } from '../accounts';
import { ApiError, invalid, notFound } from '../errors';
import type { RouteTable } from '../http';
import { derivedId } from '../idempotency';
import {
  Invoice,
  listOf,
  ListQuery,
  Subscription,
  SubscriptionDeleteQuery,
  SubscriptionPending,
  SubscriptionPut,
} from '../schemas';

/** Refusals that name a field of the request (400); every other refusal of a change is a state conflict (409). */
const FIELD_REFUSALS: Record<string, 'plan' | 'seats'> = {
  unknown_plan: 'plan',
  seats_not_allowed: 'seats',
  invalid_seats: 'seats',
};
/** Refusals of the account's state, not of a card. */
const STATE_REFUSALS = new Set(['subscription_canceled', 'subscription_past_due', 'seat_price_required']);

/** Per-window usage of the plan's allowances (soft caps), shown with the subscription. */
export type AllowanceUsageOf = (customer_id: string) => Promise<unknown[]>;

/**
 * Subscriptions (README "Subscriptions"): a change is recorded in PostgreSQL, run by the account workflow in turn
 * (its charge keyed by the change), and answered from the database like top-ups. Cancellation is a change of the
 * subscription row alone (no money moves), so the API makes it and tells the account.
 */
export function subscriptionRoutes(
  routes: RouteTable,
  deps: { db: Db; accounts: AccountWorkflows; plans: PlanCatalog; allowanceUsage?: AllowanceUsageOf },
): void {
  async function view(customer_id: string) {
    const sub = await getCurrentSubscription(deps.db, customer_id);
    const usage = deps.allowanceUsage ? await deps.allowanceUsage(customer_id) : [];
    return {
      object: 'subscription' as const,
      customer_id,
      ...subscriptionView(sub, new Date()),
      usage_this_period: usage,
    };
  }

  async function requireCustomer(id: string): Promise<void> {
    if (!(await getCustomer(deps.db, id))) throw notFound('customer', id);
  }

  routes.add({
    method: 'get',
    path: '/v1/customers/:id/subscription',
    tag: 'Subscriptions',
    summary:
      'The subscription (Free when none), its period, a change waiting for the period end, and soft-cap usage.',
    responses: { 200: { description: 'The subscription', schema: Subscription } },
    handler: async ({ params }) => {
      await requireCustomer(params.id!);
      return { status: 200, body: await view(params.id!) };
    },
  });

  routes.add({
    method: 'put',
    path: '/v1/customers/:id/subscription',
    tag: 'Subscriptions',
    summary:
      'Starts a subscription (the first period charged at once; a decline is 402 and starts nothing) or changes it: ' +
      'an upgrade or more seats apply now with a prorated charge on its own invoice; a downgrade or fewer seats ' +
      'wait for the period end. A change still running after the wait timeout is 202.',
    body: SubscriptionPut,
    responses: {
      200: { description: 'The subscription after the change', schema: Subscription },
      202: { description: 'Accepted and still running', schema: SubscriptionPending },
    },
    handler: async ({ params, body, principal, idempotencyKey }) => {
      const request = { plan: body.plan, seats: body.seats ?? null };
      // The catalog's own refusals need no account: nothing is recorded or charged for them.
      const refused = checkChangeRequest(deps.plans, request);
      if (refused) throw invalid(refused.param ?? undefined, refused.message, refused.code);
      await requireCustomer(params.id!);
      const change_id = derivedId('sc', principal, idempotencyKey, `subscription:${params.id!}`);
      const recorded = await recordSubscriptionChange(deps.db, {
        id: change_id,
        customer_id: params.id!,
        ...request,
      });
      if (
        recorded.customer_id !== params.id! ||
        recorded.plan !== request.plan ||
        recorded.seats !== request.seats
      ) {
        throw new ApiError(
          'idempotency_conflict',
          'this Idempotency-Key was used for another subscription change',
        );
      }
      if (recorded.status === 'pending') {
        await deps.accounts.submit(
          'subscription',
          params.id!,
          subscriptionChangeRequestedSignal,
          { change_id },
          change_id,
        );
      }
      const change = (await getSubscriptionChange(deps.db, change_id))!;
      if (change.status === 'pending') {
        return { status: 202, body: { object: 'subscription_change', id: change_id, status: 'pending' } };
      }
      if (change.status === 'refused') throw refusalOf(change);
      return { status: 200, body: await view(params.id!) };
    },
  });

  routes.add({
    method: 'delete',
    path: '/v1/customers/:id/subscription',
    tag: 'Subscriptions',
    summary:
      'Cancels at the period end (the plan stays until then), or now with `?at_period_end=false` (no refund). ' +
      'The account is on Free after. Cancelling again changes nothing.',
    query: SubscriptionDeleteQuery,
    responses: { 200: { description: 'The subscription', schema: Subscription } },
    handler: async ({ params, query }) => {
      await requireCustomer(params.id!);
      const outcome = await cancelSubscription(deps.db, params.id!, {
        at_period_end: query.at_period_end !== 'false',
        now: new Date(),
      });
      if (outcome === 'none') {
        throw new ApiError('not_found', 'the customer has no subscription to cancel', {
          code: 'no_subscription',
        });
      }
      // The account re-reads it: its renewal timer and search attributes follow.
      await deps.accounts.signal(params.id!, subscriptionChangedSignal, { reason: `canceled_${outcome}` });
      return { status: 200, body: await view(params.id!) };
    },
  });

  routes.add({
    method: 'get',
    path: '/v1/customers/:id/invoices',
    tag: 'Subscriptions',
    summary: "The customer's invoices, newest first, with their lines (which sum to the total).",
    query: ListQuery,
    responses: { 200: { description: 'A page of invoices', schema: listOf(Invoice) } },
    handler: async ({ params, query }) => {
      await requireCustomer(params.id!);
      const limit = query.limit ?? 20;
      // As the other lists: a cursor that is not one of this customer's invoices is a mistake, not an empty page.
      if (query.starting_after !== undefined) {
        const cursor = await getInvoice(deps.db, query.starting_after);
        if (cursor?.customer_id !== params.id!) {
          throw invalid('starting_after', "starting_after must be the id of one of this customer's invoices");
        }
      }
      const rows = await listInvoices(deps.db, params.id!, {
        limit: limit + 1,
        ...(query.starting_after === undefined ? {} : { starting_after: query.starting_after }),
      });
      const page = rows.slice(0, limit);
      const lines = await invoiceLines(
        deps.db,
        page.map((r) => r.id),
      );
      return {
        status: 200,
        body: { data: page.map((row) => invoiceView(row, lines)), has_more: rows.length > limit },
      };
    },
  });

  routes.add({
    method: 'get',
    path: '/v1/invoices/:id',
    tag: 'Subscriptions',
    summary: 'One invoice and its lines.',
    responses: { 200: { description: 'The invoice', schema: Invoice } },
    handler: async ({ params }) => {
      const row = await getInvoice(deps.db, params.id!);
      if (!row) throw notFound('invoice', params.id!);
      return { status: 200, body: invoiceView(row, await invoiceLines(deps.db, [row.id])) };
    },
  });

  routes.add({
    method: 'post',
    path: '/v1/invoices/:id/pay',
    tag: 'Subscriptions',
    summary:
      'Records that a net-terms (enterprise) invoice was paid outside the card gateway, e.g. by bank transfer: ' +
      'paid and invoice.paid, once; paying it again changes nothing. Card invoices are paid by their charges: 409.',
    responses: { 200: { description: 'The paid invoice', schema: Invoice } },
    handler: async ({ params }) => {
      const outcome = await payInvoiceExternally(deps.db, params.id!, new Date());
      if (outcome === 'not_found') throw notFound('invoice', params.id!);
      if (outcome === 'not_net_terms') {
        throw new ApiError('conflict', 'a card invoice is paid by its charges, not by hand', {
          code: 'invoice_not_net_terms',
        });
      }
      if (outcome !== 'paid') {
        throw new ApiError('conflict', `the invoice is ${outcome}`, { code: `invoice_${outcome}` });
      }
      const row = (await getInvoice(deps.db, params.id!)) ?? unreachable();
      return { status: 200, body: invoiceView(row, await invoiceLines(deps.db, [row.id])) };
    },
  });
}

function unreachable(): never {
  throw new Error('unreachable');
}

function refusalOf(change: SubscriptionChangeRow): ApiError {
  const code = change.failure_code ?? 'refused';
  const message = change.failure_message ?? 'the subscription change was refused';
  const param = FIELD_REFUSALS[code];
  if (param) return invalid(param, message, code);
  if (STATE_REFUSALS.has(code) || code === 'no_payment_method')
    return new ApiError('conflict', message, { code });
  return new ApiError('card_error', message, {
    code,
    ...(change.decline_code === null ? {} : { extra: { decline_code: change.decline_code } }),
  });
}

export function invoiceView(row: InvoiceRow, lines: readonly InvoiceLineRow[]) {
  return {
    object: 'invoice' as const,
    id: row.id,
    customer_id: row.customer_id,
    subscription_id: row.subscription_id,
    status: row.status,
    collection: row.collection,
    total_usd: formatUsd(row.total_nanos),
    lines: lines
      .filter((line) => line.invoice_id === row.id)
      .map((line) => ({
        description: line.description,
        amount_usd: formatUsd(line.amount_nanos),
        quantity: line.quantity,
        period: { start: line.period_start.toISOString(), end: line.period_end.toISOString() },
      })),
    period_start: row.period_start.toISOString(),
    period_end: row.period_end.toISOString(),
    due_at: row.due_at.toISOString(),
    paid_at: row.paid_at?.toISOString() ?? null,
    payment_id: row.payment_id,
    attempts: row.attempts,
    created_at: row.created_at.toISOString(),
  };
}
