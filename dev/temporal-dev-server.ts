import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { Connection } from '@temporalio/client';

/**
 * Runs `temporal server start-dev` as a child process with its state in one SQLite file, so workflows,
 * namespaces and search attributes survive restarts. Used by `npm start` when TEMPORAL_ADDRESS is unset.
 */

export type SearchAttributeType = 'Keyword' | 'Text' | 'Int' | 'Double' | 'Bool' | 'Datetime' | 'KeywordList';

export interface TemporalDevServerOptions {
  cliPath: string;
  /** SQLite file holding all server state; its folder is created if missing. */
  dbFile: string;
  /** Front-end gRPC port. */
  port: number;
  uiPort: number;
  /** Created at launch if missing ("default" always exists). */
  namespace: string;
  /**
   * Registered at every launch: as flags when the state file is new, through the operator service when an existing
   * file lacks one (the dev server applies the flags only to a new file).
   */
  searchAttributes: Record<string, SearchAttributeType>;
  log: (line: string) => void;
  /** Interface both the gRPC front end and the UI bind to. Default 127.0.0.1: a dev server has no auth. */
  ip?: string;
  /** Bound on the wait for the server to answer for `namespace`. Default 60 s (first start creates the DB). */
  readyTimeout_ms?: number;
}

export interface TemporalDevServer {
  /** host:port for Connection.connect / NativeConnection.connect. */
  address: string;
  uiUrl: string;
  /** SIGTERM, then SIGKILL if it has not exited after a bound. Safe to call twice. */
  stop(): Promise<void>;
}

const DEFAULT_IP = '127.0.0.1';
const DEFAULT_READY_TIMEOUT_MS = 60_000;
const CONNECT_ATTEMPT_TIMEOUT_MS = 2_000;
const READY_POLL_INTERVAL_MS = 250;
const STOP_GRACE_MS = 10_000;
const KILL_WAIT_MS = 5_000;
const STDERR_TAIL_LINES = 30;
/** What the CLI accepts as a search attribute name (it rejects anything that is not an identifier). */
const SEARCH_ATTRIBUTE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Starts the dev server and resolves once it answers DescribeNamespace for `opts.namespace`. */
export async function startTemporalDevServer(opts: TemporalDevServerOptions): Promise<TemporalDevServer> {
  const ip = opts.ip ?? DEFAULT_IP;
  const address = `${ip}:${opts.port}`;
  const uiUrl = `http://${ip}:${opts.uiPort}`;
  validateSearchAttributeNames(opts.searchAttributes);
  await fs.mkdir(path.dirname(path.resolve(opts.dbFile)), { recursive: true });
  // A server left over from a crashed run would answer on the port and make a dead child look ready.
  await assertPortFree(ip, opts.port, 'TEMPORAL_DEV_PORT');
  await assertPortFree(ip, opts.uiPort, 'TEMPORAL_UI_PORT');

  const child = spawnServer(opts, ip);
  const output = captureOutput(child, opts.log);
  // If this process exits without calling stop(), the server must not outlive it holding the ports.
  // SIGTERM still lets it shut down cleanly on its own after we are gone.
  const terminateOnExit = () => child.kill('SIGTERM');
  process.once('exit', terminateOnExit);
  let stopping = false;
  child.once('exit', (code, signal) => {
    if (!stopping) opts.log(`temporal server exited unexpectedly (${code ?? signal}); see its output above`);
  });

  const stop = once(async () => {
    stopping = true;
    process.removeListener('exit', terminateOnExit);
    output.quiet();
    await terminate(child, opts.log);
  });

  try {
    await waitUntilReady(child, address, opts.namespace, opts.readyTimeout_ms ?? DEFAULT_READY_TIMEOUT_MS);
    await ensureSearchAttributeTypes(address, opts.namespace, opts.searchAttributes, opts.dbFile);
  } catch (error) {
    await stop();
    const tail = output.tail();
    throw new Error(`${(error as Error).message}\n--- last lines of temporal server output ---\n${tail}`);
  }
  opts.log(`Temporal dev server ready at ${address} (UI ${uiUrl}, state in ${opts.dbFile})`);
  return { address, uiUrl, stop };
}

function validateSearchAttributeNames(searchAttributes: Record<string, SearchAttributeType>): void {
  for (const name of Object.keys(searchAttributes)) {
    if (!SEARCH_ATTRIBUTE_NAME.test(name)) {
      throw new Error(`search attribute name ${JSON.stringify(name)} is not an identifier`);
    }
  }
}

function devServerArgs(opts: TemporalDevServerOptions, ip: string): string[] {
  const args = ['server', 'start-dev', '--db-filename', opts.dbFile, '--ip', ip];
  args.push('--port', String(opts.port), '--ui-port', String(opts.uiPort), '--namespace', opts.namespace);
  for (const [name, type] of Object.entries(opts.searchAttributes)) {
    args.push('--search-attribute', `${name}=${type}`);
  }
  // The CLI reads ~/.config/temporalio settings by default; a dev server must not depend on them.
  args.push('--log-level', 'warn', '--color', 'never', '--disable-config-file', '--disable-config-env');
  return args;
}

function spawnServer(opts: TemporalDevServerOptions, ip: string): ChildProcess {
  const args = devServerArgs(opts, ip);
  opts.log(`Starting ${opts.cliPath} ${args.join(' ')}`);
  return spawn(opts.cliPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * Keeps the last lines of output for error messages and forwards warnings to the log while the server
 * runs. Once stop() begins, the expected shutdown chatter (connection refused, ...) is no longer logged.
 */
function captureOutput(child: ChildProcess, log: (line: string) => void) {
  const lines: string[] = [];
  let forwarding = true;
  const onChunk = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      lines.push(line);
      if (lines.length > STDERR_TAIL_LINES) lines.shift();
      if (forwarding) log(`[temporal] ${line}`);
    }
  };
  child.stdout?.on('data', onChunk);
  child.stderr?.on('data', onChunk);
  return {
    tail: () => (lines.length === 0 ? '(no output)' : lines.join('\n')),
    quiet: () => {
      forwarding = false;
    },
  };
}

async function assertPortFree(ip: string, port: number, setting: string): Promise<void> {
  const inUse = await new Promise<boolean>((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(true));
    server.listen({ host: ip, port, exclusive: true }, () => server.close(() => resolve(false)));
  });
  if (inUse) {
    throw new Error(
      `port ${ip}:${port} (${setting}) is already in use; is another Temporal dev server running? ` +
        `Stop it, or choose another port.`,
    );
  }
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Polls with a fresh connection until the namespace is served, the child dies, or the deadline passes. */
async function waitUntilReady(
  child: ChildProcess,
  address: string,
  namespace: string,
  timeout_ms: number,
): Promise<void> {
  let spawnError: Error | undefined;
  child.once('error', (error) => (spawnError = error));
  const deadline_ms = Date.now() + timeout_ms;
  let lastError = 'no attempt made';
  while (Date.now() < deadline_ms) {
    if (spawnError) throw new Error(`could not run the Temporal CLI: ${spawnError.message}`);
    if (hasExited(child)) {
      throw new Error(`temporal server exited early (${child.exitCode ?? child.signalCode}) before serving`);
    }
    try {
      await describeNamespace(address, namespace);
      return;
    } catch (error) {
      lastError = (error as Error).message;
    }
    await sleep(READY_POLL_INTERVAL_MS);
  }
  throw new Error(
    `temporal server at ${address} not ready after ${timeout_ms} ms (last error: ${lastError})`,
  );
}

async function describeNamespace(address: string, namespace: string): Promise<void> {
  const connection = await Connection.connect({ address, connectTimeout: CONNECT_ATTEMPT_TIMEOUT_MS });
  try {
    await connection.withDeadline(Date.now() + CONNECT_ATTEMPT_TIMEOUT_MS, () =>
      connection.workflowService.describeNamespace({ namespace }),
    );
  } finally {
    await connection.close();
  }
}

async function terminate(child: ChildProcess, log: (line: string) => void): Promise<void> {
  if (hasExited(child)) return;
  child.kill('SIGTERM');
  if (await waitForExit(child, STOP_GRACE_MS)) return;
  log(`temporal server did not stop within ${STOP_GRACE_MS} ms of SIGTERM; sending SIGKILL`);
  child.kill('SIGKILL');
  if (!(await waitForExit(child, KILL_WAIT_MS))) {
    log(`temporal server (pid ${child.pid ?? '?'}) still running ${KILL_WAIT_MS} ms after SIGKILL`);
  }
}

function waitForExit(child: ChildProcess, timeout_ms: number): Promise<boolean> {
  if (hasExited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.removeListener('exit', onExit);
      resolve(false);
    }, timeout_ms);
    const onExit = () => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Protobuf values of temporal.api.enums.v1.IndexedValueType (wire-stable). The SDK's own mapping is not
 * exported from @temporalio/common's public entry point.
 */
const INDEXED_VALUE_TYPE: Record<SearchAttributeType, number> = {
  Text: 1,
  Keyword: 2,
  Int: 3,
  Double: 4,
  Bool: 5,
  Datetime: 6,
  KeywordList: 7,
};

/**
 * The dev server registers `--search-attribute` flags only when it creates its state file: a later launch with an
 * attribute added since (BillingTier, BillingAutoRecharge) leaves it out, and workflows upserting it would fail at
 * run time. So the missing ones are added here through the operator service. It also silently keeps an attribute's
 * first type when a later launch asks for another one: that fails at startup instead.
 */
async function ensureSearchAttributeTypes(
  address: string,
  namespace: string,
  wanted: Record<string, SearchAttributeType>,
  dbFile: string,
): Promise<void> {
  if (Object.keys(wanted).length === 0) return;
  const connection = await Connection.connect({ address, connectTimeout: CONNECT_ATTEMPT_TIMEOUT_MS });
  try {
    const list = () =>
      connection.withDeadline(Date.now() + CONNECT_ATTEMPT_TIMEOUT_MS, () =>
        connection.operatorService.listSearchAttributes({ namespace }),
      );
    let registered = await list();
    const missing = Object.entries(wanted).filter(
      ([name]) => registered.customAttributes[name] === undefined,
    );
    if (missing.length > 0) {
      await connection.withDeadline(Date.now() + CONNECT_ATTEMPT_TIMEOUT_MS, () =>
        connection.operatorService.addSearchAttributes({
          namespace,
          searchAttributes: Object.fromEntries(
            missing.map(([name, type]) => [name, INDEXED_VALUE_TYPE[type]]),
          ),
        }),
      );
      registered = await list();
    }
    const byType = new Map(Object.entries(INDEXED_VALUE_TYPE).map(([name, value]) => [value, name]));
    for (const [name, type] of Object.entries(wanted)) {
      const actual = registered.customAttributes[name];
      if (actual === INDEXED_VALUE_TYPE[type]) continue;
      const actualName = actual === undefined ? 'missing' : (byType.get(actual) ?? `type ${actual}`);
      throw new Error(
        `search attribute ${name} is ${actualName} in ${dbFile} but ${type} was requested; ` +
          `a type cannot change in place: use a new name, or delete the state file to start afresh`,
      );
    }
  } finally {
    await connection.close();
  }
}

/** Memoises an async action so a second call waits for the first instead of repeating it. */
function once(action: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  return () => (running ??= action());
}
