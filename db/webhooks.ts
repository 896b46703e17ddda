import type { Client } from 'pg';
import type { EventType } from '../billing/events';
import type { DeliveryStatus } from '../billing/webhooks';
import { execute, queryRows, textArray, type Db } from './connection';

/**
 * Outbound webhooks' tables (see the migration 20261130190200_webhooks): endpoints, the fan-out of the `events`
 * outbox into one delivery per (event, endpoint), the dispatcher's claims on deliveries whose workflow is still to
 * start, and the attempts each delivery made. No transaction here stays open across an HTTP or Temporal call.
 */

export type EndpointStatus = 'enabled' | 'disabled';

export interface WebhookEndpointRow {
  id: string;
  url: string;
  events: string[];
  status: EndpointStatus;
  created_at: Date;
  updated_at: Date;
}

const ENDPOINT_COLUMNS = 'id, url, events, status, created_at, updated_at';

/**
 * Creates an endpoint; an existing id (a retried request whose id derives from its Idempotency-Key) is returned as
 * it is, with `created: false`, and its secret is not handed out again. `endpoint` is undefined when that id names
 * an endpoint deleted since.
 */
export async function createWebhookEndpoint(
  db: Db,
  endpoint: { id: string; url: string; events: string[]; secret: string },
): Promise<{ endpoint: WebhookEndpointRow | undefined; created: boolean }> {
  const [inserted] = await queryRows<WebhookEndpointRow>(
    db,
    `INSERT INTO webhook_endpoints (id, url, events, secret) VALUES (?, ?, ?::text[], ?)
     ON CONFLICT (id) DO NOTHING RETURNING ${ENDPOINT_COLUMNS}`,
    [endpoint.id, endpoint.url, textArray(endpoint.events), endpoint.secret],
  );
  if (inserted) return { endpoint: inserted, created: true };
  return { endpoint: await getWebhookEndpoint(db, endpoint.id), created: false };
}

/** An endpoint that is not deleted. */
export async function getWebhookEndpoint(db: Db, id: string): Promise<WebhookEndpointRow | undefined> {
  const [row] = await queryRows<WebhookEndpointRow>(
    db,
    `SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ? AND status <> 'deleted'`,
    [id],
  );
  return row;
}

/**
 * Endpoints that are not deleted, newest first. `starting_after` is the last id of the previous page; undefined
 * result when that id names no endpoint (deleted ones still serve as cursors).
 */
export async function listWebhookEndpoints(
  db: Db,
  page: { limit: number; starting_after?: string },
): Promise<{ data: WebhookEndpointRow[]; has_more: boolean } | undefined> {
  const after = await cursorSeq(db, 'webhook_endpoints', page.starting_after);
  if (after === undefined) return undefined;
  const rows = await queryRows<WebhookEndpointRow>(
    db,
    `SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints
     WHERE status <> 'deleted' AND (?::bigint IS NULL OR seq < ?::bigint) ORDER BY seq DESC LIMIT ?`,
    [after, after, page.limit + 1],
  );
  return { data: rows.slice(0, page.limit), has_more: rows.length > page.limit };
}

/**
 * Enables, disables or deletes an endpoint that is not deleted; undefined if there is none. A disabled or deleted
 * endpoint gets no new deliveries, and its pending ones are canceled at their next attempt.
 */
export async function setWebhookEndpointStatus(
  db: Db,
  id: string,
  status: EndpointStatus | 'deleted',
): Promise<WebhookEndpointRow | undefined> {
  const [row] = await queryRows<WebhookEndpointRow>(
    db,
    `UPDATE webhook_endpoints SET status = ?, updated_at = CASE WHEN status = ? THEN updated_at ELSE now() END
     WHERE id = ? AND status <> 'deleted' RETURNING ${ENDPOINT_COLUMNS}`,
    [status, status, id],
  );
  return row;
}

// ---- Fan-out and dispatch ----

/**
 * Turns up to `limit` events not yet fanned out into their deliveries, in one transaction: the events are locked
 * (SKIP LOCKED, so concurrent dispatchers take disjoint batches and never wait), each gets one delivery per endpoint
 * that is enabled, subscribed to its type and was created no later than the event, and is then marked fanned out.
 * The (event, endpoint) key makes a delivery unique even so. Returns how many events were fanned out.
 */
export async function fanOutEvents(db: Db, limit: number): Promise<number> {
  return db.transaction(async (trx) => {
    const events = await queryRows<{ id: string }>(
      trx,
      `SELECT id FROM events WHERE fanned_out_at IS NULL ORDER BY seq LIMIT ? FOR UPDATE SKIP LOCKED`,
      [limit],
    );
    if (events.length === 0) return 0;
    const ids = textArray(events.map((e) => e.id));
    await execute(
      trx,
      `INSERT INTO webhook_deliveries (id, event_id, endpoint_id)
       SELECT 'whd_' || replace(gen_random_uuid()::text, '-', ''), ev.id, ep.id
       FROM events ev JOIN webhook_endpoints ep
         ON ep.status = 'enabled' AND ep.created_at <= ev.created_at
        AND (ev.type = ANY(ep.events) OR '*' = ANY(ep.events))
       WHERE ev.id = ANY(?::text[])
       ORDER BY ev.seq, ep.seq
       ON CONFLICT (event_id, endpoint_id) DO NOTHING`,
      [ids],
    );
    await execute(trx, `UPDATE events SET fanned_out_at = now() WHERE id = ANY(?::text[])`, [ids]);
    return events.length;
  });
}

/**
 * Claims up to `limit` deliveries whose workflow is not started yet, for `lease_ms`: another dispatcher skips them
 * until the lease ends, so one that crashes mid-batch gives them back by doing nothing.
 */
export async function claimUnstartedDeliveries(db: Db, limit: number, lease_ms: number): Promise<string[]> {
  const rows = await queryRows<{ id: string; seq: bigint }>(
    db,
    `UPDATE webhook_deliveries d SET claimed_until = now() + make_interval(secs => ? / 1000.0)
     WHERE d.id IN (
       SELECT id FROM webhook_deliveries
       WHERE workflow_started_at IS NULL AND (claimed_until IS NULL OR claimed_until <= now())
       ORDER BY seq LIMIT ? FOR UPDATE SKIP LOCKED)
     RETURNING d.id, d.seq`,
    [lease_ms, limit],
  );
  return rows.sort((a, b) => (a.seq < b.seq ? -1 : 1)).map((r) => r.id);
}

/** Records that these deliveries' workflows are started (by whoever: started is started). */
export async function markDeliveriesStarted(db: Db, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await execute(
    db,
    `UPDATE webhook_deliveries SET workflow_started_at = now(), claimed_until = NULL
     WHERE id = ANY(?::text[]) AND workflow_started_at IS NULL`,
    [textArray(ids)],
  );
}

/** Gives claimed deliveries back after their workflow could not be started, for a retry after `retry_ms`. */
export async function postponeDeliveries(db: Db, ids: readonly string[], retry_ms: number): Promise<void> {
  if (ids.length === 0) return;
  await execute(
    db,
    `UPDATE webhook_deliveries SET claimed_until = now() + make_interval(secs => ? / 1000.0)
     WHERE id = ANY(?::text[]) AND workflow_started_at IS NULL`,
    [retry_ms, textArray(ids)],
  );
}

/**
 * Listens on the `events` table's notification channel (a trigger notifies at each commit that recorded events), on
 * a dedicated connection outside the pool. `onLost` runs once if the connection breaks; the caller listens again.
 */
export async function listenForEvents(
  db: Db,
  handlers: { onEvent: () => void; onLost: (error?: unknown) => void },
): Promise<{ close(): Promise<void> }> {
  const connection = (await db.client.acquireRawConnection()) as Client;
  let lost = false;
  const lose = (error?: unknown) => {
    if (lost) return;
    lost = true;
    handlers.onLost(error);
  };
  connection.on('notification', () => handlers.onEvent());
  connection.on('error', lose);
  connection.on('end', () => lose());
  try {
    await connection.query('LISTEN billing_events');
  } catch (error) {
    lost = true;
    await db.client.destroyRawConnection(connection);
    throw error;
  }
  return {
    close: async () => {
      lost = true;
      await db.client.destroyRawConnection(connection);
    },
  };
}

// ---- Attempts ----

/** What an attempt needs: the delivery's state, its endpoint, and the event it carries. */
export interface DeliveryTarget {
  delivery_id: string;
  status: DeliveryStatus;
  endpoint_status: EndpointStatus | 'deleted';
  url: string;
  secret: string;
  event_id: string;
  event_type: EventType;
  customer_id: string | null;
  data: Record<string, unknown>;
  event_created_at: Date;
}

export async function getDeliveryTarget(db: Db, delivery_id: string): Promise<DeliveryTarget | undefined> {
  const [row] = await queryRows<DeliveryTarget>(
    db,
    `SELECT d.id AS delivery_id, d.status, ep.status AS endpoint_status, ep.url, ep.secret,
            ev.id AS event_id, ev.type AS event_type, ev.customer_id, ev.data, ev.created_at AS event_created_at
     FROM webhook_deliveries d
     JOIN webhook_endpoints ep ON ep.id = d.endpoint_id
     JOIN events ev ON ev.id = d.event_id
     WHERE d.id = ?`,
    [delivery_id],
  );
  return row;
}

/** Cancels a pending delivery (its endpoint was disabled or deleted); returns the delivery's status after. */
export async function cancelDelivery(db: Db, delivery_id: string): Promise<DeliveryStatus> {
  return settleStatus(
    db,
    `UPDATE webhook_deliveries SET status = 'canceled', next_attempt_at = NULL, completed_at = now()
     WHERE id = ? AND status = 'pending' RETURNING status`,
    delivery_id,
  );
}

export interface AttemptRecord {
  delivery_id: string;
  attempted_at: Date;
  duration_ms: number;
  /** The HTTP status answered, or null when no answer came (then `error` says why). */
  status_code: number | null;
  error: string | null;
  response_body: string | null;
  /** What the attempt made of the delivery (billing/webhooks.ts attemptOutcome). */
  outcome: Exclude<DeliveryStatus, 'canceled'>;
  /** When still pending: the delay before the next attempt. */
  next_attempt_in_ms: number | null;
}

/**
 * Records one attempt and its outcome in one transaction. Only a pending delivery changes status (a delivery
 * already settled, say by an earlier run of a retried activity, keeps its state); returns the status after.
 */
export async function recordAttempt(db: Db, attempt: AttemptRecord): Promise<DeliveryStatus> {
  return db.transaction(async (trx) => {
    await execute(
      trx,
      `INSERT INTO webhook_attempts (delivery_id, attempted_at, duration_ms, status_code, error, response_body)
       VALUES (?, ?, ?, ?, ?, ?)`,
      [
        attempt.delivery_id,
        attempt.attempted_at,
        attempt.duration_ms,
        attempt.status_code,
        attempt.error,
        attempt.response_body,
      ],
    );
    const pending = attempt.outcome === 'pending';
    return settleStatus(
      trx,
      `UPDATE webhook_deliveries SET
         attempt_count = attempt_count + 1,
         status = CASE WHEN status = 'pending' THEN ? ELSE status END,
         next_attempt_at = CASE WHEN status = 'pending' AND ?::boolean
                                THEN now() + make_interval(secs => ?::bigint / 1000.0) END,
         completed_at = CASE WHEN status = 'pending' AND NOT ?::boolean THEN now() ELSE completed_at END
       WHERE id = ? RETURNING status`,
      attempt.delivery_id,
      [attempt.outcome, pending, attempt.next_attempt_in_ms ?? 0, pending],
    );
  });
}

async function settleStatus(
  db: Db,
  sql: string,
  delivery_id: string,
  leading: (string | number | boolean)[] = [],
): Promise<DeliveryStatus> {
  const [row] = await queryRows<{ status: DeliveryStatus }>(db, sql, [...leading, delivery_id]);
  if (row) return row.status;
  const [current] = await queryRows<{ status: DeliveryStatus }>(
    db,
    `SELECT status FROM webhook_deliveries WHERE id = ?`,
    [delivery_id],
  );
  if (!current) throw new Error(`webhook delivery ${delivery_id} does not exist`);
  return current.status;
}

// ---- Reads ----

export interface AttemptRow {
  attempted_at: Date;
  duration_ms: number;
  status_code: number | null;
  error: string | null;
  response_body: string | null;
}

export interface DeliveryRow {
  id: string;
  endpoint_id: string;
  event_id: string;
  event_type: string;
  status: DeliveryStatus;
  attempt_count: number;
  next_attempt_at: Date | null;
  created_at: Date;
  completed_at: Date | null;
  attempts: AttemptRow[];
}

/**
 * One endpoint's deliveries, newest first (only those in `status` if given), each with every attempt in order. `starting_after` is the last delivery
 * id of the previous page; undefined result when it names no delivery of this endpoint.
 */
export async function listDeliveries(
  db: Db,
  endpoint_id: string,
  page: { limit: number; starting_after?: string; status?: DeliveryStatus },
): Promise<{ data: DeliveryRow[]; has_more: boolean } | undefined> {
  let after: bigint | null = null;
  if (page.starting_after !== undefined) {
    const [cursor] = await queryRows<{ seq: bigint }>(
      db,
      `SELECT seq FROM webhook_deliveries WHERE id = ? AND endpoint_id = ?`,
      [page.starting_after, endpoint_id],
    );
    if (!cursor) return undefined;
    after = cursor.seq;
  }
  const rows = await queryRows<Omit<DeliveryRow, 'attempts'>>(
    db,
    `SELECT d.id, d.endpoint_id, d.event_id, ev.type AS event_type, d.status, d.attempt_count, d.next_attempt_at,
            d.created_at, d.completed_at
     FROM webhook_deliveries d JOIN events ev ON ev.id = d.event_id
     WHERE d.endpoint_id = ? AND (?::bigint IS NULL OR d.seq < ?::bigint) AND (?::text IS NULL OR d.status = ?::text)
     ORDER BY d.seq DESC LIMIT ?`,
    [endpoint_id, after, after, page.status ?? null, page.status ?? null, page.limit + 1],
  );
  const deliveries = rows.slice(0, page.limit);
  const attempts = await queryRows<AttemptRow & { delivery_id: string }>(
    db,
    `SELECT delivery_id, attempted_at, duration_ms, status_code, error, response_body
     FROM webhook_attempts WHERE delivery_id = ANY(?::text[]) ORDER BY id`,
    [textArray(deliveries.map((d) => d.id))],
  );
  const byDelivery = new Map<string, AttemptRow[]>();
  for (const { delivery_id, ...attempt } of attempts) {
    const list = byDelivery.get(delivery_id) ?? [];
    list.push(attempt);
    byDelivery.set(delivery_id, list);
  }
  return {
    data: deliveries.map((d) => ({ ...d, attempts: byDelivery.get(d.id) ?? [] })),
    has_more: rows.length > page.limit,
  };
}

/**
 * The webhook backlog of all processes, through partial indexes, so cheap at every metrics scrape: deliveries still
 * pending (waiting for an attempt or between attempts), and events not yet fanned out (a dispatcher behind or down).
 */
export async function webhookBacklog(
  db: Db,
): Promise<{ pending_deliveries: number; unfanned_events: number }> {
  const [row] = await queryRows<{ pending_deliveries: number; unfanned_events: number }>(
    db,
    `SELECT (SELECT count(*)::int FROM webhook_deliveries WHERE status = 'pending') AS pending_deliveries,
            (SELECT count(*)::int FROM events WHERE fanned_out_at IS NULL) AS unfanned_events`,
  );
  return row ?? { pending_deliveries: 0, unfanned_events: 0 };
}

/** The `seq` of a cursor id in `table` (null without a cursor, undefined when the id is unknown). */
async function cursorSeq(
  db: Db,
  table: 'webhook_endpoints',
  id: string | undefined,
): Promise<bigint | null | undefined> {
  if (id === undefined) return null;
  const [row] = await queryRows<{ seq: bigint }>(db, `SELECT seq FROM ${table} WHERE id = ?`, [id]);
  return row?.seq;
}
