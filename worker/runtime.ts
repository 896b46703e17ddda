import { Client, Connection } from '@temporalio/client';
import pino, { type Logger } from 'pino';
import type { PaymentGateway } from '../activities/payments/payment-gateway';
import { SimulatedGateway } from '../activities/payments/simulated-gateway';
import type { AccountSettings } from '../billing/account';
import { createDb, type Db } from '../db/connection';
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
