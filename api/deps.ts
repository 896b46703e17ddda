import type { Client } from '@temporalio/client';
import type { Logger } from 'pino';
import type { Db } from '../db/connection';
import type { HotPath } from '../db/hot-path';
import type { PaymentGateway } from '../payments/payment-gateway';
import type { Config } from '../wiring/config';
import type { PlanCatalog } from '../billing/plans';
import type { TierTable } from '../billing/tiers';
import { accountSettingsFrom, loadPriceBook } from '../wiring/runtime';
import type { AppDeps } from './app';
import { limitsFrom } from './routes/credits';

/**
 * Everything the API needs, from the configuration, the already-open connections and the tier table and plan
 * catalog loaded at startup.
 */
export function apiDeps(
  config: Config,
  parts: {
    db: Db;
    hotPath: HotPath;
    temporal: Client;
    logger: Logger;
    gateway: PaymentGateway;
    tiers: TierTable;
    plans: PlanCatalog;
  },
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
    ...(config.STRIPE_WEBHOOK_SECRET === undefined
      ? {}
      : {
          stripe_webhook: {
            secret: config.STRIPE_WEBHOOK_SECRET,
            tolerance_s: config.STRIPE_WEBHOOK_TOLERANCE_S,
          },
        }),
    reconciliation: {
      interval_ms: config.RECONCILIATION_INTERVAL,
      margin_ms: config.RECONCILIATION_WINDOW_MARGIN,
    },
  };
}
