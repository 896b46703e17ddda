import fs from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import type { PaymentGateway } from '../payments/payment-gateway';
import { SimulatedGateway } from '../payments/simulated-gateway';
import { createStripeClient, StripeGateway } from '../payments/stripe-gateway';
import type { AccountSettings } from '../billing/account';
import type { ChargeLimits } from '../billing/auto-recharge';
import { usd } from '../billing/money';
import { createDb, type Db } from '../db/connection';
import { createHotPathPool, HotPath } from '../db/hot-path';
import { loadDefaultPriceBook, parsePriceBook, type PriceBook } from '../billing/price-book';
import {
  loadDefaultPlanCatalog,
  parsePlanCatalog,
  PlanCatalogError,
  unknownPlanModels,
  type PlanCatalog,
} from '../billing/plans';
import { loadDefaultTierTable, parseTierTable, TierTableError, type TierTable } from '../billing/tiers';
import { ConfigError, type Config } from './config';

/**
 * Process composition shared by the API, the worker and the dev launcher: one way to build each dependency from
 * the configuration. This room sits below `api/` and `worker/` and imports neither.
 */

export function openDb(config: Pick<Config, 'DATABASE_POOL_MAX'>, databaseUrl: string): Db {
  return createDb({ databaseUrl, pool_max: config.DATABASE_POOL_MAX });
}

export async function connectTemporal(address: string, namespace: string): Promise<Client> {
  const connection = await Connection.connect({ address });
  return new Client({ connection, namespace });
}

/**
 * The payment gateway: Stripe when `STRIPE_SECRET_KEY` is set (at `STRIPE_API_BASE` when that is set too), else the
 * simulated one, which needs no keys and honours Stripe's test payment-method tokens. Stripe's requests time out
 * within a payment activity's timeout, so a hung call is retried by the activity rather than abandoned by it.
 */
export function createGateway(
  config: Pick<Config, 'STRIPE_SECRET_KEY' | 'STRIPE_API_BASE' | 'PAYMENT_ACTIVITY_TIMEOUT_MS'>,
  db: Db,
): PaymentGateway {
  if (config.STRIPE_SECRET_KEY === undefined) return new SimulatedGateway(db);
  const stripe = createStripeClient({
    secret_key: config.STRIPE_SECRET_KEY,
    api_base: config.STRIPE_API_BASE,
    timeout_ms: stripeRequestTimeoutMs(config.PAYMENT_ACTIVITY_TIMEOUT_MS),
  });
  return new StripeGateway(db, stripe);
}

/**
 * One Stripe request's timeout: a charge makes up to four requests (customer, card, attach, PaymentIntent), each
 * retried twice by the client, so each gets a fifth of the activity's time, between 1 s and Stripe's 80 s.
 */
export function stripeRequestTimeoutMs(payment_activity_timeout_ms: number): number {
  return Math.min(80_000, Math.max(1_000, Math.floor(payment_activity_timeout_ms / 5)));
}

/**
 * The account workflows' settings. The API passes them in each account's start input and the worker hands its own to
 * every run at the run's start (a local activity), so a changed value reaches running accounts at their next
 * continue-as-new; the worker's win.
 */
export function accountSettingsFrom(
  config: Pick<
    Config,
    | 'ACTIVITY_TIMEOUT_MS'
    | 'PAYMENT_ACTIVITY_TIMEOUT_MS'
    | 'BILLING_DAY'
    | 'TOP_UP_CREDIT_VALIDITY'
    | 'BILLING_PERIOD'
    | 'DUNNING_RETRY_SCHEDULE'
  >,
): AccountSettings {
  return {
    activity_timeout_ms: config.ACTIVITY_TIMEOUT_MS,
    payment_activity_timeout_ms: config.PAYMENT_ACTIVITY_TIMEOUT_MS,
    billing_day_ms: config.BILLING_DAY,
    top_up_credit_validity: config.TOP_UP_CREDIT_VALIDITY,
    billing_period: config.BILLING_PERIOD,
    dunning_retry_days: config.DUNNING_RETRY_SCHEDULE,
    continue_as_new_after_events: null,
  };
}

/** The intervals of the worker's Temporal Schedules (worker/schedules.ts), on the task queue it polls. */
export function scheduleSettingsFrom(
  config: Pick<
    Config,
    | 'TEMPORAL_TASK_QUEUE'
    | 'HOLD_SWEEP_INTERVAL_MS'
    | 'RECONCILIATION_INTERVAL'
    | 'RECONCILIATION_WINDOW_MARGIN'
    | 'ACCOUNT_WAKE_AFTER'
    | 'ACCOUNT_WAKE_MAX_BACKOFF'
  >,
): {
  task_queue: string;
  hold_sweep_interval_ms: number;
  reconciliation_interval_ms: number;
  reconciliation_window_margin_ms: number;
  /** The sweep's input (workflows/release-expired-holds-workflow.ts `SweepInput`). */
  wake: { overdue_by_ms: number; max_backoff_ms: number };
} {
  return {
    task_queue: config.TEMPORAL_TASK_QUEUE,
    hold_sweep_interval_ms: config.HOLD_SWEEP_INTERVAL_MS,
    wake: { overdue_by_ms: config.ACCOUNT_WAKE_AFTER, max_backoff_ms: config.ACCOUNT_WAKE_MAX_BACKOFF },
    reconciliation_interval_ms: config.RECONCILIATION_INTERVAL,
    reconciliation_window_margin_ms: config.RECONCILIATION_WINDOW_MARGIN,
  };
}

/** The range of one card charge the workers make on their own (an auto-recharge): TOP_UP_MIN_USD..TOP_UP_MAX_USD. */
export function chargeLimitsFrom(config: Pick<Config, 'TOP_UP_MIN_USD' | 'TOP_UP_MAX_USD'>): ChargeLimits {
  return { min_nanos: usd(config.TOP_UP_MIN_USD), max_nanos: usd(config.TOP_UP_MAX_USD) };
}

/** The hot path's own `pg` pool: prepared statements straight through the driver, no query builder. */
export function openHotPath(
  config: Pick<Config, 'HOT_PATH_POOL_MAX' | 'WALLET_FLOOR_USD'>,
  databaseUrl: string,
): HotPath {
  return new HotPath(createHotPathPool({ databaseUrl, pool_max: config.HOT_PATH_POOL_MAX }), {
    wallet_floor_nanos: usd(config.WALLET_FLOOR_USD),
  });
}

/** The bundled price book, or PRICE_BOOK_PATH (one version document or an array of them), validated. */
export function loadPriceBook(config: Pick<Config, 'PRICE_BOOK_PATH'>): PriceBook {
  if (!config.PRICE_BOOK_PATH) return loadDefaultPriceBook();
  return parsePriceBook(JSON.parse(fs.readFileSync(config.PRICE_BOOK_PATH, 'utf8')));
}

/**
 * The spend-tier table: the bundled OpenAI tiers, or TIERS_PATH, validated. The API (new customers' first tier,
 * `GET .../tier`) and the worker (reviews) each load it at startup; a file that is missing, not JSON or not a valid
 * table stops startup with a ConfigError naming TIERS_PATH and each fault.
 */
export function loadTierTable(config: Pick<Config, 'TIERS_PATH'>): TierTable {
  if (!config.TIERS_PATH) return loadDefaultTierTable();
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(config.TIERS_PATH, 'utf8'));
  } catch (error) {
    throw new ConfigError(`TIERS_PATH ${config.TIERS_PATH}: ${(error as Error).message}`);
  }
  try {
    return parseTierTable(json);
  } catch (error) {
    if (error instanceof TierTableError)
      throw new ConfigError(`TIERS_PATH ${config.TIERS_PATH}: ${error.message}`);
    throw error;
  }
}

/**
 * The subscription plan catalog: the bundled billing/plans/default.json, or the file at `path` (`PLANS_PATH`),
 * validated, and every model it names checked against the price book (the bundled one unless given). The API and
 * the worker each load it at startup; a file that is missing, not JSON, not a valid catalog or naming an unpriced
 * model stops startup with a ConfigError naming PLANS_PATH and each fault.
 */
export function loadPlanCatalog(path?: string, priceBook: PriceBook = loadDefaultPriceBook()): PlanCatalog {
  const where = path === undefined ? 'billing/plans/default.json' : `PLANS_PATH ${path}`;
  let catalog: PlanCatalog;
  if (path === undefined) catalog = loadDefaultPlanCatalog();
  else {
    let json: unknown;
    try {
      json = JSON.parse(fs.readFileSync(path, 'utf8'));
    } catch (error) {
      throw new ConfigError(`${where}: ${(error as Error).message}`);
    }
    try {
      catalog = parsePlanCatalog(json);
    } catch (error) {
      if (error instanceof PlanCatalogError) throw new ConfigError(`${where}: ${error.message}`);
      throw error;
    }
  }
  const unknown = unknownPlanModels(catalog, (model) => priceBook.versions.some((v) => v.models.has(model)));
  if (unknown.length > 0) {
    throw new ConfigError(
      `${where}: invalid plan catalog:\n${unknown.map((line) => `  ${line}`).join('\n')}`,
    );
  }
  return catalog;
}
