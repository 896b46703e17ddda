import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import path from 'node:path';
import { waitFor } from './eventually';
import { ADMIN_KEY, type Harness } from './harness';
import { TEST_TIERS_PATH } from './test-tiers';

/**
 * The production entry points (`npm run api`, `npm run worker`) as real child processes started with tsx, against a
 * test file's database and task queue and the jest Temporal dev server. Pools are kept small: PostgreSQL's 100
 * connections are shared by every test run on the machine.
 */
export interface Child {
  process: ChildProcess;
  /** Everything the child wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code and signal once the child has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface ApiChild extends Child {
  baseUrl: string;
}

const ROOT = path.join(__dirname, '..', '..');

function childEnv(h: Harness, extra: Record<string, string>): NodeJS.ProcessEnv {
  return {
    ...process.env,
    DATABASE_URL: h.databaseUrl,
    TEMPORAL_ADDRESS: process.env.TEST_TEMPORAL_ADDRESS!,
    TEMPORAL_NAMESPACE: 'default',
    TEMPORAL_TASK_QUEUE: h.taskQueue,
    API_KEYS: ADMIN_KEY,
    DATABASE_POOL_MAX: '4',
    HOT_PATH_POOL_MAX: '4',
    LOG_LEVEL: 'info',
    // The suite's unlimited tier table, as the in-process harness uses.
    TIERS_PATH: TEST_TIERS_PATH,
    ...extra,
  };
}

function start(entry: string, env: NodeJS.ProcessEnv): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, entry)], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { process: child, output: () => output, exited };
}

/** A free TCP port on 127.0.0.1 (the OS picks one; it is released before the child binds it). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** `npm run api` on a free port; resolves once /healthz answers. */
export async function startApi(h: Harness, env: Record<string, string> = {}): Promise<ApiChild> {
  const port = await freePort();
  const child = start('api/main.ts', childEnv(h, { PORT: String(port), ...env }));
  const baseUrl = `http://127.0.0.1:${port}`;
  let gone = false;
  void child.exited.then(() => (gone = true));
  await waitFor('the API child to answer /healthz', async () => {
    if (gone) throw new Error(`API child exited early:\n${child.output()}`);
    return fetch(`${baseUrl}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
  });
  return { ...child, baseUrl };
}

/** `npm run worker`; resolves once it polls its task queue. */
export async function startWorker(h: Harness, env: Record<string, string> = {}): Promise<Child> {
  const child = start('worker/main.ts', childEnv(h, env));
  let gone = false;
  void child.exited.then(() => (gone = true));
  await waitFor(
    'the worker child to poll',
    () => {
      if (gone) throw new Error(`worker child exited early:\n${child.output()}`);
      return child.output().includes('worker polling');
    },
    120_000,
  );
  return child;
}

/** Calls an API child as the admin; `body` is sent as JSON. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read arbitrary JSON bodies
export async function callApi<T = any>(
  baseUrl: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: T }> {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as T) : (undefined as T) };
}

/**
 * Starts test/support/crash-worker.ts on the harness's queue and database: a worker that kills itself (SIGKILL) at the
 * step `crashAt` names. Resolves once it polls.
 */
export function startCrashWorker(h: Harness, crashAt: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'crash-worker.ts')], {
    env: { ...process.env, CRASH_AT: crashAt, DATABASE_URL: h.databaseUrl, TASK_QUEUE: h.taskQueue },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('crash-worker ready')) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`crash worker exited early (${code})`)));
  });
}

/** Resolves with the signal that ended the child. */
export const exited = (child: ChildProcess) =>
  new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
