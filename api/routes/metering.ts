import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { z } from 'zod';
import {
  estimatedTokens,
  holdExpiry,
  MAX_EVENT_CLOCK_SKEW_MS,
  rate,
  reportedQuantity,
  usageLines,
} from '../../billing/metering';
import { formatUsd, formatUsdOrNull, usd } from '../../billing/money';
import { priceBookToJson, type PriceBook } from '../../billing/price-book';
import type { RatingFailure } from '../../billing/rating';
import type { Db } from '../../db/connection';
import { customerExists } from '../../db/customers';
import { type AuthorizationRow, eventKey, type HotPath, type IngestRow } from '../../db/hot-path';
import { settleGrantClaims } from '../../db/ledger';
import { setLowBalanceThreshold } from '../../db/postings';
import { aggregateUsage, type UsageGroup } from '../../db/usage';
import type { CrossingNotifier } from '../crossing-notifier';
import type { Metrics } from '../metrics';
import { ApiError, invalid, notFound } from '../errors';
import { describeIssue, type RouteTable } from '../http';
import { derivedId } from '../idempotency';
import {
  Authorization,
  AuthorizationCreate,
  CaptureCreate,
  MoneyInput,
  Quote,
  QuoteCreate,
  text,
  UsageEvent,
  UsageEventResult,
  UsageEventsCreate,
  UsageQuery,
} from '../schemas';

export interface MeteringDeps {
  db: Db;
  hotPath: HotPath;
  priceBook: PriceBook;
  notifier: CrossingNotifier;
  metrics: Metrics;
  hold_ttl_seconds: number;
  logger: Logger;
}

/** The hot path over HTTP: prices, quotes, authorizations (hold, capture, void), usage ingestion and aggregation. */
export function meteringRoutes(routes: RouteTable, deps: MeteringDeps): void {
  const recent = new RecentAuthorizations(RECENT_AUTHORIZATIONS_KEPT);

  routes.add({
    method: 'get',
    path: '/v1/prices',
    tag: 'Metering',
    summary:
      'The price book: every version with its effective date, prices in each unit (per 1M tokens, per image, per audio minute, per GB-day, per 1,000 tool calls), modifiers and notes.',
    responses: { 200: { description: 'The price book' } },
    handler: async () => ({ status: 200, body: priceBookToJson(deps.priceBook) }),
  });

  routes.add({
    method: 'post',
    path: '/v1/quotes',
    tag: 'Metering',
    summary: 'Prices a usage at the current prices without recording anything.',
    body: QuoteCreate,
    responses: { 200: { description: 'The price', schema: Quote } },
    handler: async ({ body }) => {
      const rated = rateOrThrow(deps.priceBook, body.model, body.usage, new Date(), 'usage.');
      return {
        status: 200,
        body: {
          object: 'quote',
          model: rated.model,
          price_version: rated.price_version,
          processing: rated.processing,
          cost_usd: formatUsd(rated.cost_nanos),
          lines: Object.entries(usageLines(rated)).map(([dimension, [quantity, amount]]) => ({
            dimension,
            quantity,
            amount_usd: formatUsd(BigInt(amount)),
          })),
        } satisfies z.infer<typeof Quote>,
      };
    },
  });

  routes.add({
    method: 'post',
    path: '/v1/authorizations',
    tag: 'Metering',
    summary:
      'Holds the estimated cost of a call if the balance covers it and the budget, usage limit and rate limits allow it; 402 or 429 otherwise.',
    body: AuthorizationCreate,
    responses: { 201: { description: 'Held', schema: Authorization } },
    handler: async ({ body, principal, idempotencyKey }) => {
      const now = new Date();
      const rated = rateOrThrow(deps.priceBook, body.model, body.estimated_usage, now, 'estimated_usage.');
      const id = derivedId('auth', principal, idempotencyKey, 'authorization');
      const expires_at = holdExpiry(now, body.ttl_seconds ?? deps.hold_ttl_seconds);
      const outcome = await deps.hotPath.authorize({
        customer_id: body.customer_id,
        authorization_id: id,
        model: rated.model,
        hold_nanos: rated.cost_nanos,
        estimated_tokens: estimatedTokens(rated),
        created_at: now,
        expires_at,
      });
      if (!outcome.ok) {
        if (outcome.code !== 'exists') deps.metrics.authorizationRefused(outcome.code);
        switch (outcome.code) {
          case 'unknown_customer':
            throw notFound('customer', body.customer_id, 'customer_id');
          case 'exists':
            return { status: 201, body: authorizationView(await mustGet(id)) };
          case 'insufficient_balance':
            throw new ApiError(
              'insufficient_balance',
              'the available balance does not cover the estimated cost',
              {
                extra: {
                  available_usd: formatUsd(outcome.available_nanos),
                  required_usd: formatUsd(rated.cost_nanos),
                },
              },
            );
          case 'budget_limit_reached':
          case 'usage_limit_reached':
            if (outcome.crossed) deps.notifier.kick();
            // Both are monthly caps (the customer's budget, the tier's or the operator's usage limit): the same type,
            // told apart by the code.
            throw new ApiError(
              'budget_limit_reached',
              outcome.code === 'budget_limit_reached'
                ? "this month's spend and open holds would pass the monthly budget limit"
                : "this month's spend and open holds would pass the monthly usage limit",
              {
                code: outcome.code,
                extra: {
                  limit_usd: formatUsd(outcome.limit_nanos),
                  would_commit_usd: formatUsd(outcome.committed_nanos),
                },
              },
            );
          case 'rate_limit_exceeded':
            throw new ApiError(
              'rate_limit_exceeded',
              `the customer's requests or tokens per minute are used up; retry in ${outcome.retry_after_s} s`,
              {
                headers: { 'Retry-After': String(outcome.retry_after_s) },
                extra: { retry_after_s: outcome.retry_after_s },
              },
            );
        }
      }
      if (outcome.crossed) deps.notifier.kick();
      deps.metrics.authorized();
      const held: AuthorizationRow = {
        id,
        customer_id: body.customer_id,
        model: rated.model,
        hold_nanos: rated.cost_nanos,
        status: 'held',
        created_at: now,
        expires_at,
        settled_at: null,
        cost_nanos: null,
        released_nanos: null,
        event_id: null,
      };
      recent.remember(held);
      return { status: 201, body: authorizationView(held) };
    },
  });

  routes.add({
    method: 'post',
    path: '/v1/authorizations/:id/capture',
    tag: 'Metering',
    summary: 'Charges the actual cost and releases the rest of the hold (more than held charges the excess).',
    body: CaptureCreate,
    responses: { 200: { description: 'Captured', schema: Authorization } },
    handler: async ({ params, body }) => {
      // The model and hold of an authorization never change, so the facts this process learned at authorize time
      // save a read; the capture statement itself checks that the hold is still held.
      const facts = recent.take(params.id!) ?? (await deps.hotPath.getAuthorization(params.id!));
      if (!facts) throw notFound('authorization', params.id!);
      const now = new Date();
      const rated = rateOrThrow(deps.priceBook, facts.model, body.usage, now, 'usage.');
      const outcome = await deps.hotPath.capture({
        authorization_id: facts.id,
        cost_nanos: rated.cost_nanos,
        provider_cost_nanos: rated.provider_cost_nanos,
        event_id: body.event_id ?? facts.id,
        occurred_at: now,
        lines: usageLines(rated),
        price_version: rated.price_version,
        processing: rated.processing,
        feature: body.usage.feature ?? null,
      });
      if (outcome.ok) {
        if (outcome.crossed) deps.notifier.kick();
        if (outcome.claimed) await settleClaims(outcome.authorization.customer_id);
        deps.metrics.captured();
        return { status: 200, body: authorizationView(outcome.authorization) };
      }
      if (outcome.code === 'wallet_floor_reached') throw walletFloorReached(rated.cost_nanos, deps.hotPath);
      if (outcome.code === 'duplicate_event') {
        throw new ApiError(
          'conflict',
          'a usage event with this event_id was already recorded for the customer',
          {
            code: 'duplicate_event',
            param: 'event_id',
          },
        );
      }
      // Not held: a retry of a capture (answered with its stored result), a void, or an expiry got there first.
      return settledOrConflict(await mustGet(facts.id), 'captured');
    },
  });

  routes.add({
    method: 'post',
    path: '/v1/authorizations/:id/void',
    tag: 'Metering',
    summary: 'Releases the hold without charging.',
    responses: { 200: { description: 'Voided', schema: Authorization } },
    handler: async ({ params }) => {
      const auth = await deps.hotPath.getAuthorization(params.id!);
      if (!auth) throw notFound('authorization', params.id!);
      recent.take(auth.id);
      if (auth.status === 'held') {
        const released = await deps.hotPath.release(auth.id, 'voided');
        if (released?.claimed) await settleClaims(auth.customer_id);
      }
      return settledOrConflict(await mustGet(auth.id), 'voided');
    },
  });

  routes.add({
    method: 'get',
    path: '/v1/authorizations/:id',
    tag: 'Metering',
    summary: 'Retrieve an authorization.',
    responses: { 200: { description: 'The authorization', schema: Authorization } },
    handler: async ({ params }) => ({ status: 200, body: authorizationView(await mustGet(params.id!)) }),
  });

  routes.add({
    method: 'post',
    path: '/v1/usage-events',
    tag: 'Metering',
    summary: 'Records 1..1000 usage events; each is accepted, a duplicate (charged once, ever) or rejected.',
    body: UsageEventsCreate,
    responses: {
      200: {
        description: 'One result per event, in order',
        schema: z.object({
          data: z.array(UsageEventResult),
          accepted: z.number(),
          duplicate: z.number(),
          rejected: z.number(),
        }),
      },
    },
    handler: async ({ body }) => ingestBatch(deps, body.events),
  });

  routes.add({
    method: 'get',
    path: '/v1/customers/:id/usage',
    tag: 'Metering',
    summary:
      'Usage and cost in [from, to) by event time (default: this UTC month), grouped by model, dimension, feature, day.',
    query: UsageQuery,
    responses: { 200: { description: 'Aggregated usage' } },
    handler: async ({ params, query }) => {
      const customer_id = params.id!;
      if (!(await customerExists(deps.db, customer_id))) throw notFound('customer', customer_id);
      const now = new Date();
      const from = query.from
        ? new Date(query.from)
        : new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
      const to = query.to
        ? new Date(query.to)
        : new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1));
      if (to.getTime() <= from.getTime()) throw invalid('to', 'to must be after from');
      const groupBy = (query.group_by?.split(',') ?? []) as UsageGroup[];
      const usage = await aggregateUsage(deps.db, customer_id, { from, to }, groupBy);
      return {
        status: 200,
        body: {
          object: 'usage',
          customer_id,
          from: from.toISOString(),
          to: to.toISOString(),
          group_by: [...new Set(groupBy)],
          total_cost_usd: formatUsd(usage.total.cost_nanos),
          total_events: Number(usage.total.events),
          data: usage.groups.map(({ cost_nanos, events, quantity, ...keys }) => ({
            ...keys,
            ...(quantity === undefined ? {} : { quantity: reportedQuantity(keys.dimension!, quantity) }),
            events: Number(events),
            cost_usd: formatUsd(cost_nanos),
          })),
        },
      };
    },
  });

  routes.add({
    method: 'put',
    path: '/v1/customers/:id/balance-threshold',
    tag: 'Metering',
    summary:
      'The available balance below which the account workflow is told (once per crossing); null clears.',
    body: z.object({ threshold_usd: MoneyInput.nullable() }).strict(),
    responses: { 200: { description: 'Saved' } },
    handler: async ({ params, body }) => {
      // MoneyInput has validated the string, so usd() cannot throw here.
      const threshold_nanos = body.threshold_usd === null ? null : usd(body.threshold_usd);
      if (!(await setLowBalanceThreshold(deps.db, params.id!, threshold_nanos)))
        throw notFound('customer', params.id!);
      return {
        status: 200,
        body: {
          customer_id: params.id!,
          threshold_usd: formatUsdOrNull(threshold_nanos),
        },
      };
    },
  });

  /**
   * Writes off at once what an expired or voided grant's claim on a just-settled hold gave back, so that credit is not
   * spendable in between. Best effort: the release-expired-holds schedule settles whatever this leaves (a failure is
   * logged, never the caller's error: the capture or void itself is done).
   */
  async function settleClaims(customer_id: string): Promise<void> {
    try {
      await settleGrantClaims(deps.db, customer_id);
    } catch (error) {
      deps.logger.warn({ err: error, customer_id }, 'grant claims not settled now; the sweep will');
    }
  }

  async function mustGet(id: string): Promise<AuthorizationRow> {
    const auth = await deps.hotPath.getAuthorization(id);
    if (!auth) throw notFound('authorization', id);
    return auth;
  }
}

/** How many authorizations this process remembers between authorize and capture (a few MB at most). */
const RECENT_AUTHORIZATIONS_KEPT = 50_000;

/**
 * The immutable facts (customer, model, hold) of authorizations this process created, so that a capture on the
 * same process needs no read before its statement. Bounded: the oldest are forgotten first, and a capture of a
 * forgotten (or another process's) authorization reads it from PostgreSQL instead.
 */
class RecentAuthorizations {
  private readonly byId = new Map<string, AuthorizationRow>();

  constructor(private readonly limit: number) {}

  remember(auth: AuthorizationRow): void {
    this.byId.set(auth.id, auth);
    if (this.byId.size > this.limit) this.byId.delete(this.byId.keys().next().value!);
  }

  take(id: string): AuthorizationRow | undefined {
    const auth = this.byId.get(id);
    this.byId.delete(id);
    return auth;
  }
}

/** A settled authorization answers a retry of the same action with its stored result; anything else is a 409. */
function settledOrConflict(auth: AuthorizationRow, wanted: 'captured' | 'voided') {
  if (auth.status === wanted) return { status: 200, body: authorizationView(auth) };
  const expired =
    auth.status === 'expired' || (auth.status === 'held' && auth.expires_at.getTime() <= Date.now());
  throw new ApiError(
    'conflict',
    expired
      ? 'the authorization expired and its hold was released; record the usage with POST /v1/usage-events'
      : `the authorization is ${auth.status}`,
    { code: expired ? 'authorization_expired' : `authorization_${auth.status}` },
  );
}

function authorizationView(auth: AuthorizationRow): z.infer<typeof Authorization> {
  return {
    id: auth.id,
    object: 'authorization',
    customer_id: auth.customer_id,
    model: auth.model,
    status: auth.status,
    hold_usd: formatUsd(auth.hold_nanos),
    cost_usd: formatUsdOrNull(auth.cost_nanos),
    released_usd: formatUsdOrNull(auth.released_nanos),
    event_id: auth.event_id,
    created_at: auth.created_at.toISOString(),
    expires_at: auth.expires_at.toISOString(),
  };
}

function rateOrThrow(...args: Parameters<typeof rate>) {
  const rated = rate(...args);
  if (!rated.ok) throw ratingError(rated);
  return rated;
}

function ratingError(failure: RatingFailure): ApiError {
  return invalid(failure.param, failure.message, failure.code);
}

type EventResult = z.infer<typeof UsageEventResult>;

/**
 * Validates and rates each event on its own (a bad event never spoils the batch), drops repeats within the batch,
 * then records the rest in one transaction. Results come back in the order the events were sent.
 */
/**
 * What a rejected event's id must be for the result to echo it (otherwise `null`; results are in request order
 * either way): text without control characters or lone surrogates. A NUL in the echo would reach the stored
 * idempotent response, which PostgreSQL's jsonb refuses, and turn one bad event into a 500.
 */
const ECHOABLE_TEXT = text({ max: 1000 });

async function ingestBatch(deps: MeteringDeps, events: unknown[]) {
  const now = new Date();
  const results: EventResult[] = new Array(events.length);
  const rows: IngestRow[] = [];
  const rowIndex: number[] = [];
  const seen = new Set<string>();
  events.forEach((raw, i) => {
    const rawId = (raw as { event_id?: unknown } | null)?.event_id;
    const event_id = typeof rawId === 'string' && ECHOABLE_TEXT.safeParse(rawId).success ? rawId : null;
    const parsed = UsageEvent.safeParse(raw);
    if (!parsed.success) {
      const problem = describeIssue(parsed.error.issues[0]!, [`events[${i}]`]);
      results[i] = reject(event_id, 'invalid_event', problem.message, problem.param ?? `events[${i}]`);
      return;
    }
    const event = parsed.data;
    const occurred_at = event.timestamp ? new Date(event.timestamp) : now;
    if (occurred_at.getTime() > now.getTime() + MAX_EVENT_CLOCK_SKEW_MS) {
      results[i] = reject(
        event.event_id,
        'timestamp_in_future',
        'timestamp is in the future',
        `events[${i}].timestamp`,
      );
      return;
    }
    const { event_id: id, customer_id, model, timestamp: _t, ...usage } = event;
    const rated = rate(deps.priceBook, model, usage, occurred_at, '');
    if (!rated.ok) {
      results[i] = reject(id, rated.code, rated.message, `events[${i}].${rated.param}`);
      return;
    }
    const key = eventKey(customer_id, id);
    if (seen.has(key)) {
      results[i] = { event_id: id, status: 'duplicate' };
      return;
    }
    seen.add(key);
    rowIndex.push(i);
    rows.push({
      customer_id,
      event_id: id,
      model: rated.model,
      feature: event.feature ?? null,
      processing: rated.processing,
      occurred_at,
      cost_nanos: rated.cost_nanos,
      provider_cost_nanos: rated.provider_cost_nanos,
      price_version: rated.price_version,
      lines: usageLines(rated),
    });
  });

  if (rows.length > 0) {
    const outcome = await deps.hotPath.ingest(randomUUID(), rows);
    rows.forEach((row, n) => {
      const i = rowIndex[n]!;
      if (outcome.unknown_customers.has(row.customer_id)) {
        results[i] = reject(
          row.event_id,
          'unknown_customer',
          `no customer with id '${row.customer_id}'`,
          `events[${i}].customer_id`,
        );
      } else if (outcome.past_floor.has(eventKey(row.customer_id, row.event_id))) {
        results[i] = reject(
          row.event_id,
          'wallet_floor_reached',
          `recording this event would take the available balance below the wallet floor of ${formatUsd(-deps.hotPath.wallet_floor_nanos)}`,
          `events[${i}]`,
        );
      } else if (outcome.recorded.has(eventKey(row.customer_id, row.event_id))) {
        results[i] = { event_id: row.event_id, status: 'accepted', cost_usd: formatUsd(row.cost_nanos) };
      } else {
        results[i] = { event_id: row.event_id, status: 'duplicate' };
      }
    });
    if (outcome.crossed) deps.notifier.kick();
  }
  const count = (status: EventResult['status']) => results.filter((r) => r.status === status).length;
  deps.metrics.usageEventsReceived({
    accepted: count('accepted'),
    duplicate: count('duplicate'),
    rejected: count('rejected'),
  });
  return {
    status: 200,
    body: {
      data: results,
      accepted: count('accepted'),
      duplicate: count('duplicate'),
      rejected: count('rejected'),
    },
  };
}

/** A capture whose cost beyond its hold would take the wallet below its floor: 402, nothing recorded. */
function walletFloorReached(cost_nanos: bigint, hotPath: HotPath): ApiError {
  return new ApiError(
    'insufficient_balance',
    `capturing ${formatUsd(cost_nanos)} would take the available balance below the wallet floor`,
    {
      code: 'wallet_floor_reached',
      extra: { floor_usd: formatUsd(-hotPath.wallet_floor_nanos), required_usd: formatUsd(cost_nanos) },
    },
  );
}

function reject(event_id: string | null, code: string, message: string, param: string): EventResult {
  return { event_id, status: 'rejected', error: { code, message, param } };
}
