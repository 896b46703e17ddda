import { createHash, timingSafeEqual } from 'node:crypto';
import { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import type { Client } from '@temporalio/client';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { PaymentGateway } from '../payments/payment-gateway';
import type { Db } from '../db/connection';
import { AccountWorkflows } from './accounts';
import { ApiError } from './errors';
import { refuseMethod, requireJsonBody, RouteTable } from './http';
import { openApiDocument, registerReferencedSchemas } from './openapi';
import { budgetRoutes } from './routes/budget';
import { contractRoutes } from './routes/contracts';
import { creditRoutes, type CreditLimits } from './routes/credits';
import { refundRoutes } from './routes/refunds';
import { customerRoutes } from './routes/customers';
import { meteringRoutes } from './routes/metering';
import { CrossingNotifier } from './crossing-notifier';
import { IdempotencyKeys } from './idempotency';
import { Metrics } from './metrics';
import { ContentionError, type HotPath } from '../db/hot-path';
import type { PriceBook } from '../billing/price-book';
import type { PlanCatalog } from '../billing/plans';
import type { TierTable } from '../billing/tiers';
import { operationRoutes } from './routes/operations';
import { planRoutes } from './routes/plans';
import { allowanceUsageOf, softCapRoutes } from './routes/soft-caps';
import { reportRoutes } from './routes/reports';
import { subscriptionRoutes } from './routes/subscriptions';
import { webhookRoutes } from './routes/webhooks';
import {
  STRIPE_WEBHOOK_PATH,
  stripeWebhookRoutes,
  type StripeWebhookSettings,
} from './routes/stripe-webhooks';

export interface AppDeps {
  db: Db;
  temporal: Client;
  gateway: PaymentGateway;
  logger: Logger;
  api_keys: readonly string[];
  body_limit_bytes: number;
  accounts: ConstructorParameters<typeof AccountWorkflows>[1];
  limits: CreditLimits;
  hotPath: HotPath;
  priceBook: PriceBook;
  /** The spend-tier table (`TIERS_PATH`): new customers start on its first tier; `GET .../tier` explains it. */
  tiers: TierTable;
  /** The subscription plan catalog (`PLANS_PATH`), validated at startup; `GET /v1/plans` shows it, soft caps route by its allowances. */
  plans: PlanCatalog;
  hold_ttl_seconds: number;
  crossing_sweep_interval_ms: number;
  /** Inbound Stripe webhooks (`STRIPE_WEBHOOK_SECRET`); absent: `POST /v1/webhooks/stripe` answers 404. */
  stripe_webhook?: StripeWebhookSettings;
  /** RECONCILIATION_INTERVAL and RECONCILIATION_WINDOW_MARGIN: the default window of a run asked for by hand. */
  reconciliation: { interval_ms: number; margin_ms: number };
}

export interface Api {
  app: express.Express;
  /** This instance's Prometheus metrics (also served at GET /metrics). */
  metrics: Metrics;
  /**
   * Stops background work (threshold-crossing delivery) and ends the idempotency process session; idempotent. The
   * caller drains its HTTP server first and closes its pools after.
   */
  close(): Promise<void>;
}

/** Builds the HTTP API. Routes are declared once (schema + handler) and the OpenAPI document is generated from them. */
export function createApp(deps: AppDeps): Api {
  const registry = new OpenAPIRegistry();
  registry.registerComponent('securitySchemes', 'bearerAuth', { type: 'http', scheme: 'bearer' });
  registerReferencedSchemas(registry);
  const metrics = new Metrics({ db: deps.db, hotPathPool: deps.hotPath.pool, logger: deps.logger });
  const accounts = new AccountWorkflows(deps.temporal, deps.accounts, deps.db, metrics);
  const keys = new IdempotencyKeys(deps.db);
  const routes = new RouteTable(registry, keys);
  const publicRoutes = new RouteTable(registry, keys);

  // The hot path's routes come first: the router tries routes in order on every request.
  const notifier = new CrossingNotifier(
    deps.db,
    accounts,
    deps.logger,
    deps.crossing_sweep_interval_ms,
    metrics.crossings,
  );
  notifier.start();
  meteringRoutes(routes, {
    db: deps.db,
    hotPath: deps.hotPath,
    priceBook: deps.priceBook,
    notifier,
    metrics,
    hold_ttl_seconds: deps.hold_ttl_seconds,
    logger: deps.logger,
  });
  // Soft-cap routing is on the hot path too: one statement per request, right after metering.
  softCapRoutes(routes, { hotPath: deps.hotPath, priceBook: deps.priceBook, plans: deps.plans });
  customerRoutes(routes, {
    db: deps.db,
    accounts,
    gateway: deps.gateway,
    limits: deps.limits,
    tiers: deps.tiers,
    billing_day_ms: deps.accounts.settings.billing_day_ms,
  });
  creditRoutes(routes, { db: deps.db, accounts, limits: deps.limits });
  refundRoutes(routes, { db: deps.db, accounts });
  budgetRoutes(routes, { db: deps.db, accounts });
  contractRoutes(routes, { db: deps.db, priceBook: deps.priceBook });
  webhookRoutes(routes, { db: deps.db });
  planRoutes(routes, { plans: deps.plans });
  subscriptionRoutes(routes, {
    db: deps.db,
    accounts,
    plans: deps.plans,
    allowanceUsage: allowanceUsageOf(deps.db, deps.plans),
  });
  stripeWebhookRoutes(publicRoutes, {
    db: deps.db,
    accounts,
    logger: deps.logger,
    settings: deps.stripe_webhook,
  });
  reportRoutes(routes, {
    db: deps.db,
    temporal: deps.temporal,
    task_queue: deps.accounts.task_queue,
    wait_timeout_ms: deps.accounts.wait_timeout_ms,
    ...deps.reconciliation,
  });
  operationRoutes(publicRoutes, {
    db: deps.db,
    temporal: deps.temporal,
    openapi: () => openApiDocument(registry, deps.priceBook),
  });

  const app = express();
  app.disable('x-powered-by');
  // ETags hash every response body; API responses are not cached, so that CPU would be spent for nothing.
  app.set('etag', false);
  app.set('query parser', 'simple');
  app.use(requestLog(deps.logger));
  app.use(metrics.httpMiddleware((path) => routes.templateOf(path) ?? publicRoutes.templateOf(path)));
  // Public like /healthz: the only keys are admin keys, and a scraper should not hold one that can move money.
  app.get('/metrics', async (_req: Request, res: Response) => {
    const { contentType, text } = await metrics.exposition();
    res.type(contentType).send(text);
  });
  app.all('/metrics', (req: Request, res: Response) => refuseMethod(req, res, ['get']));
  // Stripe signs the raw bytes: this one path gets them unparsed (still JSON only, 415 otherwise), before any parser.
  app.post(
    STRIPE_WEBHOOK_PATH,
    requireJsonBody,
    express.raw({ type: 'application/json', limit: deps.body_limit_bytes }),
  );
  app.use(publicRoutes.router);
  app.use(publicRoutes.methodGuard());
  // Authenticate before reading the body: an unauthenticated caller gets a 401, whatever it sent.
  app.use(authenticate(deps.api_keys));
  // Then, still before the body: a known path with another method is a 405. Only the routes' bodies are read
  // (and must be JSON, 415 otherwise); a request for no route is a 404 whatever it carries.
  app.use(routes.methodGuard());
  const json = express.json({ limit: deps.body_limit_bytes, type: () => true, strict: false });
  app.use((req: Request, res: Response, next: NextFunction) => {
    if (!routes.knows(req.path)) return next();
    requireJsonBody(req, res, (error?: unknown) => (error ? next(error) : json(req, res, next)));
  });
  app.use(routes.router);
  app.use((req: Request) => {
    throw routeNotFound(req);
  });
  app.use(errorHandler(deps.logger));
  return {
    app,
    metrics,
    close: async () => {
      await notifier.stop();
      await keys.close();
    },
  };
}

const routeNotFound = (req: Request) =>
  new ApiError('not_found', `no route for ${req.method} ${req.path}`, { code: 'route_not_found' });

/**
 * Admin keys from configuration, compared in constant time on their hashes. The principal is the key's hash.
 * Accepted keys are remembered (there are only as many as API_KEYS lists), so the hot path hashes once per key.
 */
function authenticate(api_keys: readonly string[]) {
  const hashes = api_keys.map((k) => createHash('sha256').update(k).digest());
  const principals = new Map<string, string>();
  return (req: Request, res: Response, next: NextFunction) => {
    const header = req.header('Authorization');
    const known = header === undefined ? undefined : principals.get(header);
    if (known !== undefined) {
      res.locals.principal = known;
      return next();
    }
    // The scheme is case-insensitive (RFC 9110 section 11.1), and one or more spaces may follow it.
    const match = header === undefined ? null : /^bearer +(\S+)$/i.exec(header);
    if (!match) {
      throw new ApiError('authentication_error', 'send your API key as "Authorization: Bearer <key>"', {
        code: 'missing_api_key',
      });
    }
    const presented = createHash('sha256').update(match[1]!).digest();
    if (!hashes.some((h) => timingSafeEqual(h, presented))) {
      throw new ApiError('authentication_error', 'the API key is not valid', { code: 'invalid_api_key' });
    }
    const principal = presented.toString('hex').slice(0, 32);
    principals.set(header!, principal);
    res.locals.principal = principal;
    next();
  };
}

/**
 * One log line per request that did not succeed (refusals at info, failures at error), and per success only at
 * debug. Written against pino directly: pino-http's per-request child logger cost 7% of the hot path's CPU.
 */
function requestLog(logger: Logger) {
  const debug = logger.isLevelEnabled('debug');
  return (req: Request, res: Response, next: NextFunction) => {
    const started_ms = performance.now();
    res.once('finish', () => {
      const status = res.statusCode;
      if (status < 400 && !debug) return;
      const level = status >= 500 ? 'error' : status >= 400 ? 'info' : 'debug';
      logger[level](
        {
          method: req.method,
          path: req.path,
          status,
          duration_ms: Math.round(performance.now() - started_ms),
        },
        'request',
      );
    });
    next();
  };
}

/** Every failure leaves in the contract's error shape; defects are logged and answered without internals. */
function errorHandler(logger: Logger) {
  return (error: unknown, req: Request, res: Response, _next: NextFunction) => {
    const apiError = toApiError(error);
    if (apiError.status >= 500) logger.error({ err: error, path: req.path }, 'request failed');
    if (apiError.type === 'unavailable') res.setHeader('Retry-After', '1');
    for (const [name, value] of Object.entries(apiError.options.headers ?? {})) res.setHeader(name, value);
    res.status(apiError.status).json(apiError.toBody());
  };
}

/** Maps anything a handler threw to the contract's error: ours as they are, known failures by kind, the rest 500. */
export function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof ContentionError) {
    return new ApiError(
      'unavailable',
      'the request conflicted with concurrent ones on the same wallets; retry it',
      {
        code: 'contention',
      },
    );
  }
  const bodyError = error as { type?: string; status?: number; limit?: number };
  if (bodyError.type === 'entity.too.large') {
    return new ApiError('payload_too_large', `the request body is larger than ${bodyError.limit} bytes`);
  }
  if (bodyError.type === 'entity.parse.failed') {
    return new ApiError('invalid_request', 'the request body is not valid JSON', { code: 'invalid_json' });
  }
  if (bodyError.type === 'charset.unsupported') {
    return new ApiError('unsupported_media_type', 'the request body must be JSON in UTF-8', {
      param: 'Content-Type',
    });
  }
  if (bodyError.type === 'encoding.unsupported') {
    return new ApiError(
      'unsupported_media_type',
      'the request body may be gzip, deflate or br encoded, or not',
      {
        param: 'Content-Encoding',
      },
    );
  }
  if (bodyError.status !== undefined && bodyError.status >= 400 && bodyError.status < 500) {
    return new ApiError('invalid_request', 'the request could not be read', { code: 'invalid_body' });
  }
  return new ApiError('api_error', 'an internal error occurred; it has been logged');
}
