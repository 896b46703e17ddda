import { NativeConnection } from '@temporalio/worker';
import { loadConfig } from '../wiring/config';
import { connectTemporal, createGateway, openDb, openHotPath } from '../wiring/runtime';
import { ensureSchedules } from './schedules';
import { ensureSearchAttributes } from './search-attributes';
import { createBillingWorker } from './worker';

/** `npm run worker`: the worker alone, for production (DATABASE_URL and TEMPORAL_ADDRESS required). */
async function main(): Promise<void> {
  const config = loadConfig();
  if (!config.DATABASE_URL || !config.TEMPORAL_ADDRESS) {
    throw new Error(
      'npm run worker needs DATABASE_URL and TEMPORAL_ADDRESS (npm start runs everything embedded)',
    );
  }
  const db = openDb(config, config.DATABASE_URL);
  const hotPath = openHotPath(config, config.DATABASE_URL);
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  await ensureSearchAttributes(connection, config.TEMPORAL_NAMESPACE, (line) => console.warn(line));
  const client = await connectTemporal(config.TEMPORAL_ADDRESS, config.TEMPORAL_NAMESPACE);
  await ensureSchedules(client, {
    task_queue: config.TEMPORAL_TASK_QUEUE,
    hold_sweep_interval_ms: config.HOLD_SWEEP_INTERVAL_MS,
  });
  await client.connection.close();
  const worker = await createBillingWorker({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    task_queue: config.TEMPORAL_TASK_QUEUE,
    deps: { db, gateway: createGateway(db), hotPath },
  });
  console.log(`worker polling ${config.TEMPORAL_TASK_QUEUE} on ${config.TEMPORAL_ADDRESS}`);
  // The SDK shuts the worker down gracefully on SIGINT/SIGTERM; run() resolves once in-flight tasks are done.
  await worker.run();
  await connection.close();
  await Promise.all([db.destroy(), hotPath.pool.end()]);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
