import {
  type AutoRechargeResult,
  type ChargeLimits,
  decideRecharge,
  disabledReasonOf,
  rechargeIdempotencyKey,
  rechargeIdFor,
} from '../billing/auto-recharge';
import { startOfUtcMonth } from '../billing/durations';
import type { EventRecord } from '../billing/events';
import { formatUsd, usd } from '../billing/money';
import {
  autoRechargeSettingsVersion,
  disableAutoRecharge,
  getAutoRechargeConfig,
  getRecharge,
  rechargedSinceNanos,
  rechargeForCrossing,
  type RechargeRow,
  recordRecharge,
  recordRechargeTrigger,
  settleRecharge,
} from '../db/auto-recharge';
import type { Db } from '../db/connection';
import { getCustomer } from '../db/customers';
import { recordEvent } from '../db/events';
import { grantPaidCredit, lockWallet } from '../db/ledger';
import { rearmRechargeThreshold } from '../db/limits';
import type { PaymentGateway } from '../payments/payment-gateway';
import { type CardChargeResult, chargeCardOnce } from './charge-card';

/**
 * An auto-recharge is three idempotent steps, each keyed by the crossing it answers (never the run id):
 * 1. `startAutoRecharge` decides, under the wallet lock, from the settings, balance, card and this month's recharges
 *    as PostgreSQL has them now, and records the decision (the `auto_recharges` row, unique per crossing): a charge
 *    of a fixed size, or a refusal (its event in the same transaction), or a skip;
 * 2. `chargeAutoRecharge` charges the recorded amount once (idempotency key `auto_recharge:<customer>:<crossing>`);
 * 3. `completeAutoRecharge` grants the paid credit and records the success and its events in one transaction, or
 *    `failAutoRecharge` records the decline, switches auto-recharge off and reports it.
 * A worker killed between any two steps replays into one decision, at most one charge and at most one grant.
 */

export interface RechargeInput {
  customer_id: string;
  crossing_id: string;
}

export type RechargeStart =
  /** A charge of `amount_usd` is decided and not yet settled (also when a retry finds it so). */
  | { status: 'pending'; recharge_id: string; amount_usd: string }
  /** The recharge has its outcome (refused, skipped, or settled by an earlier run): nothing more to do. */
  | { status: 'settled'; result: AutoRechargeResult };

/** The defaults of TOP_UP_MIN_USD and TOP_UP_MAX_USD (wiring/config.ts), for workers built without limits. */
export const DEFAULT_CHARGE_LIMITS: ChargeLimits = { min_nanos: usd('1.00'), max_nanos: usd('10000.00') };

const paymentIdFor = (recharge_id: string): string => `pay_${recharge_id}`;
const grantIdFor = (recharge_id: string): string => `gr_${recharge_id}`;

export function autoRechargeActivities(deps: {
  db: Db;
  gateway: PaymentGateway;
  charge_limits?: ChargeLimits;
}) {
  const limits = deps.charge_limits ?? DEFAULT_CHARGE_LIMITS;
  return {
    async startAutoRecharge(input: RechargeInput): Promise<RechargeStart> {
      const crossing_id = BigInt(input.crossing_id);
      const recharge_id = rechargeIdFor(input.crossing_id);
      return deps.db.transaction(async (trx) => {
        // The wallet lock orders this decision with debits, grants and a concurrent PUT of the settings.
        const wallet = await lockWallet(trx, input.customer_id);
        const existing = await rechargeForCrossing(trx, crossing_id);
        if (existing) return startOf(existing);
        const decided_at = new Date();
        const config = (await getAutoRechargeConfig(trx, input.customer_id)) ?? null;
        const customer = await getCustomer(trx, input.customer_id);
        const decision = decideRecharge({
          config,
          has_payment_method: customer?.payment_method != null,
          available_nanos: wallet.available_nanos,
          recharged_this_month_nanos: await rechargedSinceNanos(
            trx,
            input.customer_id,
            startOfUtcMonth(decided_at),
          ),
          limits,
        });
        const settings_version = (await autoRechargeSettingsVersion(trx, input.customer_id)) ?? null;
        const base = {
          id: recharge_id,
          customer_id: input.customer_id,
          crossing_id,
          decided_at,
          settings_version,
        };
        if (decision.action === 'charge') {
          const { row } = await recordRecharge(trx, {
            ...base,
            amount_nanos: decision.amount_nanos,
            status: 'pending',
            failure_code: null,
            failure_message: null,
          });
          return startOf(row);
        }
        if (decision.action === 'skip') {
          const { row } = await recordRecharge(trx, {
            ...base,
            amount_nanos: 0n,
            status: 'skipped',
            failure_code: decision.reason,
            failure_message: SKIP_MESSAGES[decision.reason],
          });
          // The crossing disarmed the threshold, and the credit that brought the balance back (a released hold, a
          // capture cheaper than its hold) does not re-arm it: armed again here, or no debit would ever cross again.
          if (decision.reason === 'balance_recovered') await rearmRechargeThreshold(trx, input.customer_id);
          return startOf(row);
        }
        const { row } = await recordRecharge(trx, {
          ...base,
          amount_nanos: decision.amount_nanos,
          status: 'failed',
          failure_code: decision.reason,
          failure_message: REFUSAL_MESSAGES[decision.reason],
        });
        if (decision.reason === 'no_payment_method') {
          await disableAutoRecharge(trx, input.customer_id, 'no_payment_method', row);
        }
        await recordEvent(trx, failedEvent(row));
        return startOf(row);
      });
    },

    /**
     * A new UTC month after a `monthly_limit` refusal: if auto-recharge is still on and the available balance still
     * below its threshold, records one `recharge` crossing for `month` (`YYYY-MM`; once per customer and month
     * however often this runs), which the outbox delivers and the account runs like any crossing's recharge.
     * Returns the crossing's id when this call recorded one.
     */
    async queueMonthlyRecharge(input: { customer_id: string; month: string }): Promise<string | null> {
      return deps.db.transaction(async (trx) => {
        await lockWallet(trx, input.customer_id);
        const id = await recordRechargeTrigger(trx, input.customer_id, `month:${input.month}`);
        return id === undefined ? null : id.toString();
      });
    },

    /** Charges the decided amount once; a decline is a value (the next step records it), never retried. */
    async chargeAutoRecharge(input: RechargeInput & { amount_usd: string }): Promise<CardChargeResult> {
      const recharge_id = rechargeIdFor(input.crossing_id);
      return chargeCardOnce(deps, {
        idempotency_key: rechargeIdempotencyKey(input.customer_id, input.crossing_id),
        payment_id: paymentIdFor(recharge_id),
        customer_id: input.customer_id,
        amount_nanos: usd(input.amount_usd),
        description: `Auto-recharge ${recharge_id}`,
      });
    },

    /**
     * Grants the paid credit (`source: auto_recharge`, expiring per TOP_UP_CREDIT_VALIDITY: `credit_validity`, an
     * ISO-8601 duration, or null for never) and records the success with `auto_recharge.succeeded` and
     * `credit.granted`, all in one transaction. A recharge already settled answers its stored outcome.
     */
    async completeAutoRecharge(
      input: RechargeInput & { payment_id: string; credit_validity: string | null },
    ): Promise<AutoRechargeResult> {
      const recharge_id = rechargeIdFor(input.crossing_id);
      const grant_id = grantIdFor(recharge_id);
      await deps.db.transaction(async (trx) => {
        const row = await getRecharge(trx, recharge_id);
        if (!row) throw new Error(`recharge ${recharge_id} was never decided`);
        if (row.status !== 'pending') return;
        // Paid credit: expires `credit_validity` after the grant (db/ledger.ts, grantPaidCredit), which also records
        // `credit.granted` in this transaction.
        const grant = await grantPaidCredit(trx, {
          grant_id,
          customer_id: input.customer_id,
          source: 'auto_recharge',
          amount_nanos: row.amount_nanos,
          reason: `auto-recharge for threshold crossing ${input.crossing_id}`,
          kind: 'auto_recharge',
          ref: recharge_id,
          validity: input.credit_validity,
        });
        if (grant.amount_nanos !== row.amount_nanos) {
          throw new Error(`grant ${grant.id} does not match recharge ${recharge_id}`);
        }
        const settled = await settleRecharge(trx, recharge_id, {
          status: 'succeeded',
          payment_id: input.payment_id,
          grant_id,
        });
        await recordEvent(trx, {
          customer_id: input.customer_id,
          type: 'auto_recharge.succeeded',
          data: {
            recharge_id,
            crossing_id: input.crossing_id,
            amount_usd: formatUsd(settled.amount_nanos),
            grant_id,
            payment_id: input.payment_id,
          },
          occurrence_key: occurrenceKey(recharge_id),
        });
      });
      return resultOf(deps.db, recharge_id);
    },

    /**
     * Records a failed charge: the recharge fails, auto-recharge switches itself off (a decline is never retried:
     * `card_declined: <decline_code>`, and the wallet's recharge threshold is cleared) and `auto_recharge.failed` is
     * sent, in one transaction. A retry after it was recorded changes nothing (a later re-enable stays on).
     */
    async failAutoRecharge(
      input: RechargeInput & {
        payment_id: string;
        failure_code: string;
        decline_code: string | null;
        message: string;
      },
    ): Promise<AutoRechargeResult> {
      const recharge_id = rechargeIdFor(input.crossing_id);
      await deps.db.transaction(async (trx) => {
        await lockWallet(trx, input.customer_id);
        const before = await getRecharge(trx, recharge_id);
        if (!before) throw new Error(`recharge ${recharge_id} was never decided`);
        if (before.status !== 'pending') return;
        const row = await settleRecharge(trx, recharge_id, {
          status: 'failed',
          payment_id: input.payment_id,
          failure_code: input.failure_code,
          decline_code: input.decline_code,
          failure_message: input.message,
        });
        const reason = disabledReasonOf({ ...row, charged: true });
        if (reason !== null) await disableAutoRecharge(trx, input.customer_id, reason, row);
        await recordEvent(trx, failedEvent(row));
      });
      return resultOf(deps.db, recharge_id);
    },
  };
}

const SKIP_MESSAGES = {
  disabled: 'auto-recharge is off',
  balance_recovered: 'the available balance was back at or above the threshold when the recharge ran',
} as const;

const REFUSAL_MESSAGES = {
  monthly_limit: "the recharge would take this month's recharges past monthly_limit_usd",
  no_payment_method: 'the customer has no payment method on file',
} as const;

function occurrenceKey(recharge_id: string): string {
  return `auto_recharge:${recharge_id}`;
}

/** `auto_recharge.failed`: why (`monthly_limit`, `no_payment_method`, `card_declined`), and whether it switched off. */
export function failedEvent(row: RechargeRow): EventRecord {
  const charged = row.payment_id !== null;
  return {
    customer_id: row.customer_id,
    type: 'auto_recharge.failed',
    data: {
      recharge_id: row.id,
      crossing_id: row.crossing_id.toString(),
      amount_usd: formatUsd(row.amount_nanos),
      reason: charged ? 'card_declined' : row.failure_code,
      failure_code: row.failure_code,
      decline_code: row.decline_code,
      message: row.failure_message,
      disabled_reason: disabledReasonOf({ ...row, charged }),
    },
    occurrence_key: occurrenceKey(row.id),
  };
}

function startOf(row: RechargeRow): RechargeStart {
  if (row.status === 'pending') {
    return { status: 'pending', recharge_id: row.id, amount_usd: formatUsd(row.amount_nanos) };
  }
  return { status: 'settled', result: resultFrom(row) };
}

/** The recharge's outcome as stored: the database, not the caller, is the authority on what happened. */
async function resultOf(db: Db, recharge_id: string): Promise<AutoRechargeResult> {
  const row = await getRecharge(db, recharge_id);
  if (!row || row.status === 'pending') throw new Error(`recharge ${recharge_id} is not settled`);
  return resultFrom(row);
}

export function resultFrom(row: RechargeRow): AutoRechargeResult {
  if (row.status === 'pending') throw new Error(`recharge ${row.id} is not settled`);
  return {
    recharge_id: row.id,
    crossing_id: row.crossing_id.toString(),
    status: row.status,
    amount_usd: formatUsd(row.amount_nanos),
    payment_id: row.payment_id,
    grant_id: row.grant_id,
    grant_expires_at: row.grant_expires_at?.toISOString() ?? null,
    failure_code: row.failure_code,
    decline_code: row.decline_code,
    disabled_reason: disabledReasonOf({ ...row, charged: row.payment_id !== null }),
    decided_at: row.decided_at.toISOString(),
  };
}
