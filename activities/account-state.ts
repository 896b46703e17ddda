import type {
  AccountSettings,
  AccountSnapshot,
  Command,
  PendingRequests,
  RefusalCode,
} from '../billing/account';
import { type BudgetState, QUEUE_LIMIT, type ThresholdCrossing } from '../billing/account';
import {
  type AutoRechargeSettings,
  type AutoRechargeState,
  monthlyRetryAfter,
  settingsOf,
  utcMonthOf,
} from '../billing/auto-recharge';
import { startOfUtcMonth } from '../billing/durations';
import { formatUsd, formatUsdOrNull } from '../billing/money';
import { loadAccountFacts, unhandledCrossings } from '../db/account-snapshot';
import {
  disableAutoRecharge,
  getAutoRechargeConfig,
  getRecharge,
  lastRecharge,
  rechargeCounts,
  rechargedSinceNanos,
  settleRecharge,
} from '../db/auto-recharge';
import type { Db } from '../db/connection';
import { readWalletLimits } from '../db/limits';
import { pendingGrantRequests, settleGrantRequest, type GrantRequestRow } from '../db/credit-grant-requests';
import { pendingTopUps, settleTopUp, type TopUpRow } from '../db/top-ups';
import { recordEvent } from '../db/events';
import { lockWallet } from '../db/ledger';
import { failRefund, pendingRefunds, type RefundRow } from '../db/refunds';
import { failedEvent, resultFrom } from './recharge-credits';

/** How many of an account's latest delivered crossings a rebuilt run looks through for ones it never acted on. */
const UNHANDLED_CROSSINGS_WINDOW = 20;

/**
 * The account workflow's reads of the database (its state is a cache of what PostgreSQL stores) and the record of
 * its refusals. Settings come from the worker, so a changed configuration reaches every account at its next run.
 */
export function accountStateActivities(deps: { db: Db; settings?: AccountSettings }) {
  return {
    /** The worker's current account settings (a local activity at run start), or null to keep the start input's. */
    async currentAccountSettings(): Promise<AccountSettings | null> {
      return deps.settings ?? null;
    },

    /** Everything a run without carried state needs to rebuild its state. An unknown customer is an empty account. */
    async loadAccountSnapshot(input: { customer_id: string }): Promise<AccountSnapshot> {
      const facts = await loadAccountFacts(deps.db, input.customer_id, QUEUE_LIMIT);
      if (!facts) {
        return {
          payment_method: null,
          grant_expiries: [],
          lifetime_top_ups_usd: formatUsd(0n),
          top_ups_succeeded: 0,
          top_ups_failed: 0,
          last_crossing: null,
          threshold_crossings: 0,
          pending: { commands: [], more: false },
        };
      }
      return {
        payment_method: facts.payment_method,
        grant_expiries: facts.grant_expiries.map((g) => ({
          grant_id: g.grant_id,
          expires_at: g.expires_at.toISOString(),
        })),
        lifetime_top_ups_usd: formatUsd(facts.top_ups.lifetime_nanos),
        top_ups_succeeded: facts.top_ups.succeeded,
        top_ups_failed: facts.top_ups.failed,
        last_crossing: facts.last_crossing && {
          crossing_id: facts.last_crossing.id.toString(),
          threshold_usd: formatUsd(facts.last_crossing.threshold_nanos),
          balance_usd: formatUsd(facts.last_crossing.balance_after_nanos),
          crossed_at: facts.last_crossing.crossed_at.toISOString(),
        },
        threshold_crossings: facts.threshold_crossings,
        pending: pendingOf(facts.pending_top_ups, facts.pending_grants, QUEUE_LIMIT, facts.pending_refunds),
        auto_recharge: await autoRechargeStateOf(deps.db, input.customer_id),
        budget: await budgetStateOf(deps.db, input.customer_id),
        unhandled_crossings: (
          await unhandledCrossings(deps.db, input.customer_id, UNHANDLED_CROSSINGS_WINDOW)
        ).map((c): ThresholdCrossing => ({
          crossing_id: c.id.toString(),
          kind: c.kind,
          threshold_usd: formatUsd(c.threshold_nanos),
          balance_usd: formatUsd(c.balance_after_nanos),
          ...(c.month_spend_nanos === null ? {} : { month_spend_usd: formatUsd(c.month_spend_nanos) }),
          crossed_at: c.crossed_at.toISOString(),
        })),
      };
    },

    /** The next pending requests, oldest first (the workflow's backlog, read once its queue has drained). */
    async pendingAccountRequests(input: { customer_id: string }): Promise<PendingRequests> {
      const [topUps, grants, refunds] = await Promise.all([
        pendingTopUps(deps.db, input.customer_id, QUEUE_LIMIT),
        pendingGrantRequests(deps.db, input.customer_id, QUEUE_LIMIT),
        pendingRefunds(deps.db, input.customer_id, QUEUE_LIMIT),
      ]);
      return pendingOf(topUps, grants, QUEUE_LIMIT, refunds);
    },

    /**
     * Records that the account refused a request, so the caller waiting on the database hears it. A request that
     * is not recorded (sent to the workflow directly) or already settled is left alone. Answers the auto-recharge
     * settings when this refusal switched auto-recharge off (the account's copy follows); histories recorded before
     * have no answer.
     */
    async refuseAccountRequest(input: {
      command_kind: Command['kind'];
      id: string;
      code: RefusalCode;
      message: string;
      /** Set when the card was charged before the refusal, so the charge can be found and refunded. */
      payment_id?: string | null;
    }): Promise<RefusalAnswer> {
      if (input.command_kind === 'auto_recharge') {
        return {
          auto_recharge: await refuseRecharge(deps.db, { ...input, payment_id: input.payment_id ?? null }),
        };
      } else if (input.command_kind === 'refund') {
        // A claim already posted is given back unless the gateway refunded the card (db/refunds.ts failRefund).
        await failRefund(deps.db, input.id, { code: input.code, message: input.message });
      } else if (input.command_kind === 'top_up') {
        await settleTopUp(deps.db, input.id, {
          status: 'failed',
          payment_id: input.payment_id ?? null,
          failure_code: input.code,
          failure_message: input.message,
        });
      } else {
        await settleGrantRequest(deps.db, input.id, {
          status: 'refused',
          failure_code: input.code,
          failure_message: input.message,
        });
      }
      return { auto_recharge: null };
    },
  };
}

export interface RefusalAnswer {
  /** The auto-recharge settings as this refusal left them, when it switched auto-recharge off; otherwise null. */
  auto_recharge: AutoRechargeSettings | null;
}

/**
 * A recharge the account could not run (no card by the time it charged, a step that can never succeed) fails, in one
 * transaction under the wallet lock. No card on file switches auto-recharge off (as a decision without a card
 * does) and reports `auto_recharge.failed`. A recharge refused before its first step recorded it has no row; one
 * already settled keeps its outcome. Returns the settings when this call switched auto-recharge off.
 */
async function refuseRecharge(
  db: Db,
  input: { id: string; code: RefusalCode; message: string; payment_id: string | null },
): Promise<AutoRechargeSettings | null> {
  return db.transaction(async (trx) => {
    const before = await getRecharge(trx, input.id);
    if (!before || before.status !== 'pending') return null;
    await lockWallet(trx, before.customer_id);
    const row = await settleRecharge(trx, input.id, {
      status: 'failed',
      payment_id: input.payment_id,
      failure_code: input.code,
      decline_code: null,
      failure_message: input.message,
    });
    if (row.status !== 'failed' || row.failure_code !== input.code) return null;
    if (input.code !== 'no_payment_method') return null;
    const switched_off = await disableAutoRecharge(trx, row.customer_id, 'no_payment_method', row);
    await recordEvent(trx, failedEvent(row));
    const config = switched_off ? await getAutoRechargeConfig(trx, row.customer_id) : undefined;
    return config ? settingsOf(config) : null;
  });
}

/** Every kind of pending request as commands in the order they were made, at most `limit`. */
function pendingOf(
  topUps: TopUpRow[],
  grants: GrantRequestRow[],
  limit: number,
  refunds: RefundRow[] = [],
): PendingRequests {
  const commands: { at_ms: number; id: string; command: Command }[] = [
    ...topUps.map((t) => ({
      at_ms: t.created_at.getTime(),
      id: t.id,
      command: {
        kind: 'top_up' as const,
        id: t.id,
        request: { top_up_id: t.id, amount_usd: formatUsd(t.amount_nanos) },
      },
    })),
    ...grants.map((g) => ({
      at_ms: g.created_at.getTime(),
      id: g.id,
      command: {
        kind: 'grant_credit' as const,
        id: g.id,
        request: {
          grant_id: g.id,
          amount_usd: formatUsd(g.amount_nanos),
          source: g.source,
          reason: g.reason ?? '',
          expires_at: g.expires_at?.toISOString() ?? null,
        },
        accepted_at: g.created_at.toISOString(),
      },
    })),
    ...refunds.map((r) => ({
      at_ms: r.created_at.getTime(),
      id: r.id,
      command: { kind: 'refund' as const, id: r.id, request: { refund_id: r.id } },
    })),
  ];
  commands.sort((a, b) => a.at_ms - b.at_ms || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const more =
    topUps.length >= limit || grants.length >= limit || refunds.length >= limit || commands.length > limit;
  return { commands: commands.slice(0, limit).map((c) => c.command), more };
}

/** The auto-recharge part of a rebuilt state: settings, this UTC month's total and the latest settled recharge. */
async function autoRechargeStateOf(db: Db, customer_id: string): Promise<AutoRechargeState | null> {
  const config = await getAutoRechargeConfig(db, customer_id);
  if (!config) return null;
  const now = new Date();
  const [recharged_nanos, counts, last] = await Promise.all([
    rechargedSinceNanos(db, customer_id, startOfUtcMonth(now)),
    rechargeCounts(db, customer_id),
    lastRecharge(db, customer_id),
  ]);
  return {
    settings: settingsOf(config),
    month: utcMonthOf(now.getTime()),
    recharged_this_month_usd: formatUsd(recharged_nanos),
    recharges_succeeded: counts.succeeded,
    recharges_failed: counts.failed,
    last_recharge: last && last.status !== 'pending' ? resultFrom(last) : null,
    // A monthly-limit refusal is asked again at the next month's start (once per month: the database keys it).
    retry_month: last && last.status !== 'pending' ? (monthlyRetryAfter(resultFrom(last)) ?? null) : null,
  };
}

/** The budget as the wallet row holds it (null for an unknown customer). */
async function budgetStateOf(db: Db, customer_id: string): Promise<BudgetState | null> {
  const limits = await readWalletLimits(db, customer_id);
  if (!limits) return null;
  return {
    monthly_alert_usd: formatUsdOrNull(limits.budget.monthly_alert_nanos),
    monthly_limit_usd: formatUsdOrNull(limits.budget.monthly_limit_nanos),
    ...limits.budget_months,
  };
}
