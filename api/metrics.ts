import type { NextFunction, Request, Response } from 'express';
import type { Pool } from 'pg';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { Db } from '../db/connection';
import { countPendingCrossings } from '../db/crossings';
import { webhookBacklog } from '../db/webhooks';

/**
 * Prometheus metrics of one API instance, served at `GET /metrics`. One registry per instance (tests run several
 * apps in one process, and a process-global registry would mix them or refuse the second). Names follow Prometheus
 * conventions: a `billing_` prefix, base units (`_seconds`), counters end in `_total`, and labels take few values
 * (route templates such as `/v1/authorizations/:id/capture`, never ids). Every name is listed in the README.
 */

/** Latency buckets in seconds: the hot path answers in milliseconds, top-ups wait on a card and a workflow. */
const LATENCY_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** The label of requests that matched no route (404s, and refusals before routing such as a 401). */
const UNMATCHED_ROUTE = 'unmatched';

export type AuthorizationRefusal =
  | 'insufficient_balance'
  | 'budget_limit_reached'
  | 'usage_limit_reached'
  | 'rate_limit_exceeded'
  | 'unknown_customer';
export type UsageEventStatus = 'accepted' | 'duplicate' | 'rejected';
/** The money requests the API records and signals to account workflows (`billing_money_requests_total`'s `kind`). */
export type MoneyRequestKind = 'top_up' | 'credit_grant' | 'subscription' | 'refund';

export interface MetricSources {
  db: Db;
  hotPathPool: Pool;
  logger: Logger;
}

export class Metrics {
  readonly registry = new Registry();

  private readonly httpRequests = new Counter({
    name: 'billing_http_requests_total',
    help: 'HTTP requests answered, by method, route template and status code.',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  private readonly httpDuration = new Histogram({
    name: 'billing_http_request_duration_seconds',
    help: 'Time from receiving a request to finishing its response, by method, route template and status code.',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: LATENCY_BUCKETS_S,
    registers: [this.registry],
  });
  private readonly httpInFlight = new Gauge({
    name: 'billing_http_requests_in_flight',
    help: 'HTTP requests received and not yet answered.',
    registers: [this.registry],
  });
  private readonly authorizations = new Counter({
    name: 'billing_authorizations_total',
    help: 'Holds taken by POST /v1/authorizations.',
    registers: [this.registry],
  });
  private readonly authorizationRefusals = new Counter({
    name: 'billing_authorization_refusals_total',
    help: 'Authorizations the hot path refused, by reason (insufficient_balance, budget_limit_reached, usage_limit_reached, rate_limit_exceeded, unknown_customer).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  private readonly captures = new Counter({
    name: 'billing_captures_total',
    help: 'Authorizations captured (charged) by POST /v1/authorizations/:id/capture.',
    registers: [this.registry],
  });
  private readonly usageEvents = new Counter({
    name: 'billing_usage_events_total',
    help: 'Usage events received by POST /v1/usage-events, by result (accepted, duplicate, rejected).',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  private readonly moneyRequests = new Counter({
    name: 'billing_money_requests_total',
    help:
      'Top-ups, credit grants and refunds recorded and signalled to account workflows, by kind and by how the API answered ' +
      '(settled in time, pending, undelivered).',
    labelNames: ['kind', 'answer'] as const,
    registers: [this.registry],
  });
  private readonly crossingsDelivered = new Counter({
    name: 'billing_threshold_crossings_delivered_total',
    help: 'Threshold crossings signalled to account workflows by this process.',
    registers: [this.registry],
  });
  private readonly crossingDeliveryFailures = new Counter({
    name: 'billing_threshold_crossing_delivery_failures_total',
    help: 'Threshold crossing deliveries that failed and were postponed for a retry.',
    registers: [this.registry],
  });

  constructor(sources: MetricSources) {
    collectDefaultMetrics({ register: this.registry });
    const { db, hotPathPool, logger } = sources;
    let pending = 0;
    new Gauge({
      name: 'billing_threshold_crossings_pending',
      help: 'Threshold crossings recorded and not yet delivered to their workflow (all processes; read at scrape).',
      registers: [this.registry],
      async collect() {
        // A scrape while PostgreSQL is away still answers, with the last value read.
        pending = await countPendingCrossings(db).catch((error: unknown) => {
          logger.warn({ err: error }, 'metrics: could not count pending threshold crossings');
          return pending;
        });
        this.set(pending);
      },
    });
    let backlog = { pending_deliveries: 0, unfanned_events: 0 };
    new Gauge({
      name: 'billing_webhook_backlog',
      help:
        'Webhook work waiting, all processes (read at scrape): deliveries_pending (not yet delivered, failed or ' +
        'canceled), events_unfanned (events no worker has turned into deliveries yet).',
      labelNames: ['kind'] as const,
      registers: [this.registry],
      async collect() {
        backlog = await webhookBacklog(db).catch((error: unknown) => {
          logger.warn({ err: error }, 'metrics: could not count the webhook backlog');
          return backlog;
        });
        this.set({ kind: 'deliveries_pending' }, backlog.pending_deliveries);
        this.set({ kind: 'events_unfanned' }, backlog.unfanned_events);
      },
    });
    const pools = () => [
      { pool: 'knex', ...knexPoolUsage(db) },
      {
        pool: 'hot_path',
        used: hotPathPool.totalCount - hotPathPool.idleCount,
        idle: hotPathPool.idleCount,
        waiting: hotPathPool.waitingCount,
        max: hotPathPool.options.max ?? 10,
      },
    ];
    new Gauge({
      name: 'billing_db_pool_connections',
      help: 'Open connections of each PostgreSQL pool (knex: lifecycle and reads; hot_path: authorize, capture, ingest), by state (used, idle); their sum is the total.',
      labelNames: ['pool', 'state'] as const,
      registers: [this.registry],
      collect() {
        for (const p of pools()) {
          this.set({ pool: p.pool, state: 'used' }, p.used);
          this.set({ pool: p.pool, state: 'idle' }, p.idle);
        }
      },
    });
    new Gauge({
      name: 'billing_db_pool_waiting_requests',
      help: 'Queries waiting for a free connection of each PostgreSQL pool.',
      labelNames: ['pool'] as const,
      registers: [this.registry],
      collect() {
        for (const p of pools()) this.set({ pool: p.pool }, p.waiting);
      },
    });
    new Gauge({
      name: 'billing_db_pool_max_connections',
      help: 'The configured size of each PostgreSQL pool.',
      labelNames: ['pool'] as const,
      registers: [this.registry],
      collect() {
        for (const p of pools()) this.set({ pool: p.pool }, p.max);
      },
    });
  }

  /** Express middleware: counts and times every request by its route template, once the response is finished. */
  /**
   * Counts and times every request by route template. `templateOf` names the template of a request refused before
   * the router matched it (401, 405, 413, 415 on a known path), so those are not lumped together as `unmatched`.
   */
  httpMiddleware(templateOf: (path: string) => string | undefined = () => undefined) {
    return (req: Request, res: Response, next: NextFunction) => {
      const started_ms = performance.now();
      this.httpInFlight.inc();
      res.once('close', () => {
        this.httpInFlight.dec();
        const route = routeTemplate(req) ?? templateOf(req.path) ?? UNMATCHED_ROUTE;
        const labels = { method: req.method, route, status: String(res.statusCode) };
        this.httpRequests.inc(labels);
        this.httpDuration.observe(labels, (performance.now() - started_ms) / 1000);
      });
      next();
    };
  }

  authorized(): void {
    this.authorizations.inc();
  }

  authorizationRefused(reason: AuthorizationRefusal): void {
    this.authorizationRefusals.inc({ reason });
  }

  captured(): void {
    this.captures.inc();
  }

  usageEventsReceived(counts: Record<UsageEventStatus, number>): void {
    for (const [status, n] of Object.entries(counts)) if (n > 0) this.usageEvents.inc({ status }, n);
  }

  /** A money request was signalled to its account; `answer` is what the caller heard. */
  moneyRequestSent(kind: MoneyRequestKind, answer: 'settled' | 'pending' | 'undelivered'): void {
    this.moneyRequests.inc({ kind, answer });
  }

  /** The crossing notifier's view of these metrics. */
  readonly crossings = {
    delivered: (n: number) => n > 0 && this.crossingsDelivered.inc(n),
    failed: (n: number) => n > 0 && this.crossingDeliveryFailures.inc(n),
  };

  /** The Prometheus text exposition of every metric, with its content type. */
  async exposition(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }
}

/**
 * The matched route's template (`/v1/customers/:id/balance`), never the concrete path, so that ids do not become
 * label values. Routers are mounted at the root, so the template is the whole path.
 */
function routeTemplate(req: Request): string | undefined {
  const path: unknown = (req.route as { path?: unknown } | undefined)?.path;
  return typeof path === 'string' ? `${req.baseUrl}${path}` : undefined;
}

/** knex's pool (tarn) by the same measures as pg's: used, idle, waiting for a connection, configured size. */
function knexPoolUsage(db: Db): { used: number; idle: number; waiting: number; max: number } {
  const pool = db.client.pool as
    { numUsed(): number; numFree(): number; numPendingAcquires(): number; max: number } | undefined;
  if (!pool) return { used: 0, idle: 0, waiting: 0, max: 0 };
  return { used: pool.numUsed(), idle: pool.numFree(), waiting: pool.numPendingAcquires(), max: pool.max };
}
