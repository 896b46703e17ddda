import type { z } from 'zod';
import { formatUsd, formatUsdOrNull } from '../billing/money';
import { settingsOf } from '../billing/auto-recharge';
import { meterOf } from '../billing/contracts';
import type { StoredContract } from '../db/contracts';
import type { AutoRechargeSummary } from '../db/auto-recharge';
import { findTier, limitsView, nextTier, type TierTable } from '../billing/tiers';
import type { WalletLimits } from '../db/limits';
import { effectiveLimits } from '../db/limits';
import type { BalanceView } from '../db/balance';
import type { GrantDebitRow, GrantWithStatus } from '../db/credit-grants';
import { PAID_GRANT_SOURCES } from '../db/ledger';
import type { CustomerRow } from '../db/customers';
import type { LedgerEntryRow } from '../db/ledger';
import type { RefundRow } from '../db/refunds';
import type { ReconciliationRunRow } from '../db/reconciliation';
import type { TopUpRow } from '../db/top-ups';
import type { DeliveryRow, WebhookEndpointRow } from '../db/webhooks';
import type {
  AutoRecharge,
  Balance,
  Customer,
  CustomerBudget,
  CustomerContract,
  CustomerCreditGrant,
  CustomerTier,
  GrantDebit,
  LedgerEntry,
  Refund,
  TopUp,
  WebhookDelivery,
  WebhookEndpoint,
  ReconciliationRun,
} from './schemas';

// Rows to API shapes: the one place where bigint nanos become decimal strings and ids get their prefixes.

export const LEDGER_ENTRY_PREFIX = 'le_';

/** A customer with what is loaded beside its row (each absent part shows as null). */
export function customerView(
  row: CustomerRow,
  extras: { auto_recharge?: AutoRechargeSummary } = {},
): z.infer<typeof Customer> {
  return {
    id: row.id,
    object: 'customer',
    email: row.email,
    name: row.name,
    metadata: row.metadata,
    payment_method: row.payment_method,
    status: row.status,
    balance: { available_usd: formatUsd(row.available_nanos), held_usd: formatUsd(row.held_nanos) },
    tier: row.tier,
    subscription: null,
    auto_recharge: extras.auto_recharge ? autoRechargeView(extras.auto_recharge) : null,
    budget: budgetView(row),
    created_at: row.created_at.toISOString(),
  };
}

/** A budget as the API shows it: the limits (null: none) and this UTC month's spend, which is what they cap. */
export function budgetView(row: {
  budget_alert_nanos: bigint | null;
  budget_limit_nanos: bigint | null;
  spent_this_month_nanos: bigint;
}): z.infer<typeof CustomerBudget> {
  return {
    monthly_alert_usd: formatUsdOrNull(row.budget_alert_nanos),
    monthly_limit_usd: formatUsdOrNull(row.budget_limit_nanos),
    spent_this_month_usd: formatUsd(row.spent_this_month_nanos),
  };
}

export function balanceView(customer_id: string, balance: BalanceView): z.infer<typeof Balance> {
  return {
    customer_id,
    available_usd: formatUsd(balance.available_nanos),
    held_usd: formatUsd(balance.held_nanos),
    grants: balance.grants.map((g) => ({
      id: g.id,
      source: g.source,
      reason: g.reason,
      status: g.status,
      amount_usd: formatUsd(g.amount_nanos),
      remaining_usd: formatUsd(g.remaining_nanos),
      granted_at: g.granted_at.toISOString(),
      expires_at: g.expires_at?.toISOString() ?? null,
    })),
  };
}

export function refundView(row: RefundRow): z.infer<typeof Refund> {
  return {
    id: row.id,
    object: 'refund',
    customer_id: row.customer_id,
    top_up_id: row.top_up_id,
    recharge_id: row.recharge_id,
    payment_id: row.payment_id,
    grant_id: row.grant_id,
    status: row.status,
    amount_usd: formatUsd(row.amount_nanos),
    allow_negative: row.allow_negative,
    from_grant_usd: formatUsdOrNull(row.from_grant_nanos),
    gateway_refund_id: row.gateway_refund_id,
    failure_code: row.failure_code,
    failure_message: row.failure_message,
    created_at: row.created_at.toISOString(),
    settled_at: row.settled_at?.toISOString() ?? null,
  };
}

/** `refunded_nanos`: what its succeeded refunds returned (db/refunds.ts `refundedNanosOf`). */
export function topUpView(row: TopUpRow, refunded_nanos = 0n): z.infer<typeof TopUp> {
  return {
    id: row.id,
    object: 'top_up',
    customer_id: row.customer_id,
    status: row.status,
    amount_usd: formatUsd(row.amount_nanos),
    failure_code: row.failure_code,
    decline_code: row.decline_code,
    failure_message: row.failure_message,
    grant_id: row.grant_id,
    refunded_usd: formatUsd(refunded_nanos),
    created_at: row.created_at.toISOString(),
  };
}

export function ledgerEntryView(row: LedgerEntryRow): z.infer<typeof LedgerEntry> {
  return {
    id: `${LEDGER_ENTRY_PREFIX}${row.id}`,
    kind: row.kind,
    amount_usd: formatUsd(row.amount_nanos),
    balance_after_usd: formatUsdOrNull(row.balance_after_nanos),
    created_at: row.created_at.toISOString(),
    ref: row.ref,
  };
}

export function webhookEndpointView(row: WebhookEndpointRow): z.infer<typeof WebhookEndpoint> {
  return {
    id: row.id,
    object: 'webhook_endpoint',
    url: row.url,
    events: row.events,
    status: row.status,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

export function webhookDeliveryView(row: DeliveryRow): z.infer<typeof WebhookDelivery> {
  return {
    id: row.id,
    object: 'webhook_delivery',
    endpoint_id: row.endpoint_id,
    event_id: row.event_id,
    event_type: row.event_type,
    status: row.status,
    attempt_count: row.attempt_count,
    next_attempt_at: row.next_attempt_at?.toISOString() ?? null,
    created_at: row.created_at.toISOString(),
    completed_at: row.completed_at?.toISOString() ?? null,
    attempts: row.attempts.map((a, index) => ({
      attempt: index + 1,
      attempted_at: a.attempted_at.toISOString(),
      duration_ms: a.duration_ms,
      status_code: a.status_code,
      error: a.error,
      response_body: a.response_body,
    })),
  };
}

export function autoRechargeView(summary: AutoRechargeSummary): z.infer<typeof AutoRecharge> {
  return {
    ...settingsOf(summary.config),
    recharged_this_month_usd: formatUsd(summary.recharged_this_month_nanos),
  };
}

/**
 * `GET /v1/customers/:id/tier`: the stored tier explained by the table, what was paid, the limits in effect (each
 * override, else the tier's, as the hot path reads them from the wallet) and what the next tier requires.
 */
export function customerTierView(input: {
  customer_id: string;
  table: TierTable;
  stored: { tier: string | null; tier_since: Date | null };
  paid: { lifetime_paid_nanos: bigint; first_payment_at: Date | null };
  wallet: Pick<WalletLimits, 'tier' | 'override'>;
  billing_day_ms: number;
}): z.infer<typeof CustomerTier> {
  const { table, stored, paid } = input;
  const tier = findTier(table, stored.tier);
  const facts = {
    lifetime_paid_nanos: paid.lifetime_paid_nanos,
    first_payment_at_ms: paid.first_payment_at?.getTime() ?? null,
  };
  const next = nextTier(table, stored.tier, facts, input.billing_day_ms);
  const met_at = next?.age_rule_met_at_ms;
  return {
    object: 'customer_tier',
    customer_id: input.customer_id,
    tier: stored.tier,
    tier_name: tier?.name ?? null,
    tier_since: stored.tier_since?.toISOString() ?? null,
    lifetime_paid_usd: formatUsd(paid.lifetime_paid_nanos),
    first_payment_at: paid.first_payment_at?.toISOString() ?? null,
    limits: limitsView(effectiveLimits(input.wallet)),
    tier_limits: limitsView(input.wallet.tier),
    overrides: limitsView(input.wallet.override),
    model_limits: Object.fromEntries(
      Object.entries(tier?.model_limits ?? {}).map(([model, l]) => [
        model,
        { rpm: l.rpm === null ? null : Number(l.rpm), tpm: l.tpm === null ? null : Number(l.tpm) },
      ]),
    ),
    next_tier: next && {
      tier: next.tier.id,
      tier_name: next.tier.name,
      requires: {
        lifetime_paid_usd: formatUsd(next.tier.requires.lifetime_paid_nanos),
        days_since_first_payment: next.tier.requires.days_since_first_payment,
      },
      lifetime_paid_missing_usd: formatUsd(next.lifetime_paid_missing_nanos),
      days_rule_met_at:
        met_at === null || met_at === undefined || !Number.isFinite(met_at)
          ? null
          : new Date(met_at).toISOString(),
    },
  };
}

export function customerGrantView(row: GrantWithStatus): z.infer<typeof CustomerCreditGrant> {
  return {
    id: row.id,
    customer_id: row.customer_id,
    source: row.source,
    funding: PAID_GRANT_SOURCES.includes(row.source) ? 'paid' : 'promotional',
    reason: row.reason,
    status: row.status,
    amount_usd: formatUsd(row.amount_nanos),
    remaining_usd: formatUsd(row.remaining_nanos),
    granted_at: row.granted_at.toISOString(),
    expires_at: row.expires_at?.toISOString() ?? null,
    retired_at: row.retired_at?.toISOString() ?? null,
  };
}

export function grantDebitView(row: GrantDebitRow): z.infer<typeof GrantDebit> {
  return {
    entry_id: `${LEDGER_ENTRY_PREFIX}${row.entry_id}`,
    kind: row.kind,
    ref: row.ref,
    amount_usd: formatUsd(row.amount_nanos),
    created_at: row.created_at.toISOString(),
  };
}

/** A stored contract as the API shows it, each price with the unit it is for. */
export function contractView(contract: StoredContract): z.infer<typeof CustomerContract> {
  const unit = (dimension: string) => meterOf(dimension)?.price_unit ?? 'unit';
  return {
    object: 'customer_contract',
    customer_id: contract.customer_id,
    seat_price_usd: formatUsd(contract.seat_price_nanos),
    price_overrides: contract.price_overrides.map((o) => ({
      model: o.model,
      dimension: o.dimension,
      price_unit: unit(o.dimension),
      unit_price_usd: formatUsd(o.unit_price_nanos),
    })),
    volume_tiers: contract.volume_tiers.map((t) => ({
      model: t.model,
      dimension: t.dimension,
      price_unit: unit(t.dimension),
      tiers: t.tiers.map((tier) => ({
        up_to: tier.up_to === null ? null : Number(tier.up_to),
        unit_price_usd: formatUsd(tier.unit_price_nanos),
      })),
    })),
    version: contract.version,
    updated_at: contract.updated_at.toISOString(),
  };
}

export function reconciliationRunView(row: ReconciliationRunRow): z.infer<typeof ReconciliationRun> {
  return {
    object: 'reconciliation_run',
    id: row.id,
    workflow_id: row.workflow_id,
    status: row.status,
    gateway: row.gateway,
    window_from: row.window_from.toISOString(),
    window_to: row.window_to.toISOString(),
    started_at: row.started_at.toISOString(),
    finished_at: row.finished_at.toISOString(),
    payments_checked: row.payments_checked,
    refunds_checked: row.refunds_checked,
    mismatches: row.mismatches,
    ledger_violations: row.ledger_violations,
  };
}
