import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode } from '@temporalio/worker';
import { Client } from 'pg';
import {
  accountStatusSearchAttribute,
  autoRechargeSearchAttribute,
  customerIdSearchAttribute,
  planSearchAttribute,
  tierSearchAttribute,
} from '../../workflows/messages';
import { DEFAULT_TOOLS_DIR, findTemporalCli } from '../../dev/temporal-cli';
import { adminDatabaseUrl } from './database';

/**
 * Starts what every test file shares: one real Temporal dev server (the installed CLI) and one workflow bundle.
 * PostgreSQL is the machine's server (TEST_DATABASE_URL); each test file creates its own database in it.
 */
export default async function globalSetup(): Promise<void> {
  const pg = new Client({ connectionString: adminDatabaseUrl() });
  try {
    await pg.connect();
    await pg.query('SELECT 1');
  } catch (error) {
    throw new Error(
      `tests need PostgreSQL at ${adminDatabaseUrl()} (set TEST_DATABASE_URL): ${String(error)}`,
    );
  } finally {
    await pg.end().catch(() => undefined);
  }

  const cliPath = await findTemporalCli({
    cliPath: process.env.TEMPORAL_CLI_PATH,
    toolsDir: DEFAULT_TOOLS_DIR,
    log: (line) => console.log(line),
  });
  if (!cliPath) throw new Error('tests need the Temporal CLI: run `npm run tools:install`');
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: cliPath },
      searchAttributes: [
        customerIdSearchAttribute,
        accountStatusSearchAttribute,
        autoRechargeSearchAttribute,
        tierSearchAttribute,
        planSearchAttribute,
      ],
      extraArgs: ['--log-level', 'error'],
    },
  });
  (globalThis as { __temporalEnv?: TestWorkflowEnvironment }).__temporalEnv = env;
  process.env.TEST_TEMPORAL_ADDRESS = env.address;

  const bundle = await bundleWorkflowCode({
    workflowsPath: require.resolve('../../workflows'),
    logger: { trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error, log() {} },
  });
  const bundlePath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'billing-bundle-')), 'workflows.js');
  fs.writeFileSync(bundlePath, bundle.code);
  process.env.TEST_WORKFLOW_BUNDLE = bundlePath;
}
