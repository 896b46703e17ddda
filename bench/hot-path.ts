import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { estimatedTokens, rate, usageLines } from '../billing/metering';
import type { RatedUsage } from '../billing/rating';
import { createDb, type Db } from '../db/connection';
import { createCustomer } from '../db/customers';
import { createHotPathPool, HotPath, type IngestRow } from '../db/hot-path';
import { grantCredit } from '../db/ledger';
import { setBudget, setLimitOverrides } from '../db/limits';
import { checkLedger } from '../db/ledger-check';
import { EMBEDDED_POSTGRES_DATABASE, EMBEDDED_POSTGRES_PASSWORD } from '../dev/embedded-postgres';
import { loadPlanCatalog, loadPriceBook } from '../wiring/runtime';
import { FREE_PLAN_ID } from '../billing/plans';
import { counterKey, routeChains } from '../billing/soft-caps';
import { routeRequest } from '../db/soft-caps';

/**
 * `npm run bench:hot-path`: the hot path (authorize + capture pairs, usage ingestion, soft-cap routing) measured through HTTP against
 * a running engine, next to the same SQL issued straight through `pg` by `HotPath` (the ceiling), on the same
 * PostgreSQL in the same run. See bench/README.md for the knobs and how to read the output.
 *
 * Setup (customers and their credit) goes straight to the database through db/customers.ts and db/ledger.ts, not
 * through HTTP: it is not measured, and those customers have no account workflow (the hot path does not need one).
 */

// ---------------------------------------------------------------------------------------------------
// Configuration.

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^[0-9]+$/.test(raw)) throw new Error(`${name} must be a whole number, got '${raw}'`);
  return Number(raw);
}

const DURATION_MS = envInt('BENCH_DURATION_MS', 5_000);
const WARMUP_MS = envInt('BENCH_WARMUP_MS', 1_000);
const START_TIMEOUT_MS = envInt('BENCH_START_TIMEOUT_MS', 180_000);
const STOP_TIMEOUT_MS = 60_000;
const REQUEST_TIMEOUT_MS = 30_000;
/** The engine's HOT_PATH_POOL_MAX (default 20); the raw pool gets the same size. */
const POOL_MAX = envInt('HOT_PATH_POOL_MAX', 20);
const BODY_LIMIT_BYTES = 4 * 1024 * 1024;
const CUSTOMERS = 1_000;
const SETUP_CONCURRENCY = 8;
/** A scenario stops early after this many failed requests (an engine that is down fails fast, not for minutes). */
const MAX_ERRORS_PER_RUN = 200;
const HOT_GRANT_NANOS = 1_000_000n * 1_000_000_000n; // $1,000,000
const SPREAD_GRANT_NANOS = 10_000n * 1_000_000_000n; // $10,000 each
const MODEL = 'gpt-5.4-mini';
const ESTIMATED_USAGE = { input_tokens: 500, output_tokens: 200 };
const CAPTURED_USAGE = { input_tokens: 500, output_tokens: 150 };
const EVENT_USAGE = { input_tokens: 200, output_tokens: 50 };
const HOLD_TTL_MS = 600_000;
const ONLY = process.env.BENCH_ONLY ? new RegExp(process.env.BENCH_ONLY) : undefined;
const CPU_PROF_DIR = process.env.BENCH_ENGINE_CPU_PROF || undefined;
const REPO_ROOT = path.resolve(__dirname, '..');

/**
 * Soft-cap routing asks for the model of the Free plan's first allowance (the engine's customers have no
 * subscription), so requests take the counted path until that allowance is used up, then walk its downgrades.
 */
const PLANS = loadPlanCatalog(process.env.PLANS_PATH);
const ROUTE_MODEL = PLANS.find(FREE_PLAN_ID)?.allowances[0]?.models[0] ?? MODEL;

type Kind =
  | 'pairs-hot'
  | 'pairs-spread'
  | 'ingest-100'
  | 'ingest-1000'
  | 'ingest-1000-c10'
  | 'route-hot'
  | 'route-spread';
type Unit = 'pairs' | 'events' | 'routes';
interface Scenario {
  name: string;
  kind: Kind;
  clients: number;
  unit: Unit;
}

const SCENARIOS: Scenario[] = [
  ...(['pairs-hot', 'pairs-spread'] as const).flatMap((kind) =>
    [1, 10, 50].map((clients) => ({ name: `${kind}/${clients}`, kind, clients, unit: 'pairs' as const })),
  ),
  ...(['ingest-100', 'ingest-1000', 'ingest-1000-c10'] as const).flatMap((kind) =>
    [2, 4].map((clients) => ({ name: `${kind}/${clients}`, kind, clients, unit: 'events' as const })),
  ),
  ...(['route-hot', 'route-spread'] as const).flatMap((kind) =>
    [1, 10, 50].map((clients) => ({ name: `${kind}/${clients}`, kind, clients, unit: 'routes' as const })),
  ),
].filter((s) => !ONLY || ONLY.test(s.name));

// ---------------------------------------------------------------------------------------------------
// Small utilities.

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const log = (line: string) => process.stderr.write(`${line}\n`);
const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** Latencies in ms, appended without boxing. */
class Recorder {
  private values = new Float64Array(1 << 14);
  length = 0;
  add(value: number): void {
    if (this.length === this.values.length) {
      const next = new Float64Array(this.values.length * 2);
      next.set(this.values);
      this.values = next;
    }
    this.values[this.length++] = value;
  }
  percentile(p: number): number {
    if (this.length === 0) return NaN;
    const sorted = this.values.slice(0, this.length).sort();
    return sorted[Math.min(this.length - 1, Math.ceil((p / 100) * this.length) - 1)]!;
  }
}

async function freePort(taken: Set<number>): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = net.createServer();
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: 0 }, () => {
        const address = server.address() as net.AddressInfo;
        server.close(() => resolve(address.port));
      });
    });
    // The Temporal dev server also binds the next ports up; keep every choice well apart.
    if (![...taken].some((t) => Math.abs(t - port) < 4)) {
      taken.add(port);
      return port;
    }
  }
}

/** Runs `task` over `items` with at most `limit` in flight. */
async function eachLimited<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await task(items[next++]!);
    }),
  );
}

// ---------------------------------------------------------------------------------------------------
// The engine under test: a child `tsx dev/start-all.ts`, or BENCH_API_URL + BENCH_DATABASE_URL.

interface Engine {
  apiUrl: URL;
  apiKey: string;
  databaseUrl: string;
  mode: 'child' | 'external';
  stop(): Promise<void>;
}

async function startEngine(): Promise<Engine> {
  const externalApi = process.env.BENCH_API_URL;
  const externalDb = process.env.BENCH_DATABASE_URL;
  if (externalApi || externalDb) {
    if (!externalApi || !externalDb)
      throw new Error('set both BENCH_API_URL and BENCH_DATABASE_URL, or neither');
    const apiUrl = new URL(externalApi);
    await waitReady(apiUrl, START_TIMEOUT_MS, () => undefined);
    return {
      apiUrl,
      apiKey: process.env.BENCH_API_KEY ?? 'sk_dev_admin',
      databaseUrl: externalDb,
      mode: 'external',
      stop: async () => undefined,
    };
  }

  // The embedded PostgreSQL runs as the `postgres` user, which must be able to enter the data folder.
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-hot-path-'));
  fs.chmodSync(dataDir, 0o755);
  const taken = new Set<number>();
  const [port, pgPort, temporalPort, uiPort] = [
    await freePort(taken),
    await freePort(taken),
    await freePort(taken),
    await freePort(taken),
  ];
  const apiKey = 'sk_bench_hot_path';
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATA_DIR: dataDir,
    PORT: String(port),
    EMBEDDED_POSTGRES_PORT: String(pgPort),
    TEMPORAL_DEV_PORT: String(temporalPort),
    TEMPORAL_UI_PORT: String(uiPort),
    LOG_LEVEL: 'warn',
    BODY_LIMIT_BYTES: String(BODY_LIMIT_BYTES),
    HOT_PATH_POOL_MAX: String(POOL_MAX),
    API_KEYS: apiKey,
  };
  // A fresh engine: its own embedded PostgreSQL and Temporal dev server, whatever this shell points at.
  delete env.DATABASE_URL;
  delete env.TEMPORAL_ADDRESS;
  // `tsx dev/start-all.ts` (npm start) as one node process with tsx's loader, so that SIGINT and --cpu-prof
  // reach the engine itself rather than tsx's wrapper.
  const nodeArgs = ['--import', 'tsx', 'dev/start-all.ts'];
  if (CPU_PROF_DIR) nodeArgs.unshift('--cpu-prof', `--cpu-prof-dir=${path.resolve(CPU_PROF_DIR)}`);
  log(`starting the engine: node ${nodeArgs.join(' ')} (DATA_DIR ${dataDir}, API port ${port})`);
  const child = spawn(process.execPath, nodeArgs, {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group: a last-resort kill takes its PostgreSQL and Temporal with it
  });
  const output = tail(child, 200);
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    }),
  );

  const stop = async () => {
    if (!exited) {
      child.kill('SIGINT');
      const stopped = await Promise.race([exit.then(() => true), sleep(STOP_TIMEOUT_MS).then(() => false)]);
      if (!stopped) {
        log(`the engine did not stop within ${STOP_TIMEOUT_MS} ms; killing its process group ${child.pid}`);
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          // already gone
        }
        await Promise.race([exit, sleep(5_000)]);
      }
    }
    if (process.env.BENCH_KEEP_DATA) return;
    try {
      // PostgreSQL or Temporal may still be finishing their last writes right after the engine exited.
      fs.rmSync(dataDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
    } catch (error) {
      log(`could not delete ${dataDir}: ${errorText(error)}`);
    }
  };

  const apiUrl = new URL(`http://127.0.0.1:${port}`);
  try {
    await waitReady(apiUrl, START_TIMEOUT_MS, () => {
      if (exited) throw new Error(`the engine exited during startup (code ${exited.code}, ${exited.signal})`);
    });
  } catch (error) {
    log(`--- engine output (last lines) ---\n${output()}\n---`);
    await stop();
    throw error;
  }
  return {
    apiUrl,
    apiKey,
    databaseUrl: `postgres://postgres:${encodeURIComponent(EMBEDDED_POSTGRES_PASSWORD)}@127.0.0.1:${pgPort}/${EMBEDDED_POSTGRES_DATABASE}`,
    mode: 'child',
    stop,
  };
}

/** Keeps the last `max` lines of the child's stdout and stderr; shown when it fails to start. */
function tail(child: ChildProcess, max: number): () => string {
  const lines: string[] = [];
  const add = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      lines.push(line);
      if (lines.length > max) lines.shift();
    }
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  return () => lines.join('\n') || '(no output)';
}

async function waitReady(apiUrl: URL, timeout_ms: number, check: () => void): Promise<void> {
  const deadline = Date.now() + timeout_ms;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    check();
    const status = await new Promise<number>((resolve) => {
      const req = http.get(new URL('/readyz', apiUrl), { timeout: 3_000 }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (error) => {
        last = error.message;
        resolve(0);
      });
    });
    if (status === 200) return;
    if (status !== 0) last = `HTTP ${status}`;
    await sleep(250);
  }
  throw new Error(`${apiUrl.href}readyz did not answer 200 within ${timeout_ms} ms (last: ${last})`);
}

// ---------------------------------------------------------------------------------------------------
// The HTTP client: http.request on a keep-alive Agent (fetch costs about twice the client CPU; DESIGN.md).

interface Reply {
  status: number;
  body: string;
}

class HttpClient {
  readonly agent: http.Agent;
  private readonly host: string;
  private readonly port: number;

  constructor(url: URL, sockets: number) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets });
    this.host = url.hostname;
    this.port = Number(url.port || 80);
  }

  post(path: string, body: Buffer | string, headers: http.OutgoingHttpHeaders): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        { agent: this.agent, host: this.host, port: this.port, method: 'POST', path, headers },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
          res.on('error', reject);
        },
      );
      req.setTimeout(REQUEST_TIMEOUT_MS, () =>
        req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)),
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

class RequestFailed extends Error {}

function unexpected(what: string, reply: Reply): RequestFailed {
  return new RequestFailed(`${what}: HTTP ${reply.status} ${reply.body.slice(0, 300)}`);
}

// ---------------------------------------------------------------------------------------------------
// Workload: customers, pre-rated costs, pre-serialized bodies, and what was done (for the correctness checks).

interface Workload {
  runTag: string;
  prefix: string;
  hot: string;
  customers: string[];
  capture: RatedUsage;
  event: RatedUsage;
  hold: RatedUsage;
  /** Everything the generators saw succeed, warm-up included. */
  done: {
    engineCaptures: number;
    engineEvents: number;
    rawCaptures: number;
    rawEvents: number;
    orphanHolds: number;
    engineRoutes: number;
    rawRoutes: number;
  };
}

function rateOrDie(model: string, usage: Record<string, number>): RatedUsage {
  const rated = rate(
    loadPriceBook({ PRICE_BOOK_PATH: process.env.PRICE_BOOK_PATH }),
    model,
    usage,
    new Date(),
    '',
  );
  if (!rated.ok) throw new Error(`cannot rate ${model} ${JSON.stringify(usage)}: ${rated.message}`);
  return rated;
}

function makeWorkload(): Workload {
  const runTag = Date.now().toString(36);
  const prefix = `bench_${runTag}_`;
  return {
    runTag,
    prefix,
    hot: `${prefix}hot`,
    customers: Array.from({ length: CUSTOMERS }, (_, i) => `${prefix}c${String(i).padStart(4, '0')}`),
    hold: rateOrDie(MODEL, ESTIMATED_USAGE),
    capture: rateOrDie(MODEL, CAPTURED_USAGE),
    event: rateOrDie(MODEL, EVENT_USAGE),
    done: {
      engineCaptures: 0,
      engineEvents: 0,
      rawCaptures: 0,
      rawEvents: 0,
      orphanHolds: 0,
      engineRoutes: 0,
      rawRoutes: 0,
    },
  };
}

/** A limit no bench run comes near: 10^18 (requests and tokens per minute; nanos: $1e9, above every grant). */
const UNREACHED_LIMIT = 1_000_000_000_000_000_000n;

async function setup(db: Db, w: Workload): Promise<void> {
  const all = [w.hot, ...w.customers];
  const started = performance.now();
  await eachLimited(all, SETUP_CONCURRENCY, async (id) => {
    await createCustomer(db, { id, email: null, name: null, metadata: { bench: 'hot-path' } });
    await grantCredit(db, {
      grant_id: `grant_${id}`,
      customer_id: id,
      source: 'promotion',
      amount_nanos: id === w.hot ? HOT_GRANT_NANOS : SPREAD_GRANT_NANOS,
      reason: 'bench:hot-path',
      expires_at: null,
      kind: 'credit_grant',
      ref: `grant_${id}`,
      funded_by: 'promotions',
    });
    // Every limit the authorization statement checks is set (none binds), so each call pays for all the checks:
    // budget, usage limit, and both rate buckets.
    await setBudget(db, id, { monthly_alert_nanos: UNREACHED_LIMIT, monthly_limit_nanos: UNREACHED_LIMIT });
    await setLimitOverrides(db, id, {
      rpm: UNREACHED_LIMIT,
      tpm: UNREACHED_LIMIT,
      monthly_usage_limit_nanos: UNREACHED_LIMIT,
    });
  });
  log(
    `setup: ${all.length} customers created and funded in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
}

/** One unit of work of a scenario; resolves to the units done (1 pair, or the events accepted). */
type Op = () => Promise<number>;

/** The engine side: pairs and batches through HTTP. */
function engineOps(engine: Engine, w: Workload) {
  const auth = `Bearer ${engine.apiKey}`;
  const json = (body: Buffer) => ({
    body,
    headers: { 'content-type': 'application/json', 'content-length': body.length, authorization: auth },
  });
  const authBody = (customer_id: string) =>
    json(Buffer.from(JSON.stringify({ customer_id, model: MODEL, estimated_usage: ESTIMATED_USAGE })));
  const hotAuth = authBody(w.hot);
  const spreadAuth = w.customers.map(authBody);
  const capture = json(Buffer.from(JSON.stringify({ usage: CAPTURED_USAGE })));
  const ID_PREFIX = '{"id":"';

  let cursor = 0;
  type Request = { body: Buffer; headers: http.OutgoingHttpHeaders };
  const pair = async (client: HttpClient, request: Request): Promise<number> => {
    const held = await client.post('/v1/authorizations', request.body, request.headers);
    if (held.status !== 201) throw unexpected('authorize', held);
    const id = held.body.startsWith(ID_PREFIX)
      ? held.body.slice(ID_PREFIX.length, held.body.indexOf('"', ID_PREFIX.length))
      : (JSON.parse(held.body) as { id: string }).id;
    const captured = await client.post(`/v1/authorizations/${id}/capture`, capture.body, capture.headers);
    if (captured.status !== 200) {
      w.done.orphanHolds++;
      throw unexpected('capture', captured);
    }
    w.done.engineCaptures++;
    return 1;
  };

  // Events: unique ids, customers round-robin; each event's text after its id is pre-serialized per customer.
  const usageTail = JSON.stringify(EVENT_USAGE).slice(1); // `"input_tokens":200,...}`
  const eventTails = w.customers.map((c) => `","customer_id":"${c}","model":"${MODEL}",${usageTail}`);
  const eventHead = `{"event_id":"h${w.runTag}-`;
  let eventSeq = 0;
  const ACCEPTED = '"accepted":';
  const CLEAN_END = ',"duplicate":0,"rejected":0}';
  const ingest = async (client: HttpClient, size: number, perBatch: number): Promise<number> => {
    let body = '{"events":[';
    const base = cursor;
    cursor += perBatch;
    for (let i = 0; i < size; i++) {
      if (i > 0) body += ',';
      body += eventHead + eventSeq++ + eventTails[(base + (i % perBatch)) % CUSTOMERS]!;
    }
    body += ']}';
    const reply = await client.post('/v1/usage-events', body, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      authorization: auth,
    });
    if (reply.status !== 200) throw unexpected('ingest', reply);
    const at = reply.body.lastIndexOf(ACCEPTED);
    const accepted = at < 0 ? NaN : parseInt(reply.body.slice(at + ACCEPTED.length), 10);
    if (!Number.isInteger(accepted)) throw unexpected('ingest (no accepted count)', reply);
    w.done.engineEvents += accepted;
    if (accepted !== size || !reply.body.endsWith(CLEAN_END))
      throw unexpected(`ingest (${accepted}/${size} accepted)`, reply);
    return accepted;
  };

  const routeBody = Buffer.from(JSON.stringify({ model: ROUTE_MODEL }));
  const routeRequest = json(routeBody);
  const routePaths = w.customers.map((c) => `/v1/customers/${c}/route`);
  const routeOnce = async (client: HttpClient, routePath: string): Promise<number> => {
    const reply = await client.post(routePath, routeRequest.body, routeRequest.headers);
    if (reply.status !== 200) throw unexpected('route', reply);
    w.done.engineRoutes++;
    return 1;
  };

  return (client: HttpClient, kind: Kind): Op => {
    switch (kind) {
      case 'route-hot':
        return () => routeOnce(client, `/v1/customers/${w.hot}/route`);
      case 'route-spread':
        return () => routeOnce(client, routePaths[cursor++ % CUSTOMERS]!);
      case 'pairs-hot':
        return () => pair(client, hotAuth);
      case 'pairs-spread':
        return () => pair(client, spreadAuth[cursor++ % CUSTOMERS]!);
      case 'ingest-100':
        return () => ingest(client, 100, 100);
      case 'ingest-1000':
        return () => ingest(client, 1000, 1000);
      case 'ingest-1000-c10':
        return () => ingest(client, 1000, 10);
    }
  };
}

/** The ceiling: the same statements through HotPath itself, with the costs rated once up front. */
function rawOps(hot: HotPath, w: Workload) {
  const captureLines = usageLines(w.capture);
  const eventLines = usageLines(w.event);
  let seq = 0;
  let cursor = 0;
  const pair = async (customer_id: string): Promise<number> => {
    const id = `raw_${w.runTag}_${seq++}`;
    const held = await hot.authorize({
      customer_id,
      authorization_id: id,
      model: w.hold.model,
      hold_nanos: w.hold.cost_nanos,
      estimated_tokens: estimatedTokens(w.hold),
      created_at: new Date(),
      expires_at: new Date(Date.now() + HOLD_TTL_MS),
    });
    if (!held.ok) throw new Error(`raw authorize: ${held.code}`);
    const captured = await hot.capture({
      authorization_id: id,
      cost_nanos: w.capture.cost_nanos,
      provider_cost_nanos: w.capture.provider_cost_nanos,
      event_id: id,
      occurred_at: new Date(),
      lines: captureLines,
      price_version: w.capture.price_version,
      processing: w.capture.processing,
      feature: null,
    });
    if (!captured.ok) {
      w.done.orphanHolds++;
      throw new Error(`raw capture: ${captured.code}`);
    }
    w.done.rawCaptures++;
    return 1;
  };

  let eventSeq = 0;
  const ingest = async (size: number, perBatch: number): Promise<number> => {
    const occurred_at = new Date();
    const rows: IngestRow[] = new Array<IngestRow>(size);
    const base = cursor;
    cursor += perBatch;
    for (let i = 0; i < size; i++) {
      rows[i] = {
        customer_id: w.customers[(base + (i % perBatch)) % CUSTOMERS]!,
        event_id: `r${w.runTag}-${eventSeq++}`,
        model: w.event.model,
        feature: null,
        processing: w.event.processing,
        occurred_at,
        cost_nanos: w.event.cost_nanos,
        provider_cost_nanos: w.event.provider_cost_nanos,
        price_version: w.event.price_version,
        lines: eventLines,
      };
    }
    const outcome = await hot.ingest(randomUUID(), rows);
    w.done.rawEvents += outcome.recorded.size;
    if (outcome.recorded.size !== size)
      throw new Error(`raw ingest: ${outcome.recorded.size}/${size} recorded`);
    return outcome.recorded.size;
  };

  const route = async (customer_id: string): Promise<number> => {
    const at = new Date();
    const outcome = await routeRequest(hot.pool, {
      customer_id,
      chains: routeChains(PLANS, ROUTE_MODEL, at),
      free_plan_id: FREE_PLAN_ID,
      at,
    });
    if (!outcome.ok) throw new Error(`raw route: ${outcome.code}`);
    w.done.rawRoutes++;
    return 1;
  };

  return (kind: Kind): Op => {
    switch (kind) {
      case 'route-hot':
        return () => route(w.hot);
      case 'route-spread':
        return () => route(w.customers[cursor++ % CUSTOMERS]!);
      case 'pairs-hot':
        return () => pair(w.hot);
      case 'pairs-spread':
        return () => pair(w.customers[cursor++ % CUSTOMERS]!);
      case 'ingest-100':
        return () => ingest(100, 100);
      case 'ingest-1000':
        return () => ingest(1000, 1000);
      case 'ingest-1000-c10':
        return () => ingest(1000, 10);
    }
  };
}

// ---------------------------------------------------------------------------------------------------
// The load loop: N clients, each issuing its next operation as soon as the previous one answered.

interface RunResult {
  throughput: number;
  units: number;
  ops: number;
  errors: number;
  elapsed_ms: number;
  p50_ms: number;
  p99_ms: number;
  first_errors: string[];
}

async function drive(clients: number, duration_ms: number, op: Op, recorder: Recorder | undefined) {
  let units = 0;
  let errors = 0;
  const firstErrors: string[] = [];
  const started = performance.now();
  let deadline = started + duration_ms;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        try {
          const done = await op(); // not `units += await op()`: that would add to a stale read of units
          units += done;
          recorder?.add(performance.now() - t0);
        } catch (error) {
          errors++;
          if (firstErrors.length < 5) firstErrors.push(errorText(error));
          if (errors >= MAX_ERRORS_PER_RUN) deadline = 0;
          await sleep(10);
        }
      }
    }),
  );
  return { units, errors, firstErrors, elapsed_ms: performance.now() - started };
}

async function measure(clients: number, op: Op): Promise<RunResult> {
  if (WARMUP_MS > 0) await drive(clients, WARMUP_MS, op, undefined);
  const recorder = new Recorder();
  const run = await drive(clients, DURATION_MS, op, recorder);
  return {
    throughput: run.units / (run.elapsed_ms / 1000),
    units: run.units,
    ops: recorder.length,
    errors: run.errors,
    elapsed_ms: run.elapsed_ms,
    p50_ms: recorder.percentile(50),
    p99_ms: recorder.percentile(99),
    first_errors: run.firstErrors,
  };
}

// ---------------------------------------------------------------------------------------------------
// Correctness.

interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

async function correctness(db: Db, w: Workload, requestErrors: number): Promise<Check[]> {
  const one = async <T>(sql: string, bindings: (string | number)[] = []) =>
    ((await db.raw(sql, bindings)) as { rows: T[] }).rows[0]!;
  const checks: Check[] = [];
  const check = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });

  const wallets = await one<{ negative: number; min: bigint | null }>(
    `SELECT count(*) FILTER (WHERE available_nanos < 0 OR held_nanos < 0)::int AS negative,
            min(available_nanos) AS min FROM wallets`,
  );
  check(
    'no wallet is negative at the end',
    wallets.negative === 0,
    `${wallets.negative} negative, min available ${wallets.min}`,
  );

  const holds = await one<{ min: bigint | null; n: bigint }>(
    `SELECT min(balance_after_nanos) AS min, count(*) AS n FROM ledger_entries WHERE kind = 'hold'`,
  );
  check(
    'no hold ever left an available balance below zero',
    holds.min === null || holds.min >= 0n,
    `min balance_after over ${holds.n} holds: ${holds.min}`,
  );

  const captures = BigInt(w.done.engineCaptures + w.done.rawCaptures);
  const events = BigInt(w.done.engineEvents + w.done.rawEvents);
  const usage = await one<{ n: bigint; cost: bigint }>(
    `SELECT count(*) AS n, COALESCE(sum(cost_nanos), 0)::bigint AS cost FROM usage_events WHERE starts_with(customer_id, ?)`,
    [w.prefix],
  );
  check(
    'usage events recorded = events accepted + captures (nothing lost, nothing twice)',
    usage.n === captures + events,
    `${usage.n} recorded vs ${events} accepted + ${captures} captured`,
  );
  const expectedCost = captures * w.capture.cost_nanos + events * w.event.cost_nanos;
  check(
    'usage cost recorded = what the generator was charged at the price book',
    usage.cost === expectedCost,
    `${usage.cost} vs ${expectedCost} nanos`,
  );

  const debits = await one<{ events_cost: bigint; revenue: bigint }>(
    `SELECT
       (SELECT COALESCE(sum(u.cost_nanos), 0) FROM usage_event_entries u
         WHERE u.entry_id IS NOT NULL AND starts_with(u.entry_customer_id, ?))::bigint AS events_cost,
       (SELECT COALESCE(sum(p.amount_nanos), 0) FROM ledger_postings p JOIN ledger_entries e ON e.id = p.entry_id
         WHERE p.account = 'revenue' AND e.kind IN ('usage', 'capture') AND starts_with(e.customer_id, ?))::bigint AS revenue`,
    [w.prefix, w.prefix],
  );
  check(
    "usage/capture entries' debits = their events' cost",
    debits.events_cost === debits.revenue && debits.revenue === expectedCost,
    `events ${debits.events_cost}, debited to revenue ${debits.revenue}`,
  );

  const spent = await one<{ spent: bigint }>(
    `SELECT ((SELECT sum(amount_nanos) FROM credit_grants WHERE starts_with(customer_id, ?))
          - (SELECT sum(available_nanos + held_nanos) FROM wallets WHERE starts_with(customer_id, ?)))::bigint AS spent`,
    [w.prefix, w.prefix],
  );
  check(
    'the wallets went down by exactly the usage cost',
    spent.spent === expectedCost,
    `${spent.spent} vs ${expectedCost}`,
  );

  const violations = await checkLedger(db);
  check(
    'checkLedger finds no violation',
    violations.length === 0,
    violations.length === 0
      ? 'none'
      : violations
          .slice(0, 5)
          .map((v) => `${v.invariant}: ${v.subject} ${v.detail}`)
          .join('; ') + (violations.length > 5 ? ` (+${violations.length - 5} more)` : ''),
  );

  // Soft caps: no counter went past its allowance's limit, however many routes raced on one customer.
  const counters = (await db.raw(
    `SELECT counter_key, used FROM allowance_counters WHERE starts_with(customer_id, ?)`,
    [w.prefix],
  )) as { rows: { counter_key: string; used: number }[] };
  const limits = new Map(
    PLANS.plans.flatMap((p) => p.allowances.map((a, i) => [counterKey(p.id, i), a.limit] as const)),
  );
  const over = counters.rows.filter((c) => c.used > (limits.get(c.counter_key) ?? Infinity));
  check(
    'no allowance counter passed its limit',
    over.length === 0,
    `${counters.rows.length} counters, ${over.length} over; ${w.done.engineRoutes + w.done.rawRoutes} routes`,
  );

  check('every request succeeded', requestErrors === 0, `${requestErrors} failed`);
  return checks;
}

// ---------------------------------------------------------------------------------------------------
// Reporting.

interface Row {
  scenario: string;
  kind: Kind;
  clients: number;
  unit: Unit;
  engine: RunResult;
  raw: RunResult;
  ratio: number;
}

interface Target {
  target: string;
  scenario: string;
  ok: boolean;
  detail: string;
}

function targets(rows: Row[]): Target[] {
  const out: Target[] = [];
  for (const r of rows) {
    if (r.unit === 'pairs' && r.clients >= 10) {
      out.push({
        target: 'throughput >= 50% of raw',
        scenario: r.scenario,
        ok: r.ratio >= 0.5,
        detail: `${(r.ratio * 100).toFixed(0)}%`,
      });
    }
    if (r.unit === 'pairs' && r.clients === 1) {
      const x = r.engine.p50_ms / r.raw.p50_ms;
      out.push({
        target: 'pair p50 <= 2x raw',
        scenario: r.scenario,
        ok: x <= 2,
        detail: `${x.toFixed(2)}x`,
      });
    }
    if (r.kind === 'ingest-1000' || r.kind === 'ingest-1000-c10') {
      out.push({
        target: 'ingestion > 20,000 events/s',
        scenario: r.scenario,
        ok: r.engine.throughput > 20_000,
        detail: `${Math.round(r.engine.throughput)} events/s`,
      });
    }
  }
  return out;
}

function table(headers: string[], rows: string[][], rightFrom = 1): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i >= rightFrom ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

const fmtRate = (r: RunResult, unit: string) =>
  `${Math.round(r.throughput).toLocaleString('en-US')} ${unit}/s`;
const fmtLatency = (r: RunResult) => `${r.p50_ms.toFixed(2)} / ${r.p99_ms.toFixed(2)}`;

function resultTable(rows: Row[]): string {
  return table(
    ['scenario', 'clients', 'engine', 'raw', 'ratio', 'engine p50/p99 ms', 'raw p50/p99 ms', 'errors'],
    rows.map((r) => [
      r.kind,
      String(r.clients),
      fmtRate(r.engine, r.unit),
      fmtRate(r.raw, r.unit),
      `${(r.ratio * 100).toFixed(0)}%`,
      fmtLatency(r.engine),
      fmtLatency(r.raw),
      String(r.engine.errors + r.raw.errors),
    ]),
    1,
  );
}

// ---------------------------------------------------------------------------------------------------
// Main.

async function main(): Promise<number> {
  if (SCENARIOS.length === 0) throw new Error(`BENCH_ONLY=${process.env.BENCH_ONLY} matches no scenario`);
  const loadAtStart = os.loadavg().map((l) => Math.round(l * 100) / 100);
  if (loadAtStart[0]! > 0.5) log(`note: the machine is already busy (load average ${loadAtStart.join(' ')})`);
  const engine = await startEngine();
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    log('interrupted: stopping the engine…');
    void engine.stop().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const db = createDb({ databaseUrl: engine.databaseUrl, pool_max: SETUP_CONCURRENCY + 2 });
  const hotPath = new HotPath(createHotPathPool({ databaseUrl: engine.databaseUrl, pool_max: POOL_MAX }));
  try {
    const pgVersion = ((await db.raw('SHOW server_version')) as { rows: { server_version: string }[] })
      .rows[0]!.server_version;
    const w = makeWorkload();
    await setup(db, w);
    log(
      `running ${SCENARIOS.length} scenarios, ${WARMUP_MS} ms warm-up + ${DURATION_MS} ms each, engine then raw ` +
        `(raw pool ${POOL_MAX})`,
    );
    const engineOp = engineOps(engine, w);
    const rawOp = rawOps(hotPath, w);
    const rows: Row[] = [];
    for (const s of SCENARIOS) {
      const client = new HttpClient(engine.apiUrl, s.clients);
      let engineResult: RunResult;
      try {
        engineResult = await measure(s.clients, engineOp(client, s.kind));
      } finally {
        client.close();
      }
      const rawResult = await measure(s.clients, rawOp(s.kind));
      const row: Row = {
        scenario: s.name,
        kind: s.kind,
        clients: s.clients,
        unit: s.unit,
        engine: engineResult,
        raw: rawResult,
        ratio: engineResult.throughput / rawResult.throughput,
      };
      rows.push(row);
      log(
        `  ${s.name.padEnd(16)} engine ${fmtRate(engineResult, s.unit)} (p50/p99 ${fmtLatency(engineResult)} ms)` +
          `  raw ${fmtRate(rawResult, s.unit)} (${fmtLatency(rawResult)} ms)  ${(row.ratio * 100).toFixed(0)}%`,
      );
      for (const e of [
        ...engineResult.first_errors.map((m) => `engine: ${m}`),
        ...rawResult.first_errors.map((m) => `raw: ${m}`),
      ])
        log(`    error ${e}`);
    }

    const requestErrors = rows.reduce((n, r) => n + r.engine.errors + r.raw.errors, 0);
    log('correctness checks…');
    const checks = await correctness(db, w, requestErrors);
    const goals = targets(rows);

    const machine = {
      cpus: os.cpus().length,
      cpu_model: os.cpus()[0]?.model ?? 'unknown',
      memory_gib: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      node: process.version,
      postgres: pgVersion,
      // Anything else busy on the machine skews every figure; keep the evidence with the results.
      load_average_at_start: loadAtStart,
      load_average_at_end: os.loadavg().map((l) => Math.round(l * 100) / 100),
    };
    const timestamp = new Date().toISOString();
    const report = {
      benchmark: 'hot-path',
      timestamp,
      machine,
      config: {
        duration_ms: DURATION_MS,
        warmup_ms: WARMUP_MS,
        engine: engine.mode,
        hot_path_pool_max: POOL_MAX,
        customers: CUSTOMERS,
        model: MODEL,
        route_model: ROUTE_MODEL,
        estimated_usage: ESTIMATED_USAGE,
        captured_usage: CAPTURED_USAGE,
        event_usage: EVENT_USAGE,
      },
      scenarios: rows,
      targets: goals,
      correctness: checks,
      done: w.done,
    };
    const out = path.join(REPO_ROOT, 'bench', 'results', `hot-path-${timestamp.replace(/[:.]/g, '-')}.json`);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(
      out,
      `${JSON.stringify(report, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`,
    );

    const print = (line = '') => process.stdout.write(`${line}\n`);
    print();
    print(
      `hot path, ${machine.cpus} CPU (${machine.cpu_model}), node ${machine.node}, PostgreSQL ${pgVersion}, ` +
        `${DURATION_MS} ms per run after ${WARMUP_MS} ms warm-up; engine = HTTP, raw = HotPath straight on pg ` +
        `(pool ${POOL_MAX}); load average ${machine.load_average_at_start.join(' ')} at start, ` +
        `${machine.load_average_at_end.join(' ')} at end`,
    );
    print();
    print(resultTable(rows));
    print();
    print(
      table(
        ['target', 'scenario', 'result', ''],
        goals.map((g) => [g.target, g.scenario, g.detail, g.ok ? 'PASS' : 'MISS']),
        2,
      ),
    );
    print();
    print(
      table(
        ['correctness check', 'detail', ''],
        checks.map((c) => [c.name, c.detail, c.ok ? 'ok' : 'FAIL']),
        9,
      ),
    );
    print();
    print(`written to ${path.relative(process.cwd(), out)}`);
    return checks.every((c) => c.ok) ? 0 : 1;
  } finally {
    await hotPath.pool.end().catch(() => undefined);
    await db.destroy().catch(() => undefined);
    if (!interrupted) {
      log('stopping the engine…');
      await engine.stop();
    }
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    process.exit(1);
  },
);
