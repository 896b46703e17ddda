import { loadConfig } from '../wiring/config';
import { createLogger } from '../wiring/logger';
import { connectTemporal, createGateway, openDb, openHotPath } from '../wiring/runtime';
import { apiDeps } from './deps';
import { createApp } from './app';

/** `npm run api`: the HTTP API alone, for production (DATABASE_URL and TEMPORAL_ADDRESS required). */
async function main(): Promise<void> {
  const config = loadConfig();
  if (!config.DATABASE_URL || !config.TEMPORAL_ADDRESS) {
    throw new Error(
      'npm run api needs DATABASE_URL and TEMPORAL_ADDRESS (npm start runs everything embedded)',
    );
  }
  const db = openDb(config, config.DATABASE_URL);
  const hotPath = openHotPath(config, config.DATABASE_URL);
  const temporal = await connectTemporal(config.TEMPORAL_ADDRESS, config.TEMPORAL_NAMESPACE);
  const logger = createLogger(config);
  const api = createApp(apiDeps(config, { db, hotPath, temporal, logger, gateway: createGateway(db) }));
  const server = api.app.listen(config.PORT, () => logger.info(`API listening on :${config.PORT}`));
  const stop = () => {
    server.close(() => {
      void Promise.all([api.close(), db.destroy(), hotPath.pool.end(), temporal.connection.close()]).then(
        () => process.exit(0),
      );
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
