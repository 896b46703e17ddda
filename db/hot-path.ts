import type { Socket } from 'node:net';
import { Pool, type PoolClient, type QueryConfig, type QueryResult, type QueryResultRow } from 'pg';
import type { UsageLines } from '../billing/metering';
import './connection'; // registers the int8 -> bigint parser before any query runs

/**
 * The hot path: authorize, capture, void and ingest. Each operation is one SQL statement (ingestion: one short
 * transaction) against the customer's wallet row plus appends, straight through `pg` with named prepared
 * statements. The conditional update of the wallet row is the whole concurrency story: PostgreSQL's row lock
 * serialises one customer's calls, and `available_nanos >= hold` is checked and applied in the same statement,
 * so no interleaving can overdraw.
 *
 * Every statement also records a threshold crossing (old balance >= threshold > new balance) in the same
 * statement, so a crossing is noticed exactly once however many calls race past it.
 */

export interface HotPathOptions {
  databaseUrl: string;
  pool_max: number;
  statement_timeout_ms?: number;
}

export function createHotPathPool(options: HotPathOptions): Pool {
  const pool = new Pool({
    connectionString: options.databaseUrl,
    max: options.pool_max,
    statement_timeout: options.statement_timeout_ms ?? 10_000,
  });
  pool.on('connect', (client) => coalesceWrites(client));
  return pool;
}

/**
 * `pg` writes each protocol message of a prepared statement (bind, describe, execute, sync) to the socket
 * separately: four system calls per query, a fifth of the hot path's CPU in profiles. Corking the socket for the
 * rest of the tick sends them as one packet. `connection.stream` is the client's socket (a net.Socket).
 */
function coalesceWrites(client: PoolClient): void {
  const stream = (client as unknown as { connection?: { stream?: Socket } }).connection?.stream;
  if (!stream || typeof stream.cork !== 'function') return;
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  let corked = false;
  stream.write = ((...args: unknown[]) => {
    if (!corked) {
      corked = true;
      stream.cork();
      process.nextTick(() => {
        corked = false;
        stream.uncork();
      });
    }
    return write(...args);
  }) as Socket['write'];
}

/**
 * SET clauses that take `amount` off the available balance and, if the threshold is armed and the new balance is
 * below it, disarm it and mark this transaction as the one that crossed (see the migration's comment).
 */
const DEBIT = (amount: string) => {
  const after = `available_nanos - (${amount})`;
  const crosses = `threshold_armed AND below_threshold(low_balance_threshold_nanos, ${after})`;
  return `available_nanos = ${after},
    last_crossing_xact = CASE WHEN ${crosses} THEN pg_current_xact_id() ELSE last_crossing_xact END,
    threshold_armed = threshold_armed AND NOT below_threshold(low_balance_threshold_nanos, ${after})`;
};

/** In RETURNING: whether this statement's debit crossed the threshold. */
const CROSSED = `(wallets.last_crossing_xact IS NOT DISTINCT FROM pg_current_xact_id()) AS crossed`;

/** Records the crossing of every wallet row of `w` that crossed; the account workflow will hear about it. */
const CROSSING = `
  INSERT INTO threshold_crossings (customer_id, threshold_nanos, balance_after_nanos)
  SELECT w.customer_id, w.low_balance_threshold_nanos, w.available_nanos FROM w WHERE w.crossed
  RETURNING id`;

export const AUTHORIZE_SQL = `
WITH w AS (
  UPDATE wallets SET ${DEBIT('$4::bigint')}, held_nanos = held_nanos + $4::bigint, updated_at = now()
  WHERE customer_id = $1 AND available_nanos > 0 AND available_nanos >= $4::bigint
  RETURNING customer_id, available_nanos, low_balance_threshold_nanos, ${CROSSED}
), a AS (
  INSERT INTO authorizations (id, customer_id, model, hold_nanos, status, created_at, expires_at)
  SELECT $2, $1, $3, $4::bigint, 'held', $6::timestamptz, $5::timestamptz FROM w
), e AS (
  INSERT INTO ledger_entries (customer_id, kind, ref, amount_nanos, balance_after_nanos)
  SELECT $1, 'hold', $2, -$4::bigint, w.available_nanos FROM w WHERE $4::bigint > 0
  RETURNING id
), p AS (
  INSERT INTO ledger_postings (entry_id, customer_id, account, amount_nanos)
  SELECT e.id, $1, v.account, v.amount FROM e
  CROSS JOIN (VALUES ('available', -$4::bigint), ('held', $4::bigint)) AS v(account, amount)
), c AS (${CROSSING})
SELECT w.available_nanos, (SELECT count(*) FROM c)::int AS crossings FROM w`;

/**
 * Capture locks in the same order as ingestion: the authorization, then the usage event's key (`ev`), then the
 * wallet (`w` waits for `ev` through its EXISTS), so a capture and an ingestion racing on one event id queue
 * behind each other instead of deadlocking.
 */
export const CAPTURE_SQL = `
WITH a AS (
  UPDATE authorizations SET status = 'captured', settled_at = now(), cost_nanos = $2::bigint,
    released_nanos = GREATEST(hold_nanos - $2::bigint, 0), event_id = $4
  WHERE id = $1 AND status = 'held' AND expires_at > now()
  RETURNING id, customer_id, model, hold_nanos, status, created_at, expires_at, settled_at, cost_nanos,
    released_nanos, event_id
), ev AS (
  INSERT INTO usage_events (customer_id, event_id, model, feature, processing, occurred_at, cost_nanos,
    provider_cost_nanos, price_version, lines, authorization_id)
  SELECT a.customer_id, $4, a.model, $9, $8, $5::timestamptz, $2::bigint, $3::bigint, $7, $6::jsonb, $1
  FROM a
  RETURNING customer_id
), w AS (
  UPDATE wallets SET ${DEBIT('$2::bigint - a.hold_nanos')}, held_nanos = held_nanos - a.hold_nanos,
    updated_at = now()
  FROM a WHERE wallets.customer_id = a.customer_id AND EXISTS (SELECT 1 FROM ev)
  RETURNING wallets.customer_id, wallets.available_nanos, a.hold_nanos, wallets.low_balance_threshold_nanos,
    ${CROSSED}
), e AS (
  INSERT INTO ledger_entries (customer_id, kind, ref, amount_nanos, balance_after_nanos)
  SELECT w.customer_id, 'capture', $1, w.hold_nanos - $2::bigint, w.available_nanos FROM w
  WHERE w.hold_nanos > 0 OR $2::bigint > 0
  RETURNING id
), p AS (
  INSERT INTO ledger_postings (entry_id, customer_id, account, amount_nanos)
  SELECT e.id, v.customer_id, v.account, v.amount FROM e CROSS JOIN w
  CROSS JOIN LATERAL (VALUES (w.customer_id, 'held', -w.hold_nanos),
                             (w.customer_id, 'available', w.hold_nanos - $2::bigint),
                             (NULL, 'revenue', $2::bigint)) AS v(customer_id, account, amount)
  WHERE v.amount <> 0 OR v.account = 'held'
), c AS (${CROSSING})
SELECT a.*, w.available_nanos, (SELECT count(*) FROM c)::int AS crossings FROM a JOIN w USING (customer_id)`;

/** Releases a hold: `voided` by the caller, or `expired` by the sweeper (only once its time has passed). */
export const RELEASE_SQL = `
WITH a AS (
  UPDATE authorizations SET status = $2, settled_at = now(), cost_nanos = 0, released_nanos = hold_nanos
  WHERE id = $1 AND status = 'held' AND ($2 = 'voided' OR expires_at <= now())
  RETURNING customer_id, hold_nanos
), w AS (
  UPDATE wallets SET available_nanos = available_nanos + a.hold_nanos, held_nanos = held_nanos - a.hold_nanos,
    updated_at = now()
  FROM a WHERE wallets.customer_id = a.customer_id
  RETURNING wallets.customer_id, wallets.available_nanos, a.hold_nanos
), e AS (
  INSERT INTO ledger_entries (customer_id, kind, ref, amount_nanos, balance_after_nanos)
  SELECT w.customer_id, 'release', $1, w.hold_nanos, w.available_nanos FROM w WHERE w.hold_nanos > 0
  RETURNING id
), p AS (
  INSERT INTO ledger_postings (entry_id, customer_id, account, amount_nanos)
  SELECT e.id, w.customer_id, v.account, v.amount FROM e CROSS JOIN w
  CROSS JOIN LATERAL (VALUES ('held', -w.hold_nanos), ('available', w.hold_nanos)) AS v(account, amount)
)
SELECT w.hold_nanos FROM w`;

/**
 * One statement per batch. Events of unknown customers are left out (and reported), repeats of a recorded
 * (customer_id, event_id) are skipped by the primary key, each customer is charged one ledger entry for its new
 * events, and the wallets are locked in customer-id order only after the events are in (`locked`), so concurrent
 * batches over the same customers neither deadlock nor hold wallet locks while inserting events. Entry ids are
 * drawn after the lock, so a customer's entries in id order always chain balance to balance.
 */
export const INGEST_SQL = `
WITH input AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
    $7::bigint[], $8::bigint[], $9::text[], $10::jsonb[])
    AS t(customer_id, event_id, model, feature, processing, occurred_at, cost_nanos, provider_cost_nanos,
         price_version, lines)
), known AS (
  SELECT c.customer_id FROM (SELECT DISTINCT customer_id FROM input) c
  WHERE EXISTS (SELECT 1 FROM wallets w WHERE w.customer_id = c.customer_id)
), ins AS (
  INSERT INTO usage_events (customer_id, event_id, model, feature, processing, occurred_at, cost_nanos,
    provider_cost_nanos, price_version, lines, batch_id)
  SELECT i.customer_id, i.event_id, i.model, i.feature, i.processing, i.occurred_at, i.cost_nanos,
    i.provider_cost_nanos, i.price_version, i.lines, $11::uuid
  FROM input i JOIN known k USING (customer_id)
  ON CONFLICT (customer_id, event_id) DO NOTHING
  RETURNING customer_id, event_id, cost_nanos
), totals AS (
  SELECT customer_id, sum(cost_nanos)::bigint AS total FROM ins GROUP BY customer_id HAVING sum(cost_nanos) > 0
), locked AS (
  SELECT w.customer_id FROM wallets w JOIN totals t USING (customer_id) ORDER BY w.customer_id FOR UPDATE OF w
), w AS (
  UPDATE wallets SET ${DEBIT('t.total')}, updated_at = now()
  FROM totals t JOIN locked l USING (customer_id) WHERE wallets.customer_id = t.customer_id
  RETURNING wallets.customer_id, wallets.available_nanos, t.total, wallets.low_balance_threshold_nanos, ${CROSSED}
), e AS (
  INSERT INTO ledger_entries (customer_id, kind, ref, amount_nanos, balance_after_nanos)
  SELECT w.customer_id, 'usage', 'usage:' || $11 || ':' || w.customer_id, -w.total, w.available_nanos FROM w
  RETURNING id, customer_id
), p AS (
  INSERT INTO ledger_postings (entry_id, customer_id, account, amount_nanos)
  SELECT e.id, v.customer_id, v.account, v.amount FROM e JOIN w USING (customer_id)
  CROSS JOIN LATERAL (VALUES (w.customer_id, 'available', -w.total), (NULL, 'revenue', w.total))
    AS v(customer_id, account, amount)
), c AS (${CROSSING})
SELECT 'recorded' AS kind, customer_id, event_id FROM ins
UNION ALL SELECT 'unknown', customer_id, NULL FROM (SELECT DISTINCT customer_id FROM input) i
  WHERE NOT EXISTS (SELECT 1 FROM known k WHERE k.customer_id = i.customer_id)
UNION ALL SELECT 'crossed', NULL, NULL FROM c`;

export interface AuthorizeInput {
  customer_id: string;
  authorization_id: string;
  model: string;
  hold_nanos: bigint;
  /** When the API accepted the call: stored as is, so the response and later reads agree to the millisecond. */
  created_at: Date;
  expires_at: Date;
}

export type AuthorizeOutcome =
  | { ok: true; available_nanos: bigint; crossed: boolean }
  | { ok: false; code: 'insufficient_balance'; available_nanos: bigint }
  | { ok: false; code: 'unknown_customer' }
  /** An authorization with this id exists already (a retried request): nothing was held again. */
  | { ok: false; code: 'exists' };

export interface CaptureInput {
  authorization_id: string;
  cost_nanos: bigint;
  provider_cost_nanos: bigint;
  event_id: string;
  occurred_at: Date;
  /** Per-dimension quantity and amount, stored as `usage_events.lines` (see `UsageLines`). */
  lines: UsageLines;
  price_version: string;
  processing: string;
  feature: string | null;
}

export interface AuthorizationRow {
  id: string;
  customer_id: string;
  model: string;
  hold_nanos: bigint;
  status: 'held' | 'captured' | 'voided' | 'expired';
  created_at: Date;
  expires_at: Date;
  settled_at: Date | null;
  cost_nanos: bigint | null;
  released_nanos: bigint | null;
  event_id: string | null;
}

export type CaptureOutcome =
  | { ok: true; authorization: AuthorizationRow; available_nanos: bigint; crossed: boolean }
  | { ok: false; code: 'not_held' }
  | { ok: false; code: 'duplicate_event' };

export interface IngestRow {
  customer_id: string;
  event_id: string;
  model: string;
  feature: string | null;
  processing: string;
  occurred_at: Date;
  cost_nanos: bigint;
  provider_cost_nanos: bigint;
  price_version: string;
  /** Per-dimension quantity and amount, stored as `usage_events.lines` (see `UsageLines`). */
  lines: UsageLines;
}

const UNIQUE_VIOLATION = '23505';
const DEADLOCK_DETECTED = '40P01';
const MAX_DEADLOCK_RETRIES = 3;

export class HotPath {
  constructor(readonly pool: Pool) {}

  /**
   * Runs one statement, again if PostgreSQL broke a deadlock by aborting it. Locks are taken in one order
   * (authorization, event keys, wallets in id order), so only two ingestion batches inserting the same event ids
   * in opposite orders can deadlock; the aborted statement left nothing behind, so running it again is safe.
   */
  private async query<R extends QueryResultRow>(config: QueryConfig): Promise<QueryResult<R>> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.pool.query<R>(config);
      } catch (error) {
        if ((error as { code?: string }).code !== DEADLOCK_DETECTED || attempt >= MAX_DEADLOCK_RETRIES)
          throw error;
      }
    }
  }

  async authorize(input: AuthorizeInput): Promise<AuthorizeOutcome> {
    let result;
    try {
      result = await this.pool.query<{ available_nanos: bigint; crossings: number }>({
        name: 'authorize',
        text: AUTHORIZE_SQL,
        values: [
          input.customer_id,
          input.authorization_id,
          input.model,
          input.hold_nanos,
          input.expires_at,
          input.created_at,
        ],
      });
    } catch (error) {
      if ((error as { code?: string }).code === UNIQUE_VIOLATION) return { ok: false, code: 'exists' };
      throw error;
    }
    const row = result.rows[0];
    if (row) return { ok: true, available_nanos: row.available_nanos, crossed: row.crossings > 0 };
    // Refused: only now find out why (the refusal path may cost a second query; the success path never does). A
    // retried request whose hold was taken the first time is refused by the balance check but is not a refusal.
    const wallet = await this.pool.query<{ available_nanos: bigint; held_already: boolean }>({
      name: 'wallet_available',
      text: `SELECT available_nanos, EXISTS (SELECT 1 FROM authorizations WHERE id = $2) AS held_already
             FROM wallets WHERE customer_id = $1`,
      values: [input.customer_id, input.authorization_id],
    });
    if (wallet.rows[0]?.held_already) return { ok: false, code: 'exists' };
    const found = wallet.rows[0];
    if (!found) return { ok: false, code: 'unknown_customer' };
    return { ok: false, code: 'insufficient_balance', available_nanos: found.available_nanos };
  }

  async getAuthorization(id: string): Promise<AuthorizationRow | undefined> {
    const result = await this.pool.query<AuthorizationRow>({
      name: 'get_authorization',
      text: `SELECT id, customer_id, model, hold_nanos, status, created_at, expires_at, settled_at, cost_nanos,
               released_nanos, event_id FROM authorizations WHERE id = $1`,
      values: [id],
    });
    return result.rows[0];
  }

  async capture(input: CaptureInput): Promise<CaptureOutcome> {
    try {
      const result = await this.query<AuthorizationRow & { available_nanos: bigint; crossings: number }>({
        name: 'capture',
        text: CAPTURE_SQL,
        values: [
          input.authorization_id,
          input.cost_nanos,
          input.provider_cost_nanos,
          input.event_id,
          input.occurred_at,
          JSON.stringify(input.lines),
          input.price_version,
          input.processing,
          input.feature,
        ],
      });
      const row = result.rows[0];
      if (!row) return { ok: false, code: 'not_held' };
      const { available_nanos, crossings, ...authorization } = row;
      return { ok: true, authorization, available_nanos, crossed: crossings > 0 };
    } catch (error) {
      // The whole statement is undone: the usage event id was already recorded, so nothing is charged twice.
      if ((error as { code?: string }).code === UNIQUE_VIOLATION)
        return { ok: false, code: 'duplicate_event' };
      throw error;
    }
  }

  /** Releases the hold. Returns the released amount, or null when the authorization was not held. */
  async release(authorization_id: string, as: 'voided' | 'expired'): Promise<bigint | null> {
    const result = await this.pool.query<{ hold_nanos: bigint }>({
      name: 'release',
      text: RELEASE_SQL,
      values: [authorization_id, as],
    });
    return result.rows[0]?.hold_nanos ?? null;
  }

  /** Ids of held authorizations whose time has passed, oldest first (for the expiry sweep). */
  async expiredHolds(limit: number): Promise<string[]> {
    const result = await this.pool.query<{ id: string }>({
      name: 'expired_holds',
      text: `SELECT id FROM authorizations WHERE status = 'held' AND expires_at <= now() ORDER BY expires_at LIMIT $1`,
      values: [limit],
    });
    return result.rows.map((r) => r.id);
  }

  /**
   * Records rated usage events in one statement (see INGEST_SQL). Returns the keys of the events recorded now and
   * the customers that do not exist (their events are not recorded).
   */
  async ingest(
    batch_id: string,
    rows: readonly IngestRow[],
  ): Promise<{ recorded: Set<string>; unknown_customers: Set<string>; crossed: boolean }> {
    const result = await this.query<{ kind: string; customer_id: string | null; event_id: string | null }>({
      name: 'ingest',
      text: INGEST_SQL,
      values: [
        rows.map((r) => r.customer_id),
        rows.map((r) => r.event_id),
        rows.map((r) => r.model),
        rows.map((r) => r.feature),
        rows.map((r) => r.processing),
        rows.map((r) => r.occurred_at),
        rows.map((r) => r.cost_nanos.toString()),
        rows.map((r) => r.provider_cost_nanos.toString()),
        rows.map((r) => r.price_version),
        rows.map((r) => JSON.stringify(r.lines)),
        batch_id,
      ],
    });
    const recorded = new Set<string>();
    const unknown_customers = new Set<string>();
    let crossed = false;
    for (const row of result.rows) {
      if (row.kind === 'recorded') recorded.add(eventKey(row.customer_id!, row.event_id!));
      else if (row.kind === 'unknown') unknown_customers.add(row.customer_id!);
      else crossed = true;
    }
    return { recorded, unknown_customers, crossed };
  }
}

export const eventKey = (customer_id: string, event_id: string): string => `${customer_id}\u0000${event_id}`;
