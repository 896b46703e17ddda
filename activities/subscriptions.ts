import type { Knex } from 'knex';
import { formatUsd, usd } from '../billing/money';
import { type BillingPeriod, parseBillingPeriod } from '../billing/periods';
import { loadDefaultPlanCatalog, type PlanCatalog } from '../billing/plans';
import {
  decideChange,
  decideRenewal,
  type InvoiceLine,
  type Subscription,
  type SubscriptionCache,
} from '../billing/subscriptions';
import type { Db } from '../db/connection';
import { enterpriseUsageLines, getContract } from '../db/contracts';
import { grantCredit } from '../db/ledger';
import { PermanentError } from '../db/errors';
import {
  advancePeriod,
  changeSubscriptionNow,
  closeInvoice,
  endSubscription,
  findInvoiceByKey,
  getInvoice,
  getLiveSubscription,
  getSubscription,
  getSubscriptionChange,
  insertSubscription,
  linkInvoiceToSubscription,
  lockCustomer,
  markInvoicePaid,
  newSubscriptionId,
  noteChangeDecision,
  noteInvoiceAttempt,
  voidOpenInvoice,
  pendingSubscriptionChanges,
  recordSubscriptionEvent,
  scheduleSubscriptionChange,
  setSubscriptionStatus,
  settleSubscriptionChange,
  writeInvoice,
} from '../db/subscriptions';
import type { PaymentGateway } from '../payments/payment-gateway';
import { type CardChargeResult, chargeCardOnce } from './charge-card';

/**
 * The subscription steps the account workflow runs (README "Subscriptions"). Every step is idempotent and keyed by
 * business ids, never by run: a change by its request id, a renewal by (subscription, period index), a charge by
 * (invoice, attempt number) where the workflow numbers the attempts. A decision is written down in the same
 * transaction as the invoice it charges, so a retried or resumed step applies exactly what was charged for.
 */

export type InvoiceCharge =
  | CardChargeResult
  /** The invoice was no longer open (paid or closed by an earlier attempt): nothing was charged now. */
  | { status: 'closed' };

export type PreparedChange = { status: 'settled' } | { status: 'charge'; invoice_id: string };

export type RenewalStep =
  | { status: 'skipped' }
  | { status: 'renewed' }
  | { status: 'canceled' }
  | { status: 'charge'; invoice_id: string };

/** A stored change decision (JSON in `subscription_changes.decision`). */
interface StoredDecision {
  kind: 'start' | 'upgrade';
  subscription_id: string;
  plan: string;
  seats: number;
  seat_price_usd: string | null;
  period_start: string;
  period_end: string;
}

export function subscriptionActivities(deps: { db: Db; gateway: PaymentGateway; plans?: PlanCatalog }) {
  const catalog = deps.plans ?? loadDefaultPlanCatalog();
  /** The customer's contract seat price (enterprise), null without a contract. */
  const seatPrice = async (customer_id: string): Promise<bigint | null> =>
    (await getContract(deps.db, customer_id))?.seat_price_nanos ?? null;
  /** A net-terms period's metered usage, priced by the contract: the same aggregation as GET .../usage. */
  const usageOf = async (
    customer_id: string,
    window: { from: Date; to: Date },
  ): Promise<{ lines: InvoiceLine[]; list_cost_nanos: bigint }> => {
    const usage = await enterpriseUsageLines(deps.db, customer_id, window);
    return {
      lines: usage.lines.map((line) => ({
        description: line.description,
        amount_nanos: line.amount_nanos,
        quantity: line.quantity,
        period_start: window.from,
        period_end: window.to,
      })),
      list_cost_nanos: usage.list_cost_nanos,
    };
  };

  return {
    /** The subscription an account run starts with (rebuilt from PostgreSQL), and the change requests pending. */
    async loadSubscription(input: { customer_id: string }): Promise<{
      subscription: SubscriptionCache | null;
      pending_changes: string[];
    }> {
      const sub = await getLiveSubscription(deps.db, input.customer_id);
      return {
        subscription: sub && (await cacheOf(deps.db, sub)),
        pending_changes: await pendingSubscriptionChanges(deps.db, input.customer_id, 100),
      };
    },

    /**
     * Decides a change request under the customer's lock. A refusal, a change that waits for the period end, or a
     * start that costs nothing is settled here; one that must be paid writes its invoice and answers `charge`.
     */
    async prepareSubscriptionChange(input: {
      change_id: string;
      billing_period: string;
    }): Promise<PreparedChange> {
      const period = billingPeriodOf(input.billing_period);
      return deps.db.transaction(async (trx) => {
        const first = await getSubscriptionChange(trx, input.change_id);
        if (!first || first.status !== 'pending') return { status: 'settled' } as const;
        await lockCustomer(trx, first.customer_id);
        const change = (await getSubscriptionChange(trx, input.change_id))!;
        if (change.status !== 'pending') return { status: 'settled' } as const;
        if (change.invoice_id) return { status: 'charge', invoice_id: change.invoice_id } as const;
        const current = await getLiveSubscription(trx, change.customer_id);
        const contract_seat_price_nanos = await seatPrice(change.customer_id);
        const decision = rule(() =>
          decideChange(
            current,
            { plan: change.plan, seats: change.seats },
            {
              catalog,
              period,
              now: new Date(),
              contract_seat_price_nanos,
              change_id: change.id,
            },
          ),
        );
        const applied = (subscription_id: string | null) =>
          settleSubscriptionChange(trx, change.id, { status: 'applied', subscription_id });
        switch (decision.kind) {
          case 'refuse':
            await settleSubscriptionChange(trx, change.id, {
              status: 'refused',
              failure_code: decision.code,
              decline_code: null,
              failure_message: decision.message,
            });
            return { status: 'settled' } as const;
          case 'unchanged':
            await applied(current!.id);
            return { status: 'settled' } as const;
          case 'schedule':
            await scheduleSubscriptionChange(trx, current!, {
              plan: decision.next_plan,
              seats: decision.next_seats,
            });
            await applied(current!.id);
            return { status: 'settled' } as const;
          case 'start':
          case 'upgrade': {
            const subscription_id = decision.kind === 'start' ? newSubscriptionId() : current!.id;
            const stored: StoredDecision = {
              kind: decision.kind,
              subscription_id,
              plan: decision.plan,
              seats: decision.seats,
              seat_price_usd:
                decision.seat_price_nanos === null ? null : formatUsd(decision.seat_price_nanos),
              period_start: (decision.kind === 'start'
                ? decision.period_start
                : current!.current_period_start
              ).toISOString(),
              period_end: (decision.kind === 'start'
                ? decision.period_end
                : current!.current_period_end
              ).toISOString(),
            };
            if (decision.invoice === null || decision.invoice.collection === 'net_terms') {
              // Nothing to charge now: a plan that costs nothing, or one invoiced with net terms (the invoice is
              // sent, open until paid), applies at once.
              await applyDecision(trx, change.customer_id, stored);
              if (decision.invoice !== null) {
                await writeInvoice(trx, {
                  ...decision.invoice,
                  customer_id: change.customer_id,
                  subscription_id,
                });
              }
              await applied(subscription_id);
              return { status: 'settled' } as const;
            }
            // The subscription of a start does not exist before its charge: its invoice names it once it does.
            const invoice = await writeInvoice(trx, {
              ...decision.invoice,
              customer_id: change.customer_id,
              subscription_id: decision.kind === 'start' ? null : subscription_id,
            });
            await noteChangeDecision(trx, change.id, { ...stored }, invoice.id);
            return { status: 'charge', invoice_id: invoice.id } as const;
          }
        }
      });
    },

    /** Charges an open invoice to the card on file, once per (invoice, attempt). */
    async chargeInvoice(input: { invoice_id: string; attempt: number }): Promise<InvoiceCharge> {
      const invoice = await getInvoice(deps.db, input.invoice_id);
      if (!invoice) throw new PermanentError('not_found', `invoice ${input.invoice_id} does not exist`);
      const key = `invoice:${invoice.id}:${input.attempt}`;
      if (invoice.status !== 'open') return { status: 'closed' };
      // A net-terms invoice is sent, never charged: reaching here would be a defect, refused before any gateway call.
      if (invoice.collection !== 'charge') {
        throw new PermanentError('invalid_data', `invoice ${invoice.id} is paid by its terms, not by card`);
      }
      // No invoice of a subscription cancelled since (cancel now) is collected, a renewal's or an upgrade's proration
      // alike: voided, nothing charged (the change it paid for is then refused as `subscription_canceled`).
      const sub = invoice.subscription_id ? await getSubscription(deps.db, invoice.subscription_id) : null;
      if (sub?.status === 'canceled') {
        await voidOpenInvoice(deps.db, invoice.id);
        return { status: 'closed' };
      }
      await noteInvoiceAttempt(deps.db, invoice.id, input.attempt);
      const result = await chargeCardOnce(deps, {
        idempotency_key: key,
        payment_id: `pay_${invoice.id}_${input.attempt}`,
        customer_id: invoice.customer_id,
        amount_nanos: invoice.total_nanos,
        description: `Invoice ${invoice.id}`,
      }).catch((error: unknown) => {
        // No card on file is a decline of this attempt, not a failure of the account.
        if (error instanceof PermanentError && error.type === 'no_payment_method') {
          return {
            status: 'failed' as const,
            payment_id: `pay_${invoice.id}_${input.attempt}`,
            failure_code: 'no_payment_method',
            decline_code: null,
            message: 'the customer has no payment method on file',
          };
        }
        throw error;
      });
      return result;
    },

    /** Applies a paid change (and marks its invoice paid) or, declined, voids the invoice and refuses the change. */
    async completeSubscriptionChange(input: { change_id: string; charge: InvoiceCharge }): Promise<void> {
      await deps.db.transaction(async (trx) => {
        const first = await getSubscriptionChange(trx, input.change_id);
        if (!first) return;
        await lockCustomer(trx, first.customer_id);
        const change = (await getSubscriptionChange(trx, input.change_id))!;
        if (change.status !== 'pending' || !change.invoice_id || !change.decision) return;
        const decision = change.decision as unknown as StoredDecision;
        if (input.charge.status === 'failed') {
          await closeInvoice(trx, change.invoice_id, 'void');
          await settleSubscriptionChange(trx, change.id, {
            status: 'refused',
            failure_code: input.charge.failure_code,
            decline_code: input.charge.decline_code,
            failure_message: input.charge.message,
          });
          return;
        }
        if (input.charge.status === 'closed') {
          // Nothing was charged: the invoice was closed before its charge (the subscription was canceled now).
          await settleSubscriptionChange(trx, change.id, {
            status: 'refused',
            failure_code: 'subscription_canceled',
            decline_code: null,
            failure_message:
              'the subscription was canceled while the change was running; nothing was charged',
          });
          return;
        }
        if (decision.kind === 'start' && (await getLiveSubscription(trx, change.customer_id))) {
          // Another start won (a request recorded later but run first). The charge stands on its paid invoice;
          // the refusal says it is owed back, and reconciliation lists it.
          await markInvoicePaid(trx, change.invoice_id, input.charge.payment_id, new Date());
          await settleSubscriptionChange(trx, change.id, {
            status: 'refused',
            failure_code: 'subscription_exists',
            decline_code: null,
            failure_message: 'a subscription started meanwhile; this charge is owed back',
          });
          return;
        }
        await applyDecision(trx, change.customer_id, decision);
        await linkInvoiceToSubscription(trx, change.invoice_id, decision.subscription_id);
        await markInvoicePaid(trx, change.invoice_id, input.charge.payment_id, new Date());
        await settleSubscriptionChange(trx, change.id, {
          status: 'applied',
          subscription_id: decision.subscription_id,
        });
      });
    },

    /**
     * The renewal at the end of period `period_index - 1`: a cancellation ends the subscription, a plan that costs
     * nothing (or is invoiced with net terms) renews here, and a card plan writes the new period's invoice and
     * answers `charge`. Asked again after it happened (a retry, a resumed run), it answers `skipped`.
     */
    async renewSubscription(input: {
      subscription_id: string;
      period_index: number;
      billing_period: string;
      /** The workflow's clock when its timer fired: the renewal is due by it, whatever this machine's clock says. */
      at: string;
    }): Promise<RenewalStep> {
      const period = billingPeriodOf(input.billing_period);
      const sub0 = await getSubscription(deps.db, input.subscription_id);
      if (!sub0 || sub0.status === 'canceled') return { status: 'skipped' };
      const usage =
        sub0.period_index === input.period_index - 1 && catalog.find(sub0.plan)?.collection === 'net_terms'
          ? await usageOf(sub0.customer_id, { from: sub0.current_period_start, to: sub0.current_period_end })
          : { lines: [], list_cost_nanos: 0n };
      const contract_seat_price = await seatPrice(sub0.customer_id);
      return deps.db.transaction(async (trx) => {
        await lockCustomer(trx, sub0.customer_id);
        const sub = (await getSubscription(trx, input.subscription_id))!;
        if (sub.status !== 'active' || sub.period_index !== input.period_index - 1)
          return { status: 'skipped' };
        if (Date.parse(input.at) < sub.current_period_end.getTime()) return { status: 'skipped' };
        const decision = rule(() => decideRenewal(sub, catalog, period, usage.lines, contract_seat_price));
        if (decision.usage_invoice) {
          const invoice = await writeInvoice(trx, {
            ...decision.usage_invoice,
            customer_id: sub.customer_id,
            subscription_id: sub.id,
          });
          // The wallet paid this usage at list price as it happened; the invoice bills it at the contract's
          // prices, so the wallet gets it back (keyed by the invoice: once). The prepaid balance of an invoiced
          // account is a deposit that lets the hot path admit its requests, never a second payment.
          if (usage.list_cost_nanos > 0n) {
            await grantCredit(trx, {
              grant_id: `gr_${invoice.id}`,
              customer_id: sub.customer_id,
              source: 'subscription',
              amount_nanos: usage.list_cost_nanos,
              reason: `usage invoiced on ${invoice.id}`,
              expires_at: null,
              kind: 'usage_invoiced',
              ref: invoice.id,
              funded_by: 'revenue',
            });
          }
        }
        if (decision.kind === 'cancel') {
          await endAtPeriodEnd(trx, sub);
          return { status: 'canceled' };
        }
        const invoice =
          decision.invoice &&
          (await writeInvoice(trx, {
            ...decision.invoice,
            customer_id: sub.customer_id,
            subscription_id: sub.id,
          }));
        if (invoice && decision.invoice!.collection === 'charge')
          return { status: 'charge', invoice_id: invoice.id };
        await advance(trx, sub, decision, 'active');
        return { status: 'renewed' };
      });
    },

    /** Opens the next period after its charge: paid, the subscription stays active; declined, it is past due. */
    async completeRenewal(input: {
      subscription_id: string;
      period_index: number;
      invoice_id: string;
      charge: InvoiceCharge;
      billing_period: string;
    }): Promise<{ status: 'active' | 'past_due' | 'skipped' }> {
      const period = billingPeriodOf(input.billing_period);
      const sub0 = await getSubscription(deps.db, input.subscription_id);
      if (!sub0) return { status: 'skipped' };
      return deps.db.transaction(async (trx) => {
        await lockCustomer(trx, sub0.customer_id);
        const sub = (await getSubscription(trx, input.subscription_id))!;
        const paid = input.charge.status !== 'failed';
        if (sub.status === 'canceled' || sub.period_index !== input.period_index - 1) {
          // Cancelled now while its charge was in flight: money that moved pays its invoice all the same (the
          // customer is owed it back, and the paid invoice says so); a charge that failed leaves nothing owed.
          if (input.charge.status === 'succeeded') {
            await markInvoicePaid(trx, input.invoice_id, input.charge.payment_id, new Date());
          } else if (sub.status === 'canceled') {
            await closeInvoice(trx, input.invoice_id, 'void');
          }
          return { status: 'skipped' };
        }
        if (!paid && sub.cancel_at_period_end) {
          // Cancelled while its renewal was being charged, and the charge failed: it simply ends, owing nothing.
          await closeInvoice(trx, input.invoice_id, 'void');
          await endAtPeriodEnd(trx, sub);
          return { status: 'skipped' };
        }
        // A charge that went through opens the period it paid for, even if a cancellation arrived meanwhile (the
        // subscription then ends after that period); the renewal is decided as it was when its invoice was written.
        const contract_seat_price = await seatPrice(sub.customer_id);
        const decision = rule(() =>
          decideRenewal({ ...sub, cancel_at_period_end: false }, catalog, period, [], contract_seat_price),
        );
        if (decision.kind === 'cancel') return { status: 'skipped' };
        await advance(trx, sub, decision, paid ? 'active' : 'past_due');
        if (paid) {
          await markInvoicePaid(
            trx,
            input.invoice_id,
            input.charge.status === 'succeeded' ? input.charge.payment_id : null,
            new Date(),
          );
        } else {
          const after = (await getSubscription(trx, sub.id))!;
          await recordSubscriptionEvent(trx, 'subscription.past_due', after, `past_due:${input.invoice_id}`, {
            invoice_id: input.invoice_id,
            ...(input.charge.status === 'failed'
              ? { failure_code: input.charge.failure_code, decline_code: input.charge.decline_code }
              : {}),
          });
        }
        return { status: paid ? 'active' : 'past_due' };
      });
    },

    /** Settles a dunning attempt: paid, the invoice is paid and the subscription active again. */
    async settleInvoiceAttempt(input: {
      invoice_id: string;
      charge: InvoiceCharge;
    }): Promise<{ status: 'paid' | 'open' | 'closed' }> {
      const invoice0 = await getInvoice(deps.db, input.invoice_id);
      if (!invoice0) return { status: 'closed' };
      return deps.db.transaction(async (trx) => {
        await lockCustomer(trx, invoice0.customer_id);
        const invoice = (await getInvoice(trx, input.invoice_id))!;
        if (invoice.status !== 'open') {
          // Closed while this attempt's charge was in flight (cancelled now): the money that moved pays it.
          if (input.charge.status === 'succeeded' && invoice.status === 'void') {
            await markInvoicePaid(trx, invoice.id, input.charge.payment_id, new Date());
          }
          return { status: invoice.status === 'paid' ? 'paid' : 'closed' };
        }
        if (input.charge.status !== 'succeeded') return { status: 'open' };
        await markInvoicePaid(trx, invoice.id, input.charge.payment_id, new Date());
        if (invoice.subscription_id) await setSubscriptionStatus(trx, invoice.subscription_id, 'active');
        return { status: 'paid' };
      });
    },

    /** Dunning ran out: the invoice is uncollectible and the subscription ends (the account is on Free). */
    async exhaustDunning(input: { invoice_id: string }): Promise<{ status: 'canceled' | 'closed' }> {
      const invoice0 = await getInvoice(deps.db, input.invoice_id);
      if (!invoice0) return { status: 'closed' };
      return deps.db.transaction(async (trx) => {
        await lockCustomer(trx, invoice0.customer_id);
        const invoice = (await getInvoice(trx, input.invoice_id))!;
        if (invoice.status !== 'open') return { status: 'closed' };
        await closeInvoice(trx, invoice.id, 'uncollectible');
        const sub = invoice.subscription_id ? await getSubscription(trx, invoice.subscription_id) : null;
        if (sub && sub.status !== 'canceled') {
          const now = new Date();
          await endSubscription(trx, sub.id, now);
          await recordSubscriptionEvent(
            trx,
            'subscription.canceled',
            { ...sub, status: 'canceled' },
            'ended',
            {
              reason: 'payment_failed',
              invoice_id: invoice.id,
            },
          );
        }
        return { status: 'canceled' };
      });
    },
  };

  /** Makes a decided start or upgrade true in PostgreSQL. */
  async function applyDecision(
    trx: Knex.Transaction,
    customer_id: string,
    decision: StoredDecision,
  ): Promise<void> {
    const seat_price_nanos = decision.seat_price_usd === null ? null : usd(decision.seat_price_usd);
    if (decision.kind === 'start') {
      const period_start = new Date(decision.period_start);
      await insertSubscription(trx, {
        id: decision.subscription_id,
        customer_id,
        plan: decision.plan,
        seats: decision.seats,
        seat_price_nanos,
        anchor_at: period_start,
        current_period_start: period_start,
        current_period_end: new Date(decision.period_end),
      });
    } else {
      await changeSubscriptionNow(trx, decision.subscription_id, {
        plan: decision.plan,
        seats: decision.seats,
        seat_price_nanos,
      });
    }
  }

  /** A cancellation at the period end takes effect: the subscription ends at that instant. */
  async function endAtPeriodEnd(trx: Knex.Transaction, sub: Subscription): Promise<void> {
    await endSubscription(trx, sub.id, sub.current_period_end);
    await recordSubscriptionEvent(trx, 'subscription.canceled', { ...sub, status: 'canceled' }, 'ended', {
      reason: 'canceled_at_period_end',
    });
  }

  async function advance(
    trx: Knex.Transaction,
    sub: Subscription,
    decision: Extract<ReturnType<typeof decideRenewal>, { kind: 'renew' }>,
    status: 'active' | 'past_due',
  ): Promise<void> {
    await advancePeriod(trx, sub.id, {
      plan: decision.plan,
      seats: decision.seats,
      seat_price_nanos: decision.seat_price_nanos,
      period_index: decision.period_index,
      period_start: decision.period_start,
      period_end: decision.period_end,
      reanchor: decision.reanchor,
      status,
    });
    if (status === 'active') {
      const after = (await getSubscription(trx, sub.id))!;
      await recordSubscriptionEvent(trx, 'subscription.renewed', after, `period:${decision.period_index}`, {
        period_index: decision.period_index,
      });
    }
  }
}

/** The account workflow's copy of a subscription. */
async function cacheOf(db: Db, sub: Subscription): Promise<SubscriptionCache> {
  return {
    id: sub.id,
    plan: sub.plan,
    status: sub.status,
    period_index: sub.period_index,
    current_period_end: sub.current_period_end.toISOString(),
    dunning_invoice_id: sub.status === 'past_due' ? await openPeriodInvoice(db, sub) : null,
  };
}

/** The invoice of the subscription's current period while it is past due. */
async function openPeriodInvoice(db: Db, sub: Subscription): Promise<string | null> {
  const invoice = await findInvoiceByKey(db, `period:${sub.id}:${sub.period_index}`);
  return invoice?.status === 'open' ? invoice.id : null;
}

/**
 * Runs a pure billing rule; a rule that throws (a price it cannot compute, a catalog changed under a subscription)
 * will throw again on every retry, so it is a permanent failure that the workflow handles, not a retry loop.
 */
function rule<T>(decide: () => T): T {
  try {
    return decide();
  } catch (error) {
    throw new PermanentError('invalid_data', error instanceof Error ? error.message : String(error));
  }
}

function billingPeriodOf(text: string): BillingPeriod {
  const period = parseBillingPeriod(text);
  if (!period) throw new PermanentError('invalid_data', `BILLING_PERIOD ${text} is not a billing period`);
  return period;
}
