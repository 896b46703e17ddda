/**
 * Smoke test of the embedded development services: starts an embedded PostgreSQL and a Temporal dev
 * server in a temporary folder, checks that each answers, stops both, starts them again on the same
 * state and checks that the state survived (a table row, a workflow, the search attributes).
 *
 *   npx tsx scripts/smoke-dev-services.ts
 *
 * Uses free ephemeral ports, so it can run next to `npm start`. Exits non-zero on any failure.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client as PgClient } from 'pg';
import { Connection, Client as TemporalClient } from '@temporalio/client';
import { loadConfig } from '../wiring/config';
import { startEmbeddedPostgres } from '../dev/embedded-postgres';
import { DEFAULT_TOOLS_DIR, findTemporalCli } from '../dev/temporal-cli';
import { startTemporalDevServer, type SearchAttributeType } from '../dev/temporal-dev-server';

const SEARCH_ATTRIBUTES: Record<string, SearchAttributeType> = {
  SmokeCustomerId: 'Keyword',
  SmokeTier: 'Int',
};
const WORKFLOW_ID = 'smoke-dev-services';
const RPC_TIMEOUT_MS = 10_000;

interface Ports {
  postgres: number;
  temporal: number;
  temporalUi: number;
}

function log(line: string): void {
  console.log(`${new Date().toISOString().slice(11, 23)} ${line}`);
}

/** Asks the kernel for a free port. Another process could take it before we bind; unlikely, and loud. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

async function startServices(dir: string, ports: Ports, cliPath: string) {
  const [postgres, temporal] = await Promise.allSettled([
    startEmbeddedPostgres({ dataDir: path.join(dir, 'postgres'), port: ports.postgres, log }),
    startTemporalDevServer({
      cliPath,
      dbFile: path.join(dir, 'temporal.sqlite'),
      port: ports.temporal,
      uiPort: ports.temporalUi,
      namespace: loadConfig().TEMPORAL_NAMESPACE,
      searchAttributes: SEARCH_ATTRIBUTES,
      log,
    }),
  ]);
  if (postgres.status === 'rejected' || temporal.status === 'rejected') {
    // Whichever did start must not outlive the failure.
    if (postgres.status === 'fulfilled') await postgres.value.stop();
    if (temporal.status === 'fulfilled') await temporal.value.stop();
    throw postgres.status === 'rejected' ? postgres.reason : (temporal as PromiseRejectedResult).reason;
  }
  log(`DATABASE_URL=${postgres.value.databaseUrl}`);
  log(`TEMPORAL_ADDRESS=${temporal.value.address}  Temporal UI: ${temporal.value.uiUrl}`);
  return {
    databaseUrl: postgres.value.databaseUrl,
    temporalAddress: temporal.value.address,
    stop: async () => {
      await Promise.all([postgres.value.stop(), temporal.value.stop()]);
      log('stopped both');
    },
  };
}

/** Round 1 writes a row; round 2 expects to read it back. */
async function checkPostgres(databaseUrl: string, round: 1 | 2): Promise<void> {
  const client = new PgClient({ connectionString: databaseUrl, connectionTimeoutMillis: RPC_TIMEOUT_MS });
  await client.connect();
  try {
    const one = await client.query<{ one: number }>('select 1 as one');
    assert.equal(one.rows[0]?.one, 1);
    if (round === 1) {
      await client.query('create table smoke_marker (written_at timestamptz not null default now())');
      await client.query('insert into smoke_marker default values');
    }
    const marker = await client.query('select written_at from smoke_marker');
    assert.equal(marker.rowCount, 1, 'the row written before the restart is still there');
    const database = await client.query<{ db: string }>('select current_database() as db');
    log(`postgres ok: select 1 in database ${database.rows[0]?.db ?? '?'}, marker row present`);
  } finally {
    await client.end();
  }
}

/** Round 1 starts a workflow (no worker needed: it just waits); round 2 finds it, then terminates it. */
async function checkTemporal(address: string, namespace: string, round: 1 | 2): Promise<void> {
  const connection = await Connection.connect({ address, connectTimeout: RPC_TIMEOUT_MS });
  try {
    const namespaces = await connection.workflowService.listNamespaces({});
    const names = namespaces.namespaces.map((ns) => ns.namespaceInfo?.name);
    assert.ok(names.includes(namespace), `namespace ${namespace} is listed (got ${names.join(', ')})`);
    const described = await connection.workflowService.describeNamespace({ namespace: 'default' });
    assert.equal(described.namespaceInfo?.name, 'default');

    const attributes = await connection.operatorService.listSearchAttributes({ namespace });
    for (const name of Object.keys(SEARCH_ATTRIBUTES)) {
      assert.ok(name in attributes.customAttributes, `search attribute ${name} is registered`);
    }

    const client = new TemporalClient({ connection, namespace });
    if (round === 1) {
      await client.workflow.start('smokeWorkflow', { taskQueue: 'smoke', workflowId: WORKFLOW_ID, args: [] });
    }
    const handle = client.workflow.getHandle(WORKFLOW_ID);
    const description = await handle.describe();
    assert.equal(
      description.status.name,
      'RUNNING',
      'the workflow started before the restart is still running',
    );
    if (round === 2) await handle.terminate('smoke test done');
    log(
      `temporal ok: namespaces [${names.join(', ')}], search attributes registered, workflow ${WORKFLOW_ID} found`,
    );
  } finally {
    await connection.close();
  }
}

async function main(): Promise<void> {
  const config = loadConfig();
  const cliPath = await findTemporalCli({
    cliPath: config.TEMPORAL_CLI_PATH,
    toolsDir: DEFAULT_TOOLS_DIR,
    log,
  });
  assert.ok(cliPath, 'a Temporal CLI is needed (run: npm run tools:install)');
  log(`Temporal CLI: ${cliPath}`);

  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'billing-smoke-'));
  // mkdtemp makes a 0700 folder; PostgreSQL runs as the `postgres` user when we are root and must enter it.
  await fs.chmod(dir, 0o755);
  const ports: Ports = {
    postgres: await freePort(),
    temporal: await freePort(),
    temporalUi: await freePort(),
  };
  try {
    for (const round of [1, 2] as const) {
      log(`--- round ${round}: ${round === 1 ? 'fresh state' : 'restart on the same state'} in ${dir}`);
      const started_ms = Date.now();
      const services = await startServices(dir, ports, cliPath);
      log(`both ready in ${Date.now() - started_ms} ms`);
      try {
        await checkPostgres(services.databaseUrl, round);
        await checkTemporal(services.temporalAddress, config.TEMPORAL_NAMESPACE, round);
      } finally {
        await services.stop();
      }
    }
    log('smoke test passed');
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
