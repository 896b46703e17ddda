import { NativeConnection, Runtime } from '@temporalio/worker';
import { loadConfig } from '../wiring/config';
import {
  accountSettingsFrom,
  chargeLimitsFrom,
  connectTemporal,
  createGateway,
  loadPlanCatalog,
  loadPriceBook,
  loadTierTable,
  openDb,
  openHotPath,
  scheduleSettingsFrom,
} from '../wiring/runtime';
import { createLogger } from '../wiring/logger';
import { stopOnSignals } from '../wiring/shutdown';
import { ensureSchedules } from './schedules';
import { ensureSearchAttributes } from './search-attributes';
import { webhookDispatcherFrom } from './webhook-dispatcher';
import { createBillingWorker } from './worker';

/** Time left after the worker's grace period for it to stop and for connections to close. */
const CLOSE_MARGIN_MS = 10_000;

/** `npm run worker`: the worker alone, for production (DATABASE_URL and TEMPORAL_ADDRESS required). */
async function main(): Promise<void> {
  const config = loadConfig();
  const tiers = loadTierTable(config);
  // Validated before any connection, so a bad PLANS_PATH stops the worker as it stops the API.
  const plans = loadPlanCatalog(config.PLANS_PATH, loadPriceBook(config));
  if (!config.DATABASE_URL || !config.TEMPORAL_ADDRESS) {
    throw new Error(
      'npm run worker needs DATABASE_URL and TEMPORAL_ADDRESS (npm start runs everything embedded)',
    );
  }
  // Signals are ours to handle (once, however many arrive), not the SDK's: see stopOnSignals below.
  Runtime.install({ shutdownSignals: [] });
  const db = openDb(config, config.DATABASE_URL);
  const hotPath = openHotPath(config, config.DATABASE_URL);
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  await ensureSearchAttributes(connection, config.TEMPORAL_NAMESPACE, (line) => console.warn(line));
  const client = await connectTemporal(config.TEMPORAL_ADDRESS, config.TEMPORAL_NAMESPACE);
  await ensureSchedules(client, scheduleSettingsFrom(config));
  const worker = await createBillingWorker({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    task_queue: config.TEMPORAL_TASK_QUEUE,
    deps: {
      db,
      gateway: createGateway(config, db),
      hotPath,
      settings: accountSettingsFrom(config),
      charge_limits: chargeLimitsFrom(config),
      tiers,
      plans,
    },
    // In-flight activities get the grace period to finish, then are cancelled (and retried elsewhere).
    overrides: { shutdownGraceTime: config.SHUTDOWN_GRACE_MS },
  });
  const running = worker.run();
  // Outbound webhooks: fans the events outbox out into delivery workflows (kept on the same client).
  const dispatcher = webhookDispatcherFrom(config, { db, temporal: client, logger: createLogger(config) });
  dispatcher.start();
  console.log(`worker polling ${config.TEMPORAL_TASK_QUEUE} on ${config.TEMPORAL_ADDRESS}`);
  stopOnSignals({
    limit_ms: config.SHUTDOWN_GRACE_MS + CLOSE_MARGIN_MS,
    log: (line) => console.log(line),
    stop: async () => {
      await dispatcher.stop();
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
      await Promise.all([connection.close(), client.connection.close()]);
      await Promise.all([db.destroy(), hotPath.pool.end()]);
      console.log('worker stopped');
    },
  });
  await running;
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
