import fs from 'node:fs';
import path from 'node:path';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { createApp } from '../api/app';
import { listen } from '../api/server';
import { migrateLatest } from '../db/connection';
import { SEARCH_ATTRIBUTES } from '../workflows/messages';
import { ConfigError, loadConfig } from '../wiring/config';
import { startEmbeddedPostgres } from './embedded-postgres';
import { apiDeps } from '../api/deps';
import { createLogger } from '../wiring/logger';
import { drainHttpServer, stopOnSignals } from '../wiring/shutdown';
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
import { ensureSchedules } from '../worker/schedules';
import { ensureSearchAttributes } from '../worker/search-attributes';
import { DEFAULT_TOOLS_DIR, findTemporalCli } from './temporal-cli';
import { startTemporalDevServer } from './temporal-dev-server';
import { webhookDispatcherFrom } from '../worker/webhook-dispatcher';
import { createBillingWorker } from '../worker/worker';

/** Time left after the grace period for the worker, the dev servers and the pools to stop. */
const CLOSE_MARGIN_MS = 15_000;

/**
 * `npm start`: the whole engine on one machine with no configuration. A real embedded PostgreSQL unless
 * DATABASE_URL is set, a Temporal dev server (with its UI) unless TEMPORAL_ADDRESS is set, migrations, the worker
 * and the API. All state lives in DATA_DIR, so a restart picks up where the last run stopped. Ctrl-C stops
 * everything in reverse order.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  // Validated before anything starts: a bad TIERS_PATH or PLANS_PATH stops startup with the file's faults.
  const tiers = loadTierTable(config);
  const plans = loadPlanCatalog(config.PLANS_PATH, loadPriceBook(config));
  // The SDK logs every bundling step and state change at INFO; on this console only warnings are news.
  // Signals are ours to handle (once, however many arrive: Ctrl-C reaches npm and this process alike), not the
  // SDK's, so the worker, the API and the pools are each stopped exactly once, in reverse order of starting.
  Runtime.install({
    logger: new DefaultLogger(
      config.LOG_LEVEL === 'debug' || config.LOG_LEVEL === 'trace' ? 'DEBUG' : 'WARN',
    ),
    shutdownSignals: [],
  });
  const say = (line: string) => console.log(line);
  const stops: (() => Promise<void>)[] = [];
  let stopped: Promise<void> | undefined;
  const stopAll = () =>
    (stopped ??= (async () => {
      say('stopping…');
      for (const stop of stops.reverse()) {
        await stop().catch((error: unknown) => console.error(error));
      }
    })());
  const fail = async () => {
    await stopAll();
    process.exit(1);
  };
  stopOnSignals({ stop: stopAll, limit_ms: config.SHUTDOWN_GRACE_MS + CLOSE_MARGIN_MS, log: say });

  try {
    fs.mkdirSync(config.DATA_DIR, { recursive: true });
    let databaseUrl = config.DATABASE_URL;
    if (!databaseUrl) {
      const pg = await startEmbeddedPostgres({
        dataDir: path.join(config.DATA_DIR, 'postgres'),
        port: config.EMBEDDED_POSTGRES_PORT,
        log: say,
      });
      stops.push(() => pg.stop());
      databaseUrl = pg.databaseUrl;
    }
    const db = openDb(config, databaseUrl);
    stops.push(() => db.destroy());
    const hotPath = openHotPath(config, databaseUrl);
    stops.push(() => hotPath.pool.end());
    await migrateLatest(db);

    let temporalAddress = config.TEMPORAL_ADDRESS;
    let uiUrl: string | undefined;
    if (!temporalAddress) {
      const cliPath = await findTemporalCli({
        cliPath: config.TEMPORAL_CLI_PATH,
        toolsDir: DEFAULT_TOOLS_DIR,
        log: say,
      });
      if (!cliPath) {
        throw new Error(
          'no Temporal CLI: install Go (then `npm run tools:install`) or set TEMPORAL_CLI_PATH or TEMPORAL_ADDRESS',
        );
      }
      const server = await startTemporalDevServer({
        cliPath,
        dbFile: path.join(config.DATA_DIR, 'temporal.db'),
        port: config.TEMPORAL_DEV_PORT,
        uiPort: config.TEMPORAL_UI_PORT,
        namespace: config.TEMPORAL_NAMESPACE,
        searchAttributes: { ...SEARCH_ATTRIBUTES },
        log: say,
      });
      stops.push(() => server.stop());
      temporalAddress = server.address;
      uiUrl = server.uiUrl;
    }

    const logger = createLogger(config);
    const nativeConnection = await NativeConnection.connect({ address: temporalAddress });
    stops.push(() => nativeConnection.close());
    if (config.TEMPORAL_ADDRESS)
      await ensureSearchAttributes(nativeConnection, config.TEMPORAL_NAMESPACE, say);
    const gateway = createGateway(config, db);
    const worker = await createBillingWorker({
      connection: nativeConnection,
      namespace: config.TEMPORAL_NAMESPACE,
      task_queue: config.TEMPORAL_TASK_QUEUE,
      deps: {
        db,
        gateway,
        hotPath,
        settings: accountSettingsFrom(config),
        charge_limits: chargeLimitsFrom(config),
        tiers,
        plans,
      },
      overrides: { shutdownGraceTime: config.SHUTDOWN_GRACE_MS },
    });
    const workerRun = worker.run();
    stops.push(async () => {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await workerRun;
    });
    workerRun.catch((error: unknown) => {
      console.error('worker failed', error);
      void fail();
    });

    const temporal = await connectTemporal(temporalAddress, config.TEMPORAL_NAMESPACE);
    stops.push(() => temporal.connection.close());
    await ensureSchedules(temporal, scheduleSettingsFrom(config));
    const dispatcher = webhookDispatcherFrom(config, { db, temporal, logger });
    dispatcher.start();
    stops.push(() => dispatcher.stop());
    const api = createApp(apiDeps(config, { db, hotPath, temporal, logger, gateway, tiers, plans }));
    stops.push(() => api.close());
    const server = await listen(api.app, config.PORT);
    stops.push(() => drainHttpServer(server, config.SHUTDOWN_GRACE_MS));

    say('');
    say(
      `API          http://localhost:${config.PORT}  (admin key: ${config.API_KEYS[0]}; docs at /openapi.json)`,
    );
    say(`Temporal UI  ${uiUrl ?? `(external Temporal at ${temporalAddress})`}`);
    say(
      `Temporal     ${temporalAddress}  namespace ${config.TEMPORAL_NAMESPACE}, task queue ${config.TEMPORAL_TASK_QUEUE}`,
    );
    say(`PostgreSQL   ${config.DATABASE_URL ? 'DATABASE_URL' : databaseUrl.replace(/:[^:@/]+@/, ':***@')}`);
    say(`Data folder  ${config.DATA_DIR}`);
    say(
      `Payments     ${gateway.name === 'stripe' ? `Stripe at ${config.STRIPE_API_BASE ?? 'api.stripe.com'}` : 'simulated gateway (no STRIPE_SECRET_KEY)'}`,
    );
    say('Ready. Ctrl-C stops everything.');
  } catch (error) {
    console.error(error instanceof ConfigError || error instanceof Error ? error.message : error);
    await fail();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
