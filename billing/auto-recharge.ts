import { startOfNextUtcMonth, startOfUtcMonth } from './durations';
import { decodeUsd, formatUsd, formatUsdOrNull, maxBigint, minBigint, NANOS_PER_CENT } from './money';

/**
 * Auto-recharge: when a debit takes the available balance below the customer's recharge threshold (one `recharge`
 * crossing, fired once per crossing by the hot path), the account workflow charges the saved card once for that
 * crossing and grants the credit. These are the pure rules: how much to charge, whether this month's cap allows it,
 * and what the workflow remembers about it. Money is bigint nanos here, USD strings in workflow state.
 */

/** The settings as stored (db/auto-recharge.ts): exactly one of `amount_nanos` and `target_balance_nanos` is set. */
export interface AutoRechargeConfig {
  enabled: boolean;
  threshold_nanos: bigint;
  /** A fixed charge per recharge (whole cents). */
  amount_nanos: bigint | null;
  /** Or: bring the available balance back up to this (the charge is the whole shortfall, rounded up to cents). */
  target_balance_nanos: bigint | null;
  /** At most this much recharged per UTC calendar month (succeeded charges); null is no cap. */
  monthly_limit_nanos: bigint | null;
  /** Why auto-recharge switched itself off (`card_declined: <code>`, `no_payment_method`); null while it has not. */
  disabled_reason: string | null;
}

/** The settings in workflow state, signals and the API: USD decimal strings. */
export interface AutoRechargeSettings {
  enabled: boolean;
  threshold_usd: string;
  amount_usd: string | null;
  target_balance_usd: string | null;
  monthly_limit_usd: string | null;
  disabled_reason: string | null;
}

/** The configured range of one card charge (TOP_UP_MIN_USD..TOP_UP_MAX_USD), whole cents. */
export interface ChargeLimits {
  min_nanos: bigint;
  max_nanos: bigint;
}

export function settingsOf(config: AutoRechargeConfig): AutoRechargeSettings {
  return {
    enabled: config.enabled,
    threshold_usd: formatUsd(config.threshold_nanos),
    amount_usd: formatUsdOrNull(config.amount_nanos),
    target_balance_usd: formatUsdOrNull(config.target_balance_nanos),
    monthly_limit_usd: formatUsdOrNull(config.monthly_limit_nanos),
    disabled_reason: config.disabled_reason,
  };
}

/** Rounds a non-negative amount up to whole cents (a card is charged in cents; a shortfall is never under-filled). */
export function roundUpToCents(nanos: bigint): bigint {
  if (nanos <= 0n) return 0n;
  return ((nanos + NANOS_PER_CENT - 1n) / NANOS_PER_CENT) * NANOS_PER_CENT;
}

/**
 * The charge of one recharge, in whole cents within `limits`: the fixed amount, or the shortfall from `available_nanos`
 * to the target rounded up to cents. Raised to the minimum top-up (a card charge below it is not made) and capped at
 * the maximum (a wallet deep below zero is not refilled by one unbounded charge). Both ends are whole cents, so the
 * result is too.
 */
export function rechargeAmountNanos(
  config: Pick<AutoRechargeConfig, 'amount_nanos' | 'target_balance_nanos'>,
  available_nanos: bigint,
  limits: ChargeLimits,
): bigint {
  const wanted =
    config.amount_nanos !== null
      ? config.amount_nanos
      : roundUpToCents((config.target_balance_nanos ?? 0n) - available_nanos);
  return minBigint(limits.max_nanos, maxBigint(limits.min_nanos, wanted));
}

/** Whether a charge of `amount_nanos` fits under the monthly cap, given what succeeded this UTC month. */
export function withinMonthlyLimit(
  monthly_limit_nanos: bigint | null,
  recharged_this_month_nanos: bigint,
  amount_nanos: bigint,
): boolean {
  return monthly_limit_nanos === null || recharged_this_month_nanos + amount_nanos <= monthly_limit_nanos;
}

/** Why a recharge did not charge: refusals are reported (`auto_recharge.failed`), skips are not. */
export type RechargeRefusal = 'monthly_limit' | 'no_payment_method';
export type RechargeSkip = 'disabled' | 'balance_recovered';

export type RechargeDecision =
  | { action: 'charge'; amount_nanos: bigint }
  /** Nothing is charged; `auto_recharge.failed` is sent. `no_payment_method` also switches auto-recharge off. */
  | { action: 'refuse'; reason: RechargeRefusal; amount_nanos: bigint }
  /** Nothing is charged and nothing is sent: the crossing no longer calls for a recharge. */
  | { action: 'skip'; reason: RechargeSkip };

/**
 * What to do with one `recharge` crossing when its turn comes, from the database's facts at that moment:
 * - auto-recharge is off (or was never set): skip;
 * - the available balance is back at or above the threshold (a top-up ran first): skip, nothing to refill;
 * - no card on file: refuse (and the caller switches auto-recharge off: it cannot work until a card is saved);
 * - this month's succeeded recharges plus this charge would pass the monthly limit: refuse, stay enabled;
 * - otherwise charge `rechargeAmountNanos`.
 */
export function decideRecharge(input: {
  config: AutoRechargeConfig | null;
  has_payment_method: boolean;
  available_nanos: bigint;
  recharged_this_month_nanos: bigint;
  limits: ChargeLimits;
}): RechargeDecision {
  const { config } = input;
  if (!config?.enabled) return { action: 'skip', reason: 'disabled' };
  if (input.available_nanos >= config.threshold_nanos) return { action: 'skip', reason: 'balance_recovered' };
  const amount_nanos = rechargeAmountNanos(config, input.available_nanos, input.limits);
  if (!input.has_payment_method) return { action: 'refuse', reason: 'no_payment_method', amount_nanos };
  if (!withinMonthlyLimit(config.monthly_limit_nanos, input.recharged_this_month_nanos, amount_nanos)) {
    return { action: 'refuse', reason: 'monthly_limit', amount_nanos };
  }
  return { action: 'charge', amount_nanos };
}

/** `YYYY-MM` of the UTC calendar month containing `at_ms`: the unit of the monthly limit. */
export function utcMonthOf(at_ms: number): string {
  return startOfUtcMonth(new Date(at_ms)).toISOString().slice(0, 7);
}

/** The id of the recharge for a crossing: one crossing, one recharge, whoever runs it and however often. */
export function rechargeIdFor(crossing_id: string): string {
  return `ar_${crossing_id}`;
}

/** The gateway idempotency key of a crossing's charge (also the key of its `payments` record). */
export function rechargeIdempotencyKey(customer_id: string, crossing_id: string): string {
  return `auto_recharge:${customer_id}:${crossing_id}`;
}

/** The outcome of one recharge, as the activities answer it and the workflow remembers it. */
export interface AutoRechargeResult {
  recharge_id: string;
  crossing_id: string;
  status: 'succeeded' | 'failed' | 'skipped';
  /** The charge (or the charge that was refused); `0.000000000` for a skip. */
  amount_usd: string;
  payment_id: string | null;
  grant_id: string | null;
  /** When the granted credit expires (ISO-8601), null if it never does or nothing was granted. */
  grant_expires_at: string | null;
  /** `monthly_limit`, `no_payment_method`, the gateway's failure code (`card_declined`, ...), or the skip reason. */
  failure_code: string | null;
  decline_code: string | null;
  /** Set when this outcome switched auto-recharge off, and why (shown on the customer). */
  disabled_reason: string | null;
  /** When the recharge was decided (ISO-8601): its UTC month is the month it counts against. */
  decided_at: string;
}

/** The reason auto-recharge switches itself off after a failed charge: never retry a decline. */
export function disabledReasonFor(failure_code: string, decline_code: string | null): string {
  return decline_code === null ? failure_code : `${failure_code}: ${decline_code}`;
}

/** What the account workflow keeps about auto-recharge (a cache of PostgreSQL, shown by the state query). */
export interface AutoRechargeState {
  settings: AutoRechargeSettings | null;
  /** The UTC month (`YYYY-MM`) `recharged_this_month_usd` counts. */
  month: string | null;
  recharged_this_month_usd: string;
  recharges_succeeded: number;
  recharges_failed: number;
  last_recharge: AutoRechargeResult | null;
  /**
   * After a `monthly_limit` refusal: the UTC month (`YYYY-MM`) at whose start the account asks once more (a durable
   * timer), if auto-recharge is still on and the balance still below the threshold. Absent in older runs' state.
   */
  retry_month?: string | null;
}

export function initialAutoRechargeState(): AutoRechargeState {
  return {
    settings: null,
    month: null,
    recharged_this_month_usd: formatUsd(0n),
    recharges_succeeded: 0,
    recharges_failed: 0,
    last_recharge: null,
  };
}

/** The settings changed (the API saved them and signalled): the workflow's copy follows. */
export function applyRechargeSettings(
  state: AutoRechargeState | null | undefined,
  settings: AutoRechargeSettings | null,
): AutoRechargeState {
  return { ...(state ?? initialAutoRechargeState()), settings };
}

/**
 * Counts one recharge's outcome: a success adds to its month's total (a new month starts again from zero), and an
 * outcome that switched auto-recharge off turns the cached settings off with its reason.
 */
export function applyRechargeResult(
  state: AutoRechargeState | null | undefined,
  result: AutoRechargeResult,
): AutoRechargeState {
  const current = state ?? initialAutoRechargeState();
  const month = utcMonthOf(Date.parse(result.decided_at));
  const base_nanos = current.month === month ? decodeUsd(current.recharged_this_month_usd) : 0n;
  const succeeded = result.status === 'succeeded';
  const settings =
    result.disabled_reason !== null && current.settings
      ? { ...current.settings, enabled: false, disabled_reason: result.disabled_reason }
      : current.settings;
  const retry_month = monthlyRetryAfter(result) ?? current.retry_month;
  return {
    settings,
    month,
    recharged_this_month_usd: formatUsd(base_nanos + (succeeded ? decodeUsd(result.amount_usd) : 0n)),
    recharges_succeeded: current.recharges_succeeded + (succeeded ? 1 : 0),
    recharges_failed: current.recharges_failed + (result.status === 'failed' ? 1 : 0),
    last_recharge: result,
    ...(retry_month === undefined ? {} : { retry_month }),
  };
}

/**
 * The month to ask again in after a recharge refused for `monthly_limit`: the UTC month after the one it was decided
 * in (the limit counts that month). Any other outcome: undefined (no retry; a decline is never retried).
 */
export function monthlyRetryAfter(
  result: Pick<AutoRechargeResult, 'status' | 'failure_code' | 'decided_at'>,
): string | undefined {
  if (result.status !== 'failed' || result.failure_code !== 'monthly_limit') return undefined;
  return utcMonthOf(startOfNextUtcMonth(new Date(Date.parse(result.decided_at))).getTime());
}

/** Milliseconds from `now_ms` until the retry month starts (0 once it has); undefined when no retry is due. */
export function msUntilMonthlyRetry(
  state: AutoRechargeState | null | undefined,
  now_ms: number,
): number | undefined {
  const month = state?.retry_month;
  if (!month) return undefined;
  return Math.max(0, Date.parse(`${month}-01T00:00:00.000Z`) - now_ms);
}

/** The retry for `month` was asked (the database decides whether it recharges): the account forgets it. */
export function clearMonthlyRetry(state: AutoRechargeState, month: string): AutoRechargeState {
  return state.retry_month === month ? { ...state, retry_month: null } : state;
}

/**
 * Whether a recharge's outcome switched auto-recharge off, and why: a failed card charge (a decline is never
 * retried: `card_declined: <decline_code>`) or no card on file. A monthly-limit refusal or a skip leaves it on.
 */
export function disabledReasonOf(outcome: {
  /** Also a recharge's stored status, `pending` included (not switched off yet). */
  status: AutoRechargeResult['status'] | 'pending';
  failure_code: string | null;
  decline_code: string | null;
  /** Whether the card was charged (a payment was recorded), i.e. the failure is the card's. */
  charged: boolean;
}): string | null {
  if (outcome.status !== 'failed') return null;
  if (outcome.failure_code === 'no_payment_method') return 'no_payment_method';
  if (!outcome.charged) return null;
  return disabledReasonFor('card_declined', outcome.decline_code ?? outcome.failure_code);
}
