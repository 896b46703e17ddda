import { loadConfig } from '../worker/config';
import { accountSettingsFrom, connectTemporal, createGateway, createLogger, openDb } from '../worker/runtime';
import { createApp } from './app';
import { limitsFrom } from './routes/credits';

/** `npm run api`: the HTTP API alone, for production (DATABASE_URL and TEMPORAL_ADDRESS required). */
async function main(): Promise<void> {
  const config = loadConfig();
  if (!config.DATABASE_URL || !config.TEMPORAL_ADDRESS) {
    throw new Error(
      'npm run api needs DATABASE_URL and TEMPORAL_ADDRESS (npm start runs everything embedded)',
    );
  }
  const db = openDb(config, config.DATABASE_URL);
  const temporal = await connectTemporal(config.TEMPORAL_ADDRESS, config.TEMPORAL_NAMESPACE);
  const logger = createLogger(config);
  const app = createApp({
    db,
    temporal,
    gateway: createGateway(db),
    logger,
    api_keys: config.API_KEYS,
    body_limit_bytes: config.BODY_LIMIT_BYTES,
    accounts: {
      task_queue: config.TEMPORAL_TASK_QUEUE,
      settings: accountSettingsFrom(config),
      wait_timeout_ms: config.UPDATE_WAIT_TIMEOUT_MS,
    },
    limits: limitsFrom(config),
  });
  const server = app.listen(config.PORT, () => logger.info(`API listening on :${config.PORT}`));
  const stop = () => {
    server.close(() => {
      void Promise.all([db.destroy(), temporal.connection.close()]).then(() => process.exit(0));
    });
    server.closeAllConnections();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
