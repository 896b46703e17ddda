import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import pino from 'pino';
import type { PaymentGateway } from '../../payments/payment-gateway';
import { SimulatedGateway } from '../../payments/simulated-gateway';
import type { AccountSettings } from '../../billing/account';
import { usd } from '../../billing/money';
import { type Api, type AppDeps, createApp } from '../../api/app';
import { listen } from '../../api/server';
import { loadDefaultPriceBook } from '../../billing/price-book';
import { loadDefaultPlanCatalog, type PlanCatalog } from '../../billing/plans';
import { loadDefaultTierTable, type TierTable } from '../../billing/tiers';
import { createHotPathPool, HotPath } from '../../db/hot-path';
import type { Db } from '../../db/connection';
import { checkLedger, type Violation } from '../../db/ledger-check';
import { WebhookDispatcher } from '../../worker/webhook-dispatcher';
import { createBillingWorker } from '../../worker/worker';
import { createTestDatabase } from './database';
import { testTierTable } from './test-tiers';

export const ADMIN_KEY = 'sk_test_admin_key';

export interface HarnessOptions {
  settings?: Partial<AccountSettings>;
  /** Start the in-process worker (default true); crash tests run their own. */
  worker?: boolean;
  update_wait_timeout_ms?: number;
  /** The API's JSON body limit (default 64 KiB); metering tests raise it to send 1,000-event batches. */
  body_limit_bytes?: number;
  /** The hot path's wallet floor (`WALLET_FLOOR_USD`; default the configuration's default). */
  wallet_floor_usd?: string;
  /**
   * The webhook dispatcher's retry schedule (`WEBHOOK_RETRY_SCHEDULE` in ms; default [0, 500, 1000]) and attempt
   * timeout (`WEBHOOK_TIMEOUT_MS`; default 2000). The dispatcher runs with the in-process worker.
   */
  webhook_retry_schedule_ms?: number[];
  webhook_timeout_ms?: number;
  /** The tier table of the API and the worker: the unlimited test table by default, `openai` for the bundled one. */
  tiers?: TierTable | 'openai';
  /** The plan catalog of the API (default the bundled one). */
  plans?: PlanCatalog;
  /**
   * `BILLING_PERIOD` of the account settings (e.g. 'PT12S' for a "month" of 12 seconds); the same as
   * `settings.billing_period`, which wins when both are given. Absent: the settings' default (`P1M`).
   */
  billing_period?: string;
  /** The payment gateway of the API and the worker, built on the file's database (default: the simulated one). */
  gateway?: (db: Db) => PaymentGateway;
  /** `STRIPE_WEBHOOK_SECRET` and `STRIPE_WEBHOOK_TOLERANCE_S` of the API (default: not configured, 404). */
  stripe_webhook?: { secret: string; tolerance_s?: number };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read arbitrary JSON bodies
export interface ApiResponse<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

/** The API's dependencies as every test wires them; `api_keys` and the wait timeout may vary. */
export function testAppDeps(input: {
  db: Db;
  hotPath: HotPath;
  temporal: Client;
  task_queue: string;
  settings: AccountSettings;
  api_keys?: string[];
  wait_timeout_ms?: number;
  body_limit_bytes?: number;
  tiers?: TierTable;
  plans?: PlanCatalog;
  gateway?: PaymentGateway;
  stripe_webhook?: { secret: string; tolerance_s?: number };
}): AppDeps {
  return {
    db: input.db,
    temporal: input.temporal,
    gateway: input.gateway ?? new SimulatedGateway(input.db),
    logger: pino({ level: 'silent' }),
    api_keys: input.api_keys ?? [ADMIN_KEY],
    body_limit_bytes: input.body_limit_bytes ?? 64 * 1024,
    accounts: {
      task_queue: input.task_queue,
      settings: input.settings,
      wait_timeout_ms: input.wait_timeout_ms ?? 20_000,
    },
    hotPath: input.hotPath,
    priceBook: loadDefaultPriceBook(),
    tiers: input.tiers ?? testTierTable(),
    plans: input.plans ?? loadDefaultPlanCatalog(),
    hold_ttl_seconds: 600,
    crossing_sweep_interval_ms: 500,
    ...(input.stripe_webhook
      ? {
          stripe_webhook: {
            secret: input.stripe_webhook.secret,
            tolerance_s: input.stripe_webhook.tolerance_s ?? 300,
          },
        }
      : {}),
    reconciliation: { interval_ms: 86_400_000, margin_ms: 3_600_000 },
    limits: {
      top_up_min_nanos: usd('1.00'),
      top_up_max_nanos: usd('10000.00'),
      credit_grant_max_nanos: usd('100000.00'),
    },
  };
}

/**
 * Customer ids must be unique across the whole suite, not just the file: all files share one Temporal namespace,
 * and an account workflow's id is `account:<customer_id>`, so two files using one id would share a workflow that
 * runs on the other file's task queue and database. Prefix ids per file (`cus_au_`, `cus_hp_`, ...).
 *
 * Everything one test file needs, all real: its own PostgreSQL database (migrated), a worker on its own task queue
 * against the shared Temporal dev server, and the HTTP API on a random port.
 */
export class Harness {
  private worker?: Worker;
  private workerRun?: Promise<void>;
  private dispatcher?: WebhookDispatcher;

  private constructor(
    readonly db: Db,
    readonly databaseUrl: string,
    private readonly dropDb: () => Promise<void>,
    readonly temporal: Client,
    readonly nativeConnection: NativeConnection,
    readonly taskQueue: string,
    readonly settings: AccountSettings,
    private readonly server: Server,
    readonly baseUrl: string,
    readonly hotPath: HotPath,
    private readonly api: Api,
    private readonly options: HarnessOptions,
    readonly tiers: TierTable,
  ) {}

  static async start(options: HarnessOptions = {}): Promise<Harness> {
    const address = process.env.TEST_TEMPORAL_ADDRESS;
    if (!address) throw new Error('TEST_TEMPORAL_ADDRESS is not set: run tests through jest (global setup)');
    const { db, url, drop } = await createTestDatabase();
    const connection = await Connection.connect({ address });
    const temporal = new Client({ connection, namespace: 'default' });
    const nativeConnection = await NativeConnection.connect({ address });
    const taskQueue = `billing-test-${randomBytes(4).toString('hex')}`;
    const tiers = options.tiers === 'openai' ? loadDefaultTierTable() : (options.tiers ?? testTierTable());
    const settings: AccountSettings = {
      activity_timeout_ms: 10_000,
      continue_as_new_after_events: null,
      ...(options.billing_period === undefined ? {} : { billing_period: options.billing_period }),
      ...options.settings,
    };
    const hotPath = new HotPath(
      createHotPathPool({ databaseUrl: url, pool_max: 20 }),
      options.wallet_floor_usd === undefined
        ? undefined
        : { wallet_floor_nanos: usd(options.wallet_floor_usd) },
    );
    const api = createApp(
      testAppDeps({
        db,
        hotPath,
        temporal,
        task_queue: taskQueue,
        settings,
        wait_timeout_ms: options.update_wait_timeout_ms,
        body_limit_bytes: options.body_limit_bytes,
        tiers,
        plans: options.plans,
        gateway: options.gateway?.(db),
        stripe_webhook: options.stripe_webhook,
      }),
    );
    const server = await listen(api.app, 0, '127.0.0.1');
    const port = (server.address() as AddressInfo).port;
    const harness = new Harness(
      db,
      url,
      drop,
      temporal,
      nativeConnection,
      taskQueue,
      settings,
      server,
      `http://127.0.0.1:${port}`,
      hotPath,
      api,
      options,
      tiers,
    );
    if (options.worker !== false) await harness.startWorker();
    return harness;
  }

  /**
   * Starts the in-process worker. Its account settings (handed to every account run at its start) are the
   * harness's unless a test passes others, e.g. to prove that changed settings reach running accounts.
   */
  async startWorker(settings: AccountSettings = this.settings): Promise<void> {
    this.worker = await createBillingWorker({
      connection: this.nativeConnection,
      namespace: 'default',
      task_queue: this.taskQueue,
      deps: {
        db: this.db,
        gateway: this.options.gateway?.(this.db) ?? new SimulatedGateway(this.db),
        hotPath: this.hotPath,
        settings,
        tiers: this.tiers,
        plans: this.options.plans,
      },
      workflow_bundle_path: process.env.TEST_WORKFLOW_BUNDLE,
    });
    this.workerRun = this.worker.run();
    await this.dispatcher?.stop();
    this.dispatcher = new WebhookDispatcher({
      db: this.db,
      temporal: this.temporal,
      task_queue: this.taskQueue,
      schedule_ms: this.options.webhook_retry_schedule_ms ?? [0, 500, 1000],
      timeout_ms: this.options.webhook_timeout_ms ?? 2_000,
      sweep_interval_ms: 500,
      logger: pino({ level: 'silent' }),
    });
    this.dispatcher.start();
  }

  async stopWorker(): Promise<void> {
    await this.dispatcher?.stop();
    this.dispatcher = undefined;
    if (!this.worker) return;
    this.worker.shutdown();
    await this.workerRun;
    this.worker = undefined;
  }

  /** Calls the API as an admin. `body` is sent as JSON unless it is already a string. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read arbitrary JSON bodies
  async call<T = any>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<ApiResponse<T>> {
    const response = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await response.text();
    return {
      status: response.status,
      body: text ? (JSON.parse(text) as T) : (undefined as T),
      headers: response.headers,
    };
  }

  /** Creates a customer through the API and saves a payment method when one is given. */
  async customer(id: string, payment_method?: string): Promise<void> {
    const created = await this.call('POST', '/v1/customers', { id });
    if (created.status !== 201)
      throw new Error(`customer ${id}: ${created.status} ${JSON.stringify(created.body)}`);
    if (payment_method) {
      const saved = await this.call('PUT', `/v1/customers/${id}/payment-method`, { payment_method });
      if (saved.status !== 200)
        throw new Error(`payment method: ${saved.status} ${JSON.stringify(saved.body)}`);
    }
  }

  /** Funds a customer with an operator grant through the API (free credit, no card involved). */
  async fund(customer: string, amount_usd: string): Promise<void> {
    const granted = await this.call('POST', `/v1/customers/${customer}/credit-grants`, {
      amount_usd,
      reason: 'test funding',
    });
    if (granted.status !== 201) throw new Error(`grant: ${granted.status} ${JSON.stringify(granted.body)}`);
  }

  /** How many usage events are recorded, for tests proving that a refused request recorded none. */
  async usageEventCount(): Promise<number> {
    const result = await this.db.raw('SELECT count(*)::int AS n FROM usage_events');
    return (result.rows[0] as { n: number }).n;
  }

  /**
   * One run of the periodic sweep (the `release-expired-holds` Schedule's workflow), treating anything overdue as due
   * (`overdue_by_ms: 0`), as the Schedule would a minute later: holds released, overdue accounts woken.
   */
  sweep(): Promise<{ released: number; woken?: number }> {
    return this.temporal.workflow.execute('releaseExpiredHoldsWorkflow', {
      taskQueue: this.taskQueue,
      workflowId: `sweep-${randomBytes(6).toString('hex')}`,
      args: [{ overdue_by_ms: 0 }],
    });
  }

  /** A snapshot of everything that moves money, to prove that a refused request moved nothing. */
  async moneySnapshot(): Promise<string> {
    const counts = await this.db.raw(
      `SELECT (SELECT count(*) FROM ledger_entries) AS entries, (SELECT count(*) FROM ledger_postings) AS postings,
              (SELECT count(*) FROM credit_grants) AS grants, (SELECT count(*) FROM simulated_charges) AS charges,
              (SELECT COALESCE(sum(available_nanos), 0) FROM wallets) AS available`,
    );
    return JSON.stringify(counts.rows[0], (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  }

  ledgerViolations(): Promise<Violation[]> {
    return checkLedger(this.db);
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    await this.api.close();
    await this.stopWorker();
    await this.hotPath.pool.end();
    await this.nativeConnection.close();
    await this.temporal.connection.close();
    await this.dropDb();
  }
}

/**
 * The usual test-file setup in one line: starts a Harness before the file's tests and, after them, asserts that
 * every ledger invariant holds before stopping it. Returns a stand-in that forwards to the started harness, so
 * tests use `h` as if it were the harness itself.
 */
export function useHarness(options: HarnessOptions = {}): Harness {
  let started: Harness | undefined;
  beforeAll(async () => {
    started = await Harness.start(options);
  });
  afterAll(async () => {
    if (!started) return;
    expect(await started.ledgerViolations()).toEqual([]);
    await started.stop();
  });
  return new Proxy({} as Harness, {
    get(_target, property) {
      if (!started) throw new Error('the harness is used before beforeAll started it');
      const value: unknown = Reflect.get(started, property, started);
      // Methods are bound to the harness; fields (db is a callable knex instance) are handed out as they are.
      const isMethod = typeof value === 'function' && !Object.hasOwn(started, property);
      return isMethod ? (value as (...args: unknown[]) => unknown).bind(started) : value;
    },
  });
}
