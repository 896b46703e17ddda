import fs from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import pino, { type Logger } from 'pino';
import type { PaymentGateway } from '../activities/payments/payment-gateway';
import { SimulatedGateway } from '../activities/payments/simulated-gateway';
import type { AccountSettings } from '../billing/account';
import { createDb, type Db } from '../db/connection';
import { createHotPathPool, HotPath } from '../db/hot-path';
import { loadDefaultPriceBook, parsePriceBook, type PriceBook } from '../billing/price-book';
import type { AppDeps } from '../api/app';
import { limitsFrom } from '../api/routes/credits';
import type { Config } from './config';

/** Shared wiring of the API and worker processes: one way to build each dependency from the config. */

export function createLogger(config: Pick<Config, 'LOG_LEVEL'>): Logger {
  return pino({ level: config.LOG_LEVEL, base: undefined });
}

export function openDb(config: Pick<Config, 'DATABASE_POOL_MAX'>, databaseUrl: string): Db {
  return createDb({ databaseUrl, pool_max: config.DATABASE_POOL_MAX });
}

export async function connectTemporal(address: string, namespace: string): Promise<Client> {
  const connection = await Connection.connect({ address });
  return new Client({ connection, namespace });
}

/** The simulated gateway until the Stripe gateway lands; it needs no keys and honours Stripe's test tokens. */
export function createGateway(db: Db): PaymentGateway {
  return new SimulatedGateway(db);
}

export function accountSettingsFrom(config: Pick<Config, 'ACTIVITY_TIMEOUT_MS'>): AccountSettings {
  return { activity_timeout_ms: config.ACTIVITY_TIMEOUT_MS, continue_as_new_after_events: null };
}

/** The hot path's own `pg` pool: prepared statements straight through the driver, no query builder. */
export function openHotPath(config: Pick<Config, 'HOT_PATH_POOL_MAX'>, databaseUrl: string): HotPath {
  return new HotPath(createHotPathPool({ databaseUrl, pool_max: config.HOT_PATH_POOL_MAX }));
}

/** The bundled price book, or PRICE_BOOK_PATH (one version document or an array of them), validated. */
export function loadPriceBook(config: Pick<Config, 'PRICE_BOOK_PATH'>): PriceBook {
  if (!config.PRICE_BOOK_PATH) return loadDefaultPriceBook();
  return parsePriceBook(JSON.parse(fs.readFileSync(config.PRICE_BOOK_PATH, 'utf8')));
}

/** Everything the API needs, from the configuration and the already-open connections. */
export function apiDeps(
  config: Config,
  parts: { db: Db; hotPath: HotPath; temporal: Client; logger: Logger; gateway: PaymentGateway },
): AppDeps {
  return {
    ...parts,
    api_keys: config.API_KEYS,
    body_limit_bytes: config.BODY_LIMIT_BYTES,
    accounts: {
      task_queue: config.TEMPORAL_TASK_QUEUE,
      settings: accountSettingsFrom(config),
      wait_timeout_ms: config.UPDATE_WAIT_TIMEOUT_MS,
    },
    limits: limitsFrom(config),
    priceBook: loadPriceBook(config),
    hold_ttl_seconds: config.HOLD_TTL_SECONDS,
    crossing_sweep_interval_ms: config.CROSSING_SWEEP_INTERVAL_MS,
  };
}
