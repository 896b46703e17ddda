import { MS_PER_DAY } from './durations';
import { formatUsd, NANOS_PER_CENT } from './money';
import { type BillingPeriod, periodBounds, prorate_nanos } from './periods';
import { FREE_PLAN_ID, periodPrice_nanos, type Plan, type PlanCatalog } from './plans';

/**
 * Subscription rules, pure: what a change asks for (start, upgrade now with proration, or a change that waits for
 * the period end), what a renewal does, and the invoice lines each charge carries. PostgreSQL holds the subscription
 * (db/subscriptions.ts); the account workflow runs these decisions as activities at the right instants.
 *
 * The rules, as a customer meets them:
 * - The first period is charged at once (plans collected by card); a decline starts nothing.
 * - A change that raises the price of a period (a dearer plan of the same interval, more seats) applies at once and
 *   charges `(new - old) x remaining / period`, rounded half-up to the cent, on its own invoice; a decline changes
 *   nothing. A change that lowers it (a cheaper plan, fewer seats, Free), or moves to a plan of another interval,
 *   waits for the period end. Asking for the current plan and seats again drops a change that was waiting.
 * - A cancelled subscription (cancel at period end) cannot be changed (409) until it has ended; after it ended, the
 *   account is on Free and a PUT starts a new subscription.
 * - A past-due subscription cannot be changed either (409): the customer updates the card, which retries the
 *   invoice at once.
 * - Renewal at a period end: a cancellation ends the subscription; otherwise the waiting change (if any) applies,
 *   and the next period is charged (card plans) or the ended period invoiced with net terms (enterprise).
 */

export type SubscriptionStatus = 'active' | 'past_due' | 'canceled';

export interface Subscription {
  id: string;
  customer_id: string;
  plan: string;
  seats: number;
  seat_price_nanos: bigint | null;
  status: SubscriptionStatus;
  anchor_at: Date;
  /** The period index at `anchor_at` (0 unless a change of interval re-anchored the subscription). */
  anchor_index: number;
  period_index: number;
  current_period_start: Date;
  current_period_end: Date;
  cancel_at_period_end: boolean;
  next_plan: string | null;
  next_seats: number | null;
  canceled_at: Date | null;
}

/** What the account workflow keeps of the subscription: enough to set the renewal timer and show the plan. */
export interface SubscriptionCache {
  id: string;
  plan: string;
  status: 'active' | 'past_due' | 'canceled';
  period_index: number;
  current_period_end: string;
  /** The open invoice dunning is collecting (past due only). */
  dunning_invoice_id: string | null;
}

export interface ChangeRequest {
  plan: string;
  /** Absent: 1 for per-seat plans; refused for flat plans when present. */
  seats: number | null;
}

export type ChangeRefusalCode =
  | 'unknown_plan'
  | 'seats_not_allowed'
  | 'invalid_seats'
  | 'subscription_canceled'
  | 'subscription_past_due'
  | 'seat_price_required';

export interface ChangeRefusal {
  kind: 'refuse';
  code: ChangeRefusalCode;
  message: string;
  /** The request field at fault, for a 400. */
  param: 'plan' | 'seats' | null;
}

export interface InvoiceLine {
  description: string;
  amount_nanos: bigint;
  /** Decimal text (seats, a fraction of a period, tokens). */
  quantity: string;
  period_start: Date;
  period_end: Date;
}

export interface InvoiceDraft {
  /** Unique per occurrence: writing the same key again finds the first invoice. */
  key: string;
  collection: 'charge' | 'net_terms';
  period_start: Date;
  period_end: Date;
  due_at: Date;
  lines: InvoiceLine[];
}

export type ChangeDecision =
  | ChangeRefusal
  | {
      kind: 'start';
      plan: string;
      seats: number;
      seat_price_nanos: bigint | null;
      period_start: Date;
      period_end: Date;
      /** The first period's invoice, charged at once; null for a plan that costs nothing or is invoiced later. */
      invoice: InvoiceDraft | null;
    }
  | {
      kind: 'upgrade';
      plan: string;
      seats: number;
      seat_price_nanos: bigint | null;
      /** The proration invoice; null when the proration rounds to nothing (the last instant of a period). */
      invoice: InvoiceDraft | null;
    }
  | { kind: 'schedule'; next_plan: string; next_seats: number }
  | { kind: 'unchanged' };

export interface ChangeContext {
  catalog: PlanCatalog;
  period: BillingPeriod;
  now: Date;
  /** The customer's contract seat price (enterprise); null when none is set. */
  contract_seat_price_nanos: bigint | null;
  /** Names the change (its invoice key): the request id. */
  change_id: string;
}

/** Checks a request against the catalog alone: the 400s. */
export function checkChangeRequest(catalog: PlanCatalog, request: ChangeRequest): ChangeRefusal | null {
  const plan = catalog.find(request.plan);
  if (!plan) {
    const known = catalog.plans.map((p) => p.id).join(', ');
    return refuse('unknown_plan', `unknown plan "${request.plan}"; plans are ${known}`, 'plan');
  }
  if (request.seats !== null && !plan.per_seat) {
    return refuse('seats_not_allowed', `plan ${plan.id} is not priced per seat; leave seats out`, 'seats');
  }
  if (request.seats !== null && (!Number.isSafeInteger(request.seats) || request.seats < 1)) {
    return refuse('invalid_seats', 'seats must be a whole number of at least 1', 'seats');
  }
  return null;
}

/** What a PUT of `request` does to the customer's live subscription (null: none, or the last one has ended). */
export function decideChange(
  current: Subscription | null,
  request: ChangeRequest,
  context: ChangeContext,
): ChangeDecision {
  const invalid = checkChangeRequest(context.catalog, request);
  if (invalid) return invalid;
  const plan = context.catalog.find(request.plan)!;
  const seats = request.seats ?? 1;
  const live = current && current.status !== 'canceled' ? current : null;
  const seat_price_nanos = plan.price_nanos === null ? context.contract_seat_price_nanos : null;
  if (plan.price_nanos === null && seat_price_nanos === null) {
    return refuse(
      'seat_price_required',
      `plan ${plan.id} is priced per customer: PUT the customer's contract (seat_price_usd) first`,
      null,
    );
  }
  if (!live) return startDecision(plan, seats, seat_price_nanos, context);
  if (live.cancel_at_period_end) {
    return refuse(
      'subscription_canceled',
      `the subscription is canceled and ends at ${live.current_period_end.toISOString()}; start a new one after`,
      null,
    );
  }
  if (live.status === 'past_due') {
    return refuse(
      'subscription_past_due',
      'the subscription is past due; update the payment method to pay the open invoice first',
      null,
    );
  }
  const currentPlan = context.catalog.find(live.plan);
  if (live.plan === plan.id && live.seats === seats) {
    return live.next_plan === null && live.next_seats === null ? { kind: 'unchanged' } : scheduled(live);
  }
  const old_price = currentPlan ? periodPrice_nanos(currentPlan, live.seats, live.seat_price_nanos) : 0n;
  const new_price = periodPrice_nanos(plan, seats, seat_price_nanos ?? live.seat_price_nanos);
  const sameInterval = currentPlan !== undefined && currentPlan.interval === plan.interval;
  if (!sameInterval || new_price < old_price)
    return { kind: 'schedule', next_plan: plan.id, next_seats: seats };
  const start_ms = live.current_period_start.getTime();
  const end_ms = live.current_period_end.getTime();
  const remaining_ms = Math.max(0, end_ms - context.now.getTime());
  const charge = prorate_nanos({
    new_price_nanos: new_price,
    old_price_nanos: old_price,
    remaining_ms,
    period_ms: end_ms - start_ms,
  });
  const invoice =
    charge === 0n
      ? null
      : {
          key: `proration:${live.id}:${context.change_id}`,
          collection: plan.collection,
          period_start: context.now,
          period_end: live.current_period_end,
          due_at: dueAt(plan, context.now),
          lines: [
            {
              description: `${describePlan(currentPlan?.name ?? live.plan, live.seats, currentPlan?.per_seat ?? false)} -> ${describePlan(plan.name, seats, plan.per_seat)}, prorated for the rest of the period`,
              amount_nanos: charge,
              quantity: fractionOf(remaining_ms, end_ms - start_ms),
              period_start: context.now,
              period_end: live.current_period_end,
            },
          ],
        };
  return {
    kind: 'upgrade',
    plan: plan.id,
    seats,
    seat_price_nanos: seat_price_nanos ?? live.seat_price_nanos,
    invoice,
  };
}

/** Dropping a waiting change: the subscription stays as it is. */
function scheduled(live: Subscription): ChangeDecision {
  return { kind: 'schedule', next_plan: live.plan, next_seats: live.seats };
}

function startDecision(
  plan: Plan,
  seats: number,
  seat_price_nanos: bigint | null,
  context: ChangeContext,
): ChangeDecision {
  const anchor_ms = context.now.getTime();
  const bounds = periodBounds(anchor_ms, 0, context.period, plan.interval);
  const period_start = new Date(bounds.start_ms);
  const period_end = new Date(bounds.end_ms);
  const amount = periodPrice_nanos(plan, seats, seat_price_nanos);
  const invoice =
    amount > 0n
      ? periodInvoice(`start:${context.change_id}`, plan, seats, amount, period_start, period_end)
      : null;
  return { kind: 'start', plan: plan.id, seats, seat_price_nanos, period_start, period_end, invoice };
}

/** When an invoice of the plan written at `from` is due: at once for card plans, `net_days` later for net terms. */
function dueAt(plan: Plan, from: Date): Date {
  return plan.collection === 'charge' ? from : new Date(from.getTime() + plan.net_days * MS_PER_DAY);
}

/** An invoice for one period of a plan, in advance: charged to the card at once, or sent with net terms. */
export function periodInvoice(
  key: string,
  plan: Plan,
  seats: number,
  amount_nanos: bigint,
  period_start: Date,
  period_end: Date,
): InvoiceDraft {
  return {
    key,
    collection: plan.collection,
    period_start,
    period_end,
    due_at: dueAt(plan, period_start),
    lines: [
      {
        description: describePlan(plan.name, seats, plan.per_seat),
        amount_nanos,
        quantity: String(plan.per_seat ? seats : 1),
        period_start,
        period_end,
      },
    ],
  };
}

export type RenewalDecision =
  | { kind: 'cancel'; usage_invoice: InvoiceDraft | null }
  | {
      kind: 'renew';
      plan: string;
      seats: number;
      seat_price_nanos: bigint | null;
      period_index: number;
      /** Set when this renewal re-anchors the subscription (a change of interval): the new anchor. */
      reanchor: { anchor_at: Date; anchor_index: number } | null;
      period_start: Date;
      period_end: Date;
      /** The new period's invoice, in advance: charged now (card plans) or sent (net terms); null: nothing owed. */
      invoice: InvoiceDraft | null;
      /** The ended period's metered usage (a net-terms plan's), invoiced in arrears; null: none. */
      usage_invoice: InvoiceDraft | null;
    };

/**
 * What the renewal at the end of the current period does. `usage_lines` are the ended period's metered usage lines
 * (net-terms plans only: enterprise invoices list the period's API usage).
 */
export function decideRenewal(
  current: Subscription,
  catalog: PlanCatalog,
  period: BillingPeriod,
  usage_lines: readonly InvoiceLine[] = [],
  /** The customer's contract seat price now (enterprise); it governs a plan priced per customer. */
  contract_seat_price_nanos: bigint | null = null,
): RenewalDecision {
  const usage_invoice = usageInvoice(current, catalog, usage_lines);
  if (current.cancel_at_period_end) return { kind: 'cancel', usage_invoice };
  const plan = catalog.find(current.next_plan ?? current.plan) ?? catalog.find(FREE_PLAN_ID)!;
  const seats = plan.per_seat ? (current.next_seats ?? current.seats) : 1;
  const seat_price_nanos =
    plan.price_nanos === null ? (contract_seat_price_nanos ?? current.seat_price_nanos) : null;
  const period_index = current.period_index + 1;
  // Periods are counted from the anchor in units of the plan's interval; a change of interval re-anchors at the
  // renewal that makes it (the new period is then period 0 from the new anchor), while the index keeps counting.
  const intervalChanged = catalog.find(current.plan)?.interval !== plan.interval;
  const anchor_ms = intervalChanged ? current.current_period_end.getTime() : current.anchor_at.getTime();
  const index = intervalChanged ? 0 : period_index - current.anchor_index;
  const bounds = periodBounds(anchor_ms, index, period, plan.interval);
  const period_start = new Date(bounds.start_ms);
  const period_end = new Date(bounds.end_ms);
  const amount = periodPrice_nanos(plan, seats, seat_price_nanos);
  const invoice =
    amount > 0n
      ? periodInvoice(`period:${current.id}:${period_index}`, plan, seats, amount, period_start, period_end)
      : null;
  const reanchor = intervalChanged ? { anchor_at: period_start, anchor_index: period_index } : null;
  return {
    kind: 'renew',
    plan: plan.id,
    seats,
    seat_price_nanos,
    period_index,
    reanchor,
    period_start,
    period_end,
    invoice,
    usage_invoice,
  };
}

/**
 * The metered usage of a period served on a net-terms plan (enterprise), invoiced in arrears on its own invoice
 * (`usage:<sub>:<n>`), due `net_days` after the period; null for card plans or a period without usage.
 */
export function usageInvoice(
  served: Subscription,
  catalog: PlanCatalog,
  usage_lines: readonly InvoiceLine[],
): InvoiceDraft | null {
  const plan = catalog.find(served.plan);
  const lines = usage_lines.filter((line) => line.amount_nanos !== 0n);
  if (!plan || plan.collection !== 'net_terms' || lines.length === 0) return null;
  return {
    key: `usage:${served.id}:${served.period_index}`,
    collection: 'net_terms',
    period_start: served.current_period_start,
    period_end: served.current_period_end,
    due_at: dueAt(plan, served.current_period_end),
    lines,
  };
}

/** An invoice's total: the sum of its lines (whole cents: every line is). */
export function invoiceTotal_nanos(lines: readonly InvoiceLine[]): bigint {
  return lines.reduce((sum, line) => sum + line.amount_nanos, 0n);
}

/** Whether every line is whole cents, as a charged invoice must be. */
export function linesAreWholeCents(lines: readonly InvoiceLine[]): boolean {
  return lines.every((line) => line.amount_nanos % NANOS_PER_CENT === 0n);
}

function describePlan(name: string, seats: number, per_seat: boolean): string {
  return per_seat ? `${name} x ${seats} seat${seats === 1 ? '' : 's'}` : name;
}

/** remaining / period as a decimal with six places (the proration line's quantity). */
function fractionOf(part_ms: number, whole_ms: number): string {
  if (whole_ms <= 0) return '0';
  const scaled = (BigInt(part_ms) * 1_000_000n) / BigInt(whole_ms);
  const whole = scaled / 1_000_000n;
  const frac = (scaled % 1_000_000n).toString().padStart(6, '0');
  return `${whole}.${frac}`;
}

function refuse(code: ChangeRefusalCode, message: string, param: ChangeRefusal['param']): ChangeRefusal {
  return { kind: 'refuse', code, message, param };
}

/** The API's view of a subscription (GET /v1/customers/:id/subscription), without its usage. */
export function subscriptionView(sub: Subscription | null, now: Date) {
  if (!sub || sub.status === 'canceled') {
    return {
      id: sub?.id ?? null,
      plan: FREE_PLAN_ID,
      seats: 1,
      status: sub ? ('canceled' as const) : ('active' as const),
      current_period_start: null,
      current_period_end: null,
      cancel_at_period_end: false,
      canceled_at: sub?.canceled_at?.toISOString() ?? null,
      pending_change: null,
      as_of: now.toISOString(),
    };
  }
  return {
    id: sub.id,
    plan: sub.plan,
    seats: sub.seats,
    status: sub.status,
    current_period_start: sub.current_period_start.toISOString(),
    current_period_end: sub.current_period_end.toISOString(),
    cancel_at_period_end: sub.cancel_at_period_end,
    canceled_at: null,
    pending_change:
      sub.next_plan === null
        ? null
        : { plan: sub.next_plan, seats: sub.next_seats ?? 1, at: sub.current_period_end.toISOString() },
    seat_price_usd: sub.seat_price_nanos === null ? undefined : formatUsd(sub.seat_price_nanos),
    as_of: now.toISOString(),
  };
}
