import { queryRows, type Db } from './connection';
import { MONTH_SPEND_SQL, rearmBalanceThreshold, setBalanceThreshold } from './postings';

/**
 * What the authorization statement enforces besides the balance, all on the wallet row (see the lifecycle
 * migration): the budget the customer set, the limits of its tier as the account workflow last set them, the
 * operator's overrides, and this month's spend. The hot path only reads these columns; they are written here.
 *
 * Limits in effect: the rate limits are the override, else the tier's; the monthly usage limit is the override,
 * else the tier's; the budget limit is separate (a customer's own cap), and an authorization must fit under both.
 * null is "no limit".
 */

export interface Limits {
  rpm: bigint | null;
  tpm: bigint | null;
  monthly_usage_limit_nanos: bigint | null;
}

export interface Budget {
  monthly_alert_nanos: bigint | null;
  monthly_limit_nanos: bigint | null;
}

/** The UTC months (`YYYY-MM`) in which the budget's alert and its limit last fired. */
export interface BudgetMonths {
  alert_fired_month: string | null;
  limit_reached_month: string | null;
}

export interface WalletLimits {
  tier: Limits;
  override: Limits;
  budget: Budget;
  budget_months: BudgetMonths;
  /** Spend (captures and usage) in the current UTC month, as of the wallet's last movement. */
  spent_this_month_nanos: bigint;
  /** Holds open now; they count against the budget too. */
  held_nanos: bigint;
}

/** The auto-recharge threshold, armed by the same rule as the low-balance one (see `setBalanceThreshold`). */
export const setRechargeThreshold = (db: Db, customer_id: string, threshold_nanos: bigint | null) =>
  setBalanceThreshold(db, customer_id, 'recharge', threshold_nanos);

/** Re-arms the auto-recharge threshold from the balance as it is now (see `rearmBalanceThreshold`). */
export const rearmRechargeThreshold = (db: Db, customer_id: string) =>
  rearmBalanceThreshold(db, customer_id, 'recharge');

/** The tier's limits, written by the account workflow when the tier changes. Returns false for an unknown customer. */
export async function setTierLimits(db: Db, customer_id: string, limits: Limits): Promise<boolean> {
  const rows = await queryRows<{ customer_id: string }>(
    db,
    `UPDATE wallets SET tier_rpm = ?::bigint, tier_tpm = ?::bigint, tier_usage_limit_nanos = ?::bigint
     WHERE customer_id = ? RETURNING customer_id`,
    [limits.rpm, limits.tpm, limits.monthly_usage_limit_nanos, customer_id],
  );
  return rows.length === 1;
}

/**
 * The operator's overrides: a value replaces the tier's, null goes back to the tier's, undefined leaves the current
 * override as it is. Returns false for an unknown customer.
 */
export async function setLimitOverrides(
  db: Db,
  customer_id: string,
  overrides: Partial<Limits>,
): Promise<boolean> {
  const sets: string[] = [];
  const values: (bigint | null | string)[] = [];
  const column = {
    rpm: 'override_rpm',
    tpm: 'override_tpm',
    monthly_usage_limit_nanos: 'override_usage_limit_nanos',
  };
  for (const key of Object.keys(column) as (keyof Limits)[]) {
    if (overrides[key] === undefined) continue;
    sets.push(`${column[key]} = ?::bigint`);
    values.push(overrides[key]);
  }
  // A full bucket under the new rates: the next request is judged by them, not by what was left under the old ones.
  // The hot path reads a null bucket as full; a null refill time alone counts as no time elapsed (GREATEST skips a
  // null), which kept the old, emptied bucket.
  const assignments = [...sets, 'rate_requests = NULL', 'rate_tokens = NULL', 'rate_refilled_at = NULL'].join(
    ', ',
  );
  const rows = await queryRows<{ customer_id: string }>(
    db,
    `UPDATE wallets SET ${assignments} WHERE customer_id = ? RETURNING customer_id`,
    [...values, customer_id],
  );
  return rows.length === 1;
}

/**
 * Sets the budget: undefined leaves a part as it is, null clears it. A limit or alert raised above this month's spend
 * fires again when spend reaches it (`budget.limit_reached` / `budget.alert` once per value per month); one at or
 * below the spend has been reached already and does not fire again this month. Returns false for an unknown customer.
 */
export async function setBudget(db: Db, customer_id: string, budget: Partial<Budget>): Promise<boolean> {
  const spend = MONTH_SPEND_SQL;
  const sets: string[] = [];
  const values: (bigint | null)[] = [];
  if (budget.monthly_alert_nanos !== undefined) {
    sets.push(
      `budget_alert_nanos = ?::bigint`,
      `budget_alert_month = CASE WHEN ?::bigint > ${spend} THEN NULL ELSE budget_alert_month END`,
    );
    values.push(budget.monthly_alert_nanos, budget.monthly_alert_nanos);
  }
  if (budget.monthly_limit_nanos !== undefined) {
    sets.push(
      `budget_limit_nanos = ?::bigint`,
      `budget_limit_month = CASE WHEN ?::bigint > ${spend} THEN NULL ELSE budget_limit_month END`,
    );
    values.push(budget.monthly_limit_nanos, budget.monthly_limit_nanos);
  }
  if (sets.length === 0) sets.push('customer_id = customer_id');
  const rows = await queryRows<{ customer_id: string }>(
    db,
    `UPDATE wallets SET ${sets.join(', ')} WHERE customer_id = ? RETURNING customer_id`,
    [...values, customer_id],
  );
  return rows.length === 1;
}

/** The wallet's limits, budget and this month's spend; undefined for an unknown customer. */
export async function readWalletLimits(db: Db, customer_id: string): Promise<WalletLimits | undefined> {
  const [row] = await queryRows<{
    tier_rpm: bigint | null;
    tier_tpm: bigint | null;
    tier_usage_limit_nanos: bigint | null;
    override_rpm: bigint | null;
    override_tpm: bigint | null;
    override_usage_limit_nanos: bigint | null;
    budget_alert_nanos: bigint | null;
    budget_limit_nanos: bigint | null;
    alert_fired_month: string | null;
    limit_reached_month: string | null;
    spent_this_month_nanos: bigint;
    held_nanos: bigint;
  }>(
    db,
    `SELECT tier_rpm, tier_tpm, tier_usage_limit_nanos, override_rpm, override_tpm, override_usage_limit_nanos,
       budget_alert_nanos, budget_limit_nanos, held_nanos,
       to_char(budget_alert_month, 'YYYY-MM') AS alert_fired_month,
       to_char(budget_limit_month, 'YYYY-MM') AS limit_reached_month,
       ${MONTH_SPEND_SQL} AS spent_this_month_nanos
     FROM wallets WHERE customer_id = ?`,
    [customer_id],
  );
  if (!row) return undefined;
  return {
    tier: { rpm: row.tier_rpm, tpm: row.tier_tpm, monthly_usage_limit_nanos: row.tier_usage_limit_nanos },
    override: {
      rpm: row.override_rpm,
      tpm: row.override_tpm,
      monthly_usage_limit_nanos: row.override_usage_limit_nanos,
    },
    budget: { monthly_alert_nanos: row.budget_alert_nanos, monthly_limit_nanos: row.budget_limit_nanos },
    budget_months: { alert_fired_month: row.alert_fired_month, limit_reached_month: row.limit_reached_month },
    spent_this_month_nanos: row.spent_this_month_nanos,
    held_nanos: row.held_nanos,
  };
}

/** The limits in effect: each override, else the tier's. */
export function effectiveLimits(limits: Pick<WalletLimits, 'tier' | 'override'>): Limits {
  return {
    rpm: limits.override.rpm ?? limits.tier.rpm,
    tpm: limits.override.tpm ?? limits.tier.tpm,
    monthly_usage_limit_nanos:
      limits.override.monthly_usage_limit_nanos ?? limits.tier.monthly_usage_limit_nanos,
  };
}
