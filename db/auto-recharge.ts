import type { AutoRechargeConfig } from '../billing/auto-recharge';
import { execute, queryRows, type Db } from './connection';
import { setRechargeThreshold } from './limits';

/**
 * Auto-recharge settings (`auto_recharge_settings`) and the recharges made for crossings (`auto_recharges`); see the
 * auto-recharge migration. The settings row is the source of truth; the wallet's recharge threshold, which the hot
 * path compares against, is written from it in the same transaction, so the two never disagree.
 */

export interface RechargeRow {
  id: string;
  customer_id: string;
  crossing_id: bigint;
  amount_nanos: bigint;
  status: 'pending' | 'succeeded' | 'failed' | 'skipped';
  payment_id: string | null;
  grant_id: string | null;
  failure_code: string | null;
  decline_code: string | null;
  failure_message: string | null;
  decided_at: Date;
  /** The settings' version the recharge was decided under; null for recharges decided before versions existed. */
  settings_version: bigint | null;
  settled_at: Date | null;
  /** When the granted credit expires (from the grant), null if it never does or nothing was granted. */
  grant_expires_at: Date | null;
}

/** A recharge with its grant's expiry; callers add the WHERE clause over `r`. */
const SELECT_RECHARGE = `SELECT r.id, r.customer_id, r.crossing_id, r.amount_nanos, r.status, r.payment_id, r.grant_id,
  r.failure_code, r.decline_code, r.failure_message, r.decided_at, r.settings_version, r.settled_at, g.expires_at AS grant_expires_at
  FROM auto_recharges r LEFT JOIN credit_grants g ON g.id = r.grant_id`;

const CONFIG_COLUMNS = `customer_id, enabled, threshold_nanos, amount_nanos, target_balance_nanos, monthly_limit_nanos,
  disabled_reason`;

type ConfigRow = AutoRechargeConfig & { customer_id: string };

function configOf(row: ConfigRow): AutoRechargeConfig {
  const { customer_id: _customer, ...config } = row;
  return config;
}

/**
 * Saves the customer's settings (a PUT replaces them whole, and clears any `disabled_reason`: the customer decided
 * again) and sets the wallet's recharge threshold from them, null when disabled, in one transaction. Returns false
 * for an unknown customer (nothing is written).
 */
export async function saveAutoRechargeSettings(
  db: Db,
  customer_id: string,
  config: Omit<AutoRechargeConfig, 'disabled_reason'>,
): Promise<boolean> {
  return db.transaction(async (trx) => {
    // The wallet update first: it answers whether the customer exists, and takes the wallet's row lock, which
    // orders this save after a recharge step that is disabling auto-recharge under the same lock.
    const known = await setRechargeThreshold(
      trx,
      customer_id,
      config.enabled ? config.threshold_nanos : null,
    );
    if (!known) return false;
    const [before] = await queryRows<{ enabled: boolean }>(
      trx,
      `SELECT enabled FROM auto_recharge_settings WHERE customer_id = ?`,
      [customer_id],
    );
    const [saved] = await queryRows<{ version: bigint }>(
      trx,
      `INSERT INTO auto_recharge_settings (customer_id, enabled, threshold_nanos, amount_nanos, target_balance_nanos,
         monthly_limit_nanos, disabled_reason, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, NULL, now())
       ON CONFLICT (customer_id) DO UPDATE SET enabled = excluded.enabled, threshold_nanos = excluded.threshold_nanos,
         amount_nanos = excluded.amount_nanos, target_balance_nanos = excluded.target_balance_nanos,
         monthly_limit_nanos = excluded.monthly_limit_nanos, disabled_reason = NULL, updated_at = now(),
         version = auto_recharge_settings.version + 1
       RETURNING version`,
      [
        customer_id,
        config.enabled,
        config.threshold_nanos,
        config.amount_nanos,
        config.target_balance_nanos,
        config.monthly_limit_nanos,
      ],
    );
    // Switching it on (from off, or from never set) while the balance is already below the threshold is the
    // customer's decision to recharge now: one `recharge` crossing for this save (no debit will make one: the
    // threshold is disarmed below it). Saving settings that were on already queues nothing.
    if (config.enabled && !before?.enabled) {
      await recordRechargeTrigger(trx, customer_id, `enable:${saved!.version}`);
    }
    return true;
  });
}

/**
 * Records a `recharge` crossing that no debit made (`trigger_key`: why, once per customer and key), if the wallet's
 * available balance is below its recharge threshold (so never while auto-recharge is off: the threshold is null).
 * The outbox delivers it like any other crossing and the account workflow runs its recharge, which decides afresh.
 * The caller holds the wallet's row lock. Returns the crossing's id when this call recorded it.
 */
export async function recordRechargeTrigger(
  db: Db,
  customer_id: string,
  trigger_key: string,
): Promise<bigint | undefined> {
  const [row] = await queryRows<{ id: bigint }>(
    db,
    `INSERT INTO threshold_crossings (customer_id, kind, threshold_nanos, balance_after_nanos, trigger_key)
     SELECT customer_id, 'recharge', recharge_threshold_nanos, available_nanos, ? FROM wallets
     WHERE customer_id = ? AND below_threshold(recharge_threshold_nanos, available_nanos)
     ON CONFLICT (customer_id, trigger_key) WHERE trigger_key IS NOT NULL DO NOTHING
     RETURNING id`,
    [trigger_key, customer_id],
  );
  return row?.id;
}

/** The version of the customer's settings (each save adds one); undefined when it never set any. */
export async function autoRechargeSettingsVersion(db: Db, customer_id: string): Promise<bigint | undefined> {
  const [row] = await queryRows<{ version: bigint }>(
    db,
    `SELECT version FROM auto_recharge_settings WHERE customer_id = ?`,
    [customer_id],
  );
  return row?.version;
}

/** The customer's settings; undefined when it never set any. */
export async function getAutoRechargeConfig(
  db: Db,
  customer_id: string,
): Promise<AutoRechargeConfig | undefined> {
  const [row] = await queryRows<ConfigRow>(
    db,
    `SELECT ${CONFIG_COLUMNS} FROM auto_recharge_settings WHERE customer_id = ?`,
    [customer_id],
  );
  return row && configOf(row);
}

/** What the API shows of each customer's auto-recharge: its settings and what succeeded since `month_start`. */
export interface AutoRechargeSummary {
  config: AutoRechargeConfig;
  recharged_this_month_nanos: bigint;
}

/** The summaries of several customers in one statement (a page of customers); customers without settings are absent. */
export async function autoRechargeSummaries(
  db: Db,
  customer_ids: readonly string[],
  month_start: Date,
): Promise<Map<string, AutoRechargeSummary>> {
  if (customer_ids.length === 0) return new Map();
  const rows = await queryRows<ConfigRow & { recharged_nanos: bigint }>(
    db,
    `SELECT ${CONFIG_COLUMNS.replaceAll('customer_id', 's.customer_id')},
       COALESCE((SELECT sum(r.amount_nanos) FROM auto_recharges r
                 WHERE r.customer_id = s.customer_id AND r.status = 'succeeded' AND r.decided_at >= ?), 0)::bigint
         AS recharged_nanos
     FROM auto_recharge_settings s WHERE s.customer_id = ANY(?::text[])`,
    [month_start, pgTextArray(customer_ids)],
  );
  return new Map(
    rows.map(({ recharged_nanos, ...row }) => [
      row.customer_id,
      { config: configOf(row), recharged_this_month_nanos: recharged_nanos },
    ]),
  );
}

/** Sum of the customer's succeeded recharges decided at or after `since` (the start of the UTC month). */
export async function rechargedSinceNanos(db: Db, customer_id: string, since: Date): Promise<bigint> {
  const [row] = await queryRows<{ total: bigint }>(
    db,
    `SELECT COALESCE(sum(amount_nanos), 0)::bigint AS total FROM auto_recharges
     WHERE customer_id = ? AND status = 'succeeded' AND decided_at >= ?`,
    [customer_id, since],
  );
  return row?.total ?? 0n;
}

/**
 * Records the decision for a crossing. The first decision wins: a second call for the same crossing (a retried
 * step, a redelivered crossing) writes nothing and returns the stored row, whatever it says.
 */
export async function recordRecharge(
  db: Db,
  row: Omit<RechargeRow, 'settled_at' | 'payment_id' | 'grant_id' | 'decline_code' | 'grant_expires_at'>,
): Promise<{ row: RechargeRow; created: boolean }> {
  const inserted = await execute(
    db,
    `INSERT INTO auto_recharges (id, customer_id, crossing_id, amount_nanos, status, failure_code, failure_message,
       decided_at, settings_version, settled_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, CASE WHEN ? = 'pending' THEN NULL ELSE now() END)
     ON CONFLICT (crossing_id) DO NOTHING`,
    [
      row.id,
      row.customer_id,
      row.crossing_id,
      row.amount_nanos,
      row.status,
      row.failure_code,
      row.failure_message,
      row.decided_at,
      row.settings_version,
      row.status,
    ],
  );
  const stored = await rechargeForCrossing(db, row.crossing_id);
  if (!stored) throw new Error(`recharge for crossing ${row.crossing_id} vanished after insert`);
  return { row: stored, created: inserted === 1 };
}

export async function rechargeForCrossing(db: Db, crossing_id: bigint): Promise<RechargeRow | undefined> {
  const [row] = await queryRows<RechargeRow>(db, `${SELECT_RECHARGE} WHERE r.crossing_id = ?`, [crossing_id]);
  return row;
}

export async function getRecharge(db: Db, id: string): Promise<RechargeRow | undefined> {
  const [row] = await queryRows<RechargeRow>(db, `${SELECT_RECHARGE} WHERE r.id = ?`, [id]);
  return row;
}

/** The customer's latest recharge, for the workflow's rebuilt state. */
export async function lastRecharge(db: Db, customer_id: string): Promise<RechargeRow | undefined> {
  const [row] = await queryRows<RechargeRow>(
    db,
    `${SELECT_RECHARGE} WHERE r.customer_id = ? ORDER BY r.crossing_id DESC LIMIT 1`,
    [customer_id],
  );
  return row;
}

/** How many of the customer's recharges succeeded and failed, over the account's life. */
export async function rechargeCounts(
  db: Db,
  customer_id: string,
): Promise<{ succeeded: number; failed: number }> {
  const [row] = await queryRows<{ succeeded: number; failed: number }>(
    db,
    `SELECT count(*) FILTER (WHERE status = 'succeeded')::int AS succeeded,
            count(*) FILTER (WHERE status = 'failed')::int AS failed
     FROM auto_recharges WHERE customer_id = ?`,
    [customer_id],
  );
  return row ?? { succeeded: 0, failed: 0 };
}

export type RechargeOutcome =
  | { status: 'succeeded'; payment_id: string; grant_id: string }
  | {
      status: 'failed';
      payment_id: string | null;
      failure_code: string;
      decline_code: string | null;
      failure_message: string | null;
    };

/**
 * Moves a pending recharge to its outcome; one already settled keeps its first outcome (the update is conditional on
 * `pending`). Returns the row as stored.
 */
export async function settleRecharge(db: Db, id: string, outcome: RechargeOutcome): Promise<RechargeRow> {
  const failed = outcome.status === 'failed' ? outcome : null;
  await execute(
    db,
    `UPDATE auto_recharges SET status = ?, payment_id = ?, grant_id = ?, failure_code = ?, decline_code = ?,
       failure_message = ?, settled_at = now()
     WHERE id = ? AND status = 'pending'`,
    [
      outcome.status,
      outcome.payment_id,
      outcome.status === 'succeeded' ? outcome.grant_id : null,
      failed?.failure_code ?? null,
      failed?.decline_code ?? null,
      failed?.failure_message ?? null,
      id,
    ],
  );
  const row = await getRecharge(db, id);
  if (!row) throw new Error(`recharge ${id} does not exist`);
  return row;
}

/**
 * Switches auto-recharge off by itself (a declined card, no card on file) and says why; the wallet's recharge
 * threshold is cleared so that the hot path records no more recharge crossings. Only settings as they were when the
 * recharge was decided are switched off: a re-enable (a new save) meanwhile is the customer's newer decision and
 * stays (recharges decided before versions existed compare `decided_at` with `updated_at`). Returns false if nothing
 * was switched off.
 */
export async function disableAutoRecharge(
  db: Db,
  customer_id: string,
  reason: string,
  /** The recharge whose failure this is: settings the customer saved after its decision are left as they are. */
  decided_under: Pick<RechargeRow, 'settings_version' | 'decided_at'>,
): Promise<boolean> {
  const changed = await execute(
    db,
    `UPDATE auto_recharge_settings SET enabled = false, disabled_reason = ?, updated_at = now(),
       version = version + 1
     WHERE customer_id = ? AND enabled
       AND CASE WHEN ?::bigint IS NULL THEN updated_at <= ? ELSE version <= ?::bigint END`,
    [
      reason,
      customer_id,
      decided_under.settings_version,
      decided_under.decided_at,
      decided_under.settings_version,
    ],
  );
  if (changed === 1) await setRechargeThreshold(db, customer_id, null);
  return changed === 1;
}

/** A PostgreSQL text[] literal: one binding whatever the count, each element quoted and escaped. */
function pgTextArray(values: readonly string[]): string {
  return `{${values.map((v) => `"${v.replace(/["\\]/g, (c) => `\\${c}`)}"`).join(',')}}`;
}
