import { loadConfig } from '../wiring/config';
import { createLogger } from '../wiring/logger';
import {
  connectTemporal,
  createGateway,
  loadPlanCatalog,
  loadPriceBook,
  loadTierTable,
  openDb,
  openHotPath,
} from '../wiring/runtime';
import { drainHttpServer, stopOnSignals } from '../wiring/shutdown';
import { apiDeps } from './deps';
import { createApp } from './app';
import { listen } from './server';

/** Time left after the drain for background work and connections to close before the process gives up. */
const CLOSE_MARGIN_MS = 10_000;

/** `npm run api`: the HTTP API alone, for production (DATABASE_URL and TEMPORAL_ADDRESS required). */
async function main(): Promise<void> {
  const config = loadConfig();
  // A bad tier table or plan catalog stops startup before any connection opens.
  const tiers = loadTierTable(config);
  const plans = loadPlanCatalog(config.PLANS_PATH, loadPriceBook(config));
  if (!config.DATABASE_URL || !config.TEMPORAL_ADDRESS) {
    throw new Error(
      'npm run api needs DATABASE_URL and TEMPORAL_ADDRESS (npm start runs everything embedded)',
    );
  }
  const db = openDb(config, config.DATABASE_URL);
  const hotPath = openHotPath(config, config.DATABASE_URL);
  const temporal = await connectTemporal(config.TEMPORAL_ADDRESS, config.TEMPORAL_NAMESPACE);
  const logger = createLogger(config);
  const api = createApp(
    apiDeps(config, { db, hotPath, temporal, logger, gateway: createGateway(config, db), tiers, plans }),
  );
  const server = await listen(api.app, config.PORT);
  logger.info(`API listening on :${config.PORT}`);
  // Once, whatever the number of signals: stop taking requests, let those in flight finish within the grace
  // period, stop background work, then close each pool exactly once.
  stopOnSignals({
    limit_ms: config.SHUTDOWN_GRACE_MS + CLOSE_MARGIN_MS,
    log: (line) => logger.info(line),
    stop: async () => {
      await drainHttpServer(server, config.SHUTDOWN_GRACE_MS);
      await api.close();
      await Promise.all([db.destroy(), hotPath.pool.end(), temporal.connection.close()]);
      logger.info('API stopped');
    },
  });
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
